"""Secrets never leave the process: one place that knows every routing key and scrubs it from text.

Every routing key the bridge loads is registered with ``REDACTOR``; its ``scrub`` (which finds a key in
any case) is applied to PagerDuty's answers before they become an error, a stored record, a log line or
CLI output, and a log record factory (installed by ``install_log_redaction``) scrubs every log record of
every library (its message, and the traceback of the exception it carries) before any handler sees it.
Printed events show a key by its last four characters (``mask_key``).
"""

from __future__ import annotations

import logging
import re
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any, Final

MASK: Final = "****"
"""What a scrubbed secret reads as."""
SHOWN_KEY_CHARACTERS: Final = 4
"""A masked routing key keeps its last four characters, so an operator can tell keys apart."""

# Secret values AWS answers carry, as botocore's DEBUG logging prints them (a JSON answer's repr):
# Secrets Manager's SecretString / SecretBinary and SSM's parameter Value. They are scrubbed before the
# bridge knows the key they hold (botocore logs the very answer that delivers it). A value may have been
# escaped any number of times on its way into a log line: JSON escapes its quotes (a JSON secret of
# aliases), the answer's bytes repr doubles every backslash (``\\"`` there), a line quoting another does
# it again. Each escaping turns a run of r backslashes before a quote into 2r or 2r + 1, so the quotes
# inside the value keep longer runs than the quote that opened it: the value ends at the first quote whose
# run of backslashes is exactly the opening quote's.
_AWS_SECRET_FIELD: Final = re.compile(
    r"""(?:SecretString|SecretBinary|Value|SecretAccessKey|SessionToken|X-Amz-Security-Token)\\*["']?\s*:\s*b?"""
    r"""(?P<escape>\\*)(?P<quote>["'])"""
)
# Temporary AWS credentials as botocore's DEBUG logging prints them: STS's XML answer (AssumeRole, the
# reconciliation's role in another account) and, above, the JSON fields of other answers and the
# ``X-Amz-Security-Token`` header of every signed request (a bytes value: ``b'…'``).
_AWS_SECRET_ELEMENT: Final = re.compile(r"<(SecretAccessKey|SessionToken)>[^<]*</\1>")
_ESCAPED_QUOTES: Final = {quote: re.compile(r"(\\*)" + quote) for quote in "\"'"}
_AWS_LOGGERS: Final = ("botocore", "boto3", "urllib3", "s3transfer")


def mask_key(key: object) -> str:
    """A routing key as it may be printed: ``****…`` and its last four characters."""
    text = "" if key is None else str(key)
    if not text:
        return text
    return "*" * max(0, len(text) - SHOWN_KEY_CHARACTERS) + text[-SHOWN_KEY_CHARACTERS:]


def masked_body(body: dict[str, Any]) -> dict[str, Any]:
    """An Events API body safe to print or store: its routing key masked."""
    if "routing_key" not in body:
        return body
    return {**body, "routing_key": mask_key(body["routing_key"])}


class Redactor:
    """The set of secrets to scrub from text, in any case; thread-safe, shared by the process.

    A secret is found however its letters are cased: a proxy, a gateway or an error page may echo a key
    back upper-cased, and it is the same secret. Text holding a secret as it is (the usual case) is
    found by plain search; only text without one is searched again in lower case."""

    def __init__(self) -> None:
        self._known = _Secrets.of(frozenset())
        self._lock = threading.Lock()

    def add(self, secrets: Iterable[str]) -> None:
        """Register secrets (empty and very short values are ignored: they would scrub ordinary text)."""
        new = {s for s in secrets if isinstance(s, str) and len(s) >= MIN_SECRET_LENGTH}
        if new - self._known.secrets:
            with self._lock:
                self._known = _Secrets.of(self._known.secrets | new)

    @property
    def secrets(self) -> frozenset[str]:
        return self._known.secrets

    def scrub(self, text: str) -> str:
        """``text`` with every registered secret, in any case, replaced by ``****``."""
        known = self._known
        return known.scrub(text) if known.held(text) else text

    def holds_secret(self, text: str) -> bool:
        return self._known.held(text)


MIN_SECRET_LENGTH: Final = 8
"""Shorter values are never scrubbed: they would scrub ordinary words."""


