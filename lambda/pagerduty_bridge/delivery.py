"""The delivery protocol: claim → send → commit, and recovery of an unfinished delivery.

One protocol serves every path (alarms, forwarded messages, the seed's triggers, acknowledge, resolve,
reconciliation, confirmation); what to do comes from a pure ``lifecycle`` plan:

1. *read* the incident and *plan* on it;
2. *claim*: write the plan's target with ``pending_action``, a claim token and a lease, conditional on
   the version read (a plan that sends nothing writes its target, conditionally, and stops here);
3. *send* the event to PagerDuty;
4. *commit*: clear the claim, conditional on it still being ours — or, when the send failed, *record
   the failure* so a retry does the right thing.

A crash after 2 leaves a pending record: the retry of the same notification sees it and sends again
(PagerDuty deduplicates by key), so no page is marked done before PagerDuty accepted it. A claim whose
lease is still running belongs to an invocation that may still be sending: a concurrent one backs off
with a retryable ``ConcurrentUpdateError``, so at most one event per alarm is in flight, in order. A
routing key that cannot be used fails before the claim, so nothing is written. A send whose outcome
was unknown (an attempt without an answer) leaves ``unconfirmed_until``: the scheduled run asserts the
incident's state again once such a request must have ended (``lifecycle.plan_confirm``).

The store, the sender, the routing keys and the clock are injected (like Powertools' idempotency
handler and its persistence layer): the protocol knows them only through their interfaces.
"""

from __future__ import annotations

import hashlib
import logging
import secrets
from collections import OrderedDict
from collections.abc import Callable
from contextvars import ContextVar
from dataclasses import dataclass, field, fields, replace
from datetime import datetime, timedelta
from functools import lru_cache
from typing import Any, Final, Protocol

from pagerduty_bridge.constants import DEFAULT_ROUTING_KEY_ALIAS, MAX_ROUTING_KEY_ALIAS_LENGTH
from pagerduty_bridge.errors import (
    BridgeError,
    ConcurrentUpdateError,
    ConfigurationError,
    PagerDutyApiError,
    PagerDutyDeliveryError,
    RoutingKeyError,
    UnknownAliasError,
    VersionConflictError,
)
from pagerduty_bridge.events_api import CONNECT_TIMEOUT_SECONDS, READ_TIMEOUT_SECONDS, PagerDutyEvent
from pagerduty_bridge.keys import KeySource, forget
from pagerduty_bridge.lifecycle import Plan, Reason, lease_running, trigger_accepted
from pagerduty_bridge.models import EventAction, EventResponse, Incident, IncidentStatus
from pagerduty_bridge.redaction import REDACTOR, mask_key, masked_body, scrub
from pagerduty_bridge.settings import looks_like_routing_key
from pagerduty_bridge.store import IncidentStore, next_version
from pagerduty_bridge.text import truncate
from pagerduty_bridge.timeutil import shifted

logger = logging.getLogger(__name__)

INVOCATION_BUDGET: ContextVar[Callable[[float], float | None] | None] = ContextVar("invocation_budget", default=None)
"""While an invocation's records are handled: the largest part of a budget that still fits before its
deadline, or ``None`` when no send does (``processing.Deadline.record_budget``); unset, no deadline."""
MAX_CONFLICT_ATTEMPTS: Final = 5
"""Re-plans after losing a conditional write; more means a hot key is being hammered: let Lambda retry."""
LEASE_MARGIN_SECONDS: Final = 5.0
"""A claim's lease covers the retry budget, one last request's connect and read timeouts, and this
margin (the commit's write)."""
REQUEST_SECONDS: Final = CONNECT_TIMEOUT_SECONDS + READ_TIMEOUT_SECONDS + LEASE_MARGIN_SECONDS
"""What a lease must still hold beyond a send's budget: its last request may start as the budget ends."""
UNCONFIRMED_WINDOW: Final = timedelta(minutes=2)
"""How long after the bridge gave up on a request PagerDuty may still process it. Twice the longest
idle timeout of the load balancers in front of HTTP services (60 s by default on AWS): a request that
got no answer has either been processed or been dropped by then. The scheduled run asserts the
incident's state after this window (README, "Guarantees")."""
MAX_ERROR_LENGTH: Final = 1024
REMEMBERED_INCIDENTS: Final = 512
"""Incidents a process remembers as it last wrote them, to plan on before reading (a guess only)."""
DRY_RUN_STATUS: Final = "dry-run"


