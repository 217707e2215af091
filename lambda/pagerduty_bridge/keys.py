"""Routing keys by alias: where each comes from, loaded when first needed, each alias on its own.

Sources, for each alias: the plaintext settings (local use only), one secret per alias
(``PAGERDUTY_ROUTING_KEY_SECRETS``), and the integration-key secret (a plain key for the ``default``
alias, or a JSON object of aliases). Secrets are Secrets Manager secrets or SSM SecureString
parameters, read through Powertools Parameters and cached ``SECRET_MAX_AGE_SECONDS`` so a rotated key
is picked up. A secret that cannot be read or holds no valid key fails only the alias that needs it:
every other alias goes on paging (and one whose refresh fails keeps the value it held when last read). Every key a secret holds (every alias, used or not) is registered with
the process's redactor as soon as the secret is read.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable, Iterable, Mapping
from typing import Any, Final, Protocol

from pagerduty_bridge import constants as c
from pagerduty_bridge.errors import ConfigurationError, RoutingKeyError, UnknownAliasError
from pagerduty_bridge.models import Secret
from pagerduty_bridge.redaction import REDACTOR
from pagerduty_bridge.settings import Settings, check_routing_key

logger = logging.getLogger(__name__)

SECRET_MAX_AGE_SECONDS: Final = 300
"""How long a fetched secret is reused: one read per container per five minutes."""


REFRESH_RETRY_SECONDS: Final = 30.0
"""After a secret's read failed, how long its last value is used (or, without one, the failure raised)
without asking again: one wait on an unanswering service per container per half minute, not one per
record."""
SECRET_CONNECT_TIMEOUT_SECONDS: Final = 2.0
SECRET_READ_TIMEOUT_SECONDS: Final = 3.0
SECRET_READ_ATTEMPTS: Final = 2
"""A secret read gives up within seconds: Secrets Manager and SSM answer in milliseconds, and boto3's
defaults (60 s to connect, 60 s to read, each retried) would hold every page for the function's whole
timeout when the service stops answering, while the key read last (``RoutingKeys._read``) could page."""


def secret_client_config() -> Any:
    """The botocore configuration of the clients that read secrets (see ``SECRET_READ_ATTEMPTS``)."""
    from botocore.config import Config

    return Config(
        connect_timeout=SECRET_CONNECT_TIMEOUT_SECONDS,
        read_timeout=SECRET_READ_TIMEOUT_SECONDS,
        retries={"mode": "standard", "max_attempts": SECRET_READ_ATTEMPTS},
    )


SecretFetcher = Callable[[str, str], Any]
"""(reference, where) → the secret's value; raises ``ConfigurationError`` naming ``where``."""


class KeySource(Protocol):
    def get(self, alias: str) -> str:
        """The routing key of ``alias``; ``RoutingKeyError`` when it has none usable."""
        ...


def parse_secret(value: Any, where: str) -> dict[str, str]:
    """A secret's routing keys by alias, unchecked: a plain key (alias ``default``) or a JSON object of
    aliases. Each key is checked when its alias is used, so one bad entry fails only its alias. The
    whitespace and invisible marks around a key (a pasted newline, an editor's byte-order mark) are not
    part of it, around the whole secret as around a JSON entry: a routing key is letters and digits."""
    if isinstance(value, bytes):
        value = value.decode("utf-8", "replace")
    if not isinstance(value, str) or not trimmed(value):
        raise ConfigurationError(f"{where} is empty")
    text = trimmed(value)
    if not text.startswith("{"):
        return {c.DEFAULT_ROUTING_KEY_ALIAS: text}
    try:
        decoded = json.loads(text)
    except ValueError:
        raise ConfigurationError(f"{where} looks like JSON but is not valid JSON") from None
    if not isinstance(decoded, dict) or not any(isinstance(v, str) for v in decoded.values()):
        raise ConfigurationError(f"{where} must be a JSON object of alias → routing key strings")
    # An entry that is no string (``null`` for an alias switched off, a number) is no key: only its
    # alias fails (``NOT_A_KEY``), every other alias of the secret goes on paging. What it holds is
    # scrubbed all the same: a key may hide in it (``{"key": "…"}``).
    REDACTOR.add(may_be_keys(nested_strings([v for v in decoded.values() if not isinstance(v, str)])))
    return {alias: trimmed(key) if isinstance(key, str) else NOT_A_KEY for alias, key in decoded.items()}