@dataclass(frozen=True, slots=True)
class _Secrets:
    """One registered set of secrets, with what finds them in any case (replaced whole, never changed)."""

    secrets: frozenset[str]
    lowered: tuple[str, ...]
    patterns: tuple[re.Pattern[str], ...]
    """One per secret, finding every place it starts (overlapping places too), in any case."""

    @classmethod
    def of(cls, secrets: frozenset[str]) -> _Secrets:
        patterns = tuple(re.compile(f"(?=({re.escape(secret)}))", re.IGNORECASE) for secret in sorted(secrets))
        return cls(secrets, tuple(secret.lower() for secret in secrets), patterns)

    def held(self, text: str) -> bool:
        # Plain loops: this runs for every log record and every answer PagerDuty gives.
        for secret in self.secrets:
            if secret in text:
                return True
        if self.lowered:
            lowered = text.lower()
            for secret in self.lowered:
                if secret in lowered:
                    return True
        return False

    def scrub(self, text: str) -> str:
        """Every stretch of ``text`` any secret covers, as one ``****``: a secret inside another, or two
        that overlap (one's end the other's start), never leave a part of either in clear, as replacing
        them one after the other did."""
        spans = sorted(found.span(1) for pattern in self.patterns for found in pattern.finditer(text))
        merged: list[list[int]] = []
        for start, end in spans:
            if merged and start <= merged[-1][1]:
                merged[-1][1] = max(merged[-1][1], end)
            else:
                merged.append([start, end])
        parts: list[str] = []
        position = 0
        for start, end in merged:
            parts += (text[position:start], MASK)
            position = end
        parts.append(text[position:])
        return "".join(parts)


REDACTOR: Final = Redactor()
"""The process's one redactor: routing keys are registered here as they are loaded."""


def scrub(text: str, *extra: str) -> str:
    """``text`` without any registered secret nor any of ``extra`` (e.g. the key a request carried), in any
    case."""
    held = {s for s in extra if len(s) >= MIN_SECRET_LENGTH and (s in text or s.lower() in text.lower())}
    if held:  # scrubbed together with the registered ones: one may hold or overlap another
        return _Secrets.of(frozenset(held) | REDACTOR.secrets).scrub(text)
    return REDACTOR.scrub(text)


def scrub_aws_secret_fields(text: str) -> str:
    """Blank the values of secret-bearing fields in an AWS answer or request as botocore logs it (a
    secret's value, temporary credentials), however often it was escaped. A value whose end cannot be
    found is blanked to the end of the text."""
    if "Secret" not in text and "Value" not in text and "Token" not in text:
        return text
    text = _AWS_SECRET_ELEMENT.sub(lambda element: f"<{element[1]}>{MASK}</{element[1]}>", text)
    kept: list[str] = []
    position = 0
    while (field := _AWS_SECRET_FIELD.search(text, position)) is not None:
        kept += (text[position : field.end()], MASK)
        end = _value_end(text, field.end(), field["quote"], len(field["escape"]))
        if end is None:
            return "".join(kept)
        position = end
    kept.append(text[position:])
    return "".join(kept)


def _value_end(text: str, start: int, quote: str, escape: int) -> int | None:
    """Where the quoted value beginning at ``start`` ends: the backslashes and ``quote`` that close it
    (a run of exactly ``escape`` backslashes, as before its opening quote); ``None`` when none does."""
    for closing in _ESCAPED_QUOTES[quote].finditer(text, start):
        if len(closing.group(1)) == escape:
            return closing.start()
    return None


class RedactingFilter(logging.Filter):
    """A handler filter scrubbing secrets from a record's message, arguments and ``extra`` fields (texts,
    and the texts inside structured ones: dicts, lists, objects printed as text).

    The record factory (below) covers every record's message; a filter on a handler also covers the
    ``extra`` fields that loggers attach after the record is made (Powertools prints them).
    """

    def __init__(self, redactor: Redactor = REDACTOR) -> None:
        super().__init__()
        self.redactor = redactor

    def filter(self, record: logging.LogRecord) -> bool:
        if self.redactor.secrets:
            _redact_record(record, self.redactor)
            fields = vars(record)
            # One search of all the record's texts together (a record has some twenty; a secret is in
            # the joined text whenever it is in one of them); only a record that holds one is combed.
            if self.redactor.holds_secret("\0".join(v for v in fields.values() if isinstance(v, str))):
                for name, value in list(fields.items()):
                    if isinstance(value, str) and self.redactor.holds_secret(value):
                        setattr(record, name, self.redactor.scrub(value))
            # An extra that is not text (a dict, a list, an object) is printed too: as JSON, or as its
            # ``str``. Only the extras (not the record's own attributes) can be such values.
            for name in fields.keys() - _RECORD_ATTRIBUTES:
                value = fields[name]
                if not isinstance(value, str | int | float | bool | None):
                    cleaned = _scrubbed_value(value, self.redactor)
                    if cleaned is not value:
                        setattr(record, name, cleaned)
        return True


