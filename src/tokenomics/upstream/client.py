"""Talking to upstream providers: the only user of httpx2 (URLs, TLS defaults, proxies).

Requests go out on pooled keep-alive connections (`pool.py`, per origin). When the environment
names an HTTP(S) proxy, one `httpx2.AsyncClient` carries every request instead, since it honours
`HTTP(S)_PROXY`, `ALL_PROXY` and `NO_PROXY`. `open()` bounds connect + time to response headers
(D9): on an idle pooled connection, while `run` keeps time, by the `head_timer` (no cancel
scope per request); else by a cancel scope. Reading the body then uses an idle timeout per
read (kept the same way), never a cap on total duration.
Compressed replies (we ask for identity, but must cope) are decoded where we can: what we cannot
undo stays named in `content-encoding`. The request's `secrets` are scrubbed from the response's
headers and body as they arrive (`scrub.py`, `response_body.py`). `mock://` URLs are answered
in-process by the built-in mock provider (`unpooled.py`, with httpx2's). Transport errors
become `UpstreamError` with a safe message: never a URL, a query string or a key.
"""

from __future__ import annotations

import math
import zlib
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol
from urllib.request import getproxies

import httpx2
import trio

from tokenomics.domain.errors import UpstreamError, UpstreamTimeout, UpstreamTooLarge
from tokenomics.upstream.head_timer import HeadTimer
from tokenomics.upstream.http11 import Head, ProtocolError
from tokenomics.upstream.mock import MockProvider
from tokenomics.upstream.pool import Connection, ConnectionPool, TransportError
from tokenomics.upstream.response_body import (
    UNDECODABLE,
    Body,
    Headers,
    core_reason,
    idle_text,
    timeout_text,
)
from tokenomics.upstream.scrub import Scrubber
from tokenomics.upstream.unpooled import open_httpx, open_mock

if TYPE_CHECKING:
    import ssl
    from collections.abc import AsyncIterator, Mapping

INVALID_URL = "invalid upstream URL"


@dataclass(slots=True)
class UpstreamRequest:
    """One request to send upstream (never changed; not frozen, like `Incoming`: a frozen
    dataclass's `__init__` costs ~4x, once per attempt)."""

    method: str
    url: str
    headers: Headers
    body: bytes
    secrets: tuple[str, ...] = ()  # scrubbed from the response (the key we injected)


class UpstreamResponse(Protocol):
    status: int
    headers: Headers  # lower-case names
    closed: bool  # after `aclose()`

    def chunks(self, idle_timeout: float) -> AsyncIterator[bytes]: ...

    # What the response holds already, told without waiting (a reply to the client goes out
    # in fewer writes when no wait on the upstream lies ahead: `pipeline/run.py`'s `_reply`).
    @property
    def buffered(self) -> bool:
        """Body bytes (or the body's end) arrived that `chunks()` has not given yet."""
        ...

    @property
    def complete(self) -> bool:
        """The body's end arrived: reading the rest of `chunks()` cannot wait on the upstream."""
        ...

    def release(self) -> bool:
        """Close now when that needs no I/O (a whole response's connection back to the pool):
        True once closed; False: `aclose()` is needed."""
        ...

    async def aclose(self) -> None: ...


async def close_response(response: UpstreamResponse) -> None:
    """Close `response`, shielded only when that has to wait (a cancel scope per request
    cost ~1.5% of the proxy's CPU, py-spy at c=64)."""
    if not response.release():
        with trio.CancelScope(shield=True):
            await response.aclose()


def header(headers: Headers, name: str) -> str:
    """The first `name` header's value, "" when there is none (a loop: a generator for
    `next()` cost twice as much, twice a request)."""
    for key, value in headers:
        if key == name:
            return value
    return ""


async def read_all(response: UpstreamResponse, limit: int, idle_timeout: float) -> bytes:
    """The whole body; more than `limit` bytes is an `UpstreamError` (never silently cut)."""
    if isinstance(response, _PooledResponse) and (whole := response.whole_now()) is not None:
        if len(whole) > limit:  # (it arrived with the head: no generator, no wait)
            raise _too_large(limit)
        return whole
    parts: list[bytes] = []
    size = 0
    async for chunk in response.chunks(idle_timeout):
        size += len(chunk)
        if size > limit:
            raise _too_large(limit)
        parts.append(chunk)
    return b"".join(parts)


