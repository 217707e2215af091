"""The asset's bytecode: compiled with a matching interpreter, else in Docker when one answers, else
not at all — and the synth says which (an info annotation and one line on standard error)."""

from __future__ import annotations

import marshal
import stat
import sys
import textwrap
from pathlib import Path

import pytest
from aws_cdk import App, Stack

from pagerduty_bridge_cdk.bundling import BUILD_IMAGE, TASK_ROOT, BytecodePlan, LocalPipBundler, function_code
from tests.infra.conftest import Synthesized

HOST_VERSION = f"{sys.version_info.major}.{sys.version_info.minor}"
ABSENT_VERSION = "3.99"
"""A Python no machine has: no interpreter, so only Docker could compile for it."""
UNCHECKED_HASH_FLAGS = 0b01
"""PEP 552: a hash-based ``.pyc`` (bit 0) whose source is never checked (bit 1 clear)."""


@pytest.fixture
def bare_machine(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A PATH and a pyenv root with nothing in them; returns the PATH folder to put fakes into."""
    path = tmp_path / "bin"
    path.mkdir()
    (tmp_path / "pyenv").mkdir()
    monkeypatch.setenv("PATH", str(path))
    monkeypatch.setenv("PYENV_ROOT", str(tmp_path / "pyenv"))
    return path


def executable(folder: Path, name: str, script: str) -> Path:
    path = folder / name
    path.write_text(f"#!{sys.executable}\n" + textwrap.dedent(script), encoding="utf-8")
    path.chmod(path.stat().st_mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)
    return path


def fake_docker(folder: Path, *, answers: bool, log: Path | None = None) -> None:
    """A ``docker`` that answers ``info`` (or not) and runs ``run`` by compiling the mounted folder here."""
    executable(
        folder,
        "docker",
        f"""
        import subprocess, sys
        args = sys.argv[1:]
        if {str(log) if log else ""!r}:
            with open({str(log)!r}, "a") as f:
                f.write(" ".join(args) + "\\n")
        if args[:1] == ["info"]:
            sys.exit(0 if {answers!r} else 1)
        mount = args[args.index("--volume") + 1].split(":")[0]
        flags = args[args.index("-m") - 1 :]
        flags[-1] = mount
        sys.exit(subprocess.run([{sys.executable!r}, *flags]).returncode)
        """,
    )


def an_asset(tmp_path: Path) -> Path:
    out = tmp_path / "asset"
    (out / "pkg").mkdir(parents=True)
    (out / "pkg" / "__init__.py").write_text("VALUE = 1\n", encoding="utf-8")
    return out


def compiled(out: Path) -> list[Path]:
    return sorted(out.rglob("*.pyc"))


def test_a_matching_interpreter_compiles_unchecked_hash_bytecode(
    bare_machine: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (bare_machine / f"python{HOST_VERSION}").symlink_to(sys.executable)
    bundler = LocalPipBundler(architecture="x86_64", python_version=HOST_VERSION)
    assert bundler.bytecode.method == "interpreter"
    out = an_asset(tmp_path)
    bundler._precompile(out)
    (pyc,) = compiled(out)
    assert pyc.parent.name == "__pycache__" and f"cpython-{HOST_VERSION.replace('.', '')}" in pyc.name
    assert int.from_bytes(pyc.read_bytes()[4:8], "little") == UNCHECKED_HASH_FLAGS
    assert f"asset bytecode: compiled with {bare_machine / f'python{HOST_VERSION}'}" in capsys.readouterr().err


def test_the_bytecode_is_the_same_wherever_the_asset_is_bundled(bare_machine: Path, tmp_path: Path) -> None:
    """Each synth bundles into a new temporary folder; the bytecode (so the asset hash) must not name it."""
    (bare_machine / f"python{HOST_VERSION}").symlink_to(sys.executable)
    plan = BytecodePlan.find(HOST_VERSION)
    first, second = an_asset(tmp_path / "first"), an_asset(tmp_path / "second")
    plan.compile(first)
    plan.compile(second)
    (pyc,) = compiled(first)
    assert pyc.read_bytes() == (second / pyc.relative_to(first)).read_bytes()
    code = marshal.loads(pyc.read_bytes()[16:])
    assert code.co_filename == f"{TASK_ROOT}/pkg/__init__.py"


def test_the_shells_bytecode_settings_do_not_send_the_files_elsewhere(
    bare_machine: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (bare_machine / f"python{HOST_VERSION}").symlink_to(sys.executable)
    monkeypatch.setenv("PYTHONPYCACHEPREFIX", str(tmp_path / "elsewhere"))
    monkeypatch.setenv("PYTHONDONTWRITEBYTECODE", "1")
    out = an_asset(tmp_path)
    BytecodePlan.find(HOST_VERSION).compile(out)
    assert compiled(out)
    assert not (tmp_path / "elsewhere").exists()


def test_without_interpreter_or_docker_the_asset_has_no_bytecode_and_the_synth_says_why(
    bare_machine: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bundler = LocalPipBundler(architecture="arm64", python_version=ABSENT_VERSION)
    assert bundler.bytecode == BytecodePlan(ABSENT_VERSION, "none")
    out = an_asset(tmp_path)
    bundler._precompile(out)
    assert compiled(out) == []
    (line,) = capsys.readouterr().err.splitlines()
    assert f"neither python{ABSENT_VERSION}" in line and "Docker" in line and "cold start" in line


def test_docker_is_chosen_only_when_an_engine_answers(bare_machine: Path) -> None:
    assert BytecodePlan.find(ABSENT_VERSION).method == "none"  # no docker command at all
    fake_docker(bare_machine, answers=False)
    assert BytecodePlan.find(ABSENT_VERSION).method == "none"  # a docker command, no engine
    fake_docker(bare_machine, answers=True)
    plan = BytecodePlan.find(ABSENT_VERSION)
    assert (plan.method, plan.interpreter) == ("docker", BUILD_IMAGE.format(version=ABSENT_VERSION))


def test_a_matching_interpreter_wins_over_docker(bare_machine: Path) -> None:
    fake_docker(bare_machine, answers=True)
    (bare_machine / f"python{HOST_VERSION}").symlink_to(sys.executable)
    assert BytecodePlan.find(HOST_VERSION).method == "interpreter"


def test_docker_compiles_the_asset_in_the_runtimes_image_offline(
    bare_machine: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    log = tmp_path / "docker.log"
    fake_docker(bare_machine, answers=True, log=log)
    bundler = LocalPipBundler(architecture="arm64", python_version=ABSENT_VERSION)
    out = an_asset(tmp_path)
    bundler._precompile(out)
    assert compiled(out)
    info, run = log.read_text(encoding="utf-8").splitlines()
    assert info == "info"
    assert run.startswith("run --rm --network none")
    assert f"--volume {out}:/asset-output" in run
    assert f"--entrypoint python{ABSENT_VERSION} {BUILD_IMAGE.format(version=ABSENT_VERSION)} -I -m compileall" in run
    assert "--invalidation-mode unchecked-hash /asset-output" in run
    assert f"compiled in Docker ({BUILD_IMAGE.format(version=ABSENT_VERSION)})" in capsys.readouterr().err


def test_a_failed_docker_compile_leaves_the_asset_without_bytecode_and_says_so(
    bare_machine: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    executable(bare_machine, "docker", "import sys; sys.exit(0 if sys.argv[1:] == ['info'] else 125)")
    out = an_asset(tmp_path)
    LocalPipBundler(architecture="arm64", python_version=ABSENT_VERSION)._precompile(out)
    assert compiled(out) == []
    assert "compiling in Docker failed" in capsys.readouterr().err


def test_the_construct_says_how_its_asset_gets_bytecode(bare_machine: Path) -> None:
    stack = Stack(App(), "Probe")
    function_code(stack, architecture="arm64", python_version="3.13")
    infos = [str(entry.data) for entry in stack.node.metadata if entry.type == "aws:cdk:info"]
    assert infos == [BytecodePlan("3.13", "none").describe()]


def test_the_synthesized_stack_says_how_its_asset_got_bytecode(direct: Synthesized) -> None:
    messages = direct.app.synth().get_stack_by_name(direct.stack.stack_name).messages
    infos = [str(m.entry.data) for m in messages if m.level.name == "INFO" and "asset bytecode" in str(m.entry.data)]
    assert infos == [BytecodePlan.find(direct.bridge.config.python_version).describe()]


def test_docker_info_that_hangs_counts_as_no_docker(bare_machine: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("pagerduty_bridge_cdk.bundling.DOCKER_INFO_TIMEOUT_SECONDS", 0.5)
    executable(bare_machine, "docker", "import time; time.sleep(30)")
    assert BytecodePlan.find(ABSENT_VERSION).method == "none"
