"""The tools at their edges: the CLI's output when the terminal or the pipe is not what it expects, and
the operator's paths (seed API, silences, reconciliation, redrive, audit) on odd input."""

from __future__ import annotations

import io
import os
import subprocess
import sys

import pytest

from pagerduty_bridge.cli.app import main
from pagerduty_bridge.devtools.fake_pagerduty import FakePagerDuty
from tests.conftest import EVENTS, ROOT, ROUTING_KEY

SEED_ALARM = str(EVENTS / "01-seed-high-failure-rate-alarm.json")


def run_with_closed_stdout(*argv: str) -> subprocess.CompletedProcess[str]:
    """``pagerduty-bridge ARGV`` in its own process, its stdout a pipe whose reader is gone (``| head -0``)."""
    env = {**os.environ, "PYTHONPATH": str(ROOT / "lambda"), "PAGERDUTY_INTEGRATION_KEY": ROUTING_KEY}
    read, write = os.pipe()
    os.close(read)  # the reader left before the first line: every write meets EPIPE
    try:
        return subprocess.run(
            [sys.executable, "-m", "pagerduty_bridge", *argv],
            stdout=write,
            stderr=subprocess.PIPE,
            check=False,
            text=True,
            env=env,
            timeout=120,
        )
    finally:
        os.close(write)


def test_a_reader_gone_from_the_pipe_is_no_error_and_every_page_still_goes(
    fake_pd: FakePagerDuty, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``replay --send … | head -1``: the pages after the first line are sent all the same, and no
    "unexpected BrokenPipeError (a bug)" line or traceback follows."""
    run = run_with_closed_stdout("replay", "--send", "--events-url", fake_pd.url, "--state", "piped.db", str(EVENTS))
    sent_through_a_closed_pipe = len(fake_pd.accepted())
    fake_pd.reset()
    monkeypatch.setenv("PAGERDUTY_INTEGRATION_KEY", ROUTING_KEY)
    whole = ("replay", "--send", "--events-url", fake_pd.url, "--state", "whole.db", str(EVENTS))
    assert main(list(whole), out=io.StringIO(), err=io.StringIO()) == run.returncode == 0, run.stderr
    assert sent_through_a_closed_pipe == len(fake_pd.accepted()) > 1
    assert "BrokenPipe" not in run.stderr and "Traceback" not in run.stderr, run.stderr
    assert "Exception ignored" not in run.stderr, run.stderr


def test_a_listing_into_a_closed_pipe_ends_quietly() -> None:
    run = run_with_closed_stdout("replay", "--samples")
    assert run.returncode == 0, run.stderr
    assert run.stderr == ""
