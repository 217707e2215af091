"""Fixtures the integration tests share."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import requests

from tests.builders import moto_server


@pytest.fixture(scope="module")
def moto_url() -> Iterator[str]:
    """moto's HTTP server, one per test module: each test names tables, queues and alarms of its own."""
    yield from moto_server()


@pytest.fixture
def http() -> Iterator[requests.Session]:
    """An HTTP session for talking to the local servers (the PagerDuty stand-in, a function URL)."""
    with requests.Session() as session:
        yield session
