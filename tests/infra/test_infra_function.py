"""The function: handler, runtime, settings, and the asset it runs from."""

from __future__ import annotations

import importlib
import platform
import re
import struct
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from aws_cdk import aws_lambda as lambda_

from pagerduty_bridge import constants
from pagerduty_bridge_cdk.bundling import (
    UNUSED_DEPENDENCY_PARTS,
    BytecodePlan,
    LocalPipBundler,
    find_python,
)
from pagerduty_bridge_cdk.config import BridgeConfig, ConfigError
from pagerduty_bridge_cdk.functions import DEFAULT_PYTHON_VERSION, MEMORY_MB, PYTHON_RUNTIMES, RUNTIME, runtime_for
from pagerduty_bridge_cdk.secrets import PLACEHOLDER, WEBHOOK_PLACEHOLDER
from pagerduty_bridge_cdk.timing import PER_RECORD_SECONDS, TIMEOUT_HEADROOM_SECONDS
from tests.infra.conftest import BUFFERED_BATCH_SIZE, Synthesized

ELF_MACHINES = {"arm64": 183, "x86_64": 62}
"""``e_machine`` in an ELF header: EM_AARCH64 and EM_X86_64."""


def _runtime_version(name: str) -> tuple[int, int]:
    major, minor = re.fullmatch(r"python(\d+)\.(\d+)", name).groups()  # type: ignore[union-attr]
    return int(major), int(minor)


def test_handler_string_names_a_function_in_the_package(direct: Synthesized) -> None:
    handler = direct.function["Properties"]["Handler"]
    assert handler == constants.HANDLER
    module_name, _, attribute = handler.rpartition(".")
    module = importlib.import_module(module_name)
    assert callable(getattr(module, attribute))


def test_the_runtime_is_python_3_13_unless_another_is_chosen(variant: Synthesized) -> None:
    expected = "python3.14" if variant.name == "buffered" else "python3.13"
    assert RUNTIME.name == f"python{DEFAULT_PYTHON_VERSION}" == "python3.13"
    for function in _functions(variant):
        assert function["Properties"]["Runtime"] == expected


def test_the_runtimes_offered_are_the_cdks_newest_three() -> None:
    offered = [getattr(lambda_.Runtime, name).name for name in dir(lambda_.Runtime) if name.startswith("PYTHON_3")]
    newest = sorted(offered, key=_runtime_version)[-3:]
    assert [runtime_for(version).name for version in PYTHON_RUNTIMES] == newest


@pytest.mark.parametrize(("given", "chosen"), [("3.14", "3.14"), (3.12, "3.12"), ("python3.13", "3.13")])
def test_the_python_version_can_be_chosen_by_context_or_prop(given: object, chosen: str) -> None:
    assert BridgeConfig.from_context({"pythonVersion": given}.get).python_version == chosen
    assert BridgeConfig.from_props(environment="prod", python_version=str(given)).python_version == chosen


@pytest.mark.parametrize("given", ["3.11", "3", "latest", 3.1])
def test_a_python_version_lambda_does_not_offer_is_refused_by_name(given: object) -> None:
    with pytest.raises(ConfigError, match=r"context parameter pythonVersion.*3\.12, 3\.13, 3\.14"):
        BridgeConfig.from_context({"pythonVersion": given}.get)


def test_architecture_follows_context(variant: Synthesized) -> None:
    assert BridgeConfig().architecture == "arm64"
    expected = "x86_64" if variant.name == "buffered" else "arm64"
    assert variant.bridge.config.architecture == expected
    for function in _functions(variant):
        assert function["Properties"]["Architectures"] == [expected]


def _functions(synthesized: Synthesized) -> list[dict[str, Any]]:
    """The main function and, with webhooks, the webhook receiver."""
    functions = [synthesized.function]
    if synthesized.bridge.webhooks is not None:
        functions.append(synthesized.resources[synthesized.logical_id(synthesized.bridge.webhooks.function)])
    assert len(synthesized.of_type("AWS::Lambda::Function")) == len(functions)
    return functions


def test_timeout_covers_the_retry_budget_or_the_batch(variant: Synthesized) -> None:
    properties = variant.function["Properties"]
    budget = int(properties["Environment"]["Variables"][constants.ENV_RETRY_BUDGET_SECONDS])
    config = variant.bridge.config
    assert budget == config.retry_budget_seconds
    work = max(budget, config.batch_size * PER_RECORD_SECONDS) if config.buffered else budget
    assert properties["Timeout"] == work + TIMEOUT_HEADROOM_SECONDS
    assert properties["MemorySize"] == MEMORY_MB