def _too_large(limit: int) -> UpstreamTooLarge:
    return UpstreamTooLarge(f"upstream response larger than {limit // (1024 * 1024)} MiB")


class _PooledResponse:
    """A response on a pooled connection; `aclose()` hands the connection back (or closes it,
    when the body was not read to its end)."""

    def __init__(
        self,
        pool: ConnectionPool,
        connection: Connection,
        head: Head,
        scrubber: Scrubber | None,
        timer: HeadTimer,
    ) -> None:
        self._pool, self._connection, self._timer = pool, connection, timer
        self.closed = False
        self.status = head.status
        self._body = Body(head.fields, scrubber)  # decoded with the head, in one go
        self.headers = self._body.headers

    def chunks(self, idle_timeout: float) -> AsyncIterator[bytes]:
        return _Chunks(self._body, self._connection, self._timer, idle_timeout)

    @property
    def buffered(self) -> bool:
        reader = self._connection.reader
        return not self.closed and reader is not None and (reader.unread or reader.done)

    @property
    def complete(self) -> bool:
        if self.closed:
            return True
        reader = self._connection.reader
        return reader is not None and (reader.done or reader.whole_buffered)

    def whole_now(self) -> bytes | None:
        """The whole body (decoded, scrubbed) when all of it is here already; else None, and
        nothing read."""
        reader = self._connection.reader
        if reader is None or not reader.whole_buffered:
            return None
        body = self._body
        try:
            data = body.feed(reader.body())
            tail = body.end()
        except zlib.error:
            raise UpstreamError(UNDECODABLE) from None
        return data + tail if tail else data

    def release(self) -> bool:
        if not self.closed and self._pool.checkin_nowait(self._connection):
            self.closed = True
        return self.closed

    async def aclose(self) -> None:
        if not self.closed:
            self.closed = True
            await self._pool.checkin(self._connection)


class _Chunks:
    """The body of a `_PooledResponse`, decoded and scrubbed, as it arrives: an async iterator
    object rather than an async generator, which trio's hooks track (a WeakSet entry made,
    a finalizer run) at a cost comparable to reading a small body's chunk. It reads as the
    generator did (`tests/upstream/test_chunks_reference.py`): each step gives what arrived,
    reading (idle timeout per read) only when nothing did; after an error, nothing more."""

    __slots__ = ("_body", "_connection", "_ended", "_gave", "_idle", "_reader", "_timer")

    def __init__(
        self, body: Body, connection: Connection, timer: HeadTimer, idle_timeout: float
    ) -> None:
        reader = connection.reader
        assert reader is not None
        self._body, self._connection, self._reader = body, connection, reader
        self._timer = timer if idle_timeout < math.inf else None
        self._idle = idle_timeout
        self._ended = False
        self._gave = False  # the last step gave a chunk: this one looks at `done` first

    def __aiter__(self) -> _Chunks:
        return self

    async def __anext__(self) -> bytes:
        if self._ended:
            raise StopAsyncIteration
        body, reader = self._body, self._reader
        try:
            skip, self._gave = self._gave, False
            while True:
                if not skip and (chunk := body.feed(reader.body())):
                    self._gave = True
                    return chunk
                skip = False
                if reader.done:
                    break
                reader.feed(await self._receive())
            self._ended = True
            if tail := body.end():
                return tail
        except (ProtocolError, TransportError) as exc:
            self._ended = True
            if self._connection.timed_out:  # shut down by the timer: not the body's end
                raise UpstreamTimeout(idle_text(self._idle)) from None
            raise UpstreamError(core_reason(exc)) from None
        except zlib.error:
            self._ended = True
            raise UpstreamError(UNDECODABLE) from None
        except BaseException:
            self._ended = True
            raise
        raise StopAsyncIteration

    async def _receive(self) -> bytes:
        """The next bytes, within the idle timeout (the timer's, while it runs)."""
        connection, timer = self._connection, self._timer
        if timer is not None and timer.running:
            return await _timed_receive(connection, timer, self._idle)
        with trio.move_on_after(self._idle):
            return await connection.receive()
        raise UpstreamTimeout(idle_text(self._idle))


async def _timed_receive(connection: Connection, timer: HeadTimer, idle: float) -> bytes:
    """The connection's next bytes; `TransportError` when none came within `idle` seconds (the
    timer shut the connection down: the end of the stream seen then is not the body's)."""
    timer.watch(connection, idle)
    try:
        data = await connection.receive()
    finally:
        timer.unwatch(connection)
    if connection.timed_out:
        raise TransportError("no data in time")
    return data


