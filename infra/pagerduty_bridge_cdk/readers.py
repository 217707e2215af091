"""Typed readers for the bridge's parameters, shared by CDK context and construct props.

A value arrives either from CDK context (JSON from ``cdk.json``, or a string from ``-c key=value``) or as
a keyword prop of :class:`~pagerduty_bridge_cdk.PagerDutyBridge` (a Python value). Both go through these
readers, so a value is accepted or rejected the same way whichever way it came in; only the name in the
error differs (``context parameter alertRules`` or ``prop alert_rules``).
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Literal, Protocol

from aws_cdk import Token

from pagerduty_bridge.keys import region_of

Architecture = Literal["arm64", "x86_64"]

ENVIRONMENT_NAME = re.compile(r"^[a-z][a-z0-9-]{0,23}\Z")
ACCOUNT_ID = re.compile(r"^\d{12}\Z")
REGION = re.compile(r"^[a-z]{2}(-[a-z]+)+-\d\Z")
EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+\Z")
SNS_TOPIC_ARN = re.compile(r"^arn:aws[a-z-]*:sns:[a-z0-9-]+:\d{12}:[A-Za-z0-9_-]{1,256}\Z")
SECRET_ARN = re.compile(r"^arn:aws[a-z-]*:secretsmanager:[a-z0-9-]+:\d{12}:secret:[A-Za-z0-9/_+=.@-]+\Z")
KMS_KEY_ARN = re.compile(r"^arn:aws[a-z-]*:kms:[a-z0-9-]+:\d{12}:key/[a-f0-9-]{36}\Z")
ROLE_ARN = re.compile(r"^arn:aws[a-z-]*:iam::(?P<account>\d{12}):role/[A-Za-z0-9+=,.@_/-]{1,512}\Z")
ROUTING_ALIAS = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}\Z")
STACK_NAME_GLOB = re.compile(r"^[A-Za-z*][A-Za-z0-9*-]{0,127}\Z")
"""A CloudFormation stack name (a letter, then letters, digits and dashes, at most 128) with ``*``
standing for any run of characters, as an EventBridge wildcard pattern reads it.

Each pattern here ends in ``\\Z``, not ``$``, which also matches before a final newline."""


def arn_region(arn: str | None) -> str | None:
    """The region a literal ARN names, read as the function reads it (``keys.region_of``); None for no
    ARN, an ARN CloudFormation fills in, or one of a global service (no region)."""
    if arn is None or Token.is_unresolved(arn):
        return None
    return region_of(arn)


class ConfigError(ValueError):
    """A parameter is missing a valid value; the message names the parameter as it was given."""


def camel_case(name: str) -> str:
    """``alarm_topic_arn`` → ``alarmTopicArn``: a prop's name as a context key."""
    head, *rest = name.split("_")
    return head + "".join(part.capitalize() for part in rest)


@dataclass(frozen=True)
class Naming:
    """How messages name a parameter: as a context key (camelCase) or as a prop (snake_case)."""

    kind: Literal["context parameter", "prop"]

    def key(self, name: str) -> str:
        """The parameter's name as the user spelled it."""
        return camel_case(name) if self.kind == "context parameter" else name

    def label(self, name: str) -> str:
        """``context parameter alertRules`` or ``prop alert_rules``."""
        return f"{self.kind} {self.key(name)}"


CONTEXT = Naming("context parameter")
PROPS = Naming("prop")


class Source(Protocol):
    """Where raw values come from, by prop name."""

    def value(self, name: str) -> Any:
        """The raw value, or None when not given."""
        ...

    def given(self, name: str) -> bool:
        """Whether a value (possibly an explicit "none") was given at all."""
        ...


class ContextSource:
    """``node.try_get_context``-style lookups, by the context key of each prop name."""

    def __init__(self, get: Callable[[str], Any]) -> None:
        self._get = get

    def value(self, name: str) -> Any:
        return self._get(camel_case(name))

    def given(self, name: str) -> bool:
        return self.value(name) is not None


class PropsSource:
    """Keyword props; a prop given as None is given (an explicit "none"), an absent one is not."""

    def __init__(self, props: Mapping[str, Any]) -> None:
        self._props = props

    def value(self, name: str) -> Any:
        return self._props.get(name)

    def given(self, name: str) -> bool:
        return name in self._props


