"""The upstream client against a raw in-process HTTP server: pooling, timeouts, errors, TLS,
proxies from the environment. (Forwarding, compression and streaming through the whole proxy
are covered end to end in `tests/e2e`.)"""

from __future__ import annotations

import gzip
import socket
import ssl
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import partial
from pathlib import Path

import pytest
import trio
import trio.testing
from hypothesis import given
from hypothesis import strategies as st

from tokenomics.domain.errors import UpstreamError, UpstreamTimeout
from tokenomics.services.tls import ensure_certificates, ssl_context
from tokenomics.upstream.client import UpstreamRequest, Upstreams, header, read_all
from tokenomics.upstream.mock import MockReply
from tokenomics.upstream.unpooled import MockResponse

BODY = b'{"model":"gpt-4o-mini","messages":[]}'
REPLY = b'{"id":"x"}'
OK = b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: 10\r\n\r\n" + REPLY
PROXY_VARS = ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "NO_PROXY")


@pytest.fixture
def autojump_clock() -> trio.testing.MockClock:
    return trio.testing.MockClock(autojump_threshold=0)


@pytest.fixture(autouse=True)
def no_proxy_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in PROXY_VARS:
        monkeypatch.delenv(name, raising=False)
        monkeypatch.delenv(name.lower(), raising=False)


@dataclass
class RawUpstream:
    """One canned reply per request; records what arrived and how many connections were open."""

    reply: bytes = OK
    close_after_reply: bool = False
    stall_before_reply: bool = False
    stall_from: int = 0  # stall before the reply to this request (1 is the first) and on
    stall_after_reply: bool = False
    requests: list[tuple[bytes, bytes]] = field(default_factory=list)  # head, body
    reads: list[int] = field(default_factory=list)  # receive calls it took to get each request
    connections: int = 0
    open: int = 0
    max_open: int = 0

    async def handle(self, stream: trio.abc.Stream) -> None:
        self.connections += 1
        self.open += 1
        self.max_open = max(self.max_open, self.open)
        try:
            await self._serve(stream)
        except trio.BrokenResourceError:
            pass
        finally:
            self.open -= 1
            await stream.aclose()

    async def _serve(self, stream: trio.abc.Stream) -> None:
        buffer = b""
        while True:
            reads = 0
            while b"\r\n\r\n" not in buffer:
                data = await stream.receive_some(65536)
                if not data:
                    return
                reads += 1
                buffer += data
            head, _, rest = buffer.partition(b"\r\n\r\n")
            length = next(
                (int(line.split(b":")[1]) for line in head.split(b"\r\n")
                 if line.lower().startswith(b"content-length:")),
                0,
            )  # fmt: skip
            while len(rest) < length:
                reads += 1
                rest += await stream.receive_some(65536)
            self.requests.append((head, rest[:length]))
            self.reads.append(reads)
            buffer = rest[length:]
            if self.stall_before_reply or 0 < self.stall_from <= len(self.requests):
                await trio.sleep_forever()
            await stream.send_all(self.reply)
            if self.stall_after_reply:
                await trio.sleep_forever()
            if self.close_after_reply:
                return


@asynccontextmanager
async def running(upstream: RawUpstream, tls: ssl.SSLContext | None = None) -> AsyncIterator[str]:
    async with trio.open_nursery() as nursery:
        if tls is None:
            listeners = await nursery.start(
                partial(trio.serve_tcp, upstream.handle, 0, host="127.0.0.1")
            )
        else:
            listeners = await nursery.start(
                partial(trio.serve_ssl_over_tcp, upstream.handle, 0, tls, host="127.0.0.1")
            )
        port = (
            listeners[0].transport_listener.socket.getsockname()[1]
            if tls
            else (listeners[0].socket.getsockname()[1])
        )
        yield f"{'https' if tls else 'http'}://127.0.0.1:{port}"
        nursery.cancel_scope.cancel()


async def call(
    upstreams: Upstreams, url: str, *, headers_timeout: float = 5, idle: float = 5
) -> tuple[int, bytes]:
    request = UpstreamRequest(
        "POST", url + "/v1/chat/completions", [("content-type", "application/json")], BODY
    )
    response = await upstreams.open(request, headers_timeout=headers_timeout)
    try:
        return response.status, await read_all(response, 1 << 20, idle)
    finally:
        await response.aclose()


