"""Output rules on streamed responses through the real server (D12): the mock upstream's echo
models answer the user's text word by word, so a secret in it reaches the proxy split across
chunks. The client never sees the secret, sees `[REDACTED]`, and gets the text while the stream
is still running; a `fail` rule ends the stream with an error event in the client's API family.
"""

from __future__ import annotations

import itertools
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson
import pytest
import trio
import trio.testing
from tests.support.mock_upstream import MockUpstream
from tests.support.providers import family_config
from tests.support.proxy import Proxy, start_proxy

from tokenomics.services.recorder import Recorder
from tokenomics.upstream.mock import MockProvider

CARD = "4111 1111 1111 1111"  # the mock sends one word per chunk: four chunks
TEXT = f"Please charge my card {CARD} for the order, then send the receipt to the usual place."
MASKED = TEXT.replace(CARD, "[REDACTED]")
ENV = {"GOOGLE_KEY": "g-real"}
CARD_RULE = {"name": "cards", "type": "pii", "detect": ["credit_card"], "action": "mask", "scope": "output"}  # fmt: skip
FAIL_RULE = {"name": "no-launch", "type": "keyword", "keywords": ["launch codes"], "action": "fail", "scope": "output"}  # fmt: skip

Json = dict[str, Any]


def policy(*rules: Json) -> Json:
    return {
        "providers": {
            "anthropic": [{"model_regex": "claude$", "base_key_env": "ANTHROPIC_KEY"}],
            "gemini": [{"model_regex": "gemini$", "base_key_env": "GOOGLE_KEY"}],
            "openai": [{"base_key_env": "OPENAI_KEY"}],
        },
        "rules": list(rules),
    }


@pytest.fixture
async def families(mock_upstream_server: MockUpstream, tmp_path: Path) -> AsyncIterator[Proxy]:
    config = family_config(mock_upstream_server.url)
    async with start_proxy(tmp_path, mock_upstream_server.url, env=ENV, config=config) as proxy:
        yield proxy


def events_of(raw: bytes) -> list[tuple[str | None, Any]]:
    """(event name, payload) of every SSE event; `[DONE]` as the string."""
    found = []
    for block in raw.replace(b"\r\n", b"\n").split(b"\n\n"):
        name, data = None, None
        for line in block.split(b"\n"):
            if line.startswith(b"event: "):
                name = line[7:].decode()
            elif line.startswith(b"data: "):
                data = line[6:].decode()
        if data is not None:
            found.append((name, data if data == "[DONE]" else orjson.loads(data)))
    return found


def _chat_text(events: list[tuple[str | None, Any]]) -> str:
    return "".join(
        c["delta"].get("content") or "" for _, p in events if p != "[DONE]" for c in p["choices"]
    )


def _completion_text(events: list[tuple[str | None, Any]]) -> str:
    return "".join(c["text"] for _, p in events if p != "[DONE]" for c in p["choices"])


def _responses_text(events: list[tuple[str | None, Any]]) -> str:
    text = "".join(p["delta"] for name, p in events if name == "response.output_text.delta")
    (done,) = [p["text"] for name, p in events if name == "response.output_text.done"]
    (completed,) = [p["response"] for name, p in events if name == "response.completed"]
    assert done == completed["output"][0]["content"][0]["text"] == text
    return text


def _anthropic_text(events: list[tuple[str | None, Any]]) -> str:
    return "".join(p["delta"]["text"] for name, p in events if name == "content_block_delta")


def _gemini_text(events: list[tuple[str | None, Any]]) -> str:
    return "".join(
        part["text"] for _, p in events for c in p["candidates"] for part in c["content"]["parts"]
    )


@dataclass(frozen=True)
class Family:
    id: str
    path: str  # `{model}` is replaced
    suffix: str  # routes the echo model to the family's provider
    header: str
    body: Callable[[str, str], Json]
    text: Callable[[list[tuple[str | None, Any]]], str]
    error: Callable[[list[tuple[str | None, Any]]], str]

    def url(self, model: str) -> str:
        return self.path.format(model=model + self.suffix)

    def request(self, model: str, text: str) -> Json:
        return self.body(model + self.suffix, text)


def _openai_error(events: list[tuple[str | None, Any]]) -> str:
    name, last = events[-1]
    assert name is None and last["error"]["type"] == "tokenomics_error"
    assert last["error"]["code"] == 403
    return str(last["error"]["message"])


def _anthropic_error(events: list[tuple[str | None, Any]]) -> str:
    name, last = events[-1]
    assert name == "error" and last["type"] == "error"
    assert last["error"]["type"] == "permission_error"
    return str(last["error"]["message"])


def _gemini_error(events: list[tuple[str | None, Any]]) -> str:
    name, last = events[-1]
    assert name is None and last["error"]["status"] == "PERMISSION_DENIED"
    assert last["error"]["code"] == 403
    return str(last["error"]["message"])