class EventSender(Protocol):
    def send_body(
        self, body: dict[str, Any], *, budget_seconds: float | None = None, url: str | None = None
    ) -> EventResponse: ...


class DryRunSender:
    """Sends nothing and answers as PagerDuty would, so a dry run plans exactly as a real run would."""

    def __init__(self) -> None:
        self.sent: list[dict[str, Any]] = []
        """Every body it was given, routing key masked (as ``Outcome.body``)."""

    def send_body(
        self, body: dict[str, Any], *, budget_seconds: float | None = None, url: str | None = None
    ) -> EventResponse:
        self.sent.append(masked_body(body))
        return EventResponse(status=DRY_RUN_STATUS, message="Event not sent (dry run)", dedup_key=body.get("dedup_key"))


@dataclass
class Outcome:
    """What happened to one notification: the decision, the exact body, whether PagerDuty took it."""

    action: EventAction | None
    reason: str
    dedup_key: str | None
    alarm_name: str | None = None
    state: str | None = None
    body: dict[str, Any] | None = None
    """The body sent (or that would be), routing key masked."""
    delivered: bool = False
    response: EventResponse | None = None
    error: BridgeError | None = None
    incident: Incident | None = field(default=None, compare=False)

    def about(self, alarm_name: str | None, state: str | None) -> Outcome:
        """This outcome labelled with the alarm it is about."""
        self.alarm_name, self.state = alarm_name, state
        return self


Planner = Callable[[Incident | None], Plan]
Renderer = Callable[[Plan], PagerDutyEvent]


