"""The server's log output, captured for end-to-end tests."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from tests.support.proxy import Proxy

from tokenomics.services import logs


@pytest.fixture
def log_capture() -> Iterator[Callable[[Proxy], io.StringIO]]:
    """Install the server's log handlers (as `serve` does) writing to a buffer; undo after."""
    root, request = logging.getLogger("tokenomics"), logging.getLogger(logs.REQUEST_LOGGER)
    saved = (root.level, root.propagate, request.disabled)
    installed: list[logging.Handler] = []

    def install(proxy: Proxy) -> io.StringIO:
        buffer = io.StringIO()
        installed.extend(logs.configure(proxy.settings.logging, stream=buffer))
        return buffer

    yield install
    logs.remove(installed)
    root.level, root.propagate, request.disabled = saved


def request_lines(buffer: io.StringIO) -> list[dict[str, Any]]:
    lines = [json.loads(line) for line in buffer.getvalue().splitlines()]
    return [line for line in lines if line["logger"] == logs.REQUEST_LOGGER]
