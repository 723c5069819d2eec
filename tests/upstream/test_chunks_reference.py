"""A pooled response's body, now read by an async iterator object (`_Chunks`), reads as the
async generator it replaced (kept here, `reference_chunks`): the same bytes, then the same end
or the same error (type and text), over generated responses - Content-Length, chunked and
until-close bodies, gzip-coded or not, with a secret to scrub split anywhere, cut short,
malformed, or stalling past the idle timeout with and without the timer running - sent in
random pieces over a real socket pair (trio's autojump clock keeps the time)."""

from __future__ import annotations

import gzip
import math
import socket
import zlib
from collections.abc import AsyncIterator
from typing import Any

import trio
import trio.testing
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tokenomics.domain.errors import UpstreamError, UpstreamTimeout
from tokenomics.upstream.client import _Chunks, _timed_receive
from tokenomics.upstream.head_timer import HeadTimer
from tokenomics.upstream.http11 import ProtocolError
from tokenomics.upstream.pool import Connection, TransportError
from tokenomics.upstream.response_body import UNDECODABLE, Body, core_reason, idle_text
from tokenomics.upstream.scrub import Scrubber
from tokenomics.upstream.tcp import TCPStream

SECRET = "sk-secret-key-123"
IDLE = 5.0


async def reference_chunks(
    body: Body, connection: Connection, timer: HeadTimer, idle_timeout: float
) -> AsyncIterator[bytes]:
    """`_PooledResponse.chunks` as it was: an async generator."""
    reader = connection.reader
    assert reader is not None
    watch = timer if idle_timeout < math.inf else None
    try:
        while True:
            if chunk := body.feed(reader.body()):
                yield chunk
            if reader.done:
                break
            if watch is not None and watch.running:
                reader.feed(await _timed_receive(connection, watch, idle_timeout))
                continue
            with trio.move_on_after(idle_timeout):
                reader.feed(await connection.receive())
                continue
            raise UpstreamTimeout(idle_text(idle_timeout))
        if tail := body.end():
            yield tail
    except (ProtocolError, TransportError) as exc:
        if connection.timed_out:
            raise UpstreamTimeout(idle_text(idle_timeout)) from None
        raise UpstreamError(core_reason(exc)) from None
    except zlib.error:
        raise UpstreamError(UNDECODABLE) from None


def _chunked(data: bytes, sizes: list[int]) -> bytes:
    out, pos = b"", 0
    for size in sizes:
        piece = data[pos : pos + size]
        if not piece:
            break
        out += b"%x\r\n%s\r\n" % (len(piece), piece)
        pos += len(piece)
    if pos < len(data):
        out += b"%x\r\n%s\r\n" % (len(data) - pos, data[pos:])
    return out + b"0\r\n\r\n"


@st.composite
def response(draw: Any) -> tuple[bytes, list[bytes], str]:
    """(the head and body's bytes, the cuts, what happens after the last piece)."""
    text = draw(st.lists(st.sampled_from([b"data: x\n\n", SECRET.encode(), b"ab", b"\n"])))
    payload = b"".join(text) + draw(st.binary(max_size=20))
    coded = draw(st.booleans())
    if coded:
        payload = gzip.compress(payload)
        if draw(st.integers(0, 5)) == 0:  # corrupt
            payload = payload[:10] + b"\x00\xff" + payload[12:]
    framing = draw(st.sampled_from(["length", "chunked", "close"]))
    head = b"HTTP/1.1 200 OK\r\n" + (b"Content-Encoding: gzip\r\n" if coded else b"")
    if framing == "length":
        head += b"Content-Length: %d\r\n" % len(payload)
        body = payload
    elif framing == "chunked":
        head += b"Transfer-Encoding: chunked\r\n"
        body = _chunked(payload, draw(st.lists(st.integers(1, 9), max_size=5)))
        if draw(st.integers(0, 6)) == 0:
            body = body.replace(b"\r\n", b"\n", 1)  # a bad chunk line
    else:
        body = payload
    data = head + b"\r\n" + body
    if draw(st.integers(0, 4)) == 0:  # cut short
        data = data[: draw(st.integers(len(head) + 2, len(data)))]
    cuts = sorted(set(draw(st.lists(st.integers(len(head) + 2, max(len(data), 1)), max_size=5))))
    pieces = [data[a:b] for a, b in zip([0, *cuts], [*cuts, len(data)], strict=True)]
    end = draw(st.sampled_from(["close", "close", "stall"]))
    return data, [piece for piece in pieces if piece], end


async def read_body(
    pieces: list[bytes], end: str, use_reference: bool, run_timer: bool
) -> tuple[bytes, str]:
    mine, theirs = socket.socketpair()
    peer = TCPStream(theirs)
    stream = TCPStream(mine)
    connection = Connection(stream, mine, (b"http", b"upstream", 80))
    timer = HeadTimer()
    got: list[bytes] = []
    outcome = "end"

    async def serve() -> None:
        await peer.receive_some()
        for piece in pieces:
            await peer.send_all(piece)
            await trio.sleep(0.01)
        if end == "close":
            await peer.aclose()
        else:
            await trio.sleep(IDLE * 3)

    async with trio.open_nursery() as nursery:
        if run_timer:
            await nursery.start(timer.run)
        nursery.start_soon(serve)
        try:
            head = await connection.request(b"GET / HTTP/1.1\r\n\r\n", b"", "GET")
            body = Body(head.fields, Scrubber.of([SECRET]))
            chunks = (
                reference_chunks(body, connection, timer, IDLE)
                if use_reference
                else _Chunks(body, connection, timer, IDLE)
            )
            async for chunk in chunks:
                got.append(chunk)
        except (UpstreamError, UpstreamTimeout) as exc:
            outcome = f"{type(exc).__name__}: {exc}"
        except (ProtocolError, TransportError) as exc:  # no head
            outcome = f"head: {type(exc).__name__}"
        nursery.cancel_scope.cancel()
    await peer.aclose()
    await stream.aclose()
    return b"".join(got), outcome


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(case=response(), run_timer=st.booleans())
def test_the_iterator_reads_what_the_generator_read(
    case: tuple[bytes, list[bytes], str], run_timer: bool
) -> None:
    _, pieces, end = case
    results = [
        trio.run(
            read_body,
            pieces,
            end,
            use_reference,
            run_timer,
            clock=trio.testing.MockClock(autojump_threshold=0),
        )
        for use_reference in (True, False)
    ]
    assert results[1] == results[0]


async def test_after_its_end_or_an_error_the_iterator_gives_nothing_more(
    autojump_clock: trio.testing.MockClock,
) -> None:
    for pieces in ([b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"], [b"HTTP/1.1 200 OK\r\n"]):
        mine, theirs = socket.socketpair()
        peer, stream = TCPStream(theirs), TCPStream(mine)
        connection = Connection(stream, mine, (b"http", b"upstream", 80))
        await peer.send_all(pieces[0] + b"Content-Length: 5\r\n\r\nab" * (len(pieces[0]) < 20))
        await peer.aclose()
        head = await connection.request(b"GET / HTTP/1.1\r\n\r\n", b"", "GET")
        chunks = _Chunks(Body(head.fields, None), connection, HeadTimer(), IDLE)
        read: list[bytes] = []
        try:
            async for chunk in chunks:
                read.append(chunk)
        except UpstreamError:
            read.append(b"<error>")
        assert read in ([b"ok"], [b"ab", b"<error>"])
        assert [chunk async for chunk in chunks] == []
        await stream.aclose()
