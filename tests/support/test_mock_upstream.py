"""The in-process mock upstream: recording, /_requests, server-side steering, delays, disconnects."""

from __future__ import annotations

import contextlib
import gzip
import itertools
from typing import Any

import anthropic
import httpx2
import openai
import pytest
import trio
from tests.support.mock_upstream import MockUpstream, mock_upstream

CHAT = {"model": "gpt-4o", "messages": [{"role": "user", "content": "hello there"}]}


def chat(model: str, **extra: Any) -> dict[str, Any]:
    return {**CHAT, "model": model, **extra}


async def test_requests_are_recorded_with_path_query_headers_body_and_json() -> None:
    async with mock_upstream() as mock, httpx2.AsyncClient() as client:
        assert mock.url.startswith("http://127.0.0.1:")
        before = trio.current_time()
        response = await client.post(
            f"{mock.url}/v1/chat/completions?foo=bar", json=CHAT, headers={"X-Team-Id": "t1"}
        )
        assert response.status_code == 200
        assert response.headers["x-request-id"] == "req_mock_1"
        [record] = mock.requests
        assert (record.method, record.path) == ("POST", "/v1/chat/completions?foo=bar")
        assert record.headers["x-team-id"] == "t1"
        assert record.json == CHAT
        assert record.body == response.request.content
        assert record.time >= before
        assert not record.disconnected


async def test_requests_endpoint_lists_and_clears_without_recording_itself() -> None:
    async with mock_upstream() as mock, httpx2.AsyncClient() as client:
        await client.post(f"{mock.url}/v1/messages", content=b"{broken", headers={"A": "B"})
        listed = (await client.get(f"{mock.url}/_requests")).json()
        assert len(listed) == 1
        assert listed[0]["method"] == "POST"
        assert listed[0]["path"] == "/v1/messages"
        assert listed[0]["headers"]["a"] == "B"
        assert (listed[0]["body"], listed[0]["json"]) == ("{broken", None)
        assert (await client.delete(f"{mock.url}/_requests")).status_code == 200
        assert (await client.get(f"{mock.url}/_requests")).json() == []
        assert mock.requests == []


async def test_clear_empties_the_record_and_resets_max_in_flight() -> None:
    async with mock_upstream() as mock, httpx2.AsyncClient() as client:
        await client.post(f"{mock.url}/v1/chat/completions", json=CHAT)
        assert (len(mock.requests), mock.max_in_flight) == (1, 1)
        mock.clear()
        assert (len(mock.requests), mock.max_in_flight) == (0, 0)


async def test_gzip_model_sends_a_gzip_encoded_json_body() -> None:
    async with mock_upstream() as mock, httpx2.AsyncClient() as client:
        url = f"{mock.url}/v1/chat/completions"
        async with client.stream("POST", url, json=chat("gzip-gpt")) as response:
            raw = b"".join([part async for part in response.aiter_raw()])
        assert response.headers["content-encoding"] == "gzip"
        assert int(response.headers["content-length"]) == len(raw)
        assert b"Mock reply to: hello there" in gzip.decompress(raw)
        streamed = await client.post(url, json=chat("gzip-gpt", stream=True))
        assert "content-encoding" not in streamed.headers


async def test_garbage_model_answers_200_with_a_body_that_is_not_json() -> None:
    async with mock_upstream() as mock, httpx2.AsyncClient() as client:
        response = await client.post(f"{mock.url}/v1/chat/completions", json=chat("garbage-x"))
        assert response.status_code == 200
        with pytest.raises(ValueError):
            response.json()


async def test_close_after_headers_model_drops_the_connection_after_the_status() -> None:
    async with mock_upstream() as mock, httpx2.AsyncClient() as client:
        url = f"{mock.url}/v1/chat/completions"
        async with client.stream("POST", url, json=chat("close_after_headers-x")) as response:
            assert response.status_code == 200
            with pytest.raises(httpx2.RemoteProtocolError):
                await response.aread()
        assert mock.in_flight == 0


async def test_slow_model_delays_the_first_byte(autojump_clock: trio.abc.Clock) -> None:
    async with mock_upstream() as mock, httpx2.AsyncClient(timeout=60) as client:
        start = trio.current_time()
        response = await client.post(f"{mock.url}/v1/chat/completions", json=chat("slow-2500"))
        assert response.status_code == 200
        assert 2.5 <= trio.current_time() - start < 3


async def test_pace_model_spaces_the_stream_chunks(autojump_clock: trio.abc.Clock) -> None:
    async with mock_upstream() as mock, httpx2.AsyncClient(timeout=60) as client:
        url = f"{mock.url}/v1/chat/completions"
        arrivals = []
        async with client.stream("POST", url, json=chat("pace-500", stream=True)) as response:
            async for _ in response.aiter_raw():
                arrivals.append(trio.current_time())
        gaps = [b - a for a, b in itertools.pairwise(arrivals)]
        # role, 4 words, finish, [DONE] = 7 events, so at least 6 paced gaps of 0.5 s
        assert len(arrivals) >= 7
        assert sum(gaps) == pytest.approx(0.5 * (len(arrivals) - 1), abs=0.5)
        assert all(gap <= 0.5 + 0.01 for gap in gaps)


