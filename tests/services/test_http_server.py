"""Our HTTP/1.1 server (`services/http_server.py`) over real sockets, with a small ASGI app:
keep-alive and pipelining, chunked request bodies, `Expect: 100-continue`, the head size
limit, idle/head timeouts, framing of responses (sized, chunked, HEAD, HTTP/1.0), a client
leaving, graceful shutdown, HTTP/2 refused, TLS through `trio.SSLStream`."""

from __future__ import annotations

import ssl
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from pathlib import Path
from typing import Any

import h11
import pytest
import trio
import trio.testing

from tokenomics.services.http_server import serve, server_config
from tokenomics.services.tls import CertPaths, ensure_certificates

IDLE = 5.0
FAST = b"GET / HTTP/1.1\r\nhost: test\r\n\r\n"
H2_PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
seen: list[dict[str, Any]] = []
FLOOD_CHUNK = b"x" * 65536
FLOOD_CHUNKS = 2048  # 128 MiB
flooded: dict[str, trio.Event] = {}  # set when /flood's writes are over


@pytest.fixture
def autojump_clock() -> trio.testing.MockClock:
    return trio.testing.MockClock(autojump_threshold=0)


async def read_body(receive: Any) -> bytes | None:
    """The body, None when the client left (or its body was malformed)."""
    body = b""
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            return None
        body += message["body"]
        if not message["more_body"]:
            return body


async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    path = scope["path"]
    seen.append(scope)
    if path == "/echo":
        body = await read_body(receive)
        if body is None:
            return
        headers = [(b"content-length", str(len(body)).encode())]
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        await send({"type": "http.response.body", "body": body})
        return
    if path == "/whole":  # the body taken whole when it has all arrived, else received
        body = scope["extensions"]["tokenomics.whole_body"]()
        how = b"whole" if body is not None else b"received"
        body = body if body is not None else await read_body(receive)
        if body is None:
            return
        assert scope["extensions"]["tokenomics.whole_body"]() is None  # taken once
        headers = [(b"content-length", str(len(body)).encode()), (b"x-body", how)]
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        await send({"type": "http.response.body", "body": body})
        return
    if path == "/stream":  # no length: chunked, its chunks come late
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"", "more_body": True})  # the head
        await trio.sleep(IDLE / 2)
        await send({"type": "http.response.body", "body": b"ok", "more_body": True})
        await trio.sleep(IDLE / 2)
        await send({"type": "http.response.body", "body": b""})
        return
    if path == "/slow":
        await trio.sleep(3 * IDLE)  # longer than the idle timeout
    if path == "/watch":  # waits for the client to leave
        await read_body(receive)
        assert (await receive())["type"] == "http.disconnect"
        seen.append({"path": "/watch", "disconnected": True})
        return
    if path in ("/cancel", "/keep"):  # asks to be cancelled (or not) when its client leaves
        cancel = path == "/cancel"
        scope["extensions"]["tokenomics.client_gone"](lambda: seen.append({"gone": path}) or cancel)
        try:
            await trio.sleep(2 * IDLE)
        except trio.Cancelled:
            seen.append({"cancelled": path})
            raise
        seen.append({"finished": path})
        return
    if path == "/flood":  # far more than socket buffers hold, to a client that never reads
        await send({"type": "http.response.start", "status": 200, "headers": []})
        started = trio.current_time()
        for _ in range(FLOOD_CHUNKS):
            await send({"type": "http.response.body", "body": FLOOD_CHUNK, "more_body": True})
        seen.append({"path": "/flood", "seconds": trio.current_time() - started})
        flooded["done"].set()
        await send({"type": "http.response.body", "body": b""})
        return
    if path == "/fail":
        raise RuntimeError("boom")
    headers = [(b"content-length", b"2")]
    await send({"type": "http.response.start", "status": 200, "headers": headers})
    if path == "/headless":  # a sized head, then the app ends without its body
        return
    await send({"type": "http.response.body", "body": b"ok"})


class Server:
    def __init__(self, urls: list[str], stop: trio.Event) -> None:
        self.urls = urls
        self.port = int(urls[-1].rsplit(":", 1)[1])
        self.stop = stop


