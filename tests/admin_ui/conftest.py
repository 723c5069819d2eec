"""Fixtures of the admin UI tests: the real server in-process (mock upstream) and helpers that
talk to it from the browser's worker thread."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx2
import pytest
from tests.support.proxy import Proxy, start_proxy

# A policy the built-in mock provider serves without any real key.
MOCK_POLICY: dict[str, Any] = {"providers": {"mock": [{"base_key_env": "ANY"}]}}


@pytest.fixture
async def admin_proxy(tmp_path: Path) -> AsyncIterator[Proxy]:
    async with start_proxy(tmp_path) as proxy:
        yield proxy


def chat(
    url: str, token: str, model: str = "gpt-4o", content: str = "hello there"
) -> httpx2.Response:
    """One chat completion through the proxy, blocking (called from the browser's thread)."""
    body = {"model": model, "messages": [{"role": "user", "content": content}]}
    with httpx2.Client(base_url=url, timeout=30) as client:
        return client.post("/v1/chat/completions", json=body, headers={"x-api-key": token})


def admin_get(url: str, path: str) -> Any:
    with httpx2.Client(base_url=url, timeout=30) as client:
        response = client.get("/admin/api" + path)
        response.raise_for_status()
        return response.json()
