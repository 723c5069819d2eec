"""Conversation memory through the real server (D12, scenario 79): what reaches the memory files
is what was sent upstream and what the client received, masked by rules; a secret a mask rule
removed is never on disk, buffered or streamed; a request blocked by a `fail` rule leaves
nothing. The files are the ones the server's ledger flusher wrote by the time it stopped.

The built-in mock's `echo` model answers the user's text verbatim (word by word when streamed,
so a secret reaches the output rules split across chunks).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import orjson
import pytest
import trio
from tests.support.proxy import Proxy, start_proxy

from tokenomics.services.finished import Finished
from tokenomics.services.recorder import Recorder

SSN = "123-45-6789"
EMAIL = "jane.doe@example.com"
REDACTED = "[REDACTED]"


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
    return response.status_code, response.text


def remembered(tmp_path: Path) -> tuple[str, str]:
    """(ledger memory text, policy memory text) as the stopped server left them."""
    ledger = "".join(p.read_text() for p in (tmp_path / "data" / "memory").glob("*.md"))
    policy = "".join(p.read_text() for p in (tmp_path / "mem").glob("*.md"))
    return ledger, policy


async def one_exchange(
    tmp_path: Path, rule: dict[str, Any], text: str, *, stream: bool
) -> tuple[int, str, str, str, str]:
    """(status, reply, session id, token, token hash prefix) of one request through a server
    that then stops."""
    async with start_proxy(tmp_path) as proxy:
        token = proxy.token(memory_policy([rule], tmp_path / "mem"))
        status, reply = await exchange(proxy, token, text, stream=stream)
        session, hash16 = proxy.server.session_id, proxy.hash16(token)
    return status, reply, session, token, hash16


@pytest.mark.parametrize("stream", [False, True], ids=["buffered", "streamed"])
async def test_masked_secret_never_reaches_memory(tmp_path: Path, stream: bool) -> None:
    rule = {"type": "pii", "detect": ["ssn"], "action": "mask", "scope": "both"}
    text = f"my ssn is {SSN} ok"
    status, reply, session, token, hash16 = await one_exchange(tmp_path, rule, text, stream=stream)

    assert status == 200, reply
    assert SSN not in reply
    ledger, policy = remembered(tmp_path)
    for text in (ledger, policy):
        assert text.count("| request | echo") == 1
        assert text.count("| response | echo") == 1
        assert SSN not in text
        assert REDACTED in text
        assert token not in text
        assert "Authorization" not in text
    if stream:
        assert f"Captured assistant text:\nmy ssn is {REDACTED} ok" in policy
    assert f"| {session} | request |" in ledger
    assert f"| {hash16} | request |" in policy


@pytest.mark.parametrize("stream", [False, True], ids=["buffered", "streamed"])
async def test_output_mask_keeps_the_secret_out_of_the_remembered_answer(
    tmp_path: Path, stream: bool
) -> None:
    rule = {"type": "pii", "detect": ["email"], "action": "mask", "scope": "output"}
    text = f"write to {EMAIL} today"
    status, reply, *_ = await one_exchange(tmp_path, rule, text, stream=stream)

    assert status == 200, reply
    assert EMAIL not in reply
    _, policy = remembered(tmp_path)
    request, response = policy.split("| response | echo", 1)
    assert EMAIL in request  # an output rule leaves the request alone: it was sent as is
    assert EMAIL not in response
    assert REDACTED in response


async def test_request_blocked_by_a_fail_rule_leaves_nothing_in_memory(tmp_path: Path) -> None:
    rule = {"name": "no-codes", "type": "keyword", "keywords": ["launch codes"], "action": "fail"}
    text = "here are the launch codes 0000"
    status, *_ = await one_exchange(tmp_path, rule, text, stream=False)

    assert status == 403
    assert remembered(tmp_path) == ("", "")
    # the ledger has it, as a rejected request
    (session_file,) = (tmp_path / "data" / "sessions").glob("*.json")
    assert '"status_code": 403' in session_file.read_text()


@pytest.mark.parametrize(
    ("env", "policy_memory", "captured"),
    [
        ({}, False, True),  # ledger memory is on by default
        ({"TOKENOMICS_LEDGER_MEMORY": "false"}, False, False),  # nothing would read them
        ({"TOKENOMICS_LEDGER_MEMORY": "false"}, True, True),  # the token's own memory
        ({"TOKENOMICS_LEDGER_MEMORY": "false", "TOKENOMICS_LEDGER_EVENT_LEDGER": "true"}, False,
         True),
    ],
)  # fmt: skip
async def test_streams_are_kept_only_when_memory_or_events_will_read_them(
    tmp_path: Path, env: dict[str, str], policy_memory: bool, captured: bool
) -> None:
    records: list[Finished] = []
    async with start_proxy(tmp_path, env=env) as proxy:
        recorder = proxy.server.deps.recorder
        assert isinstance(recorder, Recorder) and recorder.journal is not None
        forward = recorder.journal
        recorder.journal = lambda f: (records.append(f), forward(f))[-1]
        policy = memory_policy([], tmp_path / "mem")
        policy["memory"]["enabled"] = policy_memory
        status, reply = await exchange(proxy, proxy.token(policy), "hello there", stream=True)
    assert status == 200, reply
    (record,) = records
    assert record.response_bytes == len(reply.encode())
    assert (record.response_stream is not None) is captured
    if record.response_stream is not None:
        assert record.response_stream.kept_bytes == len(reply.encode())
        assert record.response_stream.payloads == reply.count("data:")


def claude_code_say_hi() -> tuple[dict[str, Any], dict[str, str]]:
    """The shape of what Claude Code sends for "say hi": a long system prompt, a few dozen tool
    schemas, a reminder block before the user's words, and a crowd of SDK headers."""
    prose = "Use the tools to read, edit and run code in the user's project carefully. " * 8
    tools = [
        {
            "name": f"Tool{n}",
            "description": prose,
            "input_schema": {
                "type": "object",
                "properties": {f"arg{k}": {"type": "string", "description": prose[:200]}
                               for k in range(6)},
            },
        }
        for n in range(20)
    ]  # fmt: skip
    body = {
        "model": "claude-sonnet-4-5",
        "messages": [{"role": "user", "content": [
            {"type": "text", "text": "<system-reminder>" + prose * 4 + "</system-reminder>"},
            {"type": "text", "text": "say hi"},
        ]}],
        "system": [{"type": "text", "text": "You are Claude Code. " + prose * 25}],
        "tools": tools,
        "metadata": {"user_id": "user_0123abcd"},
        "max_tokens": 32000,
        "stream": True,
    }  # fmt: skip
    headers = {
        "user-agent": "claude-cli/2.0.14 (external, cli)",
        "anthropic-version": "2023-06-01",
        "anthropic-beta": "claude-code-20250219,interleaved-thinking-2025-05-14",
        "anthropic-dangerous-direct-browser-access": "true",
        "x-app": "cli",
        "x-openclaw-agent-id": "coder-1",
        **{f"x-stainless-{name}": "value" for name in (
            "lang", "package-version", "os", "arch", "runtime", "runtime-version", "retry-count",
            "timeout", "helper-method",
        )},
    }  # fmt: skip
    return body, headers