async def start(nursery: trio.Nursery, tls: CertPaths | None = None, grace: float = 1) -> Server:
    config = server_config(
        host="127.0.0.1", http_port=0, https_port=0, tls=tls, grace=grace,
        idle_timeout=IDLE, ephemeral=True,
    )  # fmt: skip
    stop = trio.Event()
    urls = await nursery.start(lambda task_status: serve(
        app, config, shutdown_trigger=stop.wait, task_status=task_status
    ))  # fmt: skip
    return Server(urls, stop)


async def until_closed(stream: trio.abc.Stream) -> bytes:
    data = b""
    while chunk := await stream.receive_some():
        data += chunk
    return data


class Client:
    """h11 on the client side: reads responses exactly as framed."""

    def __init__(self, stream: trio.abc.Stream) -> None:
        self.stream = stream
        self.conn = h11.Connection(h11.CLIENT)

    async def response(self) -> tuple[h11.Response, bytes]:
        """The next response (to a GET or POST sent as raw bytes)."""
        if self.conn.our_state is h11.IDLE:  # the request went out raw: h11 is told of one
            self.conn.send(h11.Request(method="GET", target="/", headers=[("host", "t")]))
            self.conn.send(h11.EndOfMessage())
        head: h11.Response | None = None
        body = b""
        while True:
            event = self.conn.next_event()
            if event is h11.NEED_DATA:
                self.conn.receive_data(await self.stream.receive_some())
            elif isinstance(event, h11.Response):
                head = event
            elif isinstance(event, h11.Data):
                body += event.data
            elif isinstance(event, h11.EndOfMessage):
                assert head is not None
                if self.conn.our_state is h11.DONE and self.conn.their_state is h11.DONE:
                    self.conn.start_next_cycle()
                return head, body
            else:
                raise AssertionError(f"no response but {event!r}")


@asynccontextmanager
async def connected(**kwargs: Any) -> AsyncIterator[tuple[Server, trio.SocketStream]]:
    async with trio.open_nursery() as nursery:
        server = await start(nursery, **kwargs)
        stream = await trio.open_tcp_stream("127.0.0.1", server.port)
        yield server, stream
        await stream.aclose()
        server.stop.set()


async def test_keep_alive_serves_requests_one_after_another_on_one_connection() -> None:
    async with connected() as (_, stream):
        client = Client(stream)
        for _ in range(3):
            await stream.send_all(FAST)
            head, body = await client.response()
            assert (head.status_code, body) == (200, b"ok")


async def test_pipelined_requests_are_answered_in_order() -> None:
    bodies = [b"first", b"second" * 1000, b"third"]
    requests = b"".join(
        b"POST /echo HTTP/1.1\r\nhost: t\r\ncontent-length: %d\r\n\r\n%s" % (len(b), b)
        for b in bodies
    )
    async with connected() as (_, stream):
        await stream.send_all(requests + FAST)
        client = Client(stream)
        answered = [(await client.response())[1] for _ in range(4)]
    assert answered == [*bodies, b"ok"]


async def test_a_chunked_body_is_decoded_and_its_trailers_dropped() -> None:
    body = b"5\r\nhello\r\n1;ext=1\r\n \r\n5\r\nworld\r\n0\r\nx-trailer: t\r\n\r\n"
    request = b"POST /echo HTTP/1.1\r\nhost: t\r\ntransfer-encoding: chunked\r\n\r\n" + body
    async with connected() as (_, stream):
        for part in (request[:70], request[70:90], request[90:]):  # in pieces
            await stream.send_all(part)
            await trio.sleep(0.01)
        client = Client(stream)
        assert (await client.response())[1] == b"hello world"
        await stream.send_all(FAST)  # still in step
        assert (await client.response())[1] == b"ok"


async def test_a_body_longer_than_one_read_is_read_on_at_once_and_served() -> None:
    """The head and the start of the body fill one read after a wait for the socket: the
    reader reads on at once (no checkpoint between), then as the body keeps coming; the app
    gets all of it, and a pipelined request behind it is served after it."""
    body = bytes(range(256)) * 800  # 200 KiB: more than one read of 64 KiB
    request = b"POST /whole HTTP/1.1\r\nhost: t\r\ncontent-length: %d\r\n\r\n" % len(body)
    async with connected() as (_, stream):
        client = Client(stream)
        await stream.send_all(FAST)  # answered: the server waits for the socket
        assert (await client.response())[1] == b"ok"
        await stream.send_all(request + body + FAST)
        head, answer = await client.response()
        assert (head.status_code, answer) == (200, body)
        assert (await client.response())[1] == b"ok"


