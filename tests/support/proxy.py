"""The real Tokenomics server, started in-process on a free port for end-to-end tests."""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import partial
from pathlib import Path
from typing import Any

import httpx2
import trio
import trio.testing

from tokenomics.app import Server, run_server
from tokenomics.config.loader import load_settings
from tokenomics.config.settings import Settings
from tokenomics.domain.durations import format_rfc3339
from tokenomics.domain.run_budget import RunLimits
from tokenomics.domain.tokens import HashKey, new_token
from tokenomics.services.token_cache import TokenCache
from tokenomics.store.tokens import TokenStore

HASH_KEY = "e2e-hash-key"
REAL_KEYS = {"OPENAI_KEY": "sk-real", "ANTHROPIC_KEY": "sk-ant-real", "GROQ_KEY": "gsk-real"}

SETTLE_SECONDS = 30  # real seconds a test waits for the finish of the requests it sent


@dataclass
class Proxy:
    url: str
    server: Server
    settings: Settings
    environ: dict[str, str]
    key: HashKey = field(default_factory=lambda: HashKey(HASH_KEY.encode()))

    def token(self, policy: dict[str, Any] | str, expires_at: str | None = None) -> str:
        """Create a wrapper token in the store (a second connection, like the CLI) and make the
        running server see it at once."""
        text = policy if isinstance(policy, str) else json.dumps(policy)
        raw = new_token()
        store = TokenStore.open(Path(self.settings.storage.db_path))
        try:
            store.create(self.key.hash(raw), text, expires_at, format_rfc3339(datetime.now(UTC)))
        finally:
            store.close()
        self.reload_tokens()
        return raw

    def reload_tokens(self) -> None:
        cache = self.server.deps.tokens
        assert isinstance(cache, TokenCache)
        cache.reload()

    def client(self, **kwargs: Any) -> httpx2.AsyncClient:
        return httpx2.AsyncClient(base_url=self.url, timeout=30, **kwargs)

    def hash16(self, raw: str) -> str:
        return self.key.hash(raw)[:16]


def proxy_settings(root: Path, upstream: str, env: dict[str, str], config: str) -> Settings:
    work, home = root / "work", root / "home"
    work.mkdir(exist_ok=True)
    home.mkdir(exist_ok=True)
    if config:
        (work / "config.yaml").write_text(config)
    return load_settings(cwd=work, home=home, environ=env)


@asynccontextmanager
async def start_proxy(
    root: Path,
    upstream: str = "mock://tokenomics",
    *,
    env: dict[str, str] | None = None,
    config: str = "",
    run_limits: RunLimits | None = None,
    vocabularies: bool = False,
) -> AsyncIterator[Proxy]:
    """Start the server against `upstream`; `env` adds to the test environment; `run_limits`
    as `tokenomics run --max-*` sets them.

    The server loads a vocabulary in a worker thread when a count first needs it. With
    `vocabularies`, and always on trio's mock clock, both are loaded before the test instead:
    while the loop waits for that thread the autojump clock would jump past the clients'
    timeouts, and tiktoken builds its tables holding the GIL (a one-off stall of the event
    loop, docs/DECISIONS.md) that tests on tight Redis timeouts must not see."""
    environ = {
        "TOKENOMICS_DIR": str(root / "data"),
        "TOKENOMICS_SERVER_UPSTREAM_URL": upstream,
        "TOKENOMICS_SERVER_TLS_ENABLED": "false",
        "TOKENOMICS_HASH_KEY": HASH_KEY,
        **REAL_KEYS,
        **(env or {}),
    }  # fmt: skip
    settings = proxy_settings(root, upstream, environ, config)
    async with trio.open_nursery() as nursery:
        server: Server = await nursery.start(
            partial(
                run_server, settings, environ, HashKey(HASH_KEY.encode()),
                cwd=root / "work", home=root / "home", ephemeral=True, run_limits=run_limits,
            )
        )  # fmt: skip
        if vocabularies or isinstance(trio.lowlevel.current_clock(), trio.testing.MockClock):
            await trio.to_thread.run_sync(server.deps.estimator.warm_up)
        try:
            yield Proxy(server.urls[0], server, settings, environ)
        finally:
            server.shutdown()


def openai_error_message(response: httpx2.Response, status: int) -> str:
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/json"
    error = response.json()["error"]
    assert (error["type"], error["code"]) == ("tokenomics_error", status)
    return str(error["message"])


async def settled(proxy: Proxy) -> dict[str, Any]:
    """`/stats` totals once the server finished the requests whose replies we have (budget
    settled, stats recorded). The record comes right after a reply's last byte, at once
    unless something waits: a vocabulary loading in a worker thread (the input estimate of a
    reply without usage), the counters' backend, a full record channel. Those are waited for
    in real time (a worker thread does not run on the autojump clock), up to
    `SETTLE_SECONDS`."""
    deadline = time.monotonic() + SETTLE_SECONDS
    await trio.testing.wait_all_tasks_blocked()
    while proxy.server.stats.in_flight:
        assert time.monotonic() < deadline, "requests still in flight"
        await trio.sleep(0.01)
        await trio.testing.wait_all_tasks_blocked()
    return dict(proxy.server.stats.snapshot()["totals"])
