"""`proxy.md` §7 scenarios 58-63, §2.15 and D9/D13: streams through the real server.

Streams are relayed as the upstream sends them, usage is read on the side (and the usage-only
chunk the proxy asked for is removed again), a client that goes away cancels the upstream call
and is still accounted, and an upstream that dies mid-stream ends the stream with an error
event in the client's API family. Real time throughout: the paced tests measure arrivals.
"""

from __future__ import annotations

import itertools
import statistics
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx2
import orjson
import trio
from tests.support.mock_upstream import MockUpstream
from tests.support.proxy import Proxy, start_proxy

from tokenomics.upstream.mock import MockProvider

OPENAI = {"base_key_env": "OPENAI_KEY"}
ANTHROPIC = {"base_key_env": "ANTHROPIC_KEY"}
# A system message makes the mock's input count (10) differ from its output count (5).
MESSAGES = [{"role": "system", "content": "be brief"}, {"role": "user", "content": "hello there"}]
MOCK_INPUT, MOCK_OUTPUT = 10, 5  # "be brief"+3, "hello there"+3, +2; "Mock reply to: hello there"


def chat(model: str = "gpt-4o", **extra: Any) -> dict[str, Any]:
    return {"model": model, "messages": MESSAGES, "stream": True, **extra}


def data_payloads(raw: bytes) -> list[str]:
    return [
        line.removeprefix(b"data: ").decode()
        for line in raw.split(b"\n")
        if line.startswith(b"data: ")
    ]


def mock_chunks(mock: MockUpstream, index: int = 0) -> tuple[bytes, ...]:
    """The exact chunks the in-process mock sent for its `index`-th request (a fresh provider
    answers its first request just like the mock did, ids included)."""
    seen = mock.requests[index]
    path, _, query = seen.path.partition("?")
    return MockProvider().respond(seen.method, path, query, seen.headers, seen.body).chunks


async def eventually(condition: Callable[[], bool], seconds: float = 5) -> None:
    """Wait until `condition()` holds: `finish` runs just after the client got the last byte."""
    with trio.fail_after(seconds):
        while not condition():  # noqa: ASYNC110 - server state, no event to wait on
            await trio.sleep(0.01)


def settled(proxy: Proxy, count: int) -> Callable[[], bool]:
    return lambda: proxy.server.stats.totals.request_count >= count


async def test_stream_relays_every_data_payload_in_order_then_done(
    proxy: Proxy, mock_upstream_server: MockUpstream
) -> None:
    """58: 200 text/event-stream, the mock's events byte for byte (minus the usage-only chunk
    the proxy asked for), ending in `data: [DONE]`."""
    token = proxy.token(OPENAI)
    async with (
        proxy.client() as client,
        client.stream("POST", "/v1/chat/completions", json=chat(), headers={"x-api-key": token})
        as response,
    ):  # fmt: skip
        raw = b"".join([part async for part in response.aiter_raw()])
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/event-stream")
    assert len(response.headers.get_list("date")) == 1
    sent = mock_chunks(mock_upstream_server)
    usage_only = [c for c in sent if b'"choices":[]' in c]
    assert len(usage_only) == 1  # the proxy asked for usage...
    assert raw == b"".join(c for c in sent if c not in usage_only)  # ...and removed it again
    payloads = data_payloads(raw)
    assert payloads[-1] == "[DONE]"
    chunks = [orjson.loads(p) for p in payloads[:-1]]
    text = "".join(c["choices"][0]["delta"].get("content", "") for c in chunks)
    assert text == "Mock reply to: hello there"
    assert {c["id"] for c in chunks} == {"chatcmpl-mock-1"}


async def test_stream_with_include_usage_gets_the_usage_chunk_and_stats_match_it(
    proxy: Proxy, mock_upstream_server: MockUpstream
) -> None:
    """59: the client asked for usage, so it gets the chunk; /stats equals the mock's usage."""
    token = proxy.token(OPENAI)
    body = chat(stream_options={"include_usage": True})
    async with proxy.client() as client:
        response = await client.post(
            "/v1/chat/completions", json=body, headers={"x-api-key": token}
        )
        await eventually(settled(proxy, 1))
        stats = (await client.get("/stats")).json()
    assert response.content == b"".join(mock_chunks(mock_upstream_server))
    *_, usage_chunk, done = data_payloads(response.content)
    usage = orjson.loads(usage_chunk)
    assert (usage["choices"], done) == ([], "[DONE]")
    assert usage["usage"]["completion_tokens"] == MOCK_OUTPUT
    assert stats["totals"]["output_tokens"] == usage["usage"]["completion_tokens"]
    assert stats["totals"]["input_tokens"] == usage["usage"]["prompt_tokens"] == MOCK_INPUT
    assert stats["totals"]["error_count"] == 0


