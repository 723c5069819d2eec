"""Billing truth end to end (issue 19): the real SDKs through the proxy to the in-process mock
upstream, which reports the full current usage shapes (`tests/support/usage_shapes.py`) with
cache reads, cache writes and reasoning/thinking. The session ledger must hold every bucket and
the exact cost, buffered and streamed, for every family; the default route names its provider.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import replace
from pathlib import Path
from typing import Any

import anthropic
import openai
import orjson
import pytest
from tests.e2e.test_ledger import only_session
from tests.support import usage_shapes as shapes
from tests.support.mock_upstream import MockUpstream, mock_upstream
from tests.support.proxy import Proxy, settled, start_proxy

from tokenomics.domain.usage import Usage
from tokenomics.upstream.mock import MockProvider, MockReply

HI: Any = [{"role": "user", "content": "hi"}]


def _reported(payload: dict[str, Any]) -> dict[str, Any]:
    """One JSON body or event of the mock, with the usage of `usage_shapes` in place of its own."""
    kind, obj = payload.get("type"), payload.get("object")
    if kind == "message":
        return {**payload, "usage": shapes.ANTHROPIC_USAGE}
    if kind == "message_start":
        return {**payload, "message": {**payload["message"], "usage": shapes.ANTHROPIC_START_USAGE}}
    if kind == "message_delta":
        return {**payload, "usage": shapes.ANTHROPIC_DELTA_USAGE}
    if obj in ("chat.completion", "chat.completion.chunk") and payload.get("usage"):
        return {**payload, "usage": shapes.CHAT_USAGE}
    if obj == "response":
        return {**payload, "usage": shapes.RESPONSES_USAGE}
    if kind == "response.completed":
        return {**payload, "response": _reported(payload["response"])}
    if "usageMetadata" in payload:
        return {**payload, "usageMetadata": shapes.GEMINI_USAGE}
    return payload


def _chunk(chunk: bytes) -> bytes:
    if chunk.startswith(b"{"):
        return orjson.dumps(_reported(orjson.loads(chunk)))
    head, sep, rest = chunk.partition(b"data: ")
    data = rest.rstrip(b"\r\n")
    if not sep or not data.startswith(b"{"):
        return chunk
    return head + sep + orjson.dumps(_reported(orjson.loads(data))) + rest[len(data) :]


class ReportingProvider(MockProvider):
    """The mock, reporting the full usage shapes of today's SDKs instead of its own figures."""

    def respond(self, method: str, path: str, query: str, headers: Any, body: bytes) -> MockReply:
        reply = super().respond(method, path, query, headers, body)
        return replace(reply, chunks=tuple(_chunk(chunk) for chunk in reply.chunks))


@asynccontextmanager
async def reporting_proxy(root: Path, priced: str = "") -> AsyncIterator[Proxy]:
    """The proxy in front of the reporting mock (a provider `reporting` with the price of
    claude-sonnet-4-5 for the model `priced`); its session file is written on exit."""
    async with mock_upstream(ReportingProvider()) as upstream:
        config = (
            f"providers:\n  reporting:\n    upstream_url: {upstream.url}\n"
            "    formats: [openai, anthropic, gemini]\n"
            f"    prices:\n      {priced}: {{input: 3, cached_input: 0.3, cache_write: 3.75, "
            "output: 15}\n"
        )
        async with start_proxy(root, upstream.url, config=config if priced else "") as proxy:
            yield proxy


def buckets(entry: dict[str, Any]) -> tuple[int, ...]:
    meta = entry.get("provider_meta", {})
    return (
        entry["input_tokens"],
        entry["output_tokens"],
        meta.get("cached_input_tokens", 0),
        meta.get("cache_creation_tokens", 0),
        meta.get("reasoning_tokens", 0),
    )


def billed(root: Path, streams: list[bool], usage: Usage, cost: float) -> dict[str, Any]:
    """The session file: one entry per request (streamed or not, in order), each with every
    bucket of `usage` and the cost `cost`."""
    session = only_session(root)
    assert [e.get("stream", False) for e in session["requests"]] == streams
    for entry in session["requests"]:
        assert buckets(entry) == (
            usage.input_tokens, usage.output_tokens, usage.cached_input_tokens,
            usage.cache_creation_tokens, usage.reasoning_tokens,
        ), entry  # fmt: skip
        assert entry["cost_usd"] == pytest.approx(cost, abs=1e-10)
    return session