class Delivery:
    """Runs the protocol for one incident at a time; safe to share across threads and invocations."""

    def __init__(
        self,
        store: IncidentStore,
        sender: EventSender,
        keys: KeySource,
        clock: Callable[[], datetime],
        *,
        retry_budget_seconds: float = 30.0,
    ) -> None:
        self.store = store
        self.sender = sender
        self.keys = keys
        self.clock = clock
        self.retry_budget_seconds = retry_budget_seconds
        self._known: OrderedDict[str, Incident] = OrderedDict()

    def run(self, key: str, planner: Planner, render: Renderer, *, budget_seconds: float | None = None) -> Outcome:
        """Plan on the stored incident and carry the plan out; re-plan when another writer got there first.

        The first plan is made on a guess — the incident as this process last wrote it, or none (a new
        alarm) — instead of a read: every write is conditional on the version planned on, and a write
        that finds otherwise returns the incident as it is (``VersionConflictError.current``), so a
        wrong guess costs one failed write and never a wrong action. Only what a write cannot check
        is read first: a plan that would write nothing, and a guess holding a claim (whose lease decides). A new alarm's page takes two writes and no read.
        """
        stored, known = self._remembered(key), False
        for _ in range(MAX_CONFLICT_ATTEMPTS):
            plan = planner(stored)
            if not known and _needs_truth(plan, stored):
                stored, known = self._read(key), True
                plan = planner(stored)
            try:
                if plan.action is None:
                    return self._record(key, stored, plan)
                return self._deliver(key, stored, plan, render, budget_seconds)
            except VersionConflictError as conflict:
                stored = conflict.current if conflict.known else self._read(key)  # type: ignore[assignment]
                known = True
            except RoutingKeyError:  # the guessed plan's alias: the stored incident may route elsewhere
                if known:
                    raise
                stored, known = self._read(key), True
        raise ConcurrentUpdateError(f"incident {key} kept changing while being updated; retry later")

    # --- what this process knows of incidents ---------------------------------------------------------

    def _remembered(self, key: str) -> Incident | None:
        return self._known.get(key)

    def _remember(self, incident: Incident | None) -> None:
        if incident is None:
            return
        self._known[incident.dedup_key] = incident
        self._known.move_to_end(incident.dedup_key)
        while len(self._known) > REMEMBERED_INCIDENTS:
            self._known.popitem(last=False)

    def _read(self, key: str) -> Incident | None:
        stored = self.store.get(key)
        self._remember(stored)
        return stored

    # --- the steps ------------------------------------------------------------------------------------

    def _record(self, key: str, stored: Incident | None, plan: Plan) -> Outcome:
        """A plan that sends nothing: write its target (if any), conditional on what was read."""
        if plan.target is not None:
            expected = stored.version if stored is not None else None
            written = replace(plan.target, version=next_version(expected))
            self.store.put(written, expected_version=expected)
            self._remember(written)
        return Outcome(None, plan.reason.value, key, incident=plan.target or stored)

    def _deliver(
        self, key: str, stored: Incident | None, plan: Plan, render: Renderer, budget_seconds: float | None
    ) -> Outcome:
        assert plan.action is not None and plan.target is not None, "a plan that sends must say what to store"
        self._check_lease(key, stored)
        budget = self.retry_budget_seconds if budget_seconds is None else budget_seconds
        plan, wire, budget = addressed_in_time(self.keys, plan, render, budget)
        claim = self._claim(stored, plan, budget)
        outcome = Outcome(plan.action, plan.reason.value, key, body=masked_body(wire), incident=claim)
        try:
            response = self.sender.send_body(wire, budget_seconds=send_budget(claim.lease_until, self.clock(), budget))
        except Exception as raised:  # noqa: BLE001 - a sender of a caller's own may raise anything
            exc = sender_error(raised, wire)
            if isinstance(exc, PagerDutyApiError) and exc.key_refused:
                forget(self.keys, claim.routing_key_alias)  # it may have been rotated: the retry reads it
            outcome.error = exc
            outcome.incident = self._record_failure(stored, claim, exc)
            return outcome
        outcome.response = response
        outcome.delivered = response.status != DRY_RUN_STATUS
        outcome.incident = self._commit(claim, ambiguous=response.ambiguous)
        return outcome

    def _check_lease(self, key: str, stored: Incident | None) -> None:
        if stored is None or stored.pending_action is None or stored.lease_until is None:
            return
        if lease_running(stored.lease_until, self.clock()):
            raise ConcurrentUpdateError(
                f"another delivery for {key} is in flight until {stored.lease_until.isoformat()}; retry later"
            )

    def _claim(self, stored: Incident | None, plan: Plan, budget: float) -> Incident:
        """Write the target with the pending action and a lease, conditional on the version read."""
        assert plan.target is not None
        expected = stored.version if stored is not None else None
        lease = timedelta(seconds=budget + REQUEST_SECONDS)
        now = self.clock()
        claim = replace(
            plan.target,
            pending_action=plan.action,
            claim_token=secrets.token_hex(16),
            lease_until=shifted(now, lease),
            # A key's first trigger opens its first incident: every PagerDuty-side change is about it.
            trigger_sent_at=now
            if plan.action is EventAction.TRIGGER and stored is not None
            else plan.target.trigger_sent_at,
            version=next_version(expected),
        )
        self.store.put(claim, expected_version=expected)
        self._remember(claim)
        return claim

    def _commit(self, claim: Incident, *, ambiguous: bool) -> Incident:
        """PagerDuty accepted: clear the claim, if it is still ours (a webhook may have written beside it;
        after a trigger, ``lifecycle.trigger_accepted`` decides what of it stands)."""
        accepted_at = self.clock()

        def committed(current: Incident) -> Incident:
            settled = replace(
                current,
                pending_action=None,
                claim_token=None,
                lease_until=None,
                last_error=None,
                unconfirmed_until=self._unconfirmed(current, ambiguous),
            )
            if claim.pending_action is EventAction.TRIGGER:
                return trigger_accepted(settled, accepted_at)
            return settled

        return self._settle(claim, committed, landed=True)

    def _record_failure(self, stored: Incident | None, claim: Incident, exc: BridgeError) -> Incident:
        """Leave the record so that a retry does the right thing, then let the caller report ``exc``.

        Retryable (and kept: 401/403/404): keep the claim pending but end its lease, so the retry
        resends at once. Permanent (400): PagerDuty will never accept this event; record the state
        change (so duplicates stay quiet) and the error, keeping the incident as it was before.
        """
        error = truncate(scrub(str(exc)), MAX_ERROR_LENGTH)
        ambiguous = bool(getattr(exc, "ambiguous", False))
        if exc.retryable:
            return self._settle(
                claim,
                lambda current: replace(
                    current, lease_until=None, last_error=error, unconfirmed_until=self._unconfirmed(current, ambiguous)
                ),
                keep_claim=True,
                tolerant=True,
                landed=ambiguous,
            )
        before = stored or replace(claim, status=IncidentStatus.RESOLVED, triggered_at=None, resolved_at=None)
        return self._settle(
            claim,
            lambda current: replace(
                kept_beside(before, claim, current),
                state_changed_at=claim.state_changed_at,
                alarm_state=claim.alarm_state,
                pending_action=None,
                claim_token=None,
                lease_until=None,
                last_error=error,
                updated_at=claim.updated_at,
                unconfirmed_until=self._unconfirmed(current, ambiguous),
            ),
            tolerant=True,
            landed=ambiguous,
        )

    def _unconfirmed(self, current: Incident, ambiguous: bool) -> datetime | None:
        if not ambiguous:
            return current.unconfirmed_until
        until = shifted(self.clock(), UNCONFIRMED_WINDOW)
        return max(until, current.unconfirmed_until) if current.unconfirmed_until else until

    def _settle(
        self,
        claim: Incident,
        change: Callable[[Incident], Incident],
        *,
        keep_claim: bool = False,
        tolerant: bool = False,
        landed: bool = False,
    ) -> Incident:
        """Write ``change(current)`` over our claim, as long as the claim is still ours. ``tolerant``: a
        store failure is logged, not raised (recording a failure must not hide the failure itself).
        ``landed``: PagerDuty accepted the event, or may have; if a newer delivery took the incident over
        meanwhile, this event may have reached PagerDuty after that one's and undone it, so the incident
        is marked unconfirmed: the scheduled run asserts its state again."""
        current: Incident | None = claim
        for _ in range(MAX_CONFLICT_ATTEMPTS):
            if current is None or current.claim_token != claim.claim_token:
                break
            after = replace(change(current), version=next_version(current.version))
            if keep_claim:
                after = replace(after, claim_token=claim.claim_token, pending_action=current.pending_action)
            try:
                self.store.put(after, expected_version=current.version)
            except VersionConflictError as conflict:
                current = conflict.current if conflict.known else self.store.get(claim.dedup_key)  # type: ignore[assignment]
                continue
            except BridgeError as exc:
                if not tolerant:
                    raise  # PagerDuty accepted, the table did not: the retry resends (deduplicated)
                logger.warning("could not record the failed delivery for %s: %s", claim.dedup_key, exc)
                return claim
            self._remember(after)
            return after
        # Our lease ran out and a newer delivery took over; it owns the record now.
        logger.warning("incident %s was taken over by a newer delivery", claim.dedup_key)
        if landed and current is not None:
            return self._left_unconfirmed(current)
        return current or claim

    def _left_unconfirmed(self, current: Incident) -> Incident:
        """``current`` marked unconfirmed (written conditionally, beside whatever holds it now)."""
        for _ in range(MAX_CONFLICT_ATTEMPTS):
            after = replace(
                current, unconfirmed_until=self._unconfirmed(current, True), version=next_version(current.version)
            )
            try:
                self.store.put(after, expected_version=current.version)
                self._remember(after)
                return after
            except VersionConflictError as conflict:
                found = conflict.current if conflict.known else self.store.get(current.dedup_key)
                if not isinstance(found, Incident):
                    return current
                current = found
            except BridgeError as exc:
                logger.warning("could not mark %s unconfirmed: %s", current.dedup_key, exc)
                return current
        return current


