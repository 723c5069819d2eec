"""What a hostile client can make the server hold, through the real server (issue 12, item 4):
the token is checked on the request's head before any body byte is read; a body must arrive
within `server.body_timeout`; the bodies held in memory at once are capped
(`server.max_buffered_mb`); a connection with no request under way closes after
`server.idle_timeout`; unauthenticated uploads leave memory at its baseline."""

from __future__ import annotations

import gc
import json
import os
from collections.abc import AsyncIterator
from contextlib import suppress

import httpx2
import pytest
import trio
import trio.testing
from tests.support.mock_upstream import MockUpstream
from tests.support.proxy import Proxy
from tests.support.raw_wire import (
    OPENAI,
    ROUTES,
    Answer,
    answer,
    closes,
    connection,
    error_message,
    head,
)

from tokenomics.pipeline.body import MIB, Bodies


@pytest.fixture
def autojump_clock() -> trio.testing.MockClock:
    return trio.testing.MockClock(autojump_threshold=0)


def bodies(proxy: Proxy) -> Bodies:
    assert proxy.server.app is not None
    return proxy.server.app.requests.bodies


# --- the token before the body (item 4) -------------------------------------------------------


@pytest.mark.parametrize(("path", "family"), ROUTES)
@pytest.mark.parametrize("token", ["", "tkn_not-a-real-token"])
async def test_a_request_without_a_valid_token_is_refused_before_its_body_is_read(
    limited: Proxy, path: str, family: str, token: str, autojump_clock: trio.abc.Clock
) -> None:
    """The 401 comes from the head alone (no body byte sent), in the route's family, and the
    connection closes: the announced 9.5 MiB are never read."""
    async with connection(limited) as stream:
        await stream.send_all(head(path, token, content_length=str(9_961_472)))
        with trio.fail_after(1):
            refused = await answer(stream)
            await closes(stream)
    assert refused.status == 401
    assert refused.headers["connection"] == "close"
    assert error_message(refused, family) in {
        "missing or invalid token (use x-api-key header or Authorization bearer token)",
        "invalid token",
    }
    assert limited.server.stats.in_flight == 0


async def test_a_bodiless_401_keeps_the_connection(limited: Proxy) -> None:
    async with connection(limited) as stream:
        for _ in range(2):
            await stream.send_all(b"GET /v1/models HTTP/1.1\r\nhost: proxy\r\n\r\n")
            refused = await answer(stream)
            assert refused.status == 401 and "connection" not in refused.headers


# --- the body timeout (item 4) ----------------------------------------------------------------


@pytest.mark.parametrize(("path", "family"), ROUTES)
async def test_a_body_dribbled_slower_than_the_timeout_gets_408_and_the_connection_closes(
    limited: Proxy, path: str, family: str, autojump_clock: trio.abc.Clock
) -> None:
    token = limited.token(OPENAI)
    async with connection(limited) as stream:
        await stream.send_all(head(path, token, content_length="100"))
        started = trio.current_time()
        async with trio.open_nursery() as nursery:

            async def dribble() -> None:
                for _ in range(100):  # a byte every 10 s: 1000 s for the whole body
                    await trio.sleep(10)
                    await stream.send_all(b" ")

            nursery.start_soon(dribble)
            timed_out = await answer(stream)
            await closes(stream)
            nursery.cancel_scope.cancel()
    assert 30 <= trio.current_time() - started < 31
    assert timed_out.status == 408 and timed_out.headers["connection"] == "close"
    assert error_message(timed_out, family) == "request body not received within 30 s"
    assert bodies(limited).held == 0


async def test_a_body_within_the_timeout_is_served(
    limited: Proxy, mock_upstream_server: MockUpstream, autojump_clock: trio.abc.Clock
) -> None:
    token = limited.token(OPENAI)
    body = b'{"model": "gpt-4o", "messages": [{"role": "user", "content": "hi"}]}'
    async with connection(limited) as stream:
        await stream.send_all(head("/v1/chat/completions", token, content_length=str(len(body))))
        for i in range(0, len(body), 10):  # 10 bytes a second: slow, but within 30 s
            await trio.sleep(1)
            await stream.send_all(body[i : i + 10])
        served = await answer(stream)
    assert served.status == 200, served.body
    assert len(mock_upstream_server.requests) == 1


# --- the cap on bodies in memory (item 4) -----------------------------------------------------


def big_chat(model: str) -> bytes:
    """About 600 KiB: one fits under the 1 MiB cap, two do not."""
    text = "word " * 120_000
    return json.dumps({"model": model, "messages": [{"role": "user", "content": text}]}).encode()