async def test_stream_without_include_usage_hides_the_chunk_but_counts_the_mock_usage(
    proxy: Proxy, mock_upstream_server: MockUpstream
) -> None:
    """60 with D13: the proxy adds `include_usage`; the client never sees the usage-only chunk,
    yet /stats and the budget carry the provider's numbers, not an estimate."""
    token = proxy.token(OPENAI)
    async with proxy.client() as client:
        response = await client.post(
            "/v1/chat/completions", json=chat(), headers={"x-api-key": token}
        )
        await eventually(settled(proxy, 1))
        stats = (await client.get("/stats")).json()
    (seen,) = mock_upstream_server.requests
    assert seen.json["stream_options"] == {"include_usage": True}
    chunks = [orjson.loads(p) for p in data_payloads(response.content)[:-1]]
    assert all(c["choices"] for c in chunks) and not any(c.get("usage") for c in chunks)
    totals = stats["totals"]
    assert (totals["input_tokens"], totals["output_tokens"]) == (MOCK_INPUT, MOCK_OUTPUT)
    assert totals["error_count"] == 0
    used = proxy.server.deps.budgets.used(proxy.key.hash(token))
    assert used.tokens == MOCK_INPUT + MOCK_OUTPUT


async def test_stream_options_the_client_set_are_kept_when_usage_is_added(
    proxy: Proxy, mock_upstream_server: MockUpstream
) -> None:
    token = proxy.token(OPENAI)
    body = chat(stream_options={"include_obfuscation": False})
    async with proxy.client() as client:
        response = await client.post(
            "/v1/chat/completions", json=body, headers={"x-api-key": token}
        )
    assert response.status_code == 200
    options = mock_upstream_server.requests[0].json["stream_options"]
    assert options == {"include_obfuscation": False, "include_usage": True}
    assert b'"choices":[]' not in response.content


async def test_stream_without_any_provider_usage_is_estimated_from_the_deltas(
    proxy: Proxy,
) -> None:
    """60 as in the original: no usage from the upstream -> output estimated, > 0."""
    token = proxy.token(OPENAI)
    async with proxy.client() as client:
        response = await client.post(
            "/v1/chat/completions", json=chat("nousage-gpt"), headers={"x-api-key": token}
        )
        await eventually(settled(proxy, 1))
        stats = (await client.get("/stats")).json()
    assert data_payloads(response.content)[-1] == "[DONE]"
    assert stats["totals"]["output_tokens"] > 0
    assert stats["totals"]["input_tokens"] > 0  # the input estimate, since nothing was reported


async def test_stream_request_answered_with_an_upstream_error_is_relayed_as_json(
    proxy: Proxy, mock_upstream_server: MockUpstream
) -> None:
    """61: `fail-429` without retries -> 429 with the mock's JSON error, not SSE."""
    token = proxy.token(OPENAI)
    async with proxy.client() as client:
        response = await client.post(
            "/v1/chat/completions", json=chat("fail-429"), headers={"x-api-key": token}
        )
    assert response.status_code == 429
    assert response.headers["content-type"] == "application/json"
    assert response.content == mock_chunks(mock_upstream_server)[0]
    assert response.json()["error"]["type"] == "rate_limit_error"
    assert len(mock_upstream_server.requests) == 1


async def test_anthropic_stream_is_relayed_unchanged_and_usage_merges_start_and_delta(
    proxy: Proxy, mock_upstream_server: MockUpstream
) -> None:
    """62: `event:` and `data:` lines relayed unchanged; input from `message_start`, output
    from `message_delta` (the ledger is not built yet: /stats shows the same numbers)."""
    token = proxy.token(ANTHROPIC)
    body = {
        "model": "claude-x",
        "max_tokens": 50,
        "system": "be brief",
        "messages": [{"role": "user", "content": "hello there"}],
        "stream": True,
    }
    async with proxy.client() as client:
        response = await client.post("/v1/messages", json=body, headers={"x-api-key": token})
        await eventually(settled(proxy, 1))
        stats = (await client.get("/stats")).json()
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/event-stream")
    assert response.content == b"".join(mock_chunks(mock_upstream_server))
    events = [line for line in response.content.split(b"\n") if line.startswith(b"event: ")]
    assert events[0] == b"event: message_start" and events[-1] == b"event: message_stop"
    start = orjson.loads(data_payloads(response.content)[0])
    delta = next(orjson.loads(p) for p in data_payloads(response.content) if '"message_delta"' in p)
    totals = stats["totals"]
    assert start["message"]["usage"]["output_tokens"] == 1  # provisional, must not win
    assert totals["input_tokens"] == start["message"]["usage"]["input_tokens"] == MOCK_INPUT
    assert totals["output_tokens"] == delta["usage"]["output_tokens"] == MOCK_OUTPUT
    assert mock_upstream_server.requests[0].headers["authorization"] == "Bearer sk-ant-real"