def test_a_buffered_batch_sizes_the_timeout_and_the_synth_says_so(buffered: Synthesized) -> None:
    assert buffered.bridge.config.batch_size == BUFFERED_BATCH_SIZE
    assert (
        buffered.function["Properties"]["Timeout"]
        == BUFFERED_BATCH_SIZE * PER_RECORD_SECONDS + TIMEOUT_HEADROOM_SECONDS
    )
    infos = [
        message.entry.data
        for message in buffered.app.synth().get_stack_by_name(buffered.stack.stack_name).messages
        if message.level.name == "INFO"
    ]
    (info,) = [text for text in infos if "function timeout" in str(text)]
    assert f"function timeout {BUFFERED_BATCH_SIZE * PER_RECORD_SECONDS + TIMEOUT_HEADROOM_SECONDS} s" in info
    assert f"batch of {BUFFERED_BATCH_SIZE} × {PER_RECORD_SECONDS} s per record" in info


ALWAYS_SET = {
    constants.ENV_TABLE_NAME,
    constants.ENV_INTEGRATION_KEY_SECRET_ARN,
    constants.ENV_ENVIRONMENT,
    constants.ENV_RETRY_BUDGET_SECONDS,
    constants.ENV_POWERTOOLS_SERVICE_NAME,
    constants.ENV_POWERTOOLS_METRICS_NAMESPACE,
}
"""What every deployment sets; alert rules and routing-key secrets only when given."""


def test_environment_variables_are_the_settings_names(variant: Synthesized) -> None:
    variables = variant.function["Properties"]["Environment"]["Variables"]
    expected = set(ALWAYS_SET)
    if variant.bridge.config.alert_rules is not None:
        expected.add(constants.ENV_ALERT_RULES)
    if variant.bridge.config.routing_key_secrets:
        expected.add(constants.ENV_ROUTING_KEY_SECRETS)
    if variant.bridge.config.reconcile_role_arns:
        expected.add(constants.ENV_RECONCILE_ROLE_ARNS)
    assert set(variables) == expected
    assert set(variables) - {constants.ENV_POWERTOOLS_SERVICE_NAME, constants.ENV_POWERTOOLS_METRICS_NAMESPACE} <= set(
        constants.ALL_SETTINGS_ENV_VARS
    )


def test_default_environment_values(direct: Synthesized) -> None:
    variables = direct.function["Properties"]["Environment"]["Variables"]
    table_id, _ = direct.one("AWS::DynamoDB::Table")
    secret_id, _ = direct.one("AWS::SecretsManager::Secret")
    assert variables[constants.ENV_TABLE_NAME] == {"Ref": table_id}
    assert variables[constants.ENV_INTEGRATION_KEY_SECRET_ARN] == {"Ref": secret_id}
    assert variables[constants.ENV_ENVIRONMENT] == "dev"
    assert variables[constants.ENV_POWERTOOLS_SERVICE_NAME] == "pagerduty-bridge-dev"
    assert variables[constants.ENV_POWERTOOLS_METRICS_NAMESPACE] == constants.METRICS_NAMESPACE


def test_no_integration_key_in_the_environment_or_template(variant: Synthesized) -> None:
    variables = variant.function["Properties"]["Environment"]["Variables"]
    assert constants.ENV_INTEGRATION_KEY not in variables
    assert constants.ENV_ROUTING_KEYS not in variables
    routing_key_shape = re.compile(rf"^[A-Za-z0-9]{{{constants.ROUTING_KEY_LENGTH}}}$")
    assert not [value for value in variables.values() if isinstance(value, str) and routing_key_shape.match(value)]
    placeholders = {PLACEHOLDER, WEBHOOK_PLACEHOLDER}
    for secret in variant.of_type("AWS::SecretsManager::Secret").values():
        assert secret["Properties"]["SecretString"] in placeholders
    assert not any(routing_key_shape.match(placeholder) for placeholder in placeholders)


def test_existing_secret_arn_is_passed_through(buffered: Synthesized) -> None:
    variables = buffered.function["Properties"]["Environment"]["Variables"]
    assert variables[constants.ENV_INTEGRATION_KEY_SECRET_ARN] == buffered.bridge.config.integration_key_secret_arn
    assert not buffered.of_type("AWS::SecretsManager::Secret")


def test_each_function_logs_to_its_own_log_group_with_the_configured_retention(variant: Synthesized) -> None:
    log_groups = variant.of_type("AWS::Logs::LogGroup")
    used = [function["Properties"]["LoggingConfig"]["LogGroup"]["Ref"] for function in _functions(variant)]
    assert sorted(used) == sorted(log_groups)  # one each, none shared, none unused
    for log_group in log_groups.values():
        assert log_group["Properties"]["RetentionInDays"] == variant.bridge.config.log_retention_days


def test_reserved_concurrency_follows_context(variant: Synthesized) -> None:
    reserved = variant.bridge.config.reserved_concurrency
    if variant.name == "buffered":
        assert reserved is None
        assert "ReservedConcurrentExecutions" not in variant.function["Properties"]
    else:
        assert reserved == BridgeConfig().reserved_concurrency
        assert variant.function["Properties"]["ReservedConcurrentExecutions"] == reserved


