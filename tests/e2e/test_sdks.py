"""The real `openai` and `anthropic` SDKs against the proxy, a wrapper token as their api key.

Chat (buffered, streamed with and without `include_usage`), the Responses API, Anthropic
messages (buffered and `messages.stream`), and errors surfacing as the SDKs' own exceptions.
The upstream is the in-process mock; /stats must carry the mock's own usage figures.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from typing import Any

import anthropic
import openai
import pytest
import trio
from tests.support.mock_upstream import MockUpstream
from tests.support.proxy import Proxy

HI: Any = [{"role": "user", "content": "hi"}]
# the mock: input = words + 3 per message ("hi" -> 4), output = "Mock reply to: hi" -> 4
MOCK_INPUT, MOCK_OUTPUT = 4, 4


async def eventually(condition: Callable[[], bool], seconds: float = 5) -> None:
    with trio.fail_after(seconds):
        while not condition():  # noqa: ASYNC110 - server state, no event to wait on
            await trio.sleep(0.01)


async def totals(proxy: Proxy, requests: int) -> dict[str, Any]:
    """/stats totals once `requests` exchanges were finished (recorded just after the reply)."""
    await eventually(lambda: proxy.server.stats.totals.request_count >= requests)
    return proxy.server.stats.snapshot()["totals"]


@pytest.fixture
async def oai(proxy: Proxy) -> AsyncIterator[openai.AsyncOpenAI]:
    token = proxy.token({"base_key_env": "OPENAI_KEY"})
    async with openai.AsyncOpenAI(
        base_url=f"{proxy.url}/v1", api_key=token, max_retries=0, timeout=30
    ) as client:
        yield client


@pytest.fixture
async def claude(proxy: Proxy) -> AsyncIterator[anthropic.AsyncAnthropic]:
    token = proxy.token({"base_key_env": "ANTHROPIC_KEY"})
    async with anthropic.AsyncAnthropic(
        base_url=proxy.url, api_key=token, max_retries=0, timeout=30
    ) as client:
        yield client


# --- OpenAI chat -----------------------------------------------------------------------------


async def test_openai_chat_buffered_works_and_the_real_key_goes_upstream(
    oai: openai.AsyncOpenAI, proxy: Proxy, mock_upstream_server: MockUpstream
) -> None:
    completion = await oai.chat.completions.create(model="gpt-4o", messages=HI)
    assert completion.choices[0].message.content == "Mock reply to: hi"
    assert completion.usage is not None and completion.usage.completion_tokens == MOCK_OUTPUT
    (seen,) = mock_upstream_server.requests
    assert seen.headers["authorization"] == "Bearer sk-real"
    assert oai.api_key not in str(seen.headers)
    stats = await totals(proxy, 1)
    assert (stats["input_tokens"], stats["output_tokens"], stats["error_count"]) == (
        MOCK_INPUT,
        MOCK_OUTPUT,
        0,
    )


async def test_openai_chat_stream_without_include_usage_never_sees_the_usage_chunk(
    oai: openai.AsyncOpenAI, proxy: Proxy, mock_upstream_server: MockUpstream
) -> None:
    stream = await oai.chat.completions.create(model="gpt-4o", messages=HI, stream=True)
    chunks = [chunk async for chunk in stream]
    assert "".join(c.choices[0].delta.content or "" for c in chunks) == "Mock reply to: hi"
    assert all(c.choices for c in chunks)  # no usage-only chunk (empty choices)
    assert all(c.usage is None for c in chunks)
    assert mock_upstream_server.requests[0].json["stream_options"] == {"include_usage": True}
    stats = await totals(proxy, 1)
    assert (stats["input_tokens"], stats["output_tokens"]) == (MOCK_INPUT, MOCK_OUTPUT)
    assert stats["error_count"] == 0


async def test_openai_chat_stream_with_include_usage_gets_the_usage_chunk(
    oai: openai.AsyncOpenAI, proxy: Proxy
) -> None:
    stream = await oai.chat.completions.create(
        model="gpt-4o", messages=HI, stream=True, stream_options={"include_usage": True}
    )
    chunks = [chunk async for chunk in stream]
    last = chunks[-1]
    assert last.choices == [] and last.usage is not None
    assert (last.usage.prompt_tokens, last.usage.completion_tokens) == (MOCK_INPUT, MOCK_OUTPUT)
    stats = await totals(proxy, 1)
    assert stats["output_tokens"] == last.usage.completion_tokens
    assert stats["input_tokens"] == last.usage.prompt_tokens


async def test_openai_stream_broken_by_the_upstream_raises_an_api_error(
    oai: openai.AsyncOpenAI, proxy: Proxy
) -> None:
    with trio.fail_after(5):
        stream = await oai.chat.completions.create(
            model="close_after_headers-gpt", messages=HI, stream=True
        )
        with pytest.raises(openai.APIError, match="stream broken"):
            async for _ in stream:
                pass
    assert (await totals(proxy, 1))["error_count"] == 1


async def test_openai_errors_are_the_sdk_exceptions(oai: openai.AsyncOpenAI, proxy: Proxy) -> None:
    with pytest.raises(openai.RateLimitError):
        await oai.chat.completions.create(model="fail-429", messages=HI)
    with pytest.raises(openai.RateLimitError):
        await oai.chat.completions.create(model="fail-429", messages=HI, stream=True)
    async with openai.AsyncOpenAI(
        base_url=f"{proxy.url}/v1", api_key="tkn_not-a-token", max_retries=0
    ) as stranger:
        with pytest.raises(openai.AuthenticationError) as caught:
            await stranger.chat.completions.create(model="gpt-4o", messages=HI)
    assert caught.value.body == {
        "message": "invalid token",
        "type": "tokenomics_error",
        "code": 401,
    }


# --- OpenAI Responses ------------------------------------------------------------------------


async def test_openai_responses_buffered_and_streamed(
    oai: openai.AsyncOpenAI, proxy: Proxy, mock_upstream_server: MockUpstream
) -> None:
    response = await oai.responses.create(model="gpt-4o", input="hi")
    assert response.output_text == "Mock reply to: hi"
    assert response.usage is not None and response.usage.output_tokens == MOCK_OUTPUT
    async with oai.responses.stream(model="gpt-4o", input="hi") as stream:
        deltas = [e.delta async for e in stream if e.type == "response.output_text.delta"]
        final = await stream.get_final_response()
    assert "".join(deltas) == final.output_text == "Mock reply to: hi"
    assert [r.path for r in mock_upstream_server.requests] == ["/v1/responses"] * 2
    stats = await totals(proxy, 2)
    assert final.usage is not None
    assert stats["output_tokens"] == response.usage.output_tokens + final.usage.output_tokens
    assert stats["input_tokens"] == response.usage.input_tokens + final.usage.input_tokens
    assert stats["error_count"] == 0


# --- Anthropic -------------------------------------------------------------------------------


async def test_anthropic_messages_buffered_and_streamed(
    claude: anthropic.AsyncAnthropic, proxy: Proxy, mock_upstream_server: MockUpstream
) -> None:
    message = await claude.messages.create(model="claude-x", max_tokens=50, messages=HI)
    assert message.content[0].type == "text" and message.content[0].text == "Mock reply to: hi"
    async with claude.messages.stream(model="claude-x", max_tokens=50, messages=HI) as stream:
        text = "".join([t async for t in stream.text_stream])
        final = await stream.get_final_message()
    assert text == "Mock reply to: hi"
    assert (final.usage.input_tokens, final.usage.output_tokens) == (MOCK_INPUT, MOCK_OUTPUT)
    for seen in mock_upstream_server.requests:
        assert seen.path == "/v1/messages"
        assert seen.headers["authorization"] == "Bearer sk-ant-real"
        assert claude.api_key not in str(seen.headers)
    stats = await totals(proxy, 2)
    assert stats["input_tokens"] == message.usage.input_tokens + final.usage.input_tokens
    assert stats["output_tokens"] == message.usage.output_tokens + final.usage.output_tokens
    assert stats["error_count"] == 0


async def test_anthropic_stream_broken_by_the_upstream_raises_in_the_sdk(
    claude: anthropic.AsyncAnthropic,
) -> None:
    with trio.fail_after(5), pytest.raises(anthropic.APIStatusError, match="stream broken"):
        async with claude.messages.stream(
            model="close_after_headers-claude", max_tokens=50, messages=HI
        ) as stream:
            async for _ in stream:
                pass


async def test_anthropic_errors_come_in_anthropic_format(
    claude: anthropic.AsyncAnthropic, proxy: Proxy
) -> None:
    with pytest.raises(anthropic.InternalServerError):
        await claude.messages.create(model="fail-529", max_tokens=50, messages=HI)
    async with anthropic.AsyncAnthropic(
        base_url=proxy.url, api_key="tkn_not-a-token", max_retries=0
    ) as stranger:
        with pytest.raises(anthropic.AuthenticationError) as caught:
            await stranger.messages.create(model="claude-x", max_tokens=50, messages=HI)
    assert caught.value.body == {
        "type": "error",
        "error": {"type": "authentication_error", "message": "invalid token"},
    }
