"""The distribution's metadata and package data, as this checkout installs them (editable)."""

from __future__ import annotations

import importlib.resources
import tomllib

import pagerduty_bridge
from tests.infra.conftest import REPO_ROOT

PYPROJECT = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text(encoding="utf-8"))


def test_the_version_is_the_packages_and_the_changelogs() -> None:
    assert PYPROJECT["tool"]["setuptools"]["dynamic"]["version"] == {"attr": "pagerduty_bridge.__version__"}
    changelog = (REPO_ROOT / "CHANGELOG.md").read_text(encoding="utf-8")
    assert f"## [{pagerduty_bridge.__version__}]" in changelog


def test_extras_name_what_each_use_needs() -> None:
    extras = PYPROJECT["project"]["optional-dependencies"]
    names = {
        extra: {requirement.split(">")[0].split("=")[0].split("<")[0] for requirement in specs}
        for extra, specs in extras.items()
    }
    assert names == {
        "aws": {"boto3"},
        "cdk": {"aws-cdk-lib", "constructs", "cdk-nag", "boto3"},
        "yaml": {"PyYAML"},
    }
    assert PYPROJECT["project"]["license"] == "MIT"
    assert (REPO_ROOT / "LICENSE").read_text(encoding="utf-8").startswith("MIT License")


def test_the_samples_are_package_resources_in_an_editable_install_too() -> None:
    samples = importlib.resources.files("pagerduty_bridge") / "samples"
    found = sorted(entry.name for entry in samples.iterdir() if entry.name.endswith(".json"))
    assert found == sorted(path.name for path in (REPO_ROOT / "events").glob("*.json"))
    first = found[0]
    assert (samples / first).read_bytes() == (REPO_ROOT / "events" / first).read_bytes()


def test_the_bundlers_pins_are_the_lambda_requirements() -> None:
    pins = importlib.resources.files("pagerduty_bridge_cdk") / "lambda-requirements.txt"
    assert pins.read_text(encoding="utf-8") == (REPO_ROOT / "requirements" / "lambda.txt").read_text(encoding="utf-8")


def test_runtime_pins_stay_apart_from_dev_and_infra_pins() -> None:
    lambda_pins = (REPO_ROOT / "requirements" / "lambda.txt").read_text(encoding="utf-8")
    assert "aws-cdk-lib" not in lambda_pins and "boto3" not in lambda_pins.replace("boto3 is provided", "")
    assert "aws-cdk-lib==" in (REPO_ROOT / "requirements" / "infra.txt").read_text(encoding="utf-8")