async def test_a_head_and_body_sent_apart_are_served_whichever_arrives_when() -> None:
    """http.client and httpx send a head and its body in two writes: the body right behind
    the head, or late; either way the app gets the body and the connection stays in step."""
    request = b"POST /whole HTTP/1.1\r\nhost: t\r\ncontent-length: 5\r\n\r\n"
    async with connected() as (_, stream):
        client = Client(stream)
        for pause in (0, 0, 0.01, 0.01):
            await stream.send_all(request)
            if pause:
                await trio.sleep(pause)
            await stream.send_all(b"hello")
            head, body = await client.response()
            assert (head.status_code, body) == (200, b"hello")
        await stream.send_all(FAST)
        assert (await client.response())[1] == b"ok"


async def test_a_body_that_arrived_whole_is_taken_at_once_else_received() -> None:
    async with connected() as (_, stream):
        client = Client(stream)
        await stream.send_all(
            b"POST /whole HTTP/1.1\r\nhost: t\r\ncontent-length: 5\r\n\r\nhello"
            b"POST /whole HTTP/1.1\r\nhost: t\r\ntransfer-encoding: chunked\r\n\r\n"
            b"3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n"
        )
        for expected in (b"hello", b"abcde"):
            head, body = await client.response()
            assert (body, dict(head.headers)[b"x-body"]) == (expected, b"whole")
        # The head first, waiting for 100-continue: the body is not there, so it is received.
        await stream.send_all(
            b"POST /whole HTTP/1.1\r\nhost: t\r\ncontent-length: 3\r\nexpect: 100-continue\r\n\r\n"
        )
        assert (await stream.receive_some()).startswith(b"HTTP/1.1 100 ")
        await stream.send_all(b"xyz")
        head, body = await client.response()
        assert (body, dict(head.headers)[b"x-body"]) == (b"xyz", b"received")


async def test_expect_100_continue_is_answered_when_the_app_reads_the_body() -> None:
    head = b"POST /echo HTTP/1.1\r\nhost: t\r\ncontent-length: 4\r\nexpect: 100-continue\r\n\r\n"
    async with connected() as (_, stream):
        await stream.send_all(head)
        with trio.fail_after(5):
            assert await stream.receive_some() == b"HTTP/1.1 100 Continue\r\n\r\n"
        await stream.send_all(b"data")
        assert (await Client(stream).response())[1] == b"data"


async def test_no_100_continue_when_the_app_answers_without_the_body() -> None:
    head = b"POST / HTTP/1.1\r\nhost: t\r\ncontent-length: 4\r\nexpect: 100-continue\r\n\r\n"
    async with connected() as (_, stream):
        await stream.send_all(head)
        with trio.fail_after(5):
            received = await until_closed(stream)  # the unread body: the connection closes
    assert received.startswith(b"HTTP/1.1 200 OK\r\n") and b"100 Continue" not in received


async def test_a_head_over_the_limit_gets_431_and_the_connection_closes() -> None:
    big = b"x-big: " + b"a" * (70 * 1024) + b"\r\n"
    async with connected() as (_, stream):
        await stream.send_all(b"GET / HTTP/1.1\r\nhost: t\r\n" + big + b"\r\n")
        with trio.fail_after(5):
            received = await until_closed(stream)
    assert received.startswith(b"HTTP/1.1 431 ")
    assert b"connection: close\r\n" in received