SHORTEST_KEY_LIKE: Final = 16
"""How long a secret's value must be to be taken for a key, broken or not: a routing key is 32
characters, one cut short when pasted still half of them. A shorter value is a note beside the keys
(``"environment": "production"``): scrubbed, it would blank that word from every log line and output."""


def may_be_keys(values: Iterable[str]) -> list[str]:
    """The ``values`` that may be routing keys (well-formed or not), to be scrubbed wherever they show."""
    return [value for value in values if len(trimmed(value)) >= SHORTEST_KEY_LIKE]


INVISIBLE: Final = "\ufeff\u200b\u200c\u200d\u2060"
"""Invisible marks a key may carry at either end: a byte-order mark an editor wrote, a zero-width space
or joiner pasted with it. No console shows them, and a routing key has none."""


def trimmed(text: str) -> str:
    """``text`` without the blanks and invisible marks around it (never those inside it), in linear time
    (a secret is up to 64 KB of anything)."""
    start, end = 0, len(text)
    while start < end and (text[start].isspace() or text[start] in INVISIBLE):
        start += 1
    while end > start and (text[end - 1].isspace() or text[end - 1] in INVISIBLE):
        end -= 1
    return text[start:end]


NOT_A_KEY: Final = ""
"""What ``parse_secret`` holds for an alias whose entry is not a string: a key no alias can use."""


def nested_strings(value: Any) -> list[str]:
    """Every string in a decoded JSON value, however deep: what a secret holds that may be a key."""
    if isinstance(value, str):
        return [value, trimmed(value)]
    if isinstance(value, dict):
        return [text for item in value.values() for text in nested_strings(item)]
    if isinstance(value, list):
        return [text for item in value for text in nested_strings(item)]
    return []


def is_ssm_parameter(reference: str) -> bool:
    """An SSM parameter (``arn:…:ssm:…:parameter/…`` or ``/a/name``; GetParameter takes either) rather
    than a Secrets Manager secret."""
    return reference.startswith("/") or ":ssm:" in reference


class ParameterFetcher:
    """Reads secrets through Powertools Parameters with clients from boto3's default session (the one
    the DynamoDB client already loaded: Powertools' default providers would build a second session,
    ~175 ms more cold start). Built lazily: a container that never reads a secret never imports it.

    A secret or parameter given by ARN is read in the region the ARN names (Secrets Manager and SSM
    answer only for their own region); one given by name in the function's own region. ``client``
    builds a client for a service and a region (``None``: the default)."""

    def __init__(self, client: Callable[..., Any] | None = None) -> None:
        self._client = client
        self._secrets: dict[str | None, Any] = {}
        self._parameters: dict[str | None, Any] = {}

    def _new_client(self, service: str, region: str | None) -> Any:
        if self._client is not None:
            return self._client(service, region=region)
        import boto3

        return boto3.client(service, region_name=region, config=secret_client_config())

    def __call__(self, reference: str, where: str) -> Any:
        from aws_lambda_powertools.utilities import parameters

        region = region_of(reference)
        try:
            if is_ssm_parameter(reference):
                ssm = self._parameters.get(region)
                if ssm is None:
                    ssm = self._parameters[region] = parameters.SSMProvider(
                        boto3_client=self._new_client("ssm", region)
                    )
                return ssm.get(reference, max_age=SECRET_MAX_AGE_SECONDS, decrypt=True)
            secrets = self._secrets.get(region)
            if secrets is None:
                secrets = self._secrets[region] = parameters.SecretsProvider(
                    boto3_client=self._new_client("secretsmanager", region)
                )
            return secrets.get(reference, max_age=SECRET_MAX_AGE_SECONDS)
        except parameters.exceptions.GetParameterError as exc:
            raise ConfigurationError(f"{where}: cannot read the secret ({aws_answer(exc)})") from None

    def clear(self) -> None:
        """Forget cached values (after a SnapStart restore, a snapshot's secrets may be stale)."""
        for provider in (*self._secrets.values(), *self._parameters.values()):
            provider.clear_cache()


