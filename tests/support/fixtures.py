"""Pytest fixtures for end-to-end tests.

Import the fixture into a test module (or list this module in `pytest_plugins` of the root
conftest) to use it:

    from tests.support.fixtures import mock_upstream_server  # noqa: F401
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from tests.support.logs import log_capture  # noqa: F401  (a fixture, for every test)
from tests.support.mock_upstream import MockUpstream, mock_upstream
from tests.support.proxy import Proxy, start_proxy
from tests.support.raw_wire import start_limited


@pytest.fixture
async def mock_upstream_server() -> AsyncIterator[MockUpstream]:
    """A started mock upstream (`.url`, `.requests`, `.clear()`, `.max_in_flight`)."""
    async with mock_upstream() as mock:
        yield mock


@pytest.fixture
async def proxy(mock_upstream_server: MockUpstream, tmp_path: Path) -> AsyncIterator[Proxy]:
    """The real server, in-process on a free port, with the mock upstream as its default upstream."""
    async with start_proxy(tmp_path, mock_upstream_server.url) as running:
        yield running


@pytest.fixture
async def limited(mock_upstream_server: MockUpstream, tmp_path: Path) -> AsyncIterator[Proxy]:
    """The real server with small limits and timeouts (`raw_wire.LIMITS`)."""
    async with start_limited(tmp_path, mock_upstream_server.url) as running:
        yield running