async def test_malformed_requests_get_400_and_the_connection_closes() -> None:
    cases = [
        b"POST /echo HTTP/1.1\r\nhost: t\r\ncontent-length: 3\r\ncontent-length: 3\r\n\r\nabc",
        b"POST /echo HTTP/1.1\r\nhost: t\r\ntransfer-encoding: chunked\r\n\r\nzz\r\n",
        b"GET / HTTP/1.1\r\nhost: t\r\nx: a\r\n b\r\n\r\n",  # obs-fold
        b"GET / HTTP/1.1\nhost: t\n\n",  # bare LF
        b"GET / HTTP/1.1\r\n\r\n",  # no Host
    ]
    for request in cases:
        async with connected() as (_, stream):
            await stream.send_all(request)
            with trio.fail_after(5):
                received = await until_closed(stream)
        assert received.startswith(b"HTTP/1.1 400 "), (request, received)


async def test_a_transfer_coding_other_than_chunked_gets_501() -> None:
    request = b"POST /echo HTTP/1.1\r\nhost: t\r\ntransfer-encoding: gzip, chunked\r\n\r\n0\r\n\r\n"
    async with connected() as (_, stream):
        await stream.send_all(request)
        with trio.fail_after(5):
            assert (await until_closed(stream)).startswith(b"HTTP/1.1 501 ")


async def test_responses_are_framed_for_head_and_http_1_0() -> None:
    async with connected() as (_, stream):
        await stream.send_all(b"HEAD / HTTP/1.1\r\nhost: t\r\n\r\n")
        head = await stream.receive_some()
        assert head.startswith(b"HTTP/1.1 200") and head.endswith(b"\r\n\r\n")
        assert b"content-length: 2\r\n" in head
        await stream.send_all(b"GET / HTTP/1.0\r\nconnection: keep-alive\r\n\r\n")
        kept = await stream.receive_some()
        assert b"connection: keep-alive\r\n" in kept and kept.endswith(b"\r\n\r\nok")
        await stream.send_all(b"GET /stream HTTP/1.0\r\nconnection: keep-alive\r\n\r\n")
        streamed = await until_closed(stream)  # no chunked for 1.0: the body ends with the close
    assert b"transfer-encoding" not in streamed and streamed.endswith(b"\r\n\r\nok")


async def test_a_streams_head_goes_out_when_flushed_and_each_chunk_when_sent(
    autojump_clock: trio.abc.Clock,
) -> None:
    async with connected() as (_, stream):
        await stream.send_all(b"GET /stream HTTP/1.1\r\nhost: t\r\n\r\n")
        started = trio.current_time()
        head = await stream.receive_some(65536)
        assert head.startswith(b"HTTP/1.1 200") and b"transfer-encoding: chunked" in head
        assert trio.current_time() - started < IDLE / 2  # not held for the chunk
        assert await stream.receive_some(65536) == b"2\r\nok\r\n"
        assert await stream.receive_some(65536) == b"0\r\n\r\n"


async def test_a_head_without_its_body_is_sent_and_the_connection_closed() -> None:
    async with connected() as (_, stream):
        await stream.send_all(b"GET /headless HTTP/1.1\r\nhost: t\r\n\r\n")
        received = await until_closed(stream)
    assert received.startswith(b"HTTP/1.1 200") and received.endswith(b"\r\n\r\n")


async def test_an_app_error_is_a_500_and_the_server_keeps_serving() -> None:
    async with connected() as (server, stream):
        await stream.send_all(b"GET /fail HTTP/1.1\r\nhost: t\r\n\r\n")
        assert (await until_closed(stream)).startswith(b"HTTP/1.1 500 ")
        again = await trio.open_tcp_stream("127.0.0.1", server.port)
        await again.send_all(FAST)
        assert (await Client(again).response())[1] == b"ok"
        await again.aclose()


async def test_an_idle_connection_closes_after_the_idle_timeout(
    autojump_clock: trio.abc.Clock,
) -> None:
    async with connected() as (_, stream):
        await stream.send_all(FAST)
        await Client(stream).response()
        answered = trio.current_time()
        assert await stream.receive_some() == b""
        assert trio.current_time() - answered == pytest.approx(IDLE)  # not up to a sweep late


async def test_an_idle_connection_closes_at_its_idle_timeout_between_two_sweeps(
    autojump_clock: trio.abc.Clock,
) -> None:
    """Answered a third of a second into a sweep period, it still closes on time."""
    async with connected() as (_, stream):
        await trio.sleep(1.3)
        await stream.send_all(FAST)
        await Client(stream).response()
        answered = trio.current_time()
        assert await stream.receive_some() == b""
        assert trio.current_time() - answered == pytest.approx(IDLE)