def aws_answer(exc: BaseException) -> str:
    """What the service answered under a Powertools error (which wraps it as its context, not its cause):
    the AWS error code (``AccessDeniedException``, ``ThrottlingException`` …) or the innermost error's
    type. Never its message: it is the code that says what to fix."""
    seen: list[BaseException] = []
    cause: BaseException | None = exc
    while cause is not None and cause not in seen:
        seen.append(cause)
        response = getattr(cause, "response", None)
        error = response.get("Error") if isinstance(response, dict) else None
        code = error.get("Code") if isinstance(error, dict) else None
        if isinstance(code, str) and code:
            return code
        cause = cause.__cause__ or cause.__context__
    return type(seen[-1]).__name__


def region_of(reference: str) -> str | None:
    """The region an ARN names (``arn:aws:secretsmanager:us-east-1:…``); ``None`` for a bare name."""
    parts = reference.split(":")
    if reference.startswith("arn:") and len(parts) > 5 and parts[3]:
        return parts[3]
    return None


class RoutingKeys:
    """The routing keys the settings configure, by alias, each loaded and checked when first used."""

    def __init__(self, settings: Settings, *, fetch: SecretFetcher | None = None) -> None:
        self._settings = settings
        self._fetch: SecretFetcher = fetch or ParameterFetcher()
        self._plain: dict[str, Secret] = dict(settings.routing_keys)
        self._last_read: dict[str, dict[str, str]] = {}
        """Each secret's keys as last read, for when a later read fails (``_read``)."""
        self._failed: dict[str, tuple[float, ConfigurationError]] = {}
        """When a secret's read last failed (monotonic seconds) and why: for ``REFRESH_RETRY_SECONDS``
        its last value stands in, or without one the same failure is raised at once."""
        if settings.integration_key is not None:
            self._plain[c.DEFAULT_ROUTING_KEY_ALIAS] = settings.integration_key
        REDACTOR.add(key.get_secret_value() for key in self._plain.values())

    @property
    def configured(self) -> bool:
        """Whether the default alias has any source at all."""
        return c.DEFAULT_ROUTING_KEY_ALIAS in self._plain or bool(self._settings.integration_key_secret_arn)

    def aliases(self) -> list[str]:
        """Every alias some source names (the integration-key secret's own aliases need a read)."""
        named = set(self._plain) | set(self._settings.routing_key_secrets)
        if self._settings.integration_key_secret_arn:
            named.add(c.DEFAULT_ROUTING_KEY_ALIAS)
        return sorted(named)

    def secret_aliases(self) -> list[str]:
        """The aliases the integration-key secret itself names (a read of the secret; none without one).
        A secret that cannot be read or parsed is a ``ConfigurationError``."""
        if not self._settings.integration_key_secret_arn:
            return []
        return sorted(self._read(self._settings.integration_key_secret_arn, c.ENV_INTEGRATION_KEY_SECRET_ARN))

    def get(self, alias: str) -> str:
        where = f"routing key {alias!r}"
        try:
            raw = self._raw(alias)
            key = check_routing_key(raw, where)
        except RoutingKeyError:
            raise
        except ConfigurationError as exc:
            raise RoutingKeyError(alias, str(exc)) from None
        REDACTOR.add((key,))
        return key

    def _raw(self, alias: str) -> str:
        if alias in self._plain:
            return self._plain[alias].get_secret_value()
        reference = self._settings.routing_key_secrets.get(alias)
        if reference is not None:
            where = f"{c.ENV_ROUTING_KEY_SECRETS} ({alias})"
            keys = self._read(reference, where)
            if len(keys) != 1:
                raise ConfigurationError(f"{where} must hold one routing key")
            return next(iter(keys.values()))
        if self._settings.integration_key_secret_arn:
            keys = self._read(self._settings.integration_key_secret_arn, c.ENV_INTEGRATION_KEY_SECRET_ARN)
            if alias in keys:
                if not keys[alias]:
                    raise ConfigurationError(
                        f"{c.ENV_INTEGRATION_KEY_SECRET_ARN} ({alias}) holds no routing key string"
                    )
                return keys[alias]
        if alias == c.DEFAULT_ROUTING_KEY_ALIAS:
            raise RoutingKeyError(
                alias,
                f"no PagerDuty integration key: set {c.ENV_INTEGRATION_KEY_SECRET_ARN} "
                f"(or {c.ENV_INTEGRATION_KEY} locally)",
            )
        raise UnknownAliasError(alias, f"no routing key is configured for alias {alias!r}")

    def _read(self, reference: str, where: str) -> dict[str, str]:
        """A secret's keys by alias, each registered with the redactor as soon as it is read: the answer
        that holds one alias's key holds the others' too, asked for or not, well-formed or not.

        A secret read before whose refresh fails (Secrets Manager throttling or out of reach once the
        cached value expired) keeps its last value, with a warning: the key paged a moment ago pages on,
        rather than every alarm failing until the service answers again."""
        last = self._last_read.get(reference)
        failed = self._failed.get(reference)
        if failed is not None and time.monotonic() - failed[0] < REFRESH_RETRY_SECONDS:
            # A read failed a moment ago: the records after it do not each wait on the service again.
            if last is not None:
                return last
            raise ConfigurationError(str(failed[1])) from failed[1]  # what it met stays its cause
        try:
            value = self._fetch(reference, where)
        except ConfigurationError as exc:
            self._failed[reference] = (time.monotonic(), exc)
            if last is None:
                raise
            logger.warning("%s; paging with the value it held when last read", exc)
            return last
        keys = parse_secret(value, where)
        REDACTOR.add(may_be_keys(keys.values()))
        self._last_read[reference] = keys
        self._failed.pop(reference, None)
        return keys

    def clear_cache(self) -> None:
        self._failed.clear()  # read afresh on next use, even right after a failed refresh
        clear = getattr(self._fetch, "clear", None)
        if callable(clear):
            clear()

    def forget(self, alias: str) -> None:
        """PagerDuty refused ``alias``'s key: read the secrets afresh on its next use (a key regenerated
        in PagerDuty is put into its secret, and the cached value would be refused until it expired)."""
        if alias not in self._plain:
            self.clear_cache()


