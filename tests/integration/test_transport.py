"""The exchange with PagerDuty over real HTTP (the stand-in): connections kept alive between sends, a
connection that died meanwhile never used again, and each request's timeouts the ones the invocation's
deadline counts on; over TLS, the certificate verified before anything is sent."""

from __future__ import annotations

import ipaddress
import json
import os
import ssl
import threading
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from pagerduty_bridge.devtools.fake_pagerduty import FakePagerDuty
from pagerduty_bridge.errors import PagerDutyDeliveryError
from pagerduty_bridge.events_api import EventsClient, request_timeouts
from pagerduty_bridge.processing import attempt_seconds
from pagerduty_bridge.transport import Connection, Connections, Target, _Connection
from tests.conftest import ROUTING_KEY


def resolve(dedup_key: str) -> dict[str, Any]:
    return {"routing_key": ROUTING_KEY, "event_action": "resolve", "dedup_key": dedup_key}


class TimedConnection(_Connection):
    """Notes the timeout each connect and each request is given."""

    seen: list[tuple[str, float | None]]

    def connect(self) -> None:
        self.seen.append(("connect", self.timeout))
        super().connect()

    def request(self, *args: Any, **kwargs: Any) -> None:
        assert self.sock is not None
        self.seen.append(("read", self.sock.gettimeout()))
        super().request(*args, **kwargs)


class TimedConnections(Connections):
    def __init__(self) -> None:
        super().__init__()
        self.seen: list[tuple[str, float | None]] = []

    def take(self, target: Target) -> Connection:
        kept = super().take(target)
        if kept.sock is not None:
            return kept
        conn = TimedConnection(target.host, target.port)
        conn.seen = self.seen
        return conn


@pytest.mark.parametrize("budget", [0.1, 0.5, 2.0, 3.05, 9.0, 30.0])
def test_a_request_waits_no_longer_than_the_deadline_counts_on(fake_pd: FakePagerDuty, budget: float) -> None:
    connections = TimedConnections()
    client = EventsClient(fake_pd.url, connections=connections)
    assert client.send_body(resolve("k"), budget_seconds=budget).status == "success"
    connect, read = request_timeouts(budget)
    assert connections.seen == [("connect", connect), ("read", read)]
    assert connect + read == attempt_seconds(budget)


def test_a_connection_is_kept_alive_for_the_next_send(fake_pd: FakePagerDuty) -> None:
    connections = TimedConnections()
    client = EventsClient(fake_pd.url, connections=connections)
    for n in range(3):
        assert client.send_body(resolve(f"k{n}"), budget_seconds=5).status == "success"
    assert [kind for kind, _ in connections.seen] == ["connect", "read", "read", "read"], "one connection, three sends"
    assert connections.kept() == 1


def test_a_connection_closed_since_is_not_used_again(fake_pd: FakePagerDuty) -> None:
    """However a kept connection ended (closed here, its peer gone elsewhere), the next send makes a new
    one instead of failing on it, and the dead one is not kept."""
    connections = TimedConnections()
    client = EventsClient(fake_pd.url, connections=connections)
    assert client.send_body(resolve("first"), budget_seconds=5).status == "success"
    target = connections.target(fake_pd.url)
    kept = connections.take(target)
    assert kept.sock is not None
    kept.sock.close()
    connections.give_back(target, kept, reusable=True)
    assert client.send_body(resolve("second"), budget_seconds=5).status == "success"
    assert [kind for kind, _ in connections.seen] == ["connect", "read", "connect", "read"]
    assert len(fake_pd.accepted()) == 2


def test_connections_to_several_hosts_are_kept_apart() -> None:
    client = EventsClient()
    fakes = [FakePagerDuty().start() for _ in range(3)]
    try:
        for round_ in range(2):
            for fake in fakes:
                response = client.send_body(resolve(f"k{round_}"), url=fake.url, budget_seconds=5)
                assert response.status == "success"
        assert [len(fake.accepted()) for fake in fakes] == [2, 2, 2]
        assert client.connections.kept() == 3
    finally:
        for fake in fakes:
            fake.stop()