def _environment_proxies() -> bool:
    """Whether the environment names an HTTP(S) proxy (what httpx2's `trust_env` honours)."""
    found = getproxies()
    if "*" in (host.strip() for host in found.get("no", "").split(",")):
        return False
    return any(found.get(scheme) for scheme in ("http", "https", "all"))


class Upstreams:
    """The pooled connections to every upstream, plus the in-process mock provider."""

    def __init__(
        self,
        mock: MockProvider | None = None,
        *,
        max_connections: int = 1000,
        ssl_context: ssl.SSLContext | None = None,
        trust_env: bool = True,
    ) -> None:
        """`ssl_context`: how HTTPS upstreams are verified (default: httpx2's, the system's
        CAs, `SSL_CERT_FILE`/`SSL_CERT_DIR` honoured); `trust_env=False`: never through the
        environment's outbound proxy."""
        context = ssl_context or httpx2.create_ssl_context()
        self._client: httpx2.AsyncClient | None = None
        if trust_env and _environment_proxies():
            limits = httpx2.Limits(
                max_connections=max_connections, max_keepalive_connections=256, keepalive_expiry=30
            )
            self._client = httpx2.AsyncClient(
                timeout=httpx2.Timeout(None), limits=limits, follow_redirects=False,
                verify=context,
            )  # fmt: skip
        self._pool = ConnectionPool(context, max_connections=max_connections)
        self.mock = mock or MockProvider()
        self.timer = HeadTimer()

    async def open(self, request: UpstreamRequest, *, headers_timeout: float) -> UpstreamResponse:
        """Send the request; returns once response headers arrived (within `headers_timeout` s)."""
        scrubber = Scrubber.of(request.secrets) if request.secrets else None
        if self._client is not None or request.url.startswith("mock:"):
            outgoing = (request.method, request.url, request.headers, request.body)
            if request.url.startswith("mock:"):  # in-process, whatever proxy the env names
                return await open_mock(self.mock, outgoing, headers_timeout, scrubber)
            assert self._client is not None
            return await open_httpx(self._client, outgoing, headers_timeout, scrubber)
        try:
            destination = self._pool.destination(request.url)
        except httpx2.InvalidURL:
            raise UpstreamError(INVALID_URL) from None
        try:
            data, rest = destination.encode(request.method, request.headers, request.body)
        except ValueError:
            raise UpstreamError("invalid header or method for the upstream request") from None
        if self.timer.running and headers_timeout < math.inf:
            connection = self._pool.checkout_nowait(destination)
            if connection is not None:
                return await self._open_on(
                    connection, data, rest, request.method, headers_timeout, scrubber
                )
        try:  # connecting, or waiting for a slot: bounded by a scope of its own
            with trio.move_on_after(headers_timeout) as deadline:  # cheaper than fail_after
                sent = await self._pool.send(destination, data, rest, request.method)
        except (ProtocolError, TransportError) as exc:
            raise UpstreamError(core_reason(exc)) from None
        if deadline.cancelled_caught:
            raise UpstreamTimeout(timeout_text(headers_timeout))
        return _PooledResponse(self._pool, *sent, scrubber, self.timer)

    async def _open_on(
        self,
        connection: Connection,
        data: bytes,
        rest: bytes,
        method: str,
        headers_timeout: float,
        scrubber: Scrubber | None,
    ) -> UpstreamResponse:
        """The request on an idle pooled connection, its headers timeout kept by the timer."""
        timer = self.timer
        timer.watch(connection, headers_timeout)
        try:
            head = await self._pool.request_on(connection, data, rest, method)
        except (ProtocolError, TransportError) as exc:
            if connection.timed_out:
                raise UpstreamTimeout(timeout_text(headers_timeout)) from None
            raise UpstreamError(core_reason(exc)) from None
        finally:
            timer.unwatch(connection)
        return _PooledResponse(self._pool, connection, head, scrubber, self.timer)

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Keep the headers timeouts of requests on pooled connections (`head_timer.py`)
        until cancelled; without it each request enters a cancel scope of its own."""
        await self.timer.run(task_status=task_status)

    async def aclose(self) -> None:
        await self._pool.aclose()
        if self._client is not None:
            await self._client.aclose()


def lower_headers(headers: Mapping[str, str]) -> dict[str, str]:
    return {k.lower(): v for k, v in headers.items()}
