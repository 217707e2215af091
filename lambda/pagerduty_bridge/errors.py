"""One error hierarchy for the bridge.

Every error says whether a retry can help (``retryable``). The Lambda handler raises out only what a
retry can fix, so Lambda's own retries and the on-failure destination handle those; everything else is
logged, counted and answered.
"""

from __future__ import annotations


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


class IncidentNotFoundError(BridgeError):
    """No incident is tracked under the given dedup key."""

    def __init__(self, dedup_key: str) -> None:
        super().__init__(f"Incident not found: {dedup_key}")
        self.dedup_key = dedup_key


class PagerDutyApiError(BridgeError):
    """PagerDuty answered with an error status.

    429 and 5xx are retryable; any other status means the event itself is wrong and sending it again
    cannot help (PagerDuty's ``errors[]`` are part of the message).
    """

    def __init__(self, status: int, reason: str) -> None:
        super().__init__(f"PagerDuty API error: {status} - {reason}", retryable=status == 429 or status >= 500)
        self.status = status
        self.reason = reason


class PagerDutyDeliveryError(BridgeError):
    """The event could not be delivered at all (network, timeout, retry budget spent): retryable."""

    retryable = True

    def __init__(self, cause: str) -> None:
        super().__init__(f"Failed to send PagerDuty event: {cause}")
        self.cause = cause


class StoreError(BridgeError):
    """The incident store failed; throttling and outages are retryable, bad requests are not."""


class ConcurrentUpdateError(StoreError):
    """Another invocation is delivering a notification for the same alarm right now.

    Retrying later is safe: by then that delivery has finished (or its lease has expired and this one
    takes over), so exactly one of them reaches PagerDuty and in order.
    """

    retryable = True


class VersionConflictError(StoreError):
    """The incident changed between read and write (another invocation wrote first): re-read, decide
    again."""

    retryable = True