ROUTING_NOTE_DETAIL: Final = "routing"
"""The custom detail that tells a responder why a page reached the default service."""


def shown_alias(alias: str) -> str:
    """An alias as a page, a log line or an error may show it: masked as every printed key is (its last
    four characters) when it is a routing key itself, given where its alias belongs (a rule's
    ``routing_key:`` invites it), whether the bridge knows that key or it looks like one."""
    if REDACTOR.holds_secret(alias) or looks_like_routing_key(alias.strip()):
        return mask_key(alias)
    return alias


def addressed(keys: KeySource, plan: Plan, render: Renderer) -> tuple[Plan, dict[str, Any]]:
    """The plan as it is sent, and its wire body with the routing key of its alias.

    A trigger routed to an alias no source names at all (a typo in a rule or a ``pagerduty:routing``
    tag, found only when an alarm routes by it) goes to the default alias instead: a page held until
    someone fixes the configuration would wake nobody now. The event and the log say so, and the
    incident remembers ``default``, so its resolve reaches the service it opened on. An alias whose key
    cannot be read is not rerouted (the key may come back), nor is an acknowledge or resolve (the
    incident is open on that alias's service, and only its key can close it)."""
    assert plan.target is not None
    alias = plan.target.routing_key_alias
    key: str | None = None
    try:
        key = keys.get(keepable(alias))
    except UnknownAliasError:
        if plan.action is EventAction.TRIGGER and alias != DEFAULT_ROUTING_KEY_ALIAS:
            return _rerouted(keys, plan, render)
        if plan.action is EventAction.TRIGGER or plan.target.routing_key_digest is None:
            raise
    sent, key = keyed(keys, plan, key)
    return sent, render(sent).to_wire(key)