async def test_paced_stream_reaches_the_client_chunk_by_chunk_and_lands_in_the_budget(
    proxy: Proxy,
) -> None:
    """An upstream sending a chunk every 200 ms: each reaches the client when it is sent (not
    all at the end), and the stream's input+output land in the token's budget."""
    token = proxy.token(OPENAI)
    arrivals: list[float] = []
    async with proxy.client() as client:
        start = trio.current_time()
        async with client.stream(
            "POST", "/v1/chat/completions", json=chat("pace-200-gpt"), headers={"x-api-key": token}
        ) as response:
            raw = b""
            async for part in response.aiter_raw():
                arrivals.append(trio.current_time() - start)
                raw += part
        await eventually(settled(proxy, 1))
    # role, 5 words, finish, (usage chunk stripped), [DONE]: 8 events the client sees
    assert data_payloads(raw)[-1] == "[DONE]" and len(data_payloads(raw)) == 8
    assert len(arrivals) == 8, arrivals  # one network read per paced event
    gaps = [b - a for a, b in itertools.pairwise(arrivals)]
    assert arrivals[0] < 0.15  # the first event is not held back
    assert all(0.12 < gap < 0.6 for gap in gaps), gaps
    assert 0.17 < statistics.median(gaps) < 0.3, gaps
    assert arrivals[-1] - arrivals[0] > 1.3  # spread over the stream, not bunched at the end
    stats = proxy.server.stats.snapshot()["totals"]
    assert (stats["input_tokens"], stats["output_tokens"]) == (MOCK_INPUT, MOCK_OUTPUT)
    used = proxy.server.deps.budgets.used(proxy.key.hash(token))
    assert used.tokens == MOCK_INPUT + MOCK_OUTPUT


async def test_client_disconnect_after_the_first_chunk_cancels_upstream_and_is_accounted(
    proxy: Proxy, mock_upstream_server: MockUpstream
) -> None:
    """63: the upstream call is cancelled (the mock sees the disconnect long before its last
    event), `finish` runs exactly once, and the input is still charged."""
    token = proxy.token(OPENAI)
    async with proxy.client() as client:
        async with client.stream(
            "POST", "/v1/chat/completions", json=chat("pace-500-gpt"), headers={"x-api-key": token}
        ) as response:
            async for _ in response.aiter_raw():
                break
        with trio.fail_after(2):  # the full stream would take 4 s
            await mock_upstream_server.wait_idle()
        await eventually(settled(proxy, 1))
        await trio.sleep(0.2)  # a second `finish` would show up here
    (seen,) = mock_upstream_server.requests
    assert seen.disconnected
    totals = proxy.server.stats.snapshot()["totals"]
    assert totals["request_count"] == 1 and totals["error_count"] == 1
    assert totals["input_tokens"] > 0
    used = proxy.server.deps.budgets.used(proxy.key.hash(token))
    assert used.tokens == totals["total_tokens"] > 0
    assert proxy.server.stats.in_flight == 0


async def test_client_disconnect_mid_stream_still_accounts_the_output_seen_so_far(
    proxy: Proxy, mock_upstream_server: MockUpstream
) -> None:
    token = proxy.token(OPENAI)
    async with proxy.client() as client:
        async with client.stream(
            "POST", "/v1/chat/completions", json=chat("pace-300-gpt"), headers={"x-api-key": token}
        ) as response:
            words = 0
            async for part in response.aiter_raw():
                words += part.count(b'"content":"') - part.count(b'"content":""')
                if words == 3:  # "Mock", " reply", " to:"
                    break
        with trio.fail_after(2):
            await mock_upstream_server.wait_idle()
        await eventually(settled(proxy, 1))
    assert mock_upstream_server.requests[0].disconnected
    totals = proxy.server.stats.snapshot()["totals"]
    assert totals["request_count"] == 1
    assert 0 < totals["output_tokens"] < MOCK_OUTPUT + 2  # estimated from the deltas seen
    used = proxy.server.deps.budgets.used(proxy.key.hash(token))
    assert used.tokens == totals["input_tokens"] + totals["output_tokens"]


