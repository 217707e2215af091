"""The Lambda asset, bundled on this machine with pip instead of in a Docker container.

pip downloads manylinux wheels for the function's platform and Python version, whatever machine runs
the synth, so an x86_64 laptop or CI runner builds a correct arm64 asset. The package is copied from
wherever it is installed (this repository's ``lambda/`` in development, ``site-packages`` from a
wheel), without the code only tests and the command line use; the pins come with this library as
package data. The asset is hashed by its output, because the source hash would not change when the
pinned requirements do.

Bytecode: a Lambda imports from a read-only ``/var/task``, so without ``.pyc`` files in the asset
every cold start compiles every module it imports (the page waits for it: it about doubles import
time). Only the runtime's exact Python version writes bytecode the runtime accepts (``.pyc`` files of
any other version are ignored). So the bundler looks for that interpreter (``PATH``, then pyenv); if
there is none and a Docker engine answers (``docker info``), it compiles in the runtime's build image;
otherwise the asset ships without bytecode. Which of the three happened is said at synth: an info
annotation on the construct and one line on standard error.
"""

from __future__ import annotations

import importlib.resources
import importlib.util
import os
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final, Literal

import jsii
from aws_cdk import Annotations, AssetHashType, BundlingOptions, DockerImage, ILocalBundling
from aws_cdk import aws_lambda as lambda_
from constructs import Construct

from pagerduty_bridge import constants
from pagerduty_bridge_cdk.readers import Architecture

LAMBDA_REQUIREMENTS: Final = "lambda-requirements.txt"
"""The function's pinned runtime dependencies, package data of this library (``requirements/lambda.txt``
in the repository)."""

EXCLUDED_FROM_ASSET: Final = ("devtools", "cli.py", "cli", "__main__.py", "samples", "__pycache__", "*.pyc")
"""Test fixtures, sample events and the command-line front end: never imported by a handler, so never
shipped."""

UNUSED_DEPENDENCY_PARTS: Final = (
    "aws_lambda_powertools/event_handler",
    "aws_lambda_powertools/utilities/auth_alpha",
    "aws_lambda_powertools/utilities/batch",
    "aws_lambda_powertools/utilities/circuit_breaker",
    "aws_lambda_powertools/utilities/data_classes",
    "aws_lambda_powertools/utilities/data_masking",
    "aws_lambda_powertools/utilities/feature_flags",
    "aws_lambda_powertools/utilities/idempotency",
    "aws_lambda_powertools/utilities/kafka",
    "aws_lambda_powertools/utilities/metadata",
    "aws_lambda_powertools/utilities/parser",
    "aws_lambda_powertools/utilities/streaming",
    "aws_lambda_powertools/utilities/validation",
)
"""Powertools utilities the function never imports (it uses Logger, Metrics and Parameters): 6.5 MB
unpacked that would push the zipped asset past 5 MB once bytecode is added. The Lambda path's tests
pass with these blocked from import."""

_PIP_PLATFORMS: Final[dict[Architecture, tuple[str, ...]]] = {
    "arm64": ("manylinux2014_aarch64", "manylinux_2_28_aarch64"),
    "x86_64": ("manylinux2014_x86_64", "manylinux_2_28_x86_64"),
}
"""The wheel tags the function's runtime accepts: Lambda's Python 3.12+ runtimes run on Amazon Linux
2023 (glibc 2.34), so manylinux_2_28 wheels (google-re2 ships only those for new Pythons) work too."""
BUILD_IMAGE: Final = "public.ecr.aws/sam/build-python{version}"
"""AWS SAM's build image of a Python runtime: the runtime's own interpreter, to compile bytecode in."""
_UNUSED_IMAGE: Final = BUILD_IMAGE.format(version="3.13")
"""BundlingOptions requires an image; the local bundler always succeeds, so CDK never runs it."""
TASK_ROOT: Final = "/var/task"
"""Where Lambda unpacks the asset (``LAMBDA_TASK_ROOT``): the path the bytecode names its sources by."""
DOCKER_INFO_TIMEOUT_SECONDS: Final = 20
"""``docker info`` answers in well under a second when an engine runs; a hung socket must not hang the synth."""
DOCKER_COMPILE_TIMEOUT_SECONDS: Final = 900
"""Pulling the build image (about 500 MB) and compiling: generous, but a hang still ends the synth."""


class PackageNotFoundError(RuntimeError):
    """The Lambda package is not installed where a local bundler can copy it from."""