def _rerouted(keys: KeySource, plan: Plan, render: Renderer) -> tuple[Plan, dict[str, Any]]:
    """A trigger whose alias no source names (or too long to keep), sent to the default alias with a
    note saying so."""
    assert plan.target is not None
    alias = plan.target.routing_key_alias
    kept = len(alias) <= MAX_ROUTING_KEY_ALIAS_LENGTH
    why = "has no routing key configured" if kept else "is too long to keep"
    shown = shown_alias(alias) if kept else truncate(shown_alias(alias), 64)
    note = f"routing alias {shown!r} {why}: sent to {DEFAULT_ROUTING_KEY_ALIAS!r} instead"
    logger.warning("%s (%s)", note, plan.target.dedup_key)
    plan = replace(plan, target=replace(plan.target, routing_key_alias=DEFAULT_ROUTING_KEY_ALIAS))
    event = render(plan)
    if event.payload is not None:
        details = {**event.payload.custom_details, ROUTING_NOTE_DETAIL: note}
        event = replace(event, payload=replace(event.payload, custom_details=details))
    sent, key = keyed(keys, plan, keys.get(DEFAULT_ROUTING_KEY_ALIAS))
    return sent, event.to_wire(key)


@lru_cache(maxsize=64)
def routing_key_digest(key: str) -> str:
    """What an incident remembers of the routing key its trigger went out with: never the key itself.
    Computed once per key (every page and every resolve asks for it)."""
    return hashlib.sha256(f"incident-routing-key\0{key}".encode("utf-8", "surrogatepass")).hexdigest()[:32]