async def test_requests_share_one_keepalive_connection_and_carry_httpx2s_headers() -> None:
    upstream, upstreams = RawUpstream(), Upstreams()
    async with running(upstream) as url:
        assert await call(upstreams, url) == (200, REPLY)
        assert await call(upstreams, url) == (200, REPLY)
    await upstreams.aclose()
    assert upstream.connections == 1
    head, body = upstream.requests[0]
    lines = head.lower().split(b"\r\n")
    assert lines[0] == b"post /v1/chat/completions http/1.1"
    assert lines[1] == b"host: 127.0.0.1:" + url.rsplit(":", 1)[1].encode()
    assert b"content-length: %d" % len(BODY) in lines
    assert b"accept: */*" in lines and b"connection: keep-alive" in lines
    assert any(line.startswith(b"user-agent: python-httpx2/") for line in lines)
    assert body == BODY
    assert upstream.reads == [1, 1]  # head and body went out in one write


async def test_an_idle_connection_the_server_closed_is_not_reused() -> None:
    upstream, upstreams = RawUpstream(close_after_reply=True), Upstreams()
    async with running(upstream) as url:
        assert await call(upstreams, url) == (200, REPLY)
        await trio.sleep(0.05)  # the server's close reaches the idle connection
        assert await call(upstreams, url) == (200, REPLY)
    await upstreams.aclose()
    assert upstream.connections == 2


async def test_no_response_headers_in_time_is_an_upstream_timeout() -> None:
    upstream, upstreams = RawUpstream(stall_before_reply=True), Upstreams()
    async with running(upstream) as url:
        with pytest.raises(UpstreamTimeout, match=r"no response headers from upstream within 0.2s"):
            await call(upstreams, url, headers_timeout=0.2)
    await upstreams.aclose()


async def test_with_the_timer_running_a_pooled_request_without_headers_in_time_times_out(
    autojump_clock: trio.abc.Clock,
) -> None:
    upstream, upstreams = RawUpstream(stall_from=3), Upstreams(max_connections=1)
    async with trio.open_nursery() as nursery:
        await nursery.start(upstreams.run)
        async with running(upstream) as url:
            assert await call(upstreams, url) == (200, REPLY)  # a new connection: its scope
            assert await call(upstreams, url) == (200, REPLY)  # pooled: the timer's
            assert upstreams.timer.statistics()["watched"] == 0
            started = trio.current_time()
            with pytest.raises(UpstreamTimeout, match=r"no response headers .* within 7s"):
                await call(upstreams, url, headers_timeout=7)
            assert trio.current_time() - started == pytest.approx(7)
            upstream.stall_from = 0
            assert await call(upstreams, url) == (200, REPLY)  # a new connection, the slot free
        nursery.cancel_scope.cancel()
    await upstreams.aclose()
    assert upstream.connections == 2
    assert upstreams.timer.statistics()["watched"] == 0


@pytest.mark.parametrize("length", [b"content-length: 100\r\n", b""], ids=["sized", "until-close"])
async def test_with_the_timer_running_a_body_that_stops_flowing_is_an_idle_timeout(
    autojump_clock: trio.abc.Clock, length: bytes
) -> None:
    head = b"HTTP/1.1 200 OK\r\n" + length + b"\r\npartial"
    upstream, upstreams = RawUpstream(reply=head, stall_after_reply=True), Upstreams()
    async with trio.open_nursery() as nursery:
        await nursery.start(upstreams.run)
        async with running(upstream) as url:
            started = trio.current_time()
            with pytest.raises(UpstreamTimeout, match=r"no data from upstream for 3s"):
                await call(upstreams, url, idle=3)
            assert trio.current_time() - started == pytest.approx(3)
        nursery.cancel_scope.cancel()
    await upstreams.aclose()
    assert upstreams.timer.statistics()["watched"] == 0


async def test_a_body_that_stops_flowing_is_an_idle_timeout() -> None:
    head = b"HTTP/1.1 200 OK\r\ncontent-length: 100\r\n\r\npartial"
    upstream, upstreams = RawUpstream(reply=head, stall_after_reply=True), Upstreams()
    async with running(upstream) as url:
        with pytest.raises(UpstreamTimeout, match=r"no data from upstream for 0.2s"):
            await call(upstreams, url, idle=0.2)
    await upstreams.aclose()


