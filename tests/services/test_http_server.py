"""hypercorn with our keep-alive timer (`KeepAliveTimer`): idle connections still close after
the keep-alive timeout, a request longer than that timeout is never cut, the timer restarts
for each request of a connection, and a client leaving mid-request leaves nothing behind.
With our protocol (`CoalescingH11Protocol`): a reply whose parts are ready is one write, a
stream's head and chunks still go out while it waits for more."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from email.utils import parsedate_to_datetime
from typing import Any

import hypercorn.protocol
import hypercorn.trio.tcp_server
import pytest
import trio
import trio.testing

from tokenomics.services.http_server import (
    CoalescingH11Protocol,
    KeepAliveTimer,
    serve,
    server_config,
    use_coalescing_writes,
    use_keep_alive_timer,
)

KEEP_ALIVE = 5.0
REQUEST = b"GET /slow HTTP/1.1\r\nhost: test\r\n\r\n"
FAST = b"GET / HTTP/1.1\r\nhost: test\r\n\r\n"


@pytest.fixture
def autojump_clock() -> trio.testing.MockClock:
    return trio.testing.MockClock(autojump_threshold=0)


async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    if scope["type"] == "lifespan":
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
            else:
                await send({"type": "lifespan.shutdown.complete"})
                return
    await receive()
    if scope["path"] == "/ready":  # no length: chunked, every part ready at once
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"ok", "more_body": True})
        await send({"type": "http.response.body", "body": b""})
        return
    if scope["path"] == "/stream":  # no length: chunked, its chunks come late
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await trio.sleep(KEEP_ALIVE / 2)
        await send({"type": "http.response.body", "body": b"ok", "more_body": True})
        await trio.sleep(KEEP_ALIVE / 2)
        await send({"type": "http.response.body", "body": b""})
        return
    if scope["path"] == "/slow":
        await trio.sleep(3 * KEEP_ALIVE)  # longer than the keep-alive timeout
    headers = [(b"content-length", b"2")]
    if scope["path"] == "/headless":  # a sized head, then the app ends without its body
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        return
    await send({"type": "http.response.start", "status": 200, "headers": headers})
    await send({"type": "http.response.body", "body": b"ok"})


class Server:
    def __init__(self, url: str, stop: trio.Event) -> None:
        self.port = int(url.rsplit(":", 1)[1])
        self.stop = stop


async def start(nursery: trio.Nursery) -> Server:
    config = server_config(
        host="127.0.0.1", http_port=0, https_port=0, tls=None, grace=1, ephemeral=True
    )
    config.keep_alive_timeout = KEEP_ALIVE
    stop = trio.Event()
    urls = await nursery.start(lambda task_status: serve(
        app, config, shutdown_trigger=stop.wait, task_status=task_status
    ))  # fmt: skip
    return Server(urls[0], stop)


async def response(stream: trio.SocketStream) -> bytes:
    data = b""
    while not data.endswith(b"ok"):
        chunk = await stream.receive_some()
        assert chunk, f"closed after {data!r}"
        data += chunk
    return data


async def ask(stream: trio.SocketStream, request: bytes) -> None:
    await stream.send_all(request)
    assert (await response(stream)).startswith(b"HTTP/1.1 200")


async def closed_after_keep_alive(stream: trio.SocketStream) -> None:
    """The server closes the idle connection once the keep-alive timeout has passed."""
    answered = trio.current_time()
    assert await stream.receive_some() == b""
    assert KEEP_ALIVE <= trio.current_time() - answered < KEEP_ALIVE + 1


def test_hypercorn_takes_our_protocol() -> None:
    assert use_coalescing_writes()
    assert hypercorn.protocol.H11Protocol is CoalescingH11Protocol  # type: ignore[attr-defined]


@asynccontextmanager
async def connected() -> AsyncIterator[trio.SocketStream]:
    """A connection to a new server; closed, and the server stopped, after."""
    async with trio.open_nursery() as nursery:
        server = await start(nursery)
        stream = await trio.open_tcp_stream("127.0.0.1", server.port)
        yield stream
        await stream.aclose()
        server.stop.set()


@asynccontextmanager
async def requested(path: str) -> AsyncIterator[trio.SocketStream]:
    """A connection to a new server that has asked for `path`."""
    async with connected() as stream:
        await stream.send_all(f"GET {path} HTTP/1.1\r\nhost: test\r\n\r\n".encode())
        yield stream


async def test_a_sized_reply_is_one_write_and_a_head_reply_still_gets_its_head() -> None:
    async with requested("/") as stream:
        first = await stream.receive_some(65536)
        assert first.startswith(b"HTTP/1.1 200") and first.endswith(b"\r\n\r\nok")
        await stream.send_all(b"HEAD / HTTP/1.1\r\nhost: test\r\n\r\n")
        head = await stream.receive_some(65536)
        assert head.startswith(b"HTTP/1.1 200") and head.endswith(b"\r\n\r\n")
        assert b"content-length: 2\r\n" in head
        await ask(stream, FAST)  # the connection is still in step


async def test_a_held_head_still_goes_out_when_the_app_ends_without_its_body() -> None:
    async with requested("/headless") as stream:
        received = b""
        while chunk := await stream.receive_some(65536):
            received += chunk
        assert received.startswith(b"HTTP/1.1 200") and received.endswith(b"\r\n\r\n")


async def test_a_stream_ready_at_once_is_one_write() -> None:
    async with requested("/ready") as stream:
        first = await stream.receive_some(65536)
        assert first.startswith(b"HTTP/1.1 200") and first.endswith(b"2\r\nok\r\n0\r\n\r\n")


async def test_a_waiting_streams_head_and_chunks_go_out_without_waiting_for_more(
    autojump_clock: trio.abc.Clock,
) -> None:
    async with requested("/stream") as stream:
        started = trio.current_time()
        head = await stream.receive_some(65536)
        assert head.startswith(b"HTTP/1.1 200") and head.endswith(b"\r\n\r\n")
        assert trio.current_time() - started < KEEP_ALIVE / 2  # not held for the chunk
        assert await stream.receive_some(65536) == b"2\r\nok\r\n"
        assert trio.current_time() - started < KEEP_ALIVE  # not held for the end
        assert await stream.receive_some(65536) == b"0\r\n\r\n"


def test_hypercorn_takes_our_timer() -> None:
    assert use_keep_alive_timer()
    assert hypercorn.trio.tcp_server.TrioSingleTask is KeepAliveTimer  # type: ignore[attr-defined]


async def test_an_idle_connection_closes_after_the_keep_alive_timeout(
    autojump_clock: trio.abc.Clock,
) -> None:
    async with connected() as stream:
        await ask(stream, FAST)
        await closed_after_keep_alive(stream)


async def test_a_request_longer_than_the_timeout_is_answered_and_the_timer_restarts(
    autojump_clock: trio.abc.Clock,
) -> None:
    async with connected() as stream:
        for _ in range(3):  # slow, fast, slow on one connection: each timer is a fresh one
            await ask(stream, REQUEST)
            await ask(stream, FAST)
        await closed_after_keep_alive(stream)


async def test_a_client_gone_mid_request_leaves_no_task_behind(
    autojump_clock: trio.abc.Clock,
) -> None:
    with trio.fail_after(4 * KEEP_ALIVE):  # the server and its connection tasks all end
        async with trio.open_nursery() as nursery:
            server = await start(nursery)
            stream = await trio.open_tcp_stream("127.0.0.1", server.port)
            await stream.send_all(REQUEST)
            await trio.sleep(1)
            await stream.aclose()
            await trio.sleep(4 * KEEP_ALIVE - 5)  # the slow answer is done, the timer too
            server.stop.set()


class _Group:
    def __init__(self, nursery: trio.Nursery) -> None:
        self._nursery = nursery  # the attribute hypercorn's task group has


async def test_a_restart_replaces_the_running_timer_and_a_stop_ends_it() -> None:
    ran: list[str] = []

    def action(name: str) -> Any:
        async def run() -> None:
            ran.append(f"{name} started")
            try:
                await trio.sleep_forever()
            finally:
                ran.append(f"{name} ended")

        return run

    timer = KeepAliveTimer()
    async with trio.open_nursery() as nursery:
        await timer.restart(_Group(nursery), action("first"))
        await trio.testing.wait_all_tasks_blocked()
        await timer.restart(_Group(nursery), action("second"))
        await timer.stop()
        await timer.restart(_Group(nursery), action("third"))
        await timer.stop()  # before it ever ran: it never starts
    assert ran == ["first started", "first ended"]


async def test_every_response_has_one_date_header_in_http_date_format() -> None:
    async with trio.open_nursery() as nursery:
        server = await start(nursery)
        stream = await trio.open_tcp_stream("127.0.0.1", server.port)
        for _ in range(2):
            await stream.send_all(FAST)
            head = (await response(stream)).split(b"\r\n\r\n")[0].decode()
            dates = [line for line in head.split("\r\n") if line.lower().startswith("date:")]
            assert len(dates) == 1, head
            parsed = parsedate_to_datetime(dates[0].split(":", 1)[1].strip())
            assert abs(parsed.timestamp() - time.time()) < 5
        await stream.aclose()
        server.stop.set()