async def test_upstream_dying_after_the_headers_ends_an_openai_stream_with_an_error_event(
    proxy: Proxy,
) -> None:
    token = proxy.token(OPENAI)
    with trio.fail_after(5):
        async with proxy.client() as client:
            response = await client.post(
                "/v1/chat/completions",
                json=chat("close_after_headers-gpt"),
                headers={"x-api-key": token},
            )
            await eventually(settled(proxy, 1))
    assert response.status_code == 200  # the status was already on its way
    (payload,) = data_payloads(response.content)
    error = orjson.loads(payload)["error"]
    assert (error["type"], error["code"]) == ("tokenomics_error", 502)
    assert error["message"].startswith("stream broken:")
    assert response.content.endswith(b"\n\n")
    assert proxy.server.stats.snapshot()["totals"]["error_count"] == 1


async def test_upstream_dying_after_the_headers_ends_an_anthropic_stream_with_an_error_event(
    proxy: Proxy,
) -> None:
    token = proxy.token(ANTHROPIC)
    body = {
        "model": "close_after_headers-claude",
        "max_tokens": 50,
        "messages": [{"role": "user", "content": "hi"}],
        "stream": True,
    }
    with trio.fail_after(5):
        async with proxy.client() as client:
            response = await client.post("/v1/messages", json=body, headers={"x-api-key": token})
    assert response.status_code == 200
    event, data, *rest = response.content.split(b"\n")
    assert event == b"event: error" and rest == [b"", b""]
    error = orjson.loads(data.removeprefix(b"data: "))
    assert error["type"] == "error" and error["error"]["type"] == "api_error"
    assert error["error"]["message"].startswith("stream broken:")


async def test_idle_upstream_stream_is_cut_with_an_error_event_after_the_idle_timeout(
    mock_upstream_server: MockUpstream, tmp_path: Path
) -> None:
    """D9: streams use an idle-read timeout (here 1 s against a 3 s pause), never a hang."""
    async with start_proxy(
        tmp_path, mock_upstream_server.url, env={"TOKENOMICS_SERVER_STREAM_IDLE_TIMEOUT": "1"}
    ) as proxy:
        token = proxy.token(OPENAI)
        with trio.fail_after(4):
            async with proxy.client() as client:
                response = await client.post(
                    "/v1/chat/completions",
                    json=chat("pace-3000-gpt"),
                    headers={"x-api-key": token},
                )
    payloads = data_payloads(response.content)
    assert "Mock" not in "".join(payloads[:-1])
    error = orjson.loads(payloads[-1])["error"]
    assert error["code"] == 504 and "no data from upstream for 1s" in error["message"]


async def test_shutdown_cuts_a_stream_longer_than_the_grace_period_and_returns(
    tmp_path: Path,
) -> None:
    """The server stops within its grace period even with a stream still running: the request
    is cut, its disconnect watcher (in the request's own nursery) is cancelled, and the
    exchange is still recorded once."""
    async with start_proxy(tmp_path, env={"TOKENOMICS_SERVER_SHUTDOWN_GRACE": "1"}) as proxy:
        token = proxy.token(OPENAI)
        received: list[bytes] = []

        async def stream_forever() -> None:
            async with proxy.client() as client:
                request = chat("pace-1000-gpt")  # 8 events a second apart: ~7 s
                try:
                    async with client.stream(
                        "POST", "/v1/chat/completions", json=request,
                        headers={"x-api-key": token},
                    ) as response:  # fmt: skip
                        async for part in response.aiter_raw():
                            received.append(part)
                except httpx2.TransportError:  # cut by the shutdown: expected
                    pass

        async with trio.open_nursery() as nursery:
            nursery.start_soon(stream_forever)
            await eventually(lambda: bool(received))  # the stream is under way
            asked = trio.current_time()
            proxy.server.shutdown()
            with trio.fail_after(5):
                await proxy.server.stopped.wait()
            assert trio.current_time() - asked < 3  # the 1 s grace, not the ~7 s stream
    assert b"[DONE]" not in b"".join(received)
    assert proxy.server.stats.snapshot()["totals"]["request_count"] == 1