async def test_client_disconnect_mid_stream_is_recorded_and_sending_stops(
    autojump_clock: trio.abc.Clock,
) -> None:
    async with mock_upstream() as mock, httpx2.AsyncClient(timeout=60) as client:
        url = f"{mock.url}/v1/chat/completions"
        async with client.stream("POST", url, json=chat("pace-1000", stream=True)) as response:
            async for _ in response.aiter_raw():
                break
        with trio.fail_after(5):
            await mock.wait_idle()
        [record] = mock.requests
        assert record.disconnected
        assert trio.current_time() - record.time < 3  # the 7 paced events were not all sent


async def test_finished_streams_and_buffered_replies_are_not_marked_disconnected() -> None:
    async with mock_upstream() as mock, httpx2.AsyncClient() as client:
        url = f"{mock.url}/v1/chat/completions"
        for body in (chat("pace-1", stream=True), CHAT, chat("close_after_headers")):
            async with client.stream("POST", url, json=body) as response:
                with contextlib.suppress(httpx2.RemoteProtocolError):
                    await response.aread()
        assert [r.disconnected for r in mock.requests] == [False, False, False]


async def test_max_in_flight_counts_concurrent_requests(autojump_clock: trio.abc.Clock) -> None:
    async with mock_upstream() as mock, httpx2.AsyncClient(timeout=60) as client:

        async def one() -> None:
            response = await client.post(f"{mock.url}/v1/chat/completions", json=chat("slow-500"))
            assert response.status_code == 200

        async with trio.open_nursery() as nursery:
            for _ in range(5):
                nursery.start_soon(one)
        assert (mock.max_in_flight, mock.in_flight, len(mock.requests)) == (5, 0, 5)
        await one()
        assert mock.max_in_flight == 5


async def test_fixture_yields_a_started_server(mock_upstream_server: MockUpstream) -> None:
    async with httpx2.AsyncClient() as client:
        response = await client.get(f"{mock_upstream_server.url}/v1/models")
    assert response.json()["data"][0]["id"] == "mock-gpt"
    assert mock_upstream_server.requests[0].path == "/v1/models"


async def test_openai_sdk_talks_to_the_mock_end_to_end() -> None:
    async with mock_upstream() as mock:
        async with openai.AsyncOpenAI(
            base_url=f"{mock.url}/v1", api_key="sk-x", max_retries=0
        ) as client:
            completion = await client.chat.completions.create(
                model="gpt-4o", messages=[{"role": "user", "content": "hi"}]
            )
            assert completion.choices[0].message.content == "Mock reply to: hi"
            stream = await client.chat.completions.create(
                model="gpt-4o", messages=[{"role": "user", "content": "hi"}], stream=True,
                stream_options={"include_usage": True},
            )  # fmt: skip
            chunks = [chunk async for chunk in stream]
            assert chunks[-1].usage is not None
            assert chunks[-1].usage.completion_tokens == 4
            response = await client.responses.create(model="gpt-4o", input="hi")
            assert response.output_text == "Mock reply to: hi"
            embedded = await client.embeddings.create(model="e", input="hi")
            assert len(embedded.data[0].embedding) == 8
            with pytest.raises(openai.RateLimitError):
                await client.chat.completions.create(model="fail-429", messages=[])
        assert mock.requests[0].headers["authorization"] == "Bearer sk-x"


async def test_anthropic_sdk_talks_to_the_mock_end_to_end() -> None:
    async with mock_upstream() as mock:
        async with anthropic.AsyncAnthropic(
            base_url=mock.url, api_key="sk-ant", max_retries=0
        ) as client:
            messages: Any = [{"role": "user", "content": "hi"}]
            message = await client.messages.create(
                model="claude-x", max_tokens=9, messages=messages
            )
            assert message.content[0].type == "text"
            assert message.content[0].text == "Mock reply to: hi"
            async with client.messages.stream(
                model="claude-x", max_tokens=9, messages=messages
            ) as stream:
                text = "".join([t async for t in stream.text_stream])
                final = await stream.get_final_message()
            assert text == "Mock reply to: hi"
            assert (final.usage.input_tokens, final.usage.output_tokens) == (4, 4)
            with pytest.raises(anthropic.InternalServerError):
                await client.messages.create(model="fail-529", max_tokens=9, messages=messages)
        # this SDK version sends its api_key as a bearer token, not as x-api-key
        assert mock.requests[0].headers["authorization"] == "Bearer sk-ant"
