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
from pagerduty_bridge.rules import parse_rules

YAML_SUFFIXES: Final = (".yaml", ".yml")


class RulesDocumentError(ValueError):
    """A rules document that cannot be read or does not validate; the message says where and why."""


def read_rules_file(path: Path, *, where: str) -> Any:
    """The decoded content of a JSON or YAML rules file (by suffix; else by its first character)."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise RulesDocumentError(f"{where}: cannot read {path} ({exc.strerror or exc})") from None
    stripped = text.strip()
    if not stripped:
        return None
    if path.suffix.lower() in YAML_SUFFIXES or stripped[0] not in "[{":
        return _load_yaml(stripped, where=where)
    return _load_json(stripped, where=where)


def rules_document(source: Any, *, where: str) -> str:
    """``source`` (JSON text, or data already decoded) validated as the function will, as compact JSON.

    A bare list of rules becomes ``{"rules": [...]}``, the document's one canonical shape.
    """
    data = _load_json(source.strip(), where=where) if isinstance(source, str) else source
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


def _load_json(text: str, *, where: str) -> Any:
    try:
        return json.loads(text)
    except ValueError as exc:
        raise RulesDocumentError(f"{where}: not valid JSON ({exc})") from None


def _load_yaml(text: str, *, where: str) -> Any:
    try:
        import yaml
    except ImportError:
        raise RulesDocumentError(f"{where}: reading YAML needs PyYAML; write the rules as JSON instead") from None
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise RulesDocumentError(f"{where}: not valid YAML ({exc})") from None
