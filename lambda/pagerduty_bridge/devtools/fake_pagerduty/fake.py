"""``FakePagerDuty``: the Events API model and the webhook sender, served on a loopback port.

The one object tests hold: start it (or use it as a context manager), give the bridge its ``url``,
script faults, act as a responder, and inspect what PagerDuty would have seen and said.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from http import HTTPStatus
from types import TracebackType
from typing import Any

from pagerduty_bridge.devtools.fake_pagerduty.alerts import ResponderAction
from pagerduty_bridge.devtools.fake_pagerduty.control import ControlEndpoints
from pagerduty_bridge.devtools.fake_pagerduty.faults import Fault
from pagerduty_bridge.devtools.fake_pagerduty.records import Alert, RecordedRequest
from pagerduty_bridge.devtools.fake_pagerduty.server import EventsHTTPServer, RequestListener
from pagerduty_bridge.devtools.fake_pagerduty.service import EventsService
from pagerduty_bridge.devtools.fake_pagerduty.webhook_events import DEFAULT_AGENT, DEFAULT_SERVICE_NAME
from pagerduty_bridge.devtools.fake_pagerduty.webhooks import (
    Subscription,
    WebhookDelivery,
    WebhookFault,
    WebhookSender,
)
from pagerduty_bridge.devtools.fake_pagerduty.wire import CHANGE_ENQUEUE_PATH, ENQUEUE_PATH, utc_now
from pagerduty_bridge.devtools.loopback import DEFAULT_HOST, ServerThread, base_url, loopback

MAX_PORT = 65535


class FakePagerDuty:
    """PagerDuty's Events API v2 on a loopback port: validates, models alerts, throttles, plays faults,
    and announces incident changes by webhook once subscribed.

    Thread-safe: requests are served on their own threads; every read of the recorded state returns a
    snapshot. ``rate_limit`` is events per minute per routing key (None: unlimited); ``time_scale``
    shortens its window (60 makes a "minute" last one second). ``on_request`` and ``on_webhook`` hear
    each answered request and each webhook delivery (the CLI prints them).
    """

    def __init__(
        self,
        host: str = DEFAULT_HOST,
        port: int = 0,
        *,
        rate_limit: int | None = None,
        time_scale: float = 1.0,
        service_name: str = DEFAULT_SERVICE_NAME,
        clock: Callable[[], datetime] = utc_now,
        on_request: RequestListener | None = None,
        on_webhook: Callable[[WebhookDelivery], None] | None = None,
    ) -> None:
        self._host, self._family = loopback(host)
        if not 0 <= port <= MAX_PORT:
            raise ValueError(f"port must be 0..{MAX_PORT}, got {port}")
        self._port = port
        self._webhooks = WebhookSender(service_name=service_name, clock=clock, on_delivery=on_webhook)
        self._service = EventsService(
            rate_limit=rate_limit, time_scale=time_scale, clock=clock, on_transition=self._webhooks.publish
        )
        self._on_request = on_request
        self._running: ServerThread | None = None

    @property
    def rate_limit(self) -> int | None:
        """Events per minute per routing key, None for no limit."""
        return self._service.rate_limit

    # -- lifecycle --

    def start(self) -> FakePagerDuty:
        """Bind and serve on a daemon thread; returns self. Starting a running fake does nothing."""
        if self._running is None:
            self._service.resume()
            server = EventsHTTPServer(
                (self._host, self._port), self._family, self._service, ControlEndpoints(self), self._on_request
            )
            self._running = ServerThread(server, f"fake-pagerduty:{server.server_port}")
        return self

    def stop(self) -> None:
        """Stop serving, close open connections, wake delayed requests (they are abandoned), stop webhooks."""
        running, self._running = self._running, None
        if running is None:
            return
        self._service.halt()
        running.stop()
        self._webhooks.close()

    def __enter__(self) -> FakePagerDuty:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, traceback: TracebackType | None
    ) -> None:
        self.stop()

    @property
    def base_url(self) -> str:
        """``http://127.0.0.1:<port>``: for the change events and control endpoints."""
        if self._running is None:
            raise RuntimeError("FakePagerDuty is not running: call start() or use it as a context manager")
        return base_url(self._host, self._family, self._running.server.server_port)

    @property
    def url(self) -> str:
        """The events URL to give the bridge: ``http://127.0.0.1:<port>/v2/enqueue``."""
        return self.base_url + ENQUEUE_PATH

    @property
    def change_url(self) -> str:
        """The change events URL: ``http://127.0.0.1:<port>/v2/change/enqueue``."""
        return self.base_url + CHANGE_ENQUEUE_PATH

    # -- the Events API: scripting and inspection --

    def script(self, *faults: Fault) -> None:
        """Queue answers for the next requests to the Events API (alert or change events), first in, first out.

        Faults apply before validation; when the queue is empty the fake behaves normally.
        """
        self._service.script(faults)

    @property
    def requests(self) -> list[RecordedRequest]:
        """Every request to the API (not the control endpoints) in order of arrival; a snapshot."""
        return self._service.requests()

    def accepted(self) -> list[dict[str, Any]]:
        """Bodies of the events to /v2/enqueue answered 202 (a scripted 202 included), in order."""
        return self._service.answered(ENQUEUE_PATH, HTTPStatus.ACCEPTED)

    @property
    def change_events(self) -> list[dict[str, Any]]:
        """Bodies of the change events answered 202 (a scripted 202 included), in order; they open no alert."""
        return self._service.answered(CHANGE_ENQUEUE_PATH, HTTPStatus.ACCEPTED)

    def dropped(self) -> list[dict[str, Any]]:
        """Acknowledge/resolve events accepted but dropped, as PagerDuty does, for want of an open alert."""
        return self._service.dropped()

    @property
    def alerts(self) -> dict[tuple[str, str], Alert]:
        """Every alert ever opened, by (routing key, dedup key); a snapshot."""
        return self._service.alerts()

    def open_alerts(self, routing_key: str | None = None) -> dict[str, Alert]:
        """Triggered or acknowledged alerts by dedup key, for one routing key or all of them."""
        return {
            alert.dedup_key: alert
            for alert in self.alerts.values()
            if alert.is_open and (routing_key is None or alert.routing_key == routing_key)
        }

    def reset(self) -> None:
        """Forget requests, alerts, the scripts, the rate-limit windows and webhook deliveries.

        A webhook subscription stays: it is configuration, like the rate limit.
        """
        self._service.reset()
        self._webhooks.reset()

    # -- responders (PagerDuty's web app): each change is announced by webhook --

    def act(
        self,
        action: ResponderAction,
        dedup_key: str,
        *,
        routing_key: str | None = None,
        agent: str = DEFAULT_AGENT,
        assignee: str | None = None,
    ) -> Alert:
        """A responder's ``action`` on the open incident of ``dedup_key``; returns the alert after it.

        ``routing_key`` picks the alert when the key is open on several. Raises ``LookupError`` when no
        such alert is open. An action that changes nothing (acknowledging an acknowledged incident)
        sends no webhook.
        """
        return self._service.act(action, dedup_key, routing_key=routing_key, agent=agent, assignee=assignee)

    def acknowledge_alert(self, dedup_key: str, *, routing_key: str | None = None, agent: str = DEFAULT_AGENT) -> Alert:
        """Acknowledge as a responder: ``incident.acknowledged``."""
        return self.act("acknowledge", dedup_key, routing_key=routing_key, agent=agent)

    def unacknowledge_alert(
        self, dedup_key: str, *, routing_key: str | None = None, agent: str = DEFAULT_AGENT
    ) -> Alert:
        """Undo an acknowledgement (as its timeout does): ``incident.unacknowledged``, triggered again."""
        return self.act("unacknowledge", dedup_key, routing_key=routing_key, agent=agent)

    def resolve_alert(self, dedup_key: str, *, routing_key: str | None = None, agent: str = DEFAULT_AGENT) -> Alert:
        """Resolve as a responder (not through the Events API): ``incident.resolved``."""
        return self.act("resolve", dedup_key, routing_key=routing_key, agent=agent)

    def reassign_alert(
        self, dedup_key: str, *, assignee: str, routing_key: str | None = None, agent: str = DEFAULT_AGENT
    ) -> Alert:
        """Reassign to ``assignee``: ``incident.reassigned``, triggered again for the new assignee."""
        return self.act("reassign", dedup_key, routing_key=routing_key, agent=agent, assignee=assignee)

    def escalate_alert(self, dedup_key: str, *, routing_key: str | None = None, agent: str = DEFAULT_AGENT) -> Alert:
        """Escalate to the next level: ``incident.escalated``, triggered again for its on-call."""
        return self.act("escalate", dedup_key, routing_key=routing_key, agent=agent)

    # -- webhooks --

    def subscribe_webhooks(
        self, url: str, secret: str, *, rotation_secret: str | None = None, synchronous: bool = True
    ) -> Subscription:
        """From now on, POST each incident change to ``url`` as a signed webhook v3.

        ``rotation_secret`` adds a second signature, as during a secret rotation. Synchronous delivery
        (the default) finishes before the call that caused it returns — for an Events API request,
        before its answer is sent — so tests need not wait.
        """
        subscription = Subscription(url, secret, rotation_secret, synchronous=synchronous)
        self._webhooks.subscribe(subscription)
        return subscription

    def unsubscribe_webhooks(self) -> None:
        self._webhooks.unsubscribe()

    def script_webhooks(self, *faults: WebhookFault) -> None:
        """Queue delivery faults (``Redeliver``, ``DeliverOutOfOrder``, ``WrongSecret``) for the next webhooks."""
        self._webhooks.script(faults)

    @property
    def webhook_deliveries(self) -> list[WebhookDelivery]:
        """Every POST to the subscriber, in order: body, headers and the answer's status; a snapshot."""
        return self._webhooks.deliveries()

    def redeliver_webhook(self, index: int = -1) -> WebhookDelivery:
        """Send a recorded delivery again, byte for byte, as PagerDuty's at-least-once delivery may."""
        return self._webhooks.redeliver(index)

    def flush_webhooks(self) -> None:
        """Deliver webhooks held back for out-of-order delivery and wait for asynchronous ones."""
        self._webhooks.flush()