_RECORD_ATTRIBUTES: Final = frozenset(vars(logging.LogRecord("", 0, "", 0, "", None, None))) | {"message", "asctime"}
"""A log record's own attributes: every other one is an ``extra`` field."""
_MAX_SCRUB_DEPTH: Final = 32
"""How deep a structured extra is combed; anything deeper is printed as scrubbed text."""


def _scrubbed_value(value: Any, redactor: Redactor, depth: int = 0) -> Any:
    """``value`` with every registered secret scrubbed from the texts it holds, as it will be printed
    (JSON for dicts, lists and tuples; ``str`` for any other object); ``value`` itself when it holds
    none."""
    if isinstance(value, str):
        return redactor.scrub(value) if redactor.holds_secret(value) else value
    if value is None or isinstance(value, int | float | bool):
        return value
    if depth < _MAX_SCRUB_DEPTH and isinstance(value, dict):
        pairs = [
            (_scrubbed_value(key, redactor, depth + 1), _scrubbed_value(item, redactor, depth + 1))
            for key, item in value.items()
        ]
        if all(
            new is old
            for pair, original in zip(pairs, value.items(), strict=True)
            for new, old in zip(pair, original, strict=True)
        ):
            return value
        return dict(pairs)
    if depth < _MAX_SCRUB_DEPTH and isinstance(value, list | tuple):
        cleaned = [_scrubbed_value(item, redactor, depth + 1) for item in value]
        return value if all(new is old for new, old in zip(cleaned, value, strict=True)) else cleaned
    try:
        text = str(value)
    except Exception:  # noqa: BLE001 - a value that cannot print itself is left to the handler's error path
        return value
    return redactor.scrub(text) if redactor.holds_secret(text) else value


_installed = False
_install_lock = threading.Lock()


def install_log_redaction() -> None:
    """Scrub every log record of the process, whatever logger or handler it goes to.

    A record factory sees each record as it is made, before any handler or filter: the one place no
    library's logging can bypass (a filter on one handler misses records that propagate to others).
    Idempotent.
    """
    global _installed  # noqa: PLW0603 - one factory per process, by design
    with _install_lock:
        if _installed:
            return
        previous: Callable[..., logging.LogRecord] = logging.getLogRecordFactory()

        def factory(*args: Any, **kwargs: Any) -> logging.LogRecord:
            record = previous(*args, **kwargs)
            _redact_record(record)
            return record

        logging.setLogRecordFactory(factory)
        _installed = True


def _redact_record(record: logging.LogRecord, redactor: Redactor = REDACTOR) -> None:
    aws = record.name.startswith(_AWS_LOGGERS)
    if not aws and not redactor.secrets:
        return
    if record.exc_info and redactor.secrets:
        _redact_exception(record, redactor)
    try:
        message = record.getMessage()
    except (TypeError, ValueError):  # a malformed format string: leave it to the handler's error path
        return
    cleaned = redactor.scrub(message)
    if aws:
        cleaned = scrub_aws_secret_fields(cleaned)
    if cleaned != message:
        record.msg, record.args = cleaned, None


_TRACEBACK_FORMATTER: Final = logging.Formatter()


def _redact_exception(record: logging.LogRecord, redactor: Redactor) -> None:
    """A record's exception (``logger.exception``) as printed, scrubbed when it holds a secret: the
    traceback's text (its messages, chained exceptions included) replaces the exception itself, as
    ``exc_text`` for logging's formatters and ``exception`` / ``exception_name`` for Powertools'."""
    exc_info = record.exc_info
    if not isinstance(exc_info, tuple) or exc_info[0] is None:
        return
    text = _TRACEBACK_FORMATTER.formatException(exc_info)
    if not redactor.holds_secret(text):
        return
    record.exc_info = None
    record.exc_text = redactor.scrub(text)
    record.exception = record.exc_text
    record.exception_name = exc_info[0].__name__