def lambda_package_dir() -> Path:
    """The directory of the installed ``pagerduty_bridge`` package (found without importing it)."""
    spec = importlib.util.find_spec(constants.PACKAGE_NAME)
    locations = list(spec.submodule_search_locations or []) if spec is not None else []
    if not locations or not Path(locations[0]).is_dir():
        raise PackageNotFoundError(
            f"{constants.PACKAGE_NAME} is not installed as a directory (found {locations or 'nothing'}); "
            "install pagerduty-bridge[cdk] with pip so the function's asset can be built from it"
        )
    return Path(locations[0])


def find_python(version: str) -> str | None:
    """An interpreter of exactly ``version`` on this machine (PATH, then pyenv), or None.

    Only that version can write ``.pyc`` files the Lambda runtime accepts; bytecode from any other
    version is ignored at import, so a missing interpreter means skipping precompilation, not faking it.
    """
    candidates = [shutil.which(f"python{version}")]
    pyenv_root = Path(os.environ.get("PYENV_ROOT", Path.home() / ".pyenv"))
    candidates += [str(p) for p in sorted(pyenv_root.glob(f"versions/{version}.*/bin/python{version}"))]
    for candidate in candidates:
        if candidate and _reports_version(candidate, version):
            return candidate
    return None


def docker_answers() -> bool:
    """Whether a Docker engine answers here (``docker info`` succeeds), not merely a ``docker`` command."""
    docker = shutil.which("docker")
    if docker is None:
        return False
    try:
        result = subprocess.run(  # noqa: S603 - a fixed argv, no shell
            [docker, "info"], capture_output=True, timeout=DOCKER_INFO_TIMEOUT_SECONDS, check=False
        )
    except (OSError, subprocess.TimeoutExpired):
        return False
    return result.returncode == 0


BytecodeMethod = Literal["interpreter", "docker", "none"]


@dataclass(frozen=True)
class BytecodePlan:
    """How the asset gets its ``.pyc`` files: a matching interpreter, Docker, or not at all."""

    python_version: str
    method: BytecodeMethod
    interpreter: str | None = None
    """The interpreter's path, or the Docker image."""

    @classmethod
    def find(cls, python_version: str) -> BytecodePlan:
        """The best way to write bytecode for ``python_version`` on this machine."""
        interpreter = find_python(python_version)
        if interpreter is not None:
            return cls(python_version, "interpreter", interpreter)
        if docker_answers():
            return cls(python_version, "docker", BUILD_IMAGE.format(version=python_version))
        return cls(python_version, "none")

    def describe(self) -> str:
        """One line for the synth's output: which way, and what it means for cold starts."""
        if self.method == "interpreter":
            return f"asset bytecode: compiled with {self.interpreter} (Python {self.python_version})"
        if self.method == "docker":
            return f"asset bytecode: compiled in Docker ({self.interpreter}): no python{self.python_version} here"
        return (
            f"asset bytecode: none: neither python{self.python_version} (PATH, pyenv) nor a Docker engine is "
            "here, so each cold start compiles the imported modules instead (install that Python, start "
            "Docker, or choose the pythonVersion of an interpreter you have)"
        )

    def compile(self, out: Path) -> None:
        """Write unchecked-hash bytecode for every module under ``out``.

        Unchecked-hash ``.pyc`` files embed no timestamps, and each names its source under
        ``TASK_ROOT`` rather than under this synth's temporary output folder, so the output (and the
        asset hash) is reproducible: an unchanged function is not updated, nor a new SnapStart version
        published, by every deploy. The read-only ``/var/task`` never needs a staleness check. A
        Docker compile that fails (no image, no network) leaves the asset without bytecode, and says so.
        """
        command = ["-m", "compileall", "-q", "-j", "0", "-d", TASK_ROOT, "--invalidation-mode", "unchecked-hash"]
        if self.method == "interpreter" and self.interpreter is not None:
            # -I: no PYTHONPYCACHEPREFIX or PYTHONDONTWRITEBYTECODE of this shell redirects the files.
            subprocess.run([self.interpreter, "-I", *command, str(out)], check=True)  # noqa: S603
        elif self.method == "docker" and self.interpreter is not None:
            self._compile_in_docker(out, command)

    def _compile_in_docker(self, out: Path, command: list[str]) -> None:
        user = f"{os.getuid()}:{os.getgid()}" if hasattr(os, "getuid") else None
        docker = [shutil.which("docker") or "docker", "run", "--rm", "--network", "none"]
        docker += ["--user", user] if user else []
        docker += ["--volume", f"{out}:/asset-output", "--entrypoint", f"python{self.python_version}"]
        try:
            subprocess.run(  # noqa: S603 - a fixed argv, no shell
                [*docker, self.interpreter or "", "-I", *command, "/asset-output"],
                check=True,
                capture_output=True,
                timeout=DOCKER_COMPILE_TIMEOUT_SECONDS,
            )
        except (OSError, subprocess.CalledProcessError, subprocess.TimeoutExpired) as exc:
            detail = getattr(exc, "stderr", b"") or b""
            sys.stderr.write(
                f"pagerduty-bridge: compiling in Docker failed ({type(exc).__name__}: "
                f"{detail.decode(errors='replace').strip()[-200:]}); the asset ships without .pyc\n"
            )


