"""Issue 12 item 6 with real processes: `tokenomics serve` is killed with SIGKILL while clients
are busy, at the very moment a batch of responses has completed. Every request whose response
a client received whole is in the recovered ledger, and the budget counter after the restart
is at least what the journal holds (it was only saved every half second before)."""

from __future__ import annotations

import signal
from pathlib import Path
from typing import Any

import httpx2
import pytest
import trio
from tests.cli.test_serve import create_token, serve_env, serving
from tests.e2e.test_ledger_crash import ledger

from tokenomics.store.db import Database
from tokenomics.store.usage import UsageStore

pytestmark = pytest.mark.slow

WORKERS = 16
KILL_AFTER = 120  # completed responses


async def test_a_killed_server_loses_no_completed_request_and_no_spend(
    home: Path, work: Path
) -> None:
    data = work / "data"
    env = serve_env(home, TOKENOMICS_DIR=str(data))
    token = await trio.to_thread.run_sync(create_token, env, work)
    completed: list[str] = []  # the upstream request id of every response received whole

    async with serving(env, work) as served:

        async def worker(client: httpx2.AsyncClient, n: int) -> None:
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
                    return  # the server is gone: this one never completed
                assert response.status_code == 200, response.text
                completed.append(response.headers["x-request-id"])
                if len(completed) == KILL_AFTER:
                    served.process.kill()  # at once: no time for a batch or a counter save
                    return

        async with (
            httpx2.AsyncClient(base_url=served.urls[0], timeout=10) as client,
            trio.open_nursery() as nursery,
        ):
            for n in range(WORKERS):
                nursery.start_soon(worker, client, n)
        assert await served.wait(10) == -signal.SIGKILL
    assert len(completed) >= KILL_AFTER

    async with serving(env, work) as again:
        again.process.send_signal(signal.SIGTERM)
        assert await again.wait(20) == 0
    sessions = ledger(env, work, "sessions")
    crashed_id = max(sessions, key=lambda s: s["totals"]["request_count"])["session_id"]
    crashed = ledger(env, work, "show", crashed_id[:5])
    recorded = {r["upstream_request_id"] for r in crashed["requests"]}
    assert set(completed) <= recorded
    journal_tokens = crashed["totals"]["total_tokens"]

    usage = UsageStore(Database.open(data / "tokenomics.db"))
    try:
        [spend] = usage.load().values()
    finally:
        usage.close()
    assert spend.tokens >= journal_tokens > 0
