"""Issue 18 with real processes: a Redis-backed `tokenomics serve` is killed with SIGKILL while
clients are busy. Its last settles may not have reached Redis (they leave the request's path,
`store.redis_settles`), but its journal proves what it spent: after the restart, the token's
settled spend in Redis (usage minus what open holds reserve) is at least the journal's."""

from __future__ import annotations

import signal
from pathlib import Path
from typing import Any

import httpx2
import pytest
import trio
from tests.cli.test_serve import create_token, serve_env, serving
from tests.e2e.test_ledger_crash import ledger
from tests.support.redis_server import RedisServer, redis_server  # noqa: F401

pytestmark = pytest.mark.slow

WORKERS = 16
KILL_AFTER = 80  # completed responses


def settled(server: RedisServer) -> int:
    """The one token's usage in Redis minus what its open reservations hold."""
    [key] = server.command("KEYS", "tokenomics:usage:*").split(b"\r\n")[2:3]
    token_hash = key.decode().rsplit(":", 1)[1]
    usage = int(server.command("GET", key.decode()).split(b"\r\n")[1])
    held = server.command("HGET", f"tokenomics:holds:{token_hash}", "_t")
    return usage - (0 if held.startswith(b"$-1") else int(held.split(b"\r\n")[1]))


async def test_a_killed_redis_worker_s_spend_reaches_redis(
    home: Path,
    work: Path,
    redis_server: RedisServer,  # noqa: F811
) -> None:
    env = serve_env(
        home, TOKENOMICS_DIR=str(work / "data"), TOKENOMICS_SESSION_BACKEND="redis",
        TOKENOMICS_SESSION_REDIS_ADDR=redis_server.addr,
    )  # fmt: skip
    token = await trio.to_thread.run_sync(create_token, env, work)
    completed = 0

    async with serving(env, work) as served:

        async def worker(client: httpx2.AsyncClient, n: int) -> None:
            nonlocal completed
            for i in range(1000):
                body: dict[str, Any] = {
                    "model": "gpt-4o", "stream": (n + i) % 2 == 0,
                    "messages": [{"role": "user", "content": "word " * (i % 7 + 1)}],
                }  # fmt: skip
                try:
                    response = await client.post(
                        "/v1/chat/completions", json=body, headers={"x-api-key": token}
                    )
                except httpx2.HTTPError:
                    return
                assert response.status_code == 200, response.text
                completed += 1
                if completed == KILL_AFTER:
                    served.process.kill()
                    return

        async with (
            httpx2.AsyncClient(base_url=served.urls[0], timeout=10) as client,
            trio.open_nursery() as nursery,
        ):
            for n in range(WORKERS):
                nursery.start_soon(worker, client, n)
        assert await served.wait(10) == -signal.SIGKILL

    async with serving(env, work) as again:  # recovers the crashed journal, raising Redis
        again.process.send_signal(signal.SIGTERM)
        assert await again.wait(20) == 0
    sessions = ledger(env, work, "sessions")
    crashed_id = max(sessions, key=lambda s: s["totals"]["request_count"])["session_id"]
    journal_tokens = ledger(env, work, "show", crashed_id[:5])["totals"]["total_tokens"]
    assert settled(redis_server) >= journal_tokens > 0
