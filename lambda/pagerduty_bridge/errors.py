"""One error hierarchy for the bridge.

Every error says whether a retry can help (``retryable``). The Lambda handler raises out only what a
retry can fix, so Lambda's own retries and the on-failure destination handle those; everything else is
logged, counted and answered.
"""

from __future__ import annotations

import re
from typing import Final


class BridgeError(Exception):
    """Base of every error the bridge raises on purpose."""

    retryable: bool = False

    def __init__(self, message: str, *, retryable: bool | None = None) -> None:
        super().__init__(message)
        self.message = message
        if retryable is not None:
            self.retryable = retryable

    def __str__(self) -> str:
        return self.message


class ConfigurationError(BridgeError):
    """A setting is missing or malformed; the message names the setting.

    Retryable: the notification is fine, the deployment is not. Raising lets Lambda retry and then
    park the event in the on-failure queue, from where it is redriven once the setting is fixed.
    """

    retryable = True


class InvalidMessageError(BridgeError):
    """A notification cannot be understood; the message says what is wrong and where."""


class InvalidEventError(BridgeError):
    """An event cannot be sent as JSON (a NaN, a date … in it); the message names the field. Sending it
    again cannot help: what is in the event is wrong, not the way to PagerDuty."""


class IncidentNotFoundError(BridgeError):
    """No incident is tracked under the given dedup key."""

    def __init__(self, dedup_key: str, detail: str | None = None) -> None:
        super().__init__(f"Incident not found: {dedup_key}" + (f" ({detail})" if detail else ""))
        self.dedup_key = dedup_key


RETRIED_STATUSES = frozenset({429, 500, 502, 503, 504})
"""PagerDuty: 429 means slow down, 5xx means try again: retried at once, with backoff."""
KEPT_STATUSES = frozenset({401, 403, 404})
"""A wrong or revoked key, or a wrong URL: nothing was delivered, and a retry after the fix can
deliver. Not retried at once (it would fail the same way), but kept for Lambda's retries, the
failure destination or the dead-letter queue, and a redrive."""


KEY_STATUSES: Final = frozenset({401, 403})
"""PagerDuty's answers to a routing key it refuses (404 is a wrong URL)."""
BAD_REQUEST: Final = 400
"""PagerDuty's refusal of the event itself (with ``errors[]``), or of its routing key (``KEY_REFUSED``)."""
KEY_REFUSED: Final = re.compile(r"\binvalid[ _]routing[ _]key\b", re.IGNORECASE)
"""How PagerDuty's 400 says it does not know the routing key (``errors: ["Invalid routing key"]``): an
integration deleted, or its key revoked or regenerated. Like a 401/403, the key is wrong, not the event:
the same event is accepted once the key is fixed."""


def worth_sending_again(status: int) -> bool:
    """Whether PagerDuty's error status leaves the event worth sending again: 429 and 5xx (at once, with
    backoff) and 401/403/404 (once the key or URL is fixed). Its 400 is the event's own fault, unless it
    refuses the routing key (``refuses_the_key``)."""
    return status in RETRIED_STATUSES or status >= 500 or status in KEPT_STATUSES


def refuses_the_key(status: int, reason: str) -> bool:
    """Whether PagerDuty's answer refuses the routing key rather than the event (a 400 saying so)."""
    return status == BAD_REQUEST and KEY_REFUSED.search(reason) is not None


class PagerDutyApiError(BridgeError):
    """PagerDuty answered with an error status.

    429 and 5xx are retried; 401, 403 and 404, and a 400 refusing the routing key, are kept for redrive;
    any other 400 means the event itself is wrong and sending it again cannot help (PagerDuty's
    ``errors[]`` are part of the message). ``ambiguous`` is true when an earlier attempt of the same send may still be processed.
    """

    def __init__(self, status: int, reason: str, *, ambiguous: bool = False) -> None:
        retryable = worth_sending_again(status) or refuses_the_key(status, reason)
        super().__init__(f"PagerDuty API error: {status} - {reason}", retryable=retryable)
        self.status = status
        self.reason = reason
        self.ambiguous = ambiguous

    @property
    def key_refused(self) -> bool:
        """Whether PagerDuty refused the routing key (401, 403, or a 400 saying so): the key may have been
        rotated since it was read."""
        return self.status in KEY_STATUSES or refuses_the_key(self.status, self.reason)


class PagerDutyDeliveryError(BridgeError):
    """The event could not be delivered (network, timeout, retry budget spent, an answer that was not
    PagerDuty's acceptance): retryable. ``ambiguous`` is true when PagerDuty may have received it."""

    retryable = True

    def __init__(self, cause: str, *, ambiguous: bool = False) -> None:
        super().__init__(f"Failed to send PagerDuty event: {cause}")
        self.cause = cause
        self.ambiguous = ambiguous


class RateLimitedError(PagerDutyDeliveryError):
    """PagerDuty's rate limit for the routing key (its 429s, the pacer's hold) left no room for the event
    within what the send could wait: retryable, and nothing was sent."""


def rate_limited(error: BaseException | None) -> bool:
    """Whether ``error`` is PagerDuty's rate limit for a routing key: its 429, or a send held back for it."""
    return isinstance(error, RateLimitedError) or (isinstance(error, PagerDutyApiError) and error.status == 429)


class RoutingKeyError(ConfigurationError):
    """One routing-key alias cannot be used (its secret is unreadable or holds no valid key): only the
    pages routed to that alias fail, and they are kept for retry and redrive."""

    def __init__(self, alias: str, message: str) -> None:
        super().__init__(message)
        self.alias = alias


class UnknownAliasError(RoutingKeyError):
    """No source names the alias at all (a typo in a rule or a ``pagerduty:routing`` tag): unlike a key
    that cannot be read, waiting cannot bring it. A trigger goes to the default alias instead
    (``delivery.addressed``)."""


class DeadlineError(BridgeError):
    """Not enough of the invocation is left to handle this record: it goes back for another
    invocation (an SQS batch item failure, or Lambda's retry of the event) before it is started."""

    retryable = True


class StoreError(BridgeError):
    """The incident store failed. Retryable unless the request itself was malformed: throttling and
    outages pass, and a table or permission a deployment got wrong is fixed (a retry then succeeds)."""


class StoreTimeoutError(StoreError):
    """The table did not answer in time, on any of the client's attempts: every further call would wait
    as long, so an invocation starts no more records once one met it (they go back whole)."""

    retryable = True


class ConcurrentUpdateError(StoreError):
    """Another invocation is delivering a notification for the same alarm right now.

    Retrying later is safe: by then that delivery has finished (or its lease has expired and this one
    takes over), so exactly one of them reaches PagerDuty and in order.
    """

    retryable = True


class VersionConflictError(StoreError):
    """The incident changed between read and write (another invocation wrote first): decide again on
    ``current``, the item as the store holds it now (when the store returned it), else re-read."""

    retryable = True

    def __init__(self, message: str, *, current: object = None, known: bool = False) -> None:
        super().__init__(message)
        self.current = current
        """The stored incident after the failed write (``None``: there is none, when ``known``)."""
        self.known = known
        """Whether ``current`` is what the store holds (else it must be read)."""


class UnexpectedError(BridgeError):
    """Handling one record failed in a way the bridge did not foresee (a bug): the record is kept for
    retry and redrive (the dead-letter queue, alone), and the records beside it go on."""

    retryable = True
