"""D17 and scenario 78 with real processes: `tokenomics serve` answers 20 requests, is killed
with SIGKILL, and started again; the ledger CLI then accounts for every one of the 20 requests,
with token totals equal to the usage the mock upstream reported. While the server lives, its
session is listed as running (with its pid); once killed, as ended (the lock on its journal died
with it)."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import httpx2
import trio
from tests.cli.test_serve import create_token, serve_env, serving

TOKENOMICS = [sys.executable, "-m", "tokenomics"]


def ledger(env: dict[str, str], cwd: Path, *args: str) -> Any:
    done = subprocess.run(
        [*TOKENOMICS, "ledger", *args, "--json"], capture_output=True, text=True, env=env,
        cwd=cwd, timeout=30, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def journal_lines(sessions: Path) -> int:
    return sum(len(p.read_text().splitlines()) for p in sessions.glob("*.journal"))


async def test_a_killed_server_loses_no_recorded_request(home: Path, work: Path) -> None:
    data = work / "data"
    env = serve_env(home, TOKENOMICS_DIR=str(data))
    token = await trio.to_thread.run_sync(create_token, env, work)
    usages: list[dict[str, int]] = []
    async with serving(env, work) as served:
        async with httpx2.AsyncClient(base_url=served.urls[0], timeout=10) as client:
            for n in range(20):
                words = " ".join(["word"] * (n + 1))
                body = {"model": "gpt-4o", "messages": [{"role": "user", "content": words}]}
                response = await client.post(
                    "/v1/chat/completions", json=body, headers={"x-api-key": token}
                )
                assert response.status_code == 200, response.text
                usages.append(response.json()["usage"])
        with trio.fail_after(3):  # header + 20 records, appended within about a second
            while journal_lines(data / "sessions") < 21:  # noqa: ASYNC110 - another process
                await trio.sleep(0.05)
        (live,) = await trio.to_thread.run_sync(ledger, env, work, "sessions")
        assert (live["running"], live["pid"]) == (True, served.process.pid)
        assert live["totals"]["request_count"] == 20
        served.process.kill()
        assert await served.wait(10) == -signal.SIGKILL
    assert not list((data / "sessions").glob("*.json"))
    (dead,) = ledger(env, work, "sessions")
    assert "running" not in dead and dead["totals"]["request_count"] == 20
    async with serving(env, work) as again:
        async with httpx2.AsyncClient(base_url=again.urls[0], timeout=10) as client:
            assert (await client.get("/ping")).status_code == 200  # signal handlers are set
        again.process.send_signal(signal.SIGTERM)
        assert await again.wait(20) == 0
    assert not list((data / "sessions").glob("*.journal"))

    sessions = ledger(env, work, "sessions", "--all")  # the restart made no request
    # (oldest first, but both may have started within one second: times are whole seconds)
    counts = {s["session_id"]: s["totals"]["request_count"] for s in sessions}
    assert sorted(counts.values()) == [0, 20]
    crashed_id = next(i for i, count in counts.items() if count == 20)
    crashed = ledger(env, work, "show", crashed_id[:5])
    assert len(crashed["requests"]) == 20
    assert crashed["totals"]["input_tokens"] == sum(u["prompt_tokens"] for u in usages)
    assert crashed["totals"]["output_tokens"] == sum(u["completion_tokens"] for u in usages)
    assert crashed["totals"]["total_tokens"] == sum(u["total_tokens"] for u in usages)
    assert crashed["ended_at"] >= crashed["started_at"]