def keyed(keys: KeySource, plan: Plan, key: str | None) -> tuple[Plan, str]:
    """The plan and the key it goes out with, once its alias's ``key`` is known (``None``: the alias is
    gone). A trigger remembers the key's digest. An acknowledge or resolve goes with the key its
    incident was opened with: its alias's, or another alias's holding that same key (renamed, or kept
    aside when a new key took the alias), which the incident then records. With no such key it is
    refused (``RoutingKeyError``, before anything is claimed or sent, so the incident is kept for retry
    and reconciliation): PagerDuty would accept it (202) on another key and apply it to nothing, and
    the incident would be recorded resolved while its alert stays open."""
    assert plan.target is not None
    if plan.action is EventAction.TRIGGER:
        assert key is not None
        return _keyed_trigger(keys, plan, key)
    opened_with = plan.target.routing_key_digest
    if key is not None and (opened_with is None or routing_key_digest(key) == opened_with):
        return plan, key
    assert opened_with is not None
    found = _aliased_key(keys, opened_with)
    alias = plan.target.routing_key_alias
    if found is None:
        raise RoutingKeyError(
            alias,
            f"no routing key configured is the one incident {plan.target.dedup_key} was opened with (alias "
            f"{alias!r}): only that key can reach its alert; put it back to acknowledge or resolve it (kept)",
        )
    logger.warning("incident %s: its key is now under alias %r, not %r", plan.target.dedup_key, found[0], alias)
    return replace(plan, target=replace(plan.target, routing_key_alias=found[0])), found[1]


def _keyed_trigger(keys: KeySource, plan: Plan, key: str) -> tuple[Plan, str]:
    """A trigger, with its alias's ``key``, remembering its digest. One for an incident whose alert is
    open on another key (its alias took a new key since that trigger landed) goes to that alert while
    an alias holds its key: with the new key it paged another service for an incident already paged,
    and the first alert, whose key the incident forgot, stayed open for good. With no alias holding
    it, the page goes out with ``key`` and the error says the first alert stays open."""
    target = plan.target
    assert target is not None
    opened_with, digest = target.routing_key_digest, routing_key_digest(key)
    if opened_with in (None, digest) or not target.is_open or target.pending_action is not None:
        return replace(plan, target=replace(target, routing_key_digest=digest)), key
    assert opened_with is not None
    found = _aliased_key(keys, opened_with)
    if found is not None:
        logger.warning(
            "incident %s: its alert's key is now under alias %r, not %r",
            target.dedup_key,
            shown_alias(found[0]),
            shown_alias(target.routing_key_alias),
        )
        return replace(plan, target=replace(target, routing_key_alias=found[0])), found[1]
    logger.error(
        "incident %s: no routing key configured is the one its alert was opened with (alias %r): that alert "
        "stays open in PagerDuty until someone resolves it there; this trigger opens a new one",
        target.dedup_key,
        shown_alias(target.routing_key_alias),
    )
    return replace(plan, target=replace(target, routing_key_digest=digest)), key


def _aliased_key(keys: KeySource, digest: str) -> tuple[str, str] | None:
    """The alias and key whose digest is ``digest``, among every alias the key sources name (each read)."""
    names: list[str] = []
    for lister in ("aliases", "secret_aliases"):
        listed = getattr(keys, lister, None)
        try:
            names += list(listed()) if callable(listed) else []
        except ConfigurationError:
            continue
    for alias in dict.fromkeys(names):
        try:
            key = keys.get(alias)
        except ConfigurationError:
            continue
        if routing_key_digest(key) == digest:
            return alias, key
    return None