def _elf_machine(path: Path) -> int:
    header = path.read_bytes()[:20]
    assert header[:4] == b"\x7fELF", f"{path} is not an ELF file"
    machine: int = struct.unpack("<H", header[18:20])[0]
    return machine


def test_asset_bundles_pydantic_core_for_the_function_architecture(variant: Synthesized) -> None:
    architecture = variant.bridge.config.architecture
    version = variant.bridge.config.python_version.replace(".", "")
    extensions = list((variant.asset_dir / "pydantic_core").glob("_pydantic_core.*.so"))
    assert extensions, f"no pydantic_core extension in {variant.asset_dir}"
    for extension in extensions:
        assert f"cpython-{version}-" in extension.name
        assert _elf_machine(extension) == ELF_MACHINES[architecture]


def test_asset_holds_the_handler_and_not_the_tools(direct: Synthesized) -> None:
    package = direct.asset_dir / constants.PACKAGE_NAME
    module, _, _ = constants.HANDLER.rpartition(".")
    assert (direct.asset_dir / (module.replace(".", "/") + ".py")).is_file()
    assert (package / "constants.py").is_file()
    assert not (package / "devtools").exists()
    assert not (package / "cli.py").exists()
    assert not (package / "__main__.py").exists()
    assert not (package / "cli").exists()
    assert not (package / "samples").exists()
    assert not list(direct.asset_dir.rglob("*.json.golden")) and not list(package.rglob("*.json"))
    assert not (direct.asset_dir / "bin").exists()
    compiled = list(direct.asset_dir.rglob("*.pyc"))
    if BytecodePlan.find(direct.bridge.config.python_version).method == "none":
        assert not compiled, "bytecode of another Python version would only be ignored"
    else:
        tag = f"cpython-{direct.bridge.config.python_version.replace('.', '')}"
        assert compiled and all(tag in path.name for path in compiled)
        assert (direct.asset_dir / "pagerduty_bridge" / "__pycache__" / f"handler.{tag}.pyc").is_file()
    # boto3 comes with the Lambda runtime; bundling it would only pin an older copy.
    assert not (direct.asset_dir / "boto3").exists()
    # Powertools: what the function uses is shipped, the utilities it never imports are not.
    for used in ("logging", "metrics", "utilities/parameters", "utilities/typing"):
        assert (direct.asset_dir / "aws_lambda_powertools" / used).is_dir(), used
    for unused in UNUSED_DEPENDENCY_PARTS:
        assert not (direct.asset_dir / unused).exists(), unused


def _host_architecture() -> str | None:
    machine = platform.machine().lower()
    return {"aarch64": "arm64", "arm64": "arm64", "x86_64": "x86_64", "amd64": "x86_64"}.get(machine)


def _import_handler_from(asset_dir: Path, interpreter: str) -> subprocess.CompletedProcess[str]:
    """Import the handler with nothing but the standard library and ``asset_dir`` on the path.

    ``-I`` ignores PYTHON* variables and the user site, ``-S`` skips site-packages, so a package this
    machine happens to have installed cannot stand in for one the asset lacks.
    """
    module, _, attribute = constants.HANDLER.rpartition(".")
    code = (
        "import sys; sys.path.insert(0, sys.argv[1]); import importlib; "
        f"m = importlib.import_module({module!r}); assert callable(m.{attribute}); "
        "assert all(p.startswith(sys.argv[1]) for p in "
        "(getattr(v, '__file__', None) or sys.argv[1] for k, v in sys.modules.items() "
        "if k.split('.')[0] in ('pydantic', 'pydantic_core', 'aws_lambda_powertools', 'requests')))"
    )
    return subprocess.run(
        [interpreter, "-I", "-S", "-c", code, str(asset_dir)], capture_output=True, text=True, timeout=120, check=False
    )


def test_handler_imports_from_the_asset_alone(direct: Synthesized, tmp_path: Path) -> None:
    """The asset must carry every import the handler needs (boto3 aside, which the runtime provides).

    Importing the real asset takes this machine's architecture and the runtime's Python version. Where
    either is missing (an x86_64 runner, no python3.13), the same bundler builds the same asset for
    this machine's platform and interpreter, and that one is imported: the bundler's choice of files
    is what is under test, and it does not depend on the platform.
    """
    runtime_version = direct.bridge.config.python_version
    interpreter = find_python(runtime_version)
    if interpreter is not None and _host_architecture() == direct.bridge.config.architecture:
        asset_dir = direct.asset_dir
    else:
        host = _host_architecture()
        if host is None:
            pytest.skip(f"no manylinux wheels for this machine ({platform.machine()})")
        interpreter = sys.executable
        asset_dir = tmp_path / "asset"
        asset_dir.mkdir()
        host_version = f"{sys.version_info.major}.{sys.version_info.minor}"
        LocalPipBundler(architecture=host, python_version=host_version).try_bundle(str(asset_dir))  # type: ignore[arg-type]
    result = _import_handler_from(asset_dir, interpreter)
    assert result.returncode == 0, result.stderr