async def test_a_head_sent_too_slowly_is_dropped(autojump_clock: trio.abc.Clock) -> None:
    async with connected() as (_, stream):
        opened = trio.current_time()
        with pytest.raises(trio.BrokenResourceError):  # a byte a second: never done in time
            for byte in b"GET /" + b"a" * int(IDLE):
                await stream.send_all(bytes([byte]))
                await trio.sleep(1)
        assert IDLE <= trio.current_time() - opened <= IDLE + 2


async def test_a_request_longer_than_the_timeout_is_answered_and_the_timer_restarts(
    autojump_clock: trio.abc.Clock,
) -> None:
    async with connected() as (_, stream):
        client = Client(stream)
        for _ in range(2):
            await stream.send_all(b"GET /slow HTTP/1.1\r\nhost: t\r\n\r\n")
            assert (await client.response())[1] == b"ok"
            await stream.send_all(FAST)
            await client.response()
        answered = trio.current_time()
        assert await stream.receive_some() == b""
        assert IDLE <= trio.current_time() - answered < IDLE + 1


async def test_a_client_that_stops_reading_is_dropped_after_the_idle_timeout(
    autojump_clock: trio.abc.Clock,
) -> None:
    """The write that cannot finish ends within the idle timeout plus one sweep; the app's
    later writes return at once (the connection is lost), so its request ends."""
    seen.clear()
    flooded["done"] = trio.Event()
    async with connected() as (_, stream):
        await stream.send_all(b"GET /flood HTTP/1.1\r\nhost: t\r\n\r\n")
        with trio.fail_after(4 * IDLE):
            await flooded["done"].wait()
    (flood,) = (entry for entry in seen if "seconds" in entry)
    assert IDLE <= flood["seconds"] <= IDLE + 2


async def test_a_client_leaving_mid_request_is_a_disconnect_and_leaves_no_task(
    autojump_clock: trio.abc.Clock,
) -> None:
    seen.clear()
    with trio.fail_after(4 * IDLE):  # the server and its connection tasks all end
        async with trio.open_nursery() as nursery:
            server = await start(nursery)
            stream = await trio.open_tcp_stream("127.0.0.1", server.port)
            await stream.send_all(b"GET /watch HTTP/1.1\r\nhost: t\r\n\r\n")
            await trio.sleep(1)
            await stream.aclose()
            await trio.sleep(1)
            server.stop.set()
    assert {"path": "/watch", "disconnected": True} in seen


@pytest.mark.parametrize("path", ["/cancel", "/keep"])
async def test_a_client_leaving_cancels_the_app_call_only_when_its_callback_asks(
    autojump_clock: trio.abc.Clock, path: str
) -> None:
    seen.clear()
    with trio.fail_after(4 * IDLE):  # the server and its connection tasks all end
        async with trio.open_nursery() as nursery:
            server = await start(nursery, grace=4 * IDLE)
            stream = await trio.open_tcp_stream("127.0.0.1", server.port)
            await stream.send_all(f"GET {path} HTTP/1.1\r\nhost: t\r\n\r\n".encode())
            await trio.sleep(1)
            await stream.aclose()
            await trio.sleep(1)
            assert {"gone": path} in seen
            if path == "/cancel":  # cancelled at once, and its connection ended
                assert {"cancelled": path} in seen
            server.stop.set()
    ended = {"cancelled": path} if path == "/cancel" else {"finished": path}
    assert [entry for entry in seen if "gone" not in entry and "path" not in entry] == [ended]


async def test_requests_after_a_cancelled_one_are_not_served() -> None:
    seen.clear()
    async with connected() as (_, stream):
        await stream.send_all(b"GET /cancel HTTP/1.1\r\nhost: t\r\n\r\n" + FAST)
        await trio.sleep(0.1)
        await stream.send_eof()
        assert await until_closed(stream) == b""
    assert [entry.get("path") for entry in seen if "path" in entry] == ["/cancel"]


