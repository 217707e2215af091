"""Alert rules at synth time: read from context or a file, validated by the package, passed on as JSON.

The function validates its rules at every cold start; validating them here as well turns a typo into a
failed ``cdk synth`` that names the rule and the field, instead of a deployed function that fails on
every alarm. YAML is read here, on the deploying machine, so the function only ever parses JSON and its
asset needs no YAML parser.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Final

from pagerduty_bridge.errors import ConfigurationError
from pagerduty_bridge.rules import decode_document, parse_rules

YAML_SUFFIXES: Final = (".yaml", ".yml")


class RulesDocumentError(ValueError):
    """A rules document that cannot be read or does not validate; the message says where and why."""


def read_rules_file(path: Path, *, where: str) -> Any:
    """The decoded content of a JSON or YAML rules file (by suffix; else by its first character)."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise RulesDocumentError(f"{where}: cannot read {path} ({exc.strerror or exc})") from None
    return _decode(text, where=where, yaml=True if path.suffix.lower() in YAML_SUFFIXES else None)


def rules_document(source: Any, *, where: str) -> str:
    """``source`` (JSON text, or data already decoded) validated as the function will, as compact JSON.

    A bare list of rules becomes ``{"rules": [...]}``, the document's one canonical shape.
    """
    data = _decode(source, where=where, yaml=False) if isinstance(source, str) else source
    if data is None:
        data = {"rules": []}
    elif isinstance(data, list):
        data = {"rules": data}
    try:
        text = json.dumps(data, separators=(",", ":"), ensure_ascii=False, allow_nan=False)
    except (TypeError, ValueError) as exc:
        raise RulesDocumentError(f"{where}: holds a value JSON cannot represent ({exc})") from None
    try:
        parse_rules(text, where=where)
    except ConfigurationError as exc:
        raise RulesDocumentError(str(exc)) from None
    return text


def _decode(text: str, *, where: str, yaml: bool | None) -> Any:
    """The package's own decoding of a rules document, its errors as ``RulesDocumentError``."""
    try:
        return decode_document(text, where, yaml=yaml)
    except ConfigurationError as exc:
        raise RulesDocumentError(str(exc)) from None