def _reports_version(interpreter: str, version: str) -> bool:
    try:
        result = subprocess.run(  # noqa: S603 - a fixed argv, no shell
            [interpreter, "-c", "import sys; print('%d.%d' % sys.version_info[:2])"],
            capture_output=True,
            text=True,
            timeout=30,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired):
        return False
    return result.returncode == 0 and result.stdout.strip() == version


@jsii.implements(ILocalBundling)
class LocalPipBundler:
    """Builds the asset directory: dependencies from pip, then the package, then optional bytecode."""

    def __init__(
        self, *, architecture: Architecture, python_version: str, bytecode: BytecodePlan | None = None
    ) -> None:
        self.architecture = architecture
        self.python_version = python_version
        self._bytecode = bytecode

    @property
    def bytecode(self) -> BytecodePlan:
        """How the asset gets its bytecode (looked for on first use)."""
        if self._bytecode is None:
            self._bytecode = BytecodePlan.find(self.python_version)
        return self._bytecode

    def try_bundle(self, output_dir: str, *_options: Any, **_keywords: Any) -> bool:
        """Called by CDK before any Docker bundling; returning True means Docker is never used.

        The bundling options (image, command, …) describe the Docker build this replaces: unused here.
        """
        out = Path(output_dir)
        self._install_dependencies(out)
        self._copy_package(out)
        self._precompile(out)
        return True

    def _install_dependencies(self, out: Path) -> None:
        with importlib.resources.as_file(
            importlib.resources.files(__package__ or "pagerduty_bridge_cdk") / LAMBDA_REQUIREMENTS
        ) as requirements:
            self._pip_install(out, requirements)
        # Console scripts carry this machine's interpreter path in their shebang and are never run.
        shutil.rmtree(out / "bin", ignore_errors=True)
        for part in UNUSED_DEPENDENCY_PARTS:
            shutil.rmtree(out / part, ignore_errors=True)

    def _pip_install(self, out: Path, requirements: Path) -> None:
        subprocess.run(  # noqa: S603 - a fixed argv, no shell
            [
                sys.executable,
                "-m",
                "pip",
                "install",
                "--quiet",
                "--quiet",  # errors only: this is a build step, and its warnings are about the machine
                "--disable-pip-version-check",
                "--no-input",
                "--no-compile",  # pip would write bytecode for *this* interpreter, useless in Lambda
                *(arg for platform in _PIP_PLATFORMS[self.architecture] for arg in ("--platform", platform)),
                "--implementation",
                "cp",
                "--python-version",
                self.python_version,
                "--only-binary=:all:",
                "--target",
                str(out),
                "-r",
                str(requirements),
            ],
            check=True,
        )

    def _copy_package(self, out: Path) -> None:
        shutil.copytree(
            lambda_package_dir(),
            out / constants.PACKAGE_NAME,
            ignore=shutil.ignore_patterns(*EXCLUDED_FROM_ASSET),
        )

    def _precompile(self, out: Path) -> None:
        plan = self.bytecode
        sys.stderr.write(f"pagerduty-bridge: {plan.describe()}\n")
        plan.compile(out)


def function_code(scope: Construct | None = None, *, architecture: Architecture, python_version: str) -> lambda_.Code:
    """The function's code asset, bundled locally for ``architecture`` and the runtime of
    ``python_version`` (``3.13``); how it gets its bytecode is an info annotation on ``scope``."""
    bundler = LocalPipBundler(architecture=architecture, python_version=python_version)
    if scope is not None:
        Annotations.of(scope).add_info(bundler.bytecode.describe())
    return lambda_.Code.from_asset(
        str(lambda_package_dir()),
        asset_hash_type=AssetHashType.OUTPUT,
        bundling=BundlingOptions(image=DockerImage.from_registry(_UNUSED_IMAGE), local=bundler),
    )