async def test_anthropic_with_thinking_and_caching_is_billed_whole_buffered_and_streamed(
    tmp_path: Path,
) -> None:
    async with reporting_proxy(tmp_path) as proxy:
        token = proxy.token({"base_key_env": "ANTHROPIC_KEY", "max_cost_usd": 1})
        async with anthropic.AsyncAnthropic(
            base_url=proxy.url, api_key=token, max_retries=0, timeout=30
        ) as claude:
            message = await claude.messages.create(
                model=shapes.ANTHROPIC_MODEL, max_tokens=50, messages=HI
            )
            async with claude.messages.stream(
                model=shapes.ANTHROPIC_MODEL, max_tokens=50, messages=HI
            ) as stream:
                final = await stream.get_final_message()
        await settled(proxy)
        spent = proxy.server.deps.budgets.used(proxy.key.hash(token))
    # the budgets are settled with the same figures as the ledger
    assert spent.tokens == 2 * (2121 + 91)
    assert spent.cost_usd == pytest.approx(2 * shapes.ANTHROPIC_COST, abs=1e-9)
    assert message.usage.cache_read_input_tokens == final.usage.cache_read_input_tokens == 1800
    assert final.usage.output_tokens_details is not None
    session = billed(tmp_path, [False, True], shapes.ANTHROPIC_EXPECTED, shapes.ANTHROPIC_COST)
    totals = session["totals"]
    assert totals["cost_usd"] == pytest.approx(2 * shapes.ANTHROPIC_COST, abs=1e-10)
    assert (totals["cached_input_tokens"], totals["reasoning_tokens"]) == (3600, 120)


async def test_openai_chat_and_responses_are_billed_whole_buffered_and_streamed(
    tmp_path: Path,
) -> None:
    async with reporting_proxy(tmp_path) as proxy:
        token = proxy.token({"base_key_env": "OPENAI_KEY"})
        async with openai.AsyncOpenAI(
            base_url=f"{proxy.url}/v1", api_key=token, max_retries=0, timeout=30
        ) as oai:
            chat = await oai.chat.completions.create(model=shapes.OPENAI_MODEL, messages=HI)
            stream = await oai.chat.completions.create(
                model=shapes.OPENAI_MODEL, messages=HI, stream=True
            )
            assert [chunk.usage async for chunk in stream][-1] is None  # the client did not ask
            response = await oai.responses.create(model=shapes.OPENAI_MODEL, input="hi")
            async with oai.responses.stream(model=shapes.OPENAI_MODEL, input="hi") as events:
                streamed = await events.get_final_response()
    assert chat.usage is not None and chat.usage.prompt_tokens_details is not None
    assert chat.usage.prompt_tokens_details.cache_write_tokens == 300
    assert response.usage == streamed.usage
    billed(tmp_path, [False, True] * 2, shapes.OPENAI_EXPECTED, shapes.OPENAI_COST)


async def test_gemini_is_billed_whole_buffered_and_streamed(
    tmp_path: Path,
) -> None:
    body = {"contents": [{"role": "user", "parts": [{"text": "hi"}]}]}
    base = f"/v1beta/models/{shapes.GEMINI_MODEL}"
    async with reporting_proxy(tmp_path) as proxy:
        token = proxy.token({"base_key_env": "OPENAI_KEY"})
        async with proxy.client(headers={"x-goog-api-key": token}) as client:
            assert (await client.post(f"{base}:generateContent", json=body)).status_code == 200
            sse = await client.post(f"{base}:streamGenerateContent?alt=sse", json=body)
            assert sse.status_code == 200 and b"usageMetadata" in sse.content
    billed(tmp_path, [False, True], shapes.GEMINI_EXPECTED, shapes.GEMINI_COST)


async def test_the_default_openai_route_is_in_by_provider(
    mock_upstream_server: MockUpstream, tmp_path: Path
) -> None:
    async with start_proxy(tmp_path, mock_upstream_server.url) as proxy:
        token = proxy.token({"base_key_env": "OPENAI_KEY"})
        async with proxy.client() as client:
            reply = await client.post(
                "/v1/chat/completions",
                json={"model": "gpt-4o", "messages": HI},
                headers={"authorization": f"Bearer {token}"},
            )
            assert reply.status_code == 200
    session = only_session(tmp_path)
    host = mock_upstream_server.url.split("//", 1)[1]
    assert session["requests"][0]["provider"] == host
    assert session["by_provider"][host]["request_count"] == 1


async def test_an_abandoned_anthropic_stream_keeps_its_cache_figures_and_estimates_the_output(
    tmp_path: Path,
) -> None:
    """The client leaves after three text deltas: the input figures of `message_start` stand,
    the output is estimated from the text relayed, the entry is marked estimated and priced."""
    model = "pace-300-claude"
    body = {"model": model, "max_tokens": 50, "messages": HI, "stream": True}
    async with reporting_proxy(tmp_path, priced=model) as proxy:
        token = proxy.token({"base_key_env": "ANTHROPIC_KEY"})
        async with (
            proxy.client() as client,
            client.stream(
                "POST", "/v1/messages", json=body, headers={"x-api-key": token}
            ) as response,
        ):
            deltas = 0
            async for part in response.aiter_raw():
                deltas += part.count(b"text_delta")
                if deltas >= 3:  # "Mock", " reply", " to:"
                    break
    (entry,) = only_session(tmp_path)["requests"]
    assert entry["provider"] == "reporting"  # the default route, named after its upstream
    assert entry["estimated"] is True and 1 < entry["output_tokens"] < 10
    assert buckets(entry)[2:] == (1800, 300, 0)
    assert entry["input_tokens"] == 2121
    price = 21 * 3 + 1800 * 0.3 + 300 * 3.75 + entry["output_tokens"] * 15
    assert entry["cost_usd"] == pytest.approx(price / 1e6, abs=1e-10)