async def test_a_claude_code_say_hi_leaves_a_small_memory_without_credentials(
    tmp_path: Path,
) -> None:
    """The ledger memory of one "say hi" was 88 KB of tool schemas, system prompt and SDK
    headers; it keeps the exchange and the headers that matter, each body cut to a size."""
    body, headers = claude_code_say_hi()
    async with start_proxy(tmp_path) as proxy, proxy.client() as client:
        token = proxy.token({"providers": {"mock": [{"base_key_env": "ANY"}]}})
        sent = {"x-api-key": token, "authorization": f"Bearer {token}", **headers}
        response = await client.post("/v1/messages", json=body, headers=sent)
        assert response.status_code == 200, response.text
    ledger, _ = remembered(tmp_path)
    size = len(ledger.encode())
    assert len(orjson.dumps(body)) > 50_000 and size < 8 * 1024, size
    assert "say hi" in ledger and "Captured assistant text:\nMock reply to: " in ledger
    assert "[left out for memory: 20 items" in ledger  # the tool schemas
    for kept in (
        "User-Agent: claude-cli",
        "Anthropic-Version: ",
        "Anthropic-Beta: ",
        "X-Openclaw-Agent-Id: coder-1",
        "Content-Type: text/event-stream",
    ):
        assert kept in ledger, kept  # fmt: skip
    assert token not in ledger and "tkn_" not in ledger
    for dropped in ("X-Stainless", "X-App", "Authorization", "X-Api-Key", "Dangerous"):
        assert dropped.lower() not in ledger.lower(), dropped


async def test_a_stream_the_client_left_is_remembered_as_far_as_it_went(tmp_path: Path) -> None:
    """The request hands its stream's capture over unread; the memory writer reads it in its
    batch, the event the client was cut off in included."""
    records: list[Finished] = []
    body = {"model": "pace-300-gpt", "stream": True,
            "messages": [{"role": "user", "content": "hello there"}]}  # fmt: skip
    async with start_proxy(tmp_path) as proxy:
        recorder = proxy.server.deps.recorder
        assert isinstance(recorder, Recorder) and recorder.journal is not None
        forward = recorder.journal
        recorder.journal = lambda f: (records.append(f), forward(f))[-1]
        token = proxy.token(memory_policy([], tmp_path / "mem"))
        headers = {"Authorization": f"Bearer {token}"}
        async with proxy.client() as client:
            async with client.stream(
                "POST", "/v1/chat/completions", json=body, headers=headers
            ) as response:
                async for part in response.aiter_raw():
                    if b'"content":"Mock"' in part:
                        break
            with trio.fail_after(5):
                while not records:  # noqa: ASYNC110 - recorded once the request is cancelled
                    await trio.sleep(0.01)
    (record,) = records
    assert record.error == "client disconnected"
    assert record.response_stream is not None and record.response_stream.closed
    _, policy = remembered(tmp_path)
    assert "[streaming sse]" in policy and "Captured assistant text:\nMock" in policy
    assert "Mock reply to: hello there" not in policy  # it never got that far
