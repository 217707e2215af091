"""How long the function may run: the retry budget, a buffered batch, and the headroom around them.

Pure arithmetic, shared by the settings (which reject a batch that cannot fit) and the function
construct (which sets the timeout and says how it was sized).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

TIMEOUT_HEADROOM_SECONDS: Final = 15
"""Time on top of the work: a cold start with its Secrets Manager read (a few seconds), the DynamoDB
read and conditional writes around each delivery (well under a second), and the 5 s the handler keeps
back to record the outcome and return before Lambda would stop it."""

PER_RECORD_SECONDS: Final = 2
"""What one buffered record may take when all is well: a few DynamoDB calls (tens of milliseconds each)
and one POST to PagerDuty (typically 100 to 300 ms), with room for a slow answer. A batch is given this
much per record; the handler stops taking records before its deadline, and leaves the rest to SQS."""

LAMBDA_MAX_TIMEOUT_SECONDS: Final = 900
"""Lambda's ceiling for a function timeout (15 minutes)."""

MAX_BATCH_SIZE: Final = (LAMBDA_MAX_TIMEOUT_SECONDS - TIMEOUT_HEADROOM_SECONDS) // PER_RECORD_SECONDS
"""The largest buffered batch whose per-record budget and headroom fit Lambda's ceiling."""


@dataclass(frozen=True)
class FunctionTimeout:
    """The function timeout and what it is made of."""

    retry_budget_seconds: int
    batch_size: int | None
    """The buffered batch size, or None in direct mode (SNS delivers one notification per event)."""

    @property
    def batch_seconds(self) -> int:
        return 0 if self.batch_size is None else self.batch_size * PER_RECORD_SECONDS

    @property
    def seconds(self) -> int:
        """``max(retry budget, batch × per-record) + headroom``."""
        return max(self.retry_budget_seconds, self.batch_seconds) + TIMEOUT_HEADROOM_SECONDS

    @property
    def fits(self) -> bool:
        return self.seconds <= LAMBDA_MAX_TIMEOUT_SECONDS

    def explain(self) -> str:
        """One line with the numbers, for the synth's info annotation."""
        if self.batch_size is None:
            return (
                f"function timeout {self.seconds} s = retry budget {self.retry_budget_seconds} s "
                f"+ {TIMEOUT_HEADROOM_SECONDS} s headroom"
            )
        return (
            f"function timeout {self.seconds} s = max(retry budget {self.retry_budget_seconds} s, "
            f"batch of {self.batch_size} × {PER_RECORD_SECONDS} s per record = {self.batch_seconds} s) "
            f"+ {TIMEOUT_HEADROOM_SECONDS} s headroom (Lambda allows at most {LAMBDA_MAX_TIMEOUT_SECONDS} s)"
        )
