"""Events with real `tokenomics serve` processes (issue 15): a token created by the CLI while the
server runs reaches the webhook; a server killed with SIGKILL while its receiver is down loses
no event: after the restart everything in the outbox arrives, once per id."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
from pathlib import Path

import httpx2
import pytest
import trio
from tests.cli.test_serve import CHAT, create_token, serve_env, serving
from tests.support.webhook_receiver import Receiver, webhook_receiver

pytestmark = pytest.mark.slow
KEY = "serve-signing-key"


def webhook_env(home: Path, work: Path, receiver: Receiver) -> dict[str, str]:
    hook = {"url": receiver.url, "signing_key": KEY}
    return serve_env(
        home, TOKENOMICS_DIR=str(work / "data"), TOKENOMICS_EVENTS_WEBHOOKS=json.dumps([hook])
    )


def events_json(env: dict[str, str], work: Path, *args: str) -> list[dict[str, object]]:
    done = subprocess.run(
        [sys.executable, "-m", "tokenomics", "events", "list", "--json", *args],
        capture_output=True, text=True, env=env, cwd=work, timeout=30, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    rows: list[dict[str, object]] = json.loads(done.stdout)
    return rows


async def test_a_token_created_by_the_cli_while_serve_runs_reaches_the_webhook(
    home: Path, work: Path
) -> None:
    async with webhook_receiver(KEY) as receiver:
        env = webhook_env(home, work, receiver)
        async with serving(env, work) as served:
            with trio.fail_after(20):
                await receiver.wait_for(1)  # server.start
            await trio.to_thread.run_sync(create_token, env, work)
            with trio.fail_after(20):
                await receiver.wait_for(2)
            served.process.send_signal(signal.SIGTERM)
            assert await served.wait(20) == 0
    kinds = [r.event["type"] for r in receiver.received]
    assert kinds == ["server.start", "token.created"]
    assert all(r.signature_ok for r in receiver.received)


async def test_sigkill_with_pending_events_then_restart_delivers_everything_once(
    home: Path, work: Path
) -> None:
    async with webhook_receiver(KEY) as receiver:
        await receiver.down()  # unreachable while the first server runs
        env = webhook_env(home, work, receiver)
        async with serving(env, work) as served:
            tokens = [await trio.to_thread.run_sync(create_token, env, work) for _ in range(3)]
            async with httpx2.AsyncClient(base_url=served.urls[0], timeout=10) as client:
                for token in tokens:
                    with trio.fail_after(10):  # the server sees new tokens within 0.5 s
                        while True:
                            answer = await client.post(
                                "/v1/chat/completions", json=CHAT, headers={"x-api-key": token}
                            )
                            if answer.status_code != 401:
                                break
                            await trio.sleep(0.1)
                    assert answer.status_code == 200
            with trio.fail_after(20):  # the request events' batch is in the outbox
                while True:
                    pending = await trio.to_thread.run_sync(events_json, env, work, "--pending")
                    if len(pending) >= 1 + 3 + 3 * 2:  # start, created, completed + budget (200s)
                        break
                    await trio.sleep(0.2)
            served.process.kill()
            assert await served.wait(10) == -signal.SIGKILL
        queued = {str(row["id"]) for row in pending}
        async with trio.open_nursery() as nursery:
            await receiver.up(nursery)
            async with serving(env, work) as again:
                with trio.fail_after(60):
                    while not queued <= set(receiver.ids):
                        await receiver.wait_for(len(receiver.received) + 1)
                with trio.fail_after(20):  # and the restarted server's own `server.start`
                    while await trio.to_thread.run_sync(events_json, env, work, "--pending"):
                        with trio.move_on_after(0.2):  # delivered, then marked so
                            await receiver.wait_for(len(receiver.received) + 1)
                again.process.send_signal(signal.SIGTERM)
                assert await again.wait(20) == 0
            await receiver.down()
    assert queued <= set(receiver.ids)
    assert len(receiver.ids) == len(set(receiver.ids))  # once per id
    assert all(r.signature_ok for r in receiver.received)
    assert events_json(env, work, "--pending") == []