async def test_a_connection_dropped_mid_body_is_an_upstream_error() -> None:
    head = b"HTTP/1.1 200 OK\r\ncontent-length: 100\r\n\r\npartial"
    upstream, upstreams = RawUpstream(reply=head, close_after_reply=True), Upstreams()
    async with running(upstream) as url:
        with pytest.raises(UpstreamError, match="closed the connection") as caught:
            await call(upstreams, url)
    await upstreams.aclose()
    assert not isinstance(caught.value, UpstreamTimeout)


async def test_nothing_listening_is_a_connect_error() -> None:
    with trio.socket.socket() as sock:
        await sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]  # bound, never listening: refused
        with pytest.raises(UpstreamError, match="could not connect to upstream"):
            await call(Upstreams(), f"http://127.0.0.1:{port}")


async def test_release_keeps_a_whole_responses_connection_a_partial_one_needs_aclose() -> None:
    upstream, upstreams = RawUpstream(), Upstreams(max_connections=1)
    async with running(upstream) as url:
        request = UpstreamRequest("POST", url + "/x", [], BODY)
        partial_read = await upstreams.open(request, headers_timeout=5)
        # Opened but its body unread: the connection cannot carry another request.
        assert not partial_read.release() and not partial_read.closed
        await partial_read.aclose()  # dropped, its slot freed
        whole = await upstreams.open(request, headers_timeout=5)
        assert await read_all(whole, 1 << 20, 5) == REPLY
        assert whole.release() and whole.closed  # back in the pool, its slot freed, no I/O
        assert whole.release()
        await whole.aclose()  # already closed: nothing more happens
        assert await call(upstreams, url) == (200, REPLY)  # the only slot is free again
    await upstreams.aclose()
    assert upstream.connections == 2  # the partial one's, then the one kept for the rest


async def test_max_connections_makes_further_requests_wait_for_a_free_one() -> None:
    upstream, upstreams = RawUpstream(), Upstreams(max_connections=1)
    async with running(upstream) as url:
        request = UpstreamRequest("POST", url + "/x", [], BODY)
        first = await upstreams.open(request, headers_timeout=5)  # holds the only slot
        with trio.move_on_after(0.2) as waited:
            await call(upstreams, url)
        assert waited.cancelled_caught
        await first.aclose()  # unread body: the connection is dropped, its slot freed
        assert await call(upstreams, url) == (200, REPLY)
    await upstreams.aclose()
    assert upstream.max_open == 1