class TLSPagerDuty:
    """A PagerDuty stand-in on HTTPS (a certificate of its own for 127.0.0.1) that keeps each body it
    received and accepts it."""

    def __init__(self, directory: Path, name: str = "127.0.0.1") -> None:
        self.cert, key = _self_signed(directory, name)
        self.bodies: list[bytes] = []
        received = self.bodies

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self) -> None:
                received.append(self.rfile.read(int(self.headers["Content-Length"])))
                answer = json.dumps({"status": "success", "message": "Event processed", "dedup_key": "k"}).encode()
                self.send_response(202)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(answer)))
                self.end_headers()
                self.wfile.write(answer)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(self.cert, key)
        self.server.socket = context.wrap_socket(self.server.socket, server_side=True)
        self.url = f"https://127.0.0.1:{self.server.server_address[1]}/v2/enqueue"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def _self_signed(directory: Path, address: str) -> tuple[str, str]:
    """A certificate (its own authority) for ``address``, and its key, as PEM files."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, address)])
    now = datetime.now(UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(minutes=5))
        .not_valid_after(now + timedelta(hours=1))
        .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address(address))]), critical=False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = directory / "cert.pem", directory / "key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    return str(cert_path), str(key_path)


def test_a_page_goes_over_tls_to_a_host_whose_certificate_is_trusted(tmp_path: Path) -> None:
    pagerduty = TLSPagerDuty(tmp_path)
    try:
        client = EventsClient(pagerduty.url, connections=Connections(ca_certs=pagerduty.cert))
        for n in range(2):
            assert client.send_body(resolve(f"k{n}"), budget_seconds=5).status == "success"
    finally:
        pagerduty.close()
    assert [json.loads(body)["dedup_key"] for body in pagerduty.bodies] == ["k0", "k1"]
    assert client.connections.kept() == 1, "the TLS connection is kept for the next page"


def test_attack_a_host_with_an_untrusted_certificate_never_receives_the_routing_key(tmp_path: Path) -> None:
    """Someone in between answers for PagerDuty with a certificate no trusted authority signed (or one
    for another name): the handshake fails, nothing is sent, and the failure says so without the key."""
    pagerduty = TLSPagerDuty(tmp_path)
    try:
        client = EventsClient(pagerduty.url)  # the bundle of trusted authorities, which never signed it
        with pytest.raises(PagerDutyDeliveryError) as refused:
            client.send_body(resolve("k"), budget_seconds=1)
    finally:
        pagerduty.close()
    assert pagerduty.bodies == []
    assert refused.value.retryable and not refused.value.ambiguous, "nothing was sent: it is not ambiguous"
    assert "SSL" in str(refused.value) and "CERTIFICATE" in str(refused.value).upper()
    assert ROUTING_KEY not in str(refused.value)


def test_attack_a_trusted_certificate_for_another_name_never_receives_the_routing_key(tmp_path: Path) -> None:
    """The certificate is signed by an authority the bridge trusts, but for another host: whoever holds
    it is not the host the URL names, and gets nothing."""
    pagerduty = TLSPagerDuty(tmp_path, name="127.0.0.2")  # served on 127.0.0.1
    try:
        client = EventsClient(pagerduty.url, connections=Connections(ca_certs=pagerduty.cert))
        with pytest.raises(PagerDutyDeliveryError) as refused:
            client.send_body(resolve("k"), budget_seconds=1)
    finally:
        pagerduty.close()
    assert pagerduty.bodies == []
    assert refused.value.retryable and not refused.value.ambiguous
    assert "127.0.0.1" in str(refused.value) and "mismatch" in str(refused.value).lower()


def test_tls_verifies_the_certificate_and_its_name_and_takes_no_protocol_before_tls_1_2() -> None:
    context = Connections().tls_context()
    assert context.verify_mode is ssl.CERT_REQUIRED and context.check_hostname
    assert context.minimum_version >= ssl.TLSVersion.TLSv1_2


def test_a_request_names_the_bridge_as_its_user_agent(fake_pd: FakePagerDuty) -> None:
    assert EventsClient(fake_pd.url).send_body(resolve("k"), budget_seconds=5).status == "success"
    (request,) = fake_pd.requests
    assert {k.lower(): v for k, v in request.headers.items()}["user-agent"] == "pagerduty-bridge"


def test_a_connection_is_kept_alive_in_a_process_with_many_files_open(fake_pd: FakePagerDuty) -> None:
    """A process holding over a thousand descriptors (``select`` takes none above 1023): a kept
    connection is still checked and used again, not taken for dead and replaced at every page."""
    import resource

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if min(hard, 4096) < 1200:
        pytest.skip("this process may not open 1,200 files")
    resource.setrlimit(resource.RLIMIT_NOFILE, (max(soft, min(hard, 4096)), hard))
    held = [os.dup(0) for _ in range(1100)]
    try:
        connections = TimedConnections()
        client = EventsClient(fake_pd.url, connections=connections)
        for n in range(3):
            assert client.send_body(resolve(f"k{n}"), budget_seconds=5).status == "success"
        assert [kind for kind, _ in connections.seen] == ["connect", "read", "read", "read"]
    finally:
        for fd in held:
            os.close(fd)
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))
