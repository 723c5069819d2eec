"""Conversation memory through the real server (D12): what reaches the memory files is what was
sent upstream and what the client received, masked by rules; a secret a mask rule removed is
never on disk, buffered or streamed; a request blocked by a `fail` rule leaves nothing.

The built-in mock's `echo` model answers the user's text verbatim (word by word when streamed,
so a secret reaches the output rules split across chunks). The records are taken from the
recorder's sink and written with `MemoryWriter.write`, as the ledger flusher does on its thread.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import trio
import trio.testing
from tests.support.proxy import Proxy, start_proxy

from tokenomics.services.finished import Finished
from tokenomics.services.memory import MemoryWriter
from tokenomics.services.recorder import Recorder

SSN = "123-45-6789"
EMAIL = "jane.doe@example.com"
REDACTED = "[REDACTED]"
SESSION = "e2e0e2e0"


@pytest.fixture
async def proxy(tmp_path: Path) -> AsyncIterator[Proxy]:
    async with start_proxy(tmp_path) as running:
        yield running


def sink(proxy: Proxy) -> list[Finished]:
    records: list[Finished] = []
    recorder = proxy.server.deps.recorder
    assert isinstance(recorder, Recorder)
    recorder.sink = records.append
    return records


def memory_policy(rules: list[dict[str, Any]], memory_dir: Path) -> dict[str, Any]:
    return {
        "base_key_env": "OPENAI_KEY",
        "rules": rules,
        "memory": {"enabled": True, "file_path": str(memory_dir), "file_name": "{token_hash}.md"},
    }


async def exchange(proxy: Proxy, token: str, text: str, *, stream: bool) -> tuple[int, str]:
    body = {"model": "echo", "stream": stream, "messages": [{"role": "user", "content": text}]}
    headers = {"Authorization": f"Bearer {token}"}
    async with proxy.client() as client:
        response = await client.post("/v1/chat/completions", json=body, headers=headers)
    await trio.testing.wait_all_tasks_blocked()  # `finish` has recorded the exchange
    return response.status_code, response.text


async def remembered(proxy: Proxy, records: list[Finished], tmp_path: Path) -> tuple[str, str]:
    """Write the records like the flusher; (ledger memory text, policy memory text)."""
    writer = MemoryWriter.from_settings(proxy.settings, home=tmp_path / "home")
    await trio.to_thread.run_sync(writer.write, records, SESSION)
    writer.close()
    ledger = "".join(p.read_text() for p in (Path(proxy.settings.dir) / "memory").glob("*.md"))
    policy = "".join(p.read_text() for p in (tmp_path / "mem").glob("*.md"))
    return ledger, policy


@pytest.mark.parametrize("stream", [False, True], ids=["buffered", "streamed"])
async def test_masked_secret_never_reaches_memory(
    proxy: Proxy, tmp_path: Path, stream: bool
) -> None:
    records = sink(proxy)
    rule = {"type": "pii", "detect": ["ssn"], "action": "mask", "scope": "both"}
    token = proxy.token(memory_policy([rule], tmp_path / "mem"))

    status, reply = await exchange(proxy, token, f"my ssn is {SSN} ok", stream=stream)

    assert status == 200, reply
    assert SSN not in reply
    ledger, policy = await remembered(proxy, records, tmp_path)
    for text in (ledger, policy):
        assert text.count("| request | echo") == 1
        assert text.count("| response | echo") == 1
        assert SSN not in text
        assert REDACTED in text
        assert token not in text
        assert "Authorization" not in text
    if stream:
        assert f"Captured assistant text:\nmy ssn is {REDACTED} ok" in policy
    assert f"| {SESSION} | request |" in ledger
    assert f"| {proxy.hash16(token)} | request |" in policy


@pytest.mark.parametrize("stream", [False, True], ids=["buffered", "streamed"])
async def test_output_mask_keeps_the_secret_out_of_the_remembered_answer(
    proxy: Proxy, tmp_path: Path, stream: bool
) -> None:
    records = sink(proxy)
    rule = {"type": "pii", "detect": ["email"], "action": "mask", "scope": "output"}
    token = proxy.token(memory_policy([rule], tmp_path / "mem"))

    status, reply = await exchange(proxy, token, f"write to {EMAIL} today", stream=stream)

    assert status == 200, reply
    assert EMAIL not in reply
    _, policy = await remembered(proxy, records, tmp_path)
    request, response = policy.split("| response | echo", 1)
    assert EMAIL in request  # an output rule leaves the request alone: it was sent as is
    assert EMAIL not in response
    assert REDACTED in response


async def test_request_blocked_by_a_fail_rule_leaves_nothing_in_memory(
    proxy: Proxy, tmp_path: Path
) -> None:
    records = sink(proxy)
    rule = {"name": "no-codes", "type": "keyword", "keywords": ["launch codes"], "action": "fail"}
    token = proxy.token(memory_policy([rule], tmp_path / "mem"))

    status, _ = await exchange(proxy, token, "here are the launch codes 0000", stream=False)

    assert status == 403
    assert [record.forwarded for record in records] == [False]
    ledger, policy = await remembered(proxy, records, tmp_path)
    assert (ledger, policy) == ("", "")