async def chunked(data: bytes) -> AsyncIterator[bytes]:
    for i in range(0, len(data), 65536):
        yield data[i : i + 65536]


@pytest.mark.parametrize("framing", ["content-length", "chunked"])
async def test_bodies_past_the_memory_cap_get_503_with_retry_after_until_one_ends(
    limited: Proxy, framing: str, autojump_clock: trio.abc.Clock
) -> None:
    token = limited.token(OPENAI)
    held = bodies(limited)
    headers = {"x-api-key": token, "content-type": "application/json"}
    first: list[httpx2.Response] = []
    async with limited.client() as client, trio.open_nursery() as nursery:

        async def hold() -> None:  # its upstream answers after 5 s; its body is held till then
            first.append(await client.post("/v1/chat/completions", content=big_chat("slow-5000")))

        client.headers.update(headers)
        nursery.start_soon(hold)
        while held.held == 0:  # noqa: ASYNC110 - server state, no event to wait on
            await trio.sleep(0.01)
        second = big_chat("gpt-4o")
        content = second if framing == "content-length" else chunked(second)
        busy = await client.post("/v1/chat/completions", content=content)
    after = None
    async with limited.client(headers=headers) as client:
        after = await client.post("/v1/chat/completions", content=big_chat("gpt-4o"))
    assert busy.status_code == 503 and busy.headers["retry-after"] == "1"
    message = busy.json()["error"]["message"]
    assert message == "too many request bodies in memory at once (limit 1 MiB); retry later"
    assert first[0].status_code == 200 and after.status_code == 200
    assert held.held == 0


# --- idle connections (item 4) ----------------------------------------------------------------


async def test_an_idle_keep_alive_connection_closes_after_the_idle_timeout(
    limited: Proxy, autojump_clock: trio.abc.Clock
) -> None:
    async with connection(limited) as stream:
        await stream.send_all(b"GET /ping HTTP/1.1\r\nhost: proxy\r\n\r\n")
        assert (await stream.receive_some()).startswith(b"HTTP/1.1 200")
        answered = trio.current_time()
        await closes(stream)
    assert 20 <= trio.current_time() - answered < 21


async def test_a_client_that_never_finishes_its_head_is_dropped(
    limited: Proxy, autojump_clock: trio.abc.Clock
) -> None:
    async with connection(limited) as stream:
        connected = trio.current_time()
        await stream.send_all(b"POST /v1/chat/completions HTTP/1.1\r\nhost: proxy\r\n")
        for _ in range(3):  # a header line now and then never completes the head
            await trio.sleep(5)
            await stream.send_all(b"x-slow: 1\r\n")
        await closes(stream)
    assert 20 <= trio.current_time() - connected < 21


# --- memory under unauthenticated load (item 4) ----------------------------------------------


def rss_mib() -> float:
    """This process's resident memory (the server runs in it)."""
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / MIB


async def unauthenticated_upload(proxy: Proxy, body: bytes) -> Answer:
    """An attacker's request: the head and the whole body at once, the reply read meanwhile."""
    async with connection(proxy) as stream, trio.open_nursery() as nursery:

        async def upload() -> None:
            with suppress(trio.BrokenResourceError, trio.ClosedResourceError):
                await stream.send_all(
                    head("/v1/chat/completions", "", content_length=str(len(body)))
                )
                await stream.send_all(body)

        nursery.start_soon(upload)
        refused = await answer(stream)
        nursery.cancel_scope.cancel()
        return refused


@pytest.mark.slow
async def test_twenty_unauthenticated_large_bodies_leave_memory_at_its_baseline(
    proxy: Proxy,
) -> None:
    """The issue's load: 20 concurrent unauthenticated 9.5 MiB bodies took the server from 168
    to 369 MB, and it stayed there. Now no body is buffered: the peak and the after-load
    resident memory stay within a few MiB of the baseline (measured: see the report)."""
    body = b"x" * int(9.5 * MIB)
    gc.collect()
    before = peak = rss_mib()
    statuses: list[int] = []

    async def sample() -> None:
        nonlocal peak
        while True:
            peak = max(peak, rss_mib())
            await trio.sleep(0.005)

    async with trio.open_nursery() as sampler:
        sampler.start_soon(sample)

        async def one() -> None:
            statuses.append((await unauthenticated_upload(proxy, body)).status)

        async with trio.open_nursery() as nursery:
            for _ in range(20):
                nursery.start_soon(one)
        sampler.cancel_scope.cancel()
    gc.collect()
    after = rss_mib()
    print(f"RSS MiB: before {before:.1f}, peak {peak:.1f}, after {after:.1f}")
    assert statuses == [401] * 20
    assert peak - before < 40 and after - before < 20