def _user(text: str) -> list[Json]:
    return [{"role": "user", "content": text}]


FAMILIES = [
    Family(
        "chat", "/v1/chat/completions", "", "authorization",
        lambda m, t: {"model": m, "messages": _user(t), "stream": True},
        _chat_text, _openai_error,
    ),
    Family(
        "completions", "/v1/completions", "", "authorization",
        lambda m, t: {"model": m, "prompt": t, "stream": True},
        _completion_text, _openai_error,
    ),
    Family(
        "responses", "/v1/responses", "", "authorization",
        lambda m, t: {"model": m, "input": t, "stream": True},
        _responses_text, _openai_error,
    ),
    Family(
        "anthropic", "/v1/messages", "-claude", "x-api-key",
        lambda m, t: {"model": m, "max_tokens": 64, "messages": _user(t), "stream": True},
        _anthropic_text, _anthropic_error,
    ),
    Family(
        "gemini", "/v1beta/models/{model}:streamGenerateContent?alt=sse", "-gemini",
        "x-goog-api-key",
        lambda m, t: {"contents": [{"role": "user", "parts": [{"text": t}]}]},
        _gemini_text, _gemini_error,
    ),
]  # fmt: skip
by_family = pytest.mark.parametrize("family", FAMILIES, ids=[f.id for f in FAMILIES])


def headers(family: Family, token: str) -> dict[str, str]:
    return {family.header: f"Bearer {token}" if family.header == "authorization" else token}


async def stream(
    proxy: Proxy, family: Family, token: str, model: str, text: str
) -> tuple[int, list[tuple[float, bytes]]]:
    """(status, [(arrival time since the request went out, bytes)] of each network read)."""
    url = family.url(model)
    parts: list[tuple[float, bytes]] = []
    async with proxy.client() as client:
        start = trio.current_time()
        async with client.stream(
            "POST", url, json=family.request(model, text), headers=headers(family, token)
        ) as response:
            async for part in response.aiter_raw():
                parts.append((trio.current_time() - start, part))
    return response.status_code, parts


def body_of(parts: list[tuple[float, bytes]]) -> bytes:
    return b"".join(part for _, part in parts)


async def recorded(proxy: Proxy, *kinds: str) -> list[Json]:
    await trio.testing.wait_all_tasks_blocked()
    recorder = proxy.server.deps.recorder
    assert isinstance(recorder, Recorder)
    return [data for kind, data in recorder.recent_events if kind in kinds]


def mock_pieces(text: str) -> list[str]:
    body = orjson.dumps({"model": "echo", "messages": _user(text), "stream": True})
    chunks = MockProvider().respond("POST", "/v1/chat/completions", "", {}, body).chunks
    return [
        c["delta"]["content"] for _, p in events_of(b"".join(chunks))[1:-2] for c in p["choices"]
    ]


def test_the_mock_sends_the_card_across_four_chunks() -> None:
    pieces = mock_pieces(TEXT)
    assert "".join(pieces) == TEXT
    assert [p for p in pieces if p.strip() in ("4111", "1111")] == [
        " 4111",
        " 1111",
        " 1111",
        " 1111",
    ]


# ── mask ────────────────────────────────────────────────────────────────────────────────────


@by_family
async def test_a_card_split_across_chunks_is_masked_in_every_family(
    families: Proxy, mock_upstream_server: MockUpstream, family: Family
) -> None:
    token = families.token(policy(CARD_RULE))
    status, parts = await stream(families, family, token, "echo", TEXT)
    raw = body_of(parts)
    assert status == 200
    assert family.text(events_of(raw)) == MASKED
    assert b"4111" not in raw and b"1111 1111" not in raw
    (mask,) = await recorded(families, "rule.mask")
    assert mask["scope"] == "output"
    (match,) = await recorded(families, "rule.match")
    assert match["rule_name"] == "cards"
    assert CARD.encode() in mock_upstream_server.requests[0].body  # an output rule only


async def test_masked_text_reaches_the_client_while_the_stream_is_still_running(
    families: Proxy,
) -> None:
    """Paced at 100 ms a word: the words around the card arrive read after read over the whole
    stream, not all at its end."""
    token = families.token(policy(CARD_RULE))
    text = TEXT + " " + " ".join(f"word{i}" for i in range(12))
    status, parts = await stream(families, FAMILIES[0], token, "pace-100-echo", text)
    assert status == 200
    assert _chat_text(events_of(body_of(parts))) == text.replace(CARD, "[REDACTED]")
    arrivals = [at for at, _ in parts]
    assert arrivals[-1] > 2.5  # 30 paced words
    assert len(arrivals) > 20, arrivals  # read after read, as the upstream sends them
    gaps = [b - a for a, b in itertools.pairwise(arrivals)]
    assert max(gaps) < 1.0, gaps  # never waiting long for held text
    received = b""
    for at, part in parts:  # the masked card and the words after it, long before the end
        received += part
        if "[REDACTED] for the order" in _chat_text(events_of(received)):
            assert at < arrivals[-1] - 1.0
            break
    else:
        raise AssertionError("the masked card never arrived")


