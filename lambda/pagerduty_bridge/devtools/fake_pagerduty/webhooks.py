"""PagerDuty webhooks v3, delivered as PagerDuty delivers them: one signed incident event per POST.

So the bridge's webhook receiver can be tested end to end on a laptop: the stand-in announces each
incident change (a trigger or resolve through the Events API, a responder's acknowledge …) to a
subscriber URL, signed with the subscription's secret (``webhook_events``), and records what the
subscriber answered. Faults mimic what PagerDuty documents: a webhook delivered more than once,
webhooks out of order, and (for the receiver's rejection path) one signed with a secret the subscriber
does not know.

Source: PagerDuty developer docs, webhooks 02-Behavior (a 2xx expected within 5 seconds, at-least-once
delivery, ``X-Webhook-Id`` repeated on each delivery attempt, ordering per incident). PagerDuty retries
failed deliveries for about 20 minutes; the stand-in records the failure instead, and a test redelivers
when it wants to.
"""

from __future__ import annotations

import json
import queue
import threading
import time
import uuid
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime
from http.client import HTTPConnection, HTTPException, HTTPSConnection
from typing import Any, Final, TypeAlias
from urllib.parse import urlsplit

from pagerduty_bridge.devtools.fake_pagerduty.alerts import Transition
from pagerduty_bridge.devtools.fake_pagerduty.webhook_events import (
    DEFAULT_SERVICE_NAME,
    SIGNATURE_HEADER,
    incident_webhook,
    service_reference,
    signature_header,
    user_reference,
)
from pagerduty_bridge.devtools.fake_pagerduty.wire import utc_now

USER_AGENT: Final = "PagerDuty-Webhook/V3.0"
"""What PagerDuty's v3 deliveries identify themselves as."""
WEBHOOK_TIMEOUT_SECONDS: Final = 5.0
"""PagerDuty "expects a 2xx response within 5 seconds" (webhooks 02-Behavior); slower counts as failed."""


# --- Delivery faults and records ---------------------------------------------------------------------


@dataclass(frozen=True)
class Redeliver:
    """Deliver the next webhook ``times`` more times, unchanged (PagerDuty delivers at least once)."""

    times: int = 1


@dataclass(frozen=True)
class DeliverOutOfOrder:
    """Hold the next webhook back and deliver it right after the one that follows it."""


@dataclass(frozen=True)
class WrongSecret:
    """Sign the next webhook with a secret the subscriber does not know."""


WebhookFault: TypeAlias = Redeliver | DeliverOutOfOrder | WrongSecret
WRONG_SECRET: Final = "not-the-subscription-secret"  # noqa: S105 - a deliberately wrong test value


@dataclass(frozen=True)
class Subscription:
    """Where webhooks go and the secrets they are signed with (the new one first during rotation)."""

    url: str
    secret: str = field(repr=False)
    rotation_secret: str | None = field(default=None, repr=False)
    id: str = field(default_factory=lambda: "P" + uuid.uuid4().hex[:6].upper())
    synchronous: bool = True

    @property
    def secrets(self) -> tuple[str, ...]:
        return (self.secret,) if self.rotation_secret is None else (self.secret, self.rotation_secret)


@dataclass
class WebhookDelivery:
    """One POST to the subscriber: exactly what was sent and how it was answered.

    ``status`` is None when no answer came (refused, reset, timed out): ``error`` says what happened.
    ``fault`` names the delivery fault behind it (``Redeliver`` …), if any.
    """

    event_type: str
    webhook_id: str
    url: str
    body: bytes
    headers: dict[str, str]
    status: int | None = None
    error: str | None = None
    fault: str | None = None
    at: float = 0.0

    @property
    def payload(self) -> dict[str, Any]:
        """The body parsed: ``{"event": {...}}``."""
        parsed: dict[str, Any] = json.loads(self.body)
        return parsed


def post_webhook(url: str, body: bytes, headers: Mapping[str, str], timeout: float) -> tuple[int | None, str | None]:
    """POST ``body`` to ``url``: (the answer's status, None) or (None, what went wrong)."""
    parts = urlsplit(url)
    connection_class = HTTPSConnection if parts.scheme == "https" else HTTPConnection
    connection = connection_class(parts.hostname or "", parts.port, timeout=timeout)
    target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    try:
        connection.request("POST", target, body=body, headers=dict(headers))
        response = connection.getresponse()
        response.read()
        return response.status, None
    except (OSError, HTTPException) as exc:
        return None, f"{type(exc).__name__}: {exc}"
    finally:
        connection.close()