def keepable(alias: str) -> str:
    """``alias``, when its incident can keep it whole (``MAX_ROUTING_KEY_ALIAS_LENGTH``); else an
    ``UnknownAliasError``: a page sent on a longer one would keep it cut, and its resolve, sent to the cut
    alias, would find no key and leave the incident open."""
    if len(alias) > MAX_ROUTING_KEY_ALIAS_LENGTH:
        raise UnknownAliasError(
            alias, f"routing alias {truncate(alias, 64)!r} is too long to keep: over {MAX_ROUTING_KEY_ALIAS_LENGTH}"
        )
    return alias


def addressed_in_time(
    keys: KeySource, plan: Plan, render: Renderer, budget: float
) -> tuple[Plan, dict[str, Any], float]:
    """``addressed``, and what of ``budget`` still fits before the invocation's deadline once it is done.

    A routing key is read from its secret on first use and again every few minutes: a slow Secrets
    Manager (a read timeout, then its retry) takes seconds the deadline never counted when it gave the
    record ``budget``. The budget is fitted again (``INVOCATION_BUDGET``), so the record still ends by
    the deadline; when nothing fits, nothing is claimed or sent and the record is kept for retry.
    """
    plan, wire = addressed(keys, plan, render)
    fits = INVOCATION_BUDGET.get()
    left = budget if fits is None else fits(budget)
    if left is None:
        raise PagerDutyDeliveryError(
            "not sent: reading the routing key left too little of the invocation for a send; kept for retry"
        )
    return plan, wire, min(budget, left)


def kept_beside(before: Incident, claim: Incident, current: Incident) -> Incident:
    """``before`` (the incident as a refused claim found it) with what was written beside the claim since:
    undoing the claim must not undo a webhook's acknowledgement or resolution recorded meanwhile."""
    changed = {
        f.name: getattr(current, f.name) for f in fields(Incident) if getattr(current, f.name) != getattr(claim, f.name)
    }
    return replace(before, **changed) if changed else before


def sender_error(raised: Exception, wire: dict[str, Any]) -> BridgeError:
    """What a send that raised ``raised`` reports: a classified error as it is; anything else (a sender
    of the seed API's caller failing in a way the bridge does not know) as a failed send of unknown
    outcome, kept for retry. Its claim's lease ends as for any failed send, so the retry sends at once
    instead of being refused as "in flight" until the lease runs out. The message names what was
    raised, every routing key scrubbed from it (the body it was sending holds one)."""
    if isinstance(raised, BridgeError):
        return raised
    said = scrub(f"{type(raised).__name__}: {raised}", str(wire.get("routing_key") or ""))
    return PagerDutyDeliveryError(f"the sender raised {truncate(said, MAX_ERROR_LENGTH)}", ambiguous=True)


def send_budget(lease_until: datetime | None, now: datetime, budget: float) -> float:
    """A send's budget, within what its claim's lease still covers at ``now``, once the claim is written
    (the lease was stamped before the write, which may have been slow): past the lease another delivery
    may take over, and this send must not land after that one's."""
    if lease_until is None:
        return budget
    covered = (lease_until - now).total_seconds() - REQUEST_SECONDS
    if covered <= 0:
        raise PagerDutyDeliveryError(
            "not sent: the claim took so long to write that its lease leaves no time for a request; "
            "it stays pending for the retry"
        )
    return min(budget, covered)


def _needs_truth(plan: Plan, guess: Incident | None) -> bool:
    """Whether a plan made on a guess must be made again on the stored incident: it would write nothing
    (no conditional write would catch a wrong guess), or the guess holds a claim (its lease decides)."""
    if plan.action is None and plan.target is None:
        return True
    return guess is not None and guess.pending_action is not None


def not_found(outcome: Outcome) -> bool:
    """Whether a manual plan found no incident to act on."""
    return outcome.action is None and outcome.reason in (Reason.NOT_FOUND.value, Reason.ALREADY_RESOLVED.value)