async def test_usage_is_counted_and_the_usage_chunk_still_hidden_with_a_guarded_stream(
    families: Proxy, mock_upstream_server: MockUpstream
) -> None:
    token = families.token(policy(CARD_RULE))
    status, parts = await stream(families, FAMILIES[0], token, "echo", TEXT)
    raw = body_of(parts)
    assert status == 200
    events = events_of(raw)
    assert events[-1] == (None, "[DONE]")
    assert not any(p != "[DONE]" and p.get("usage") for _, p in events)  # the proxy's own ask
    await trio.testing.wait_all_tasks_blocked()
    totals = families.server.stats.snapshot()["totals"]
    words = len(TEXT.split())
    assert totals["output_tokens"] == words  # the mock's own usage, not an estimate
    assert totals["input_tokens"] == words + 3
    assert totals["error_count"] == 0


async def test_without_output_rules_the_stream_is_relayed_byte_for_byte(
    families: Proxy, mock_upstream_server: MockUpstream
) -> None:
    input_only = {**CARD_RULE, "scope": "input"}
    token = families.token(policy(input_only))
    family = FAMILIES[3]
    status, parts = await stream(families, family, token, "echo", "no cards here, just words")
    raw = body_of(parts)
    assert status == 200
    seen = mock_upstream_server.requests[0]
    path, _, query = seen.path.partition("?")
    assert raw == b"".join(
        MockProvider().respond("POST", path, query, seen.headers, seen.body).chunks
    )


# ── fail ────────────────────────────────────────────────────────────────────────────────────


@by_family
async def test_a_fail_rule_ends_the_stream_with_an_error_event_of_the_family(
    families: Proxy, mock_upstream_server: MockUpstream, family: Family
) -> None:
    token = families.token(policy(FAIL_RULE))
    text = "Sure. The launch codes are 0000 and the rest of this answer never arrives at all."
    status, parts = await stream(families, family, token, "pace-50-echo", text)
    raw = body_of(parts)
    assert status == 200  # the headers were on their way
    events = events_of(raw)
    message = family.error(events)
    assert message == 'response blocked by rule 0: matched keyword rule "no-launch"'
    assert b"launch codes" not in raw.replace(b"no-launch", b"")
    assert b"never arrives" not in raw
    (violation,) = await recorded(families, "rule.violation")
    assert violation["rule_name"] == "no-launch"
    totals = families.server.stats.snapshot()["totals"]
    assert totals["error_count"] == 1
    with trio.fail_after(2):
        await mock_upstream_server.wait_idle()
    assert mock_upstream_server.requests[0].disconnected  # the upstream call was cut short


# ── Gemini's JSON-array stream (no `alt=sse`) ───────────────────────────────────────────────


async def test_a_gemini_json_array_stream_under_output_rules_is_masked_whole(
    families: Proxy,
) -> None:
    """Without `alt=sse` Gemini streams one JSON array; under output rules it is read whole
    and its chunks go through the same guard, so the card split across them is masked."""
    token = families.token(policy(CARD_RULE))
    path = "/v1beta/models/echo-gemini:streamGenerateContent"
    body = FAMILIES[4].request("echo", TEXT)
    async with families.client() as client:
        response = await client.post(path, json=body, headers={"x-goog-api-key": token})
    assert response.status_code == 200, response.text
    chunks = response.json()
    text = "".join(p["text"] for c in chunks for p in c["candidates"][0]["content"]["parts"])
    assert text == MASKED and "4111" not in response.text
    assert chunks[-1]["candidates"][0]["finishReason"] == "STOP"
    await trio.testing.wait_all_tasks_blocked()
    totals = families.server.stats.snapshot()["totals"]
    assert totals["output_tokens"] == chunks[-1]["usageMetadata"]["candidatesTokenCount"]


async def test_a_gemini_json_array_stream_blocked_by_a_fail_rule_is_a_403(
    families: Proxy,
) -> None:
    token = families.token(policy(FAIL_RULE))
    path = "/v1beta/models/echo-gemini:streamGenerateContent"
    body = FAMILIES[4].request("echo", "the launch codes are 0000")
    async with families.client() as client:
        response = await client.post(path, json=body, headers={"x-goog-api-key": token})
    assert response.status_code == 403
    error = response.json()["error"]
    assert error["status"] == "PERMISSION_DENIED"
    assert error["message"] == 'response blocked by rule 0: matched keyword rule "no-launch"'
    (violation,) = await recorded(families, "rule.violation")
    assert violation["rule_name"] == "no-launch"