class Reader:
    """Typed accessors over raw values; each error names the parameter and what it must be."""

    def __init__(self, source: Source, naming: Naming, docs: Mapping[str, str]) -> None:
        self.source = source
        self.naming = naming
        self._docs = docs

    def label(self, name: str) -> str:
        return self.naming.label(name)

    def raw(self, name: str) -> Any:
        """The value with surrounding blanks stripped; "", "none" and "null" read as not set."""
        value = self.source.value(name)
        if isinstance(value, str):
            value = value.strip()
            if value.lower() in ("", "none", "null"):
                return None
        return value

    def fail(self, name: str, value: Any, must: str) -> ConfigError:
        """The error for ``value`` of ``name``, which ``must`` be something else."""
        return ConfigError(f"{self.label(name)}={value!r} {must}")

    def matching(self, name: str, pattern: re.Pattern[str], default: str) -> str:
        value = self.optional_matching(name, pattern)
        return default if value is None else value

    def optional_matching(self, name: str, pattern: re.Pattern[str], *, token: bool = False) -> str | None:
        """A string matching ``pattern``; with ``token``, also a value CloudFormation fills in at deploy
        time (an ARN of a resource in the same app), which cannot be checked here."""
        value = self.raw(name)
        if value is None:
            return None
        if token and isinstance(value, str) and Token.is_unresolved(value):
            return value
        if not isinstance(value, str) or not pattern.match(value):
            raise self.fail(name, value, f"is malformed: {self._docs[name]}")
        return value

    def optional_integer(self, name: str, default: int | None, *, minimum: int, maximum: int) -> int | None:
        value = self.raw(name)
        if value is None:
            # An explicit "none" clears the default; an absent parameter keeps it.
            return None if self.source.given(name) else default
        return self._bounded(name, value, minimum, maximum)

    def integer(self, name: str, default: int, *, minimum: int, maximum: int) -> int:
        value = self.raw(name)
        return default if value is None else self._bounded(name, value, minimum, maximum)

    def one_of(self, name: str, allowed: tuple[int, ...], default: int) -> int:
        value = self.integer(name, default, minimum=min(allowed), maximum=max(allowed))
        if value not in allowed:
            raise self.fail(name, value, f"must be one of {', '.join(map(str, allowed))}")
        return value

    def choice(self, name: str, allowed: tuple[str, ...], default: str) -> str:
        value = self.raw(name)
        if value is None:
            return default
        if value not in allowed:
            raise self.fail(name, value, f"must be one of {', '.join(allowed)}")
        return str(value)

    def boolean(self, name: str, default: bool) -> bool:
        value = self.raw(name)
        if value is None:
            return default
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.lower() in ("true", "false"):
            return value.lower() == "true"
        raise self.fail(name, value, "must be true or false")

    def architecture(self, name: str, default: Architecture) -> Architecture:
        value = self.raw(name)
        if value is None:
            return default
        if value == "arm64":
            return "arm64"
        if value in ("x86_64", "x86-64", "amd64"):
            return "x86_64"
        raise self.fail(name, value, "must be arm64 or x86_64")

    def json_object(self, name: str, shape: str) -> dict[Any, Any] | None:
        """A JSON object given as text (context) or as a mapping or pairs (props); ``shape`` says what
        it maps, for the error."""
        value = self.raw(name)
        if isinstance(value, str):
            try:
                value = json.loads(value)
            except ValueError:
                key = self.naming.key(name)
                raise self.fail(
                    name,
                    value,
                    f"is not JSON: it must be an object of {shape} "
                    f"""(quote it for the shell: -c '{key}={{"…": "…"}}')""",
                ) from None
        if value is None:
            return None
        if isinstance(value, tuple | list) and all(isinstance(p, tuple | list) and len(p) == 2 for p in value):
            value = dict(value)
        if not isinstance(value, Mapping):
            raise self.fail(name, value, f"must be a JSON object of {shape}")
        return _stripped(self, name, value)

    def _bounded(self, name: str, value: Any, minimum: int, maximum: int) -> int:
        if isinstance(value, bool) or not isinstance(value, int | str):
            raise self.fail(name, value, "must be an integer")
        try:
            number = int(value)
        except ValueError:
            raise self.fail(name, value, "must be an integer") from None
        if not minimum <= number <= maximum:
            raise ConfigError(f"{self.label(name)}={number} must be between {minimum} and {maximum}")
        return number


def _stripped(reader: Reader, name: str, value: Mapping[Any, Any]) -> dict[Any, Any]:
    """The mapping with blanks around its keys and values dropped, as around every parameter's value (a
    value read from a file ends in a newline); two keys that differ only by blanks are an error."""
    stripped: dict[Any, Any] = {}
    for key, item in value.items():
        clean = key.strip() if isinstance(key, str) else key
        if clean in stripped:
            raise reader.fail(name, clean, "is given twice")
        stripped[clean] = item.strip() if isinstance(item, str) else item
    return stripped