async def test_graceful_shutdown_finishes_in_flight_requests_and_closes_idle_ones(
    autojump_clock: trio.abc.Clock,
) -> None:
    async with trio.open_nursery() as nursery:
        server = await start(nursery, grace=4 * IDLE)
        busy = await trio.open_tcp_stream("127.0.0.1", server.port)
        idle = await trio.open_tcp_stream("127.0.0.1", server.port)
        await idle.send_all(FAST)
        await Client(idle).response()
        await busy.send_all(b"GET /slow HTTP/1.1\r\nhost: t\r\n\r\n")
        await trio.sleep(1)
        server.stop.set()
        stopped = trio.current_time()
        assert await idle.receive_some() == b""  # closed at once
        assert trio.current_time() - stopped < 1
        answer = await until_closed(busy)  # its answer, then the close
        assert answer.startswith(b"HTTP/1.1 200") and b"connection: close\r\n" in answer
        with pytest.raises(OSError):
            await trio.open_tcp_stream("127.0.0.1", server.port)


async def test_whatever_outlives_the_grace_period_is_cancelled(
    autojump_clock: trio.abc.Clock,
) -> None:
    async with trio.open_nursery() as nursery:
        server = await start(nursery, grace=2)
        stream = await trio.open_tcp_stream("127.0.0.1", server.port)
        await stream.send_all(b"GET /slow HTTP/1.1\r\nhost: t\r\n\r\n")
        await trio.sleep(1)
        server.stop.set()
        stopped = trio.current_time()
        assert await until_closed(stream) == b""
        assert 2 <= trio.current_time() - stopped < 3


async def test_http2_with_prior_knowledge_gets_goaway_http_1_1_required() -> None:
    async with connected() as (_, stream):
        await stream.send_all(H2_PREFACE + b"\0\0\0\x04\0\0\0\0\0")
        received = await until_closed(stream)
    settings, goaway = received[:9], received[9:]
    assert settings == b"\0\0\0\x04\0\0\0\0\0"
    assert goaway[3] == 7 and goaway[-4:] == b"\0\0\0\x0d"  # GOAWAY, HTTP_1_1_REQUIRED


async def test_every_response_has_one_date_header_in_http_date_format() -> None:
    async with connected() as (_, stream):
        client = Client(stream)
        for _ in range(2):
            await stream.send_all(FAST)
            head, _ = await client.response()
            dates = [v for k, v in head.headers if k == b"date"]
            assert len(dates) == 1
            assert abs(parsedate_to_datetime(dates[0].decode()).timestamp() - time.time()) < 5


async def test_the_scope_has_what_the_app_reads() -> None:
    seen.clear()
    async with connected() as (server, stream):
        await stream.send_all(b"GET /a%20b/c?x=1&y HTTP/1.1\r\nHost: t\r\nX-Two: 2 \r\n\r\n")
        await Client(stream).response()
    scope = seen[-1]
    assert (scope["method"], scope["path"], scope["raw_path"]) == ("GET", "/a b/c", b"/a%20b/c")
    assert (scope["query_string"], scope["http_version"], scope["scheme"]) == (
        b"x=1&y",
        "1.1",
        "http",
    )
    assert scope["headers"] == [(b"host", b"t"), (b"x-two", b"2")]
    assert scope["client"][0] == "127.0.0.1" and scope["server"] == ("127.0.0.1", server.port)


async def test_tls_through_ssl_stream_offers_http_1_1_only(tmp_path: Path) -> None:
    paths = ensure_certificates(tmp_path, ("localhost",), datetime.now(UTC))
    async with trio.open_nursery() as nursery:
        server = await start(nursery, tls=paths)
        (url,) = [u for u in server.urls if u.startswith("https://")]
        context = ssl.create_default_context(cafile=str(paths.ca_cert))
        context.set_alpn_protocols(["h2", "http/1.1"])
        tcp = await trio.open_tcp_stream("127.0.0.1", int(url.rsplit(":", 1)[1]))
        stream = trio.SSLStream(tcp, context, server_hostname="localhost")
        await stream.do_handshake()
        assert stream.selected_alpn_protocol() == "http/1.1"
        client = Client(stream)
        for _ in range(2):
            await stream.send_all(FAST)
            head, body = await client.response()
            assert (head.status_code, body) == (200, b"ok")
        await stream.aclose()
        server.stop.set()