def check_subscriber_url(url: str) -> str:
    """The URL when it is an absolute http(s) URL with a host; ``ValueError`` otherwise."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError(f"webhook URL must be an absolute http(s) URL, got {url!r}")
    return url


def _check_webhook_fault(fault: object) -> WebhookFault:
    if isinstance(fault, Redeliver) and fault.times < 1:
        raise ValueError("Redeliver times must be at least 1")
    if isinstance(fault, Redeliver | DeliverOutOfOrder | WrongSecret):
        return fault
    raise TypeError(f"expected Redeliver, DeliverOutOfOrder or WrongSecret, got {type(fault).__name__}")


# --- The sender --------------------------------------------------------------------------------------


class WebhookSender:
    """Announces incident changes to one subscription, as PagerDuty would; thread-safe.

    Synchronous by default: ``publish`` returns once the subscriber answered, so a test sees the
    delivery as soon as the call that caused it returns. An asynchronous subscription delivers on one
    background thread, in order; ``flush`` waits for it.
    """

    def __init__(
        self,
        *,
        service_name: str = DEFAULT_SERVICE_NAME,
        clock: Callable[[], datetime] = utc_now,
        timeout: float = WEBHOOK_TIMEOUT_SECONDS,
        on_delivery: Callable[[WebhookDelivery], None] | None = None,
    ) -> None:
        self.service_name = service_name
        self._clock = clock
        self._timeout = timeout
        self._on_delivery = on_delivery
        self._lock = threading.Lock()
        self._subscription: Subscription | None = None
        self._faults: deque[WebhookFault] = deque()
        self._held: list[WebhookDelivery] = []
        self._deliveries: list[WebhookDelivery] = []
        self._queue: queue.Queue[WebhookDelivery | None] = queue.Queue()
        self._worker: threading.Thread | None = None

    @property
    def subscription(self) -> Subscription | None:
        return self._subscription

    def subscribe(self, subscription: Subscription) -> None:
        """Send every later incident change to ``subscription`` (replacing any earlier one)."""
        check_subscriber_url(subscription.url)
        with self._lock:
            self._subscription = subscription

    def unsubscribe(self) -> None:
        with self._lock:
            self._subscription = None

    def script(self, faults: tuple[object, ...]) -> None:
        """Queue delivery faults for the next webhooks, first in, first out."""
        checked = [_check_webhook_fault(fault) for fault in faults]
        with self._lock:
            self._faults.extend(checked)

    def publish(self, transition: Transition) -> None:
        """Announce one incident change to the subscriber (nothing happens without a subscription)."""
        with self._lock:
            subscription = self._subscription
            if subscription is None:
                return
            agent = (
                service_reference(transition.alert.routing_key, self.service_name)
                if transition.agent is None
                else user_reference(transition.agent)
            )
            payload = incident_webhook(
                transition.event_type,
                transition.alert,
                occurred_at=self._clock(),
                agent=agent,
                client=None if transition.agent is None else {"name": "PagerDuty"},
                service_name=self.service_name,
            )
            attempts = self._plan(subscription, transition.event_type, json.dumps(payload).encode("utf-8"))
        self._send(subscription, attempts)

    def _plan(self, subscription: Subscription, event_type: str, body: bytes) -> list[WebhookDelivery]:
        """The deliveries one webhook makes, its fault applied; held webhooks follow it."""
        fault = self._faults.popleft() if self._faults else None
        secrets = (WRONG_SECRET,) if isinstance(fault, WrongSecret) else subscription.secrets
        headers = {
            "Content-Type": "application/json",
            "User-Agent": USER_AGENT,
            SIGNATURE_HEADER: signature_header(body, secrets),
            "X-Webhook-Id": str(uuid.uuid4()),
            "X-Webhook-Subscription": subscription.id,
        }
        delivery = WebhookDelivery(
            event_type, headers["X-Webhook-Id"], subscription.url, body, headers, fault=_fault_name(fault)
        )
        if isinstance(fault, DeliverOutOfOrder):
            self._held.append(delivery)
            return []
        copies = 1 + (fault.times if isinstance(fault, Redeliver) else 0)
        attempts = [replace(delivery, headers=dict(headers)) for _ in range(copies)]
        attempts.extend(self._held)
        self._held.clear()
        return attempts

    def _send(self, subscription: Subscription, attempts: list[WebhookDelivery]) -> None:
        if not subscription.synchronous and attempts:
            with self._lock:
                if self._worker is None:
                    self._worker = threading.Thread(target=self._work, name="fake-pagerduty-webhooks", daemon=True)
                    self._worker.start()
        for attempt in attempts:
            if subscription.synchronous:
                self._deliver(attempt)
            else:
                self._queue.put(attempt)

    def _deliver(self, attempt: WebhookDelivery) -> WebhookDelivery:
        attempt.status, attempt.error = post_webhook(attempt.url, attempt.body, attempt.headers, self._timeout)
        attempt.at = time.monotonic()
        with self._lock:
            self._deliveries.append(attempt)
        if self._on_delivery is not None:
            self._on_delivery(replace(attempt, headers=dict(attempt.headers)))
        return attempt

    def _work(self) -> None:
        while (attempt := self._queue.get()) is not None:
            try:
                self._deliver(attempt)
            finally:
                self._queue.task_done()
        self._queue.task_done()

    def redeliver(self, index: int = -1) -> WebhookDelivery:
        """Send a recorded delivery again, byte for byte (same ``X-Webhook-Id`` and signature); synchronous."""
        with self._lock:
            original = self._deliveries[index]
        return self._deliver(
            replace(original, headers=dict(original.headers), status=None, error=None, fault="redelivered")
        )

    def flush(self) -> None:
        """Deliver webhooks held back for out-of-order delivery, then wait until none is pending."""
        with self._lock:
            subscription, held = self._subscription, list(self._held)
            self._held.clear()
        if subscription is not None:
            self._send(subscription, held)
        self._queue.join()

    def deliveries(self) -> list[WebhookDelivery]:
        with self._lock:
            return [replace(delivery, headers=dict(delivery.headers)) for delivery in self._deliveries]

    def reset(self) -> None:
        """Forget deliveries, queued faults and held webhooks; the subscription stays."""
        with self._lock:
            self._deliveries.clear()
            self._faults.clear()
            self._held.clear()

    def close(self) -> None:
        """Stop the background worker, if any, once it has delivered what is pending."""
        with self._lock:
            worker, self._worker = self._worker, None
        if worker is not None:
            self._queue.put(None)
            worker.join()


def _fault_name(fault: WebhookFault | None) -> str | None:
    if fault is None:
        return None
    if isinstance(fault, Redeliver):
        return f"Redeliver({fault.times})"
    return type(fault).__name__
