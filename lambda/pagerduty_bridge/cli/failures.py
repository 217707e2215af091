"""One line for whatever stops a command: what failed, and what to check.

Every AWS failure — botocore's own (no region, no credentials, an unreachable endpoint), an AWS
refusal (a missing table, a denied call), or one of the bridge's errors caused by either — becomes one
line naming the failed call and the thing to look at; the command exits 2 (``EXIT_ERROR``). Only
``--debug`` shows the traceback.
"""

from __future__ import annotations

from typing import Final

from pagerduty_bridge.errors import BridgeError

_ENDPOINT: Final = "check the network, the region and --endpoint-url / AWS_ENDPOINT_URL"
_CREDENTIALS: Final = "check the AWS credentials: AWS_PROFILE, `aws sso login`, AWS_ACCESS_KEY_ID"
_PERMISSIONS: Final = "check the IAM permissions of these credentials"
_REGION: Final = "set AWS_REGION, AWS_DEFAULT_REGION or a profile's region"
_DEFAULT: Final = "check the region, the credentials and --endpoint-url / AWS_ENDPOINT_URL"

_BOTOCORE_HINTS: Final = {
    "NoRegionError": _REGION,
    "NoCredentialsError": _CREDENTIALS,
    "PartialCredentialsError": _CREDENTIALS,
    "CredentialRetrievalError": _CREDENTIALS,
    "TokenRetrievalError": _CREDENTIALS,
    "SSOTokenLoadError": _CREDENTIALS,
    "UnauthorizedSSOTokenError": _CREDENTIALS,
    "EndpointConnectionError": _ENDPOINT,
    "ConnectTimeoutError": _ENDPOINT,
    "ReadTimeoutError": _ENDPOINT,
    "ConnectionClosedError": _ENDPOINT,
    "ProxyConnectionError": _ENDPOINT,
    "SSLError": _ENDPOINT,
    "HTTPClientError": _ENDPOINT,
    "InvalidRegionError": _REGION,
    "ParamValidationError": "check the options' values",
    "WaiterError": "the resource did not become ready in time: look at it in the console, then run again",
}
_CODE_HINTS: Final = {
    "ResourceNotFoundException": "check --table and the region; `pagerduty-bridge table create` makes a table",
    "AWS.SimpleQueueService.NonExistentQueue": "check --queue-url and the region",
    "QueueDoesNotExist": "check --queue-url and the region",
    "NotFound": "check --topic-arn (the topic must exist in the ARN's region and account)",
    "NotFoundException": "check --topic-arn (the topic must exist in the ARN's region and account)",
    "AccessDenied": _PERMISSIONS,
    "AccessDeniedException": _PERMISSIONS,
    "AuthorizationError": _PERMISSIONS,
    "UnauthorizedOperation": _PERMISSIONS,
    "UnrecognizedClientException": _CREDENTIALS,
    "InvalidClientTokenId": _CREDENTIALS,
    "ExpiredToken": _CREDENTIALS,
    "ExpiredTokenException": _CREDENTIALS,
    "InvalidSignatureException": _CREDENTIALS,
    "SignatureDoesNotMatch": _CREDENTIALS,
    "ThrottlingException": "AWS is throttling these calls: try again in a minute",
    "Throttling": "AWS is throttling these calls: try again in a minute",
    "ProvisionedThroughputExceededException": "the table is throttling: try again in a minute",
    "ParameterNotFound": "check the parameter's name and its region",
}
_OPERATION_HINTS: Final = {
    # Secrets Manager answers a missing secret with the code DynamoDB uses for a missing table.
    ("GetSecretValue", "ResourceNotFoundException"): "check the secret's ARN and its region",
}


def _botocore_errors() -> tuple[type[Exception], type[Exception]] | None:
    try:
        from botocore.exceptions import BotoCoreError, ClientError
    except ImportError:  # pragma: no cover - boto3 is installed with the package
        return None
    return BotoCoreError, ClientError


def hint(exc: BaseException) -> str:
    """What to check for one botocore failure."""
    errors = _botocore_errors()
    if errors is not None and isinstance(exc, errors[1]):
        code = str(getattr(exc, "response", {}).get("Error", {}).get("Code", ""))
        operation = str(getattr(exc, "operation_name", ""))
        return _OPERATION_HINTS.get((operation, code)) or _CODE_HINTS.get(code, _DEFAULT)
    for kind in type(exc).__mro__:
        if kind.__name__ in _BOTOCORE_HINTS:
            return _BOTOCORE_HINTS[kind.__name__]
    return _DEFAULT


def aws_cause(exc: BaseException) -> BaseException | None:
    """The botocore failure behind ``exc`` (itself, or somewhere in its chain), if any."""
    errors = _botocore_errors()
    if errors is None:  # pragma: no cover
        return None
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        if isinstance(current, errors):
            return current
        seen.add(id(current))
        current = current.__cause__ or current.__context__
    return None


def describe(exc: BaseException) -> str | None:
    """One line for ``exc`` when it is an AWS failure or one of the bridge's errors; else ``None``."""
    cause = aws_cause(exc)
    if isinstance(exc, BridgeError):
        return f"{exc} ({hint(cause)})" if cause is not None else str(exc)
    if cause is None:
        return None
    errors = _botocore_errors()
    if errors is not None and isinstance(cause, errors[1]):
        error = getattr(cause, "response", {}).get("Error", {})
        operation = getattr(cause, "operation_name", "an AWS call")
        return f"AWS refused {operation}: {error.get('Code', '?')}: {error.get('Message', cause)} ({hint(cause)})"
    return f"AWS call failed: {cause} ({hint(cause)})"