async def test_https_upstreams_are_verified_against_the_environments_ca(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    paths = ensure_certificates(tmp_path / "certs", ["127.0.0.1"], datetime.now(UTC))
    assert paths.ca_cert is not None
    upstream = RawUpstream()
    async with running(upstream, ssl_context(paths)) as url:
        with pytest.raises(UpstreamError, match="could not connect to upstream"):
            await call(Upstreams(), url)  # the system store does not know our CA
        monkeypatch.setenv("SSL_CERT_FILE", str(paths.ca_cert))
        trusted = Upstreams()
        assert await call(trusted, url) == (200, REPLY)
        await trusted.aclose()
    assert upstream.requests[-1][1] == BODY


async def test_a_proxy_named_in_the_environment_carries_the_requests(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    proxy = RawUpstream()
    async with running(proxy) as url:
        monkeypatch.setenv("HTTP_PROXY", url)
        upstreams = Upstreams()
        assert await call(upstreams, "http://upstream.invalid") == (200, REPLY)
        await upstreams.aclose()
    request_line = proxy.requests[0][0].split(b"\r\n")[0]
    assert request_line == b"POST http://upstream.invalid/v1/chat/completions HTTP/1.1"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def test_the_mock_provider_answers_in_process_even_with_a_proxy_in_the_environment(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """`tokenomics run` points agents' proxy variables at a closed port: `mock://` must not go
    to httpx2 (it failed as "upstream connection failed" when the split merged the checks)."""
    monkeypatch.setenv("HTTP_PROXY", f"http://127.0.0.1:{_free_port()}")  # nothing listens
    monkeypatch.setenv("HTTPS_PROXY", f"http://127.0.0.1:{_free_port()}")
    upstreams = Upstreams()
    body = b'{"model":"gpt-4o-mini","messages":[{"role":"user","content":"hi"}]}'
    request = UpstreamRequest("POST", "mock://openai/v1/chat/completions", [], body)
    response = await upstreams.open(request, headers_timeout=5)
    received = await read_all(response, 1 << 20, 5)
    await response.aclose()
    await upstreams.aclose()
    assert response.status == 200
    assert b"chat.completion" in received


async def test_a_body_too_large_to_join_to_its_head_arrives_whole() -> None:
    upstream, upstreams = RawUpstream(), Upstreams()
    body = bytes(range(256)) * 400  # 100 KiB: written after the head, not copied behind it
    async with running(upstream) as url:
        request = UpstreamRequest("POST", url + "/v1/files", [], body)
        response = await upstreams.open(request, headers_timeout=5)
        assert (response.status, await read_all(response, 1 << 20, 5)) == (200, REPLY)
        await response.aclose()
    await upstreams.aclose()
    assert upstream.requests[0][1] == body
    assert b"content-length: 102400" in upstream.requests[0][0].lower()


@pytest.mark.parametrize("via_proxy", [False, True], ids=["pooled", "environment-proxy"])
async def test_codings_we_can_undo_are_undone_the_others_stay_named_and_secrets_are_scrubbed(
    monkeypatch: pytest.MonkeyPatch, via_proxy: bool
) -> None:
    key = b"sk-proj-0123456789abcdef"
    body = gzip.compress(b'{"echo":"Bearer ' + key + b'"}')
    head = (
        b"HTTP/1.1 200 OK\r\ncontent-encoding: br, gzip\r\nx-echo: Bearer " + key + b"\r\n"
        b"content-length: %d\r\n\r\n" % len(body)
    )
    upstream = RawUpstream(reply=head + body)
    async with running(upstream) as url:
        if via_proxy:
            monkeypatch.setenv("HTTP_PROXY", url)
            url = "http://upstream.invalid"
        upstreams = Upstreams()
        request = UpstreamRequest("POST", url + "/v1/x", [], BODY, (key.decode(),))
        response = await upstreams.open(request, headers_timeout=5)
        received = await read_all(response, 1 << 20, 5)
        await response.aclose()
        await upstreams.aclose()
    assert received == b'{"echo":"Bearer [REDACTED]"}'
    assert ("content-encoding", "br") in response.headers  # gzip undone, br left to the client
    assert ("x-echo", "Bearer [REDACTED]") in response.headers


async def test_a_pooled_response_tells_what_it_holds_without_waiting() -> None:
    """`buffered`: body bytes came with the head; `complete`: the body's end came (a chunked
    body's, once `chunks()` read up to it), so reading the rest cannot wait."""
    head = (
        b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ntransfer-encoding: chunked\r\n\r\n"
    )
    upstream, upstreams = RawUpstream(reply=head + b"3\r\nabc\r\n0\r\n\r\n"), Upstreams()
    async with running(upstream) as url:
        request = UpstreamRequest("POST", url + "/v1", [("content-type", "text/plain")], BODY)
        response = await upstreams.open(request, headers_timeout=5)
        assert response.buffered and not response.complete  # a chunked end is not parsed ahead
        chunks = response.chunks(5)
        assert await anext(chunks) == b"abc"
        assert response.complete and response.buffered
        assert [chunk async for chunk in chunks] == []
        await response.aclose()
    await upstreams.aclose()
    upstream, upstreams = RawUpstream(reply=head, stall_after_reply=True), Upstreams()
    async with running(upstream) as url:
        request = UpstreamRequest("POST", url + "/v1", [("content-type", "text/plain")], BODY)
        response = await upstreams.open(request, headers_timeout=5)
        assert not response.buffered and not response.complete  # the head came alone
        await response.aclose()
    await upstreams.aclose()


@pytest.mark.parametrize(
    ("pace", "complete"), [(0.0, [True, True, True]), (1.0, [False, False, True])]
)
async def test_a_mock_response_is_complete_at_once_unless_paced(
    pace: float, complete: list[bool], autojump_clock: trio.abc.Clock
) -> None:
    """Unpaced, the mock's chunks are all here; paced, once the last was given."""
    reply = MockReply(200, (("content-type", "text/event-stream"),), (b"a", b"b", b"c"), 0, pace)
    response = MockResponse(reply, None)
    assert response.buffered and response.complete is complete[0]
    seen = []
    async for _ in response.chunks(5):
        seen.append(response.complete)
        assert response.buffered is response.complete
    assert seen == complete


@given(
    st.lists(st.tuples(st.sampled_from(["content-type", "x-a", "Content-Type", ""]), st.text())),
    st.sampled_from(["content-type", "x-a", "absent"]),
)
def test_header_is_the_first_match_or_empty(headers: list[tuple[str, str]], name: str) -> None:
    assert header(headers, name) == next((v for k, v in headers if k == name), "")