def forget(keys: KeySource, alias: str) -> None:
    """Have ``keys`` read ``alias``'s key afresh next time, when it is a source that caches keys."""
    forget_alias = getattr(keys, "forget", None)
    if callable(forget_alias):
        forget_alias(alias)


class StaticKeys:
    """Routing keys given as a mapping (the seed API, tests); ``fallback`` answers any other alias
    (dry runs, which send nothing, route every alias to a placeholder)."""

    def __init__(self, keys: Mapping[str, object], *, fallback: str | None = None) -> None:
        self._keys = {alias: Secret.of(key) for alias, key in keys.items()}
        self._fallback = fallback
        REDACTOR.add(key.get_secret_value() for key in self._keys.values())

    def get(self, alias: str) -> str:
        secret = self._keys.get(alias)
        if secret is None:
            if self._fallback is not None:
                return self._fallback
            raise UnknownAliasError(alias, f"no routing key is configured for alias {alias!r}")
        try:
            return check_routing_key(secret.get_secret_value(), f"routing key {alias!r}")
        except ConfigurationError as exc:
            raise RoutingKeyError(alias, str(exc)) from None

    def aliases(self) -> list[str]:
        """Every alias given a key."""
        return sorted(self._keys)

    def replace(self, alias: str, key: object) -> None:
        self._keys[alias] = Secret.of(key)
        REDACTOR.add((self._keys[alias].get_secret_value(),))
