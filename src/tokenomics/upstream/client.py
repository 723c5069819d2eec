"""Talking to upstream providers: the only user of httpx2 (URLs, TLS defaults, proxies).

Requests go out on pooled keep-alive connections (`pool.py`, per origin). When the environment
names an HTTP(S) proxy, one `httpx2.AsyncClient` carries every request instead, since it honours
`HTTP(S)_PROXY`, `ALL_PROXY` and `NO_PROXY`. `open()` bounds connect + time to response headers
(D9): on an idle pooled connection, while `run` keeps time, by the `head_timer` (no cancel
scope per request); else by a cancel scope. Reading the body then uses an idle timeout per
read (kept the same way), never a cap on total duration.
Compressed replies (we ask for identity, but must cope) are decoded where we can: what we cannot
undo stays named in `content-encoding`. The request's `secrets` are scrubbed from the response's
headers and body as they arrive (`scrub.py`). `mock://` URLs are answered in-process by the
built-in mock provider. Transport errors become `UpstreamError` with a safe message: never a
URL, a query string or a key.
"""

from __future__ import annotations

import math
import zlib
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol
from urllib.parse import urlsplit
from urllib.request import getproxies

import httpx2
import trio

from tokenomics.domain.errors import UpstreamError, UpstreamTimeout, UpstreamTooLarge
from tokenomics.upstream.decoding import ContentDecoder, decoder_for
from tokenomics.upstream.head_timer import HeadTimer
from tokenomics.upstream.http11 import Head, ProtocolError
from tokenomics.upstream.mock import MockProvider, MockReply
from tokenomics.upstream.pool import ConnectError, Connection, ConnectionPool, TransportError
from tokenomics.upstream.scrub import Scrubber

if TYPE_CHECKING:
    import ssl
    from collections.abc import AsyncIterator, Mapping

Headers = list[tuple[str, str]]
_UNDECODABLE = "upstream response could not be decoded"
INVALID_URL = "invalid upstream URL"


@dataclass(frozen=True, slots=True)
class UpstreamRequest:
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
    return next((value for key, value in headers if key == name), "")


async def read_all(response: UpstreamResponse, limit: int, idle_timeout: float) -> bytes:
    """The whole body; more than `limit` bytes is an `UpstreamError` (never silently cut)."""
    parts: list[bytes] = []
    size = 0
    async for chunk in response.chunks(idle_timeout):
        size += len(chunk)
        if size > limit:
            raise UpstreamTooLarge(f"upstream response larger than {limit // (1024 * 1024)} MiB")
        parts.append(chunk)
    return b"".join(parts)


def _idle_text(idle_timeout: float) -> str:
    return f"no data from upstream for {idle_timeout:g}s"


def _decoding(headers: Headers) -> tuple[ContentDecoder | None, Headers]:
    """The decoder for the content codings we can undo, and the headers naming those left."""
    decoder, rest = decoder_for(", ".join(v for k, v in headers if k == "content-encoding"))
    if decoder is None:
        return None, headers
    kept = [(k, v) for k, v in headers if k != "content-encoding"]
    return decoder, [*kept, ("content-encoding", rest)] if rest else kept


class _Body:
    """How a response is read: content codings undone, then secrets scrubbed; `headers` are
    the response's headers to match (scrubbed, naming only the codings left)."""

    __slots__ = ("_decoder", "_scrubber", "headers")

    def __init__(self, headers: Headers, scrubber: Scrubber | None) -> None:
        self._decoder, headers = _decoding(headers)
        self._scrubber = scrubber
        self.headers = scrubber.headers(headers) if scrubber is not None else headers

    def feed(self, chunk: bytes) -> bytes:
        if self._decoder is not None and chunk:
            chunk = self._decoder.decode(chunk)
        if self._scrubber is not None and chunk:
            chunk = self._scrubber.feed(chunk)
        return chunk

    def end(self) -> bytes:
        """What is left at the end of the body (zlib.error: it was cut short)."""
        tail = self._decoder.flush() if self._decoder is not None else b""
        if self._scrubber is not None:
            tail = self._scrubber.feed(tail) + self._scrubber.flush()
        return tail


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
        headers = [(k.decode("latin-1"), v.decode("latin-1")) for k, v in head.headers]
        self._body = _Body(headers, scrubber)
        self.headers = self._body.headers

    async def chunks(self, idle_timeout: float) -> AsyncIterator[bytes]:
        body, connection = self._body, self._connection
        reader = connection.reader
        assert reader is not None
        timer = self._timer if idle_timeout < math.inf else None
        try:
            while True:
                if chunk := body.feed(reader.body()):
                    yield chunk
                if reader.done:
                    break
                if timer is not None and timer.running:  # the timer keeps the idle timeout
                    reader.feed(await _timed_receive(connection, timer, idle_timeout))
                    continue
                with trio.move_on_after(idle_timeout):
                    reader.feed(await connection.receive())
                    continue
                raise UpstreamTimeout(_idle_text(idle_timeout))
            if tail := body.end():
                yield tail
        except (ProtocolError, TransportError) as exc:
            if connection.timed_out:  # shut down by the timer: the end seen was not the body's
                raise UpstreamTimeout(_idle_text(idle_timeout)) from None
            raise UpstreamError(_core_reason(exc)) from None
        except zlib.error:
            raise UpstreamError(_UNDECODABLE) from None

    def release(self) -> bool:
        if not self.closed and self._pool.checkin_nowait(self._connection):
            self.closed = True
        return self.closed

    async def aclose(self) -> None:
        if not self.closed:
            self.closed = True
            await self._pool.checkin(self._connection)


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


class _HttpxResponse:
    """A response from the httpx2 client (used when the environment names a proxy), its body
    read raw and decoded like a pooled one's."""

    def __init__(self, response: httpx2.Response, scrubber: Scrubber | None) -> None:
        self._response = response
        self.closed = False
        self.status = response.status_code
        self._body = _Body([(k.lower(), v) for k, v in response.headers.multi_items()], scrubber)
        self.headers = self._body.headers

    async def chunks(self, idle_timeout: float) -> AsyncIterator[bytes]:
        iterator = self._response.aiter_raw().__aiter__()
        try:
            while True:
                try:
                    with trio.fail_after(idle_timeout):
                        chunk = await iterator.__anext__()
                except StopAsyncIteration:
                    break
                except trio.TooSlowError:
                    raise UpstreamTimeout(_idle_text(idle_timeout)) from None
                except httpx2.HTTPError as exc:
                    raise UpstreamError(_reason(exc)) from None
                if chunk := self._body.feed(chunk):
                    yield chunk
            if tail := self._body.end():
                yield tail
        except zlib.error:
            raise UpstreamError(_UNDECODABLE) from None

    def release(self) -> bool:
        return self.closed

    async def aclose(self) -> None:
        self.closed = True
        await self._response.aclose()


class _MockResponse:
    def __init__(self, reply: MockReply, scrubber: Scrubber | None) -> None:
        self._reply = reply
        self.closed = False
        self.status = reply.status
        self._body = _Body([(k.lower(), v) for k, v in reply.headers], scrubber)
        self.headers = self._body.headers

    async def chunks(self, idle_timeout: float) -> AsyncIterator[bytes]:
        for index, chunk in enumerate(self._reply.chunks):
            if index and self._reply.chunk_interval:
                if self._reply.chunk_interval > idle_timeout:
                    await trio.sleep(idle_timeout)
                    raise UpstreamTimeout(_idle_text(idle_timeout))
                await trio.sleep(self._reply.chunk_interval)
            if scrubbed := self._body.feed(chunk):
                yield scrubbed
        if tail := self._body.end():
            yield tail

    def release(self) -> bool:
        self.closed = True
        return True

    async def aclose(self) -> None:
        self.closed = True


def _reason(exc: Exception) -> str:
    if isinstance(exc, httpx2.TimeoutException):
        return "upstream timed out"
    if isinstance(exc, httpx2.ConnectError):
        return "could not connect to upstream"
    if isinstance(exc, httpx2.RemoteProtocolError):
        return "upstream closed the connection or sent an invalid response"
    return "upstream connection failed"


def _core_reason(exc: Exception) -> str:
    """The same texts as `_reason`, for the pool's errors."""
    if isinstance(exc, ConnectError):
        return "could not connect to upstream"
    if isinstance(exc, ProtocolError):
        return "upstream closed the connection or sent an invalid response"
    return "upstream connection failed"


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
        if request.url.startswith("mock:"):
            return await self._open_mock(request, headers_timeout, scrubber)
        if self._client is not None:
            return await self._open_httpx(request, headers_timeout, scrubber)
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
            raise UpstreamError(_core_reason(exc)) from None
        if deadline.cancelled_caught:
            raise UpstreamTimeout(_timeout_text(headers_timeout))
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
                raise UpstreamTimeout(_timeout_text(headers_timeout)) from None
            raise UpstreamError(_core_reason(exc)) from None
        finally:
            timer.unwatch(connection)
        return _PooledResponse(self._pool, connection, head, scrubber, self.timer)

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Keep the headers timeouts of requests on pooled connections (`head_timer.py`)
        until cancelled; without it each request enters a cancel scope of its own."""
        await self.timer.run(task_status=task_status)

    async def _open_mock(
        self, request: UpstreamRequest, headers_timeout: float, scrubber: Scrubber | None
    ) -> UpstreamResponse:
        parts = urlsplit(request.url)
        reply = self.mock.respond(
            request.method, parts.path, parts.query, dict(request.headers), request.body
        )
        if reply.first_byte_delay > headers_timeout:
            await trio.sleep(headers_timeout)
            raise UpstreamTimeout(_timeout_text(headers_timeout))
        await trio.sleep(reply.first_byte_delay)
        return _MockResponse(reply, scrubber)

    async def _open_httpx(
        self, request: UpstreamRequest, headers_timeout: float, scrubber: Scrubber | None
    ) -> UpstreamResponse:
        assert self._client is not None
        built = self._client.build_request(
            request.method, request.url, headers=request.headers, content=request.body
        )
        try:
            with trio.fail_after(headers_timeout):
                response = await self._client.send(built, stream=True)
        except trio.TooSlowError:
            raise UpstreamTimeout(_timeout_text(headers_timeout)) from None
        except httpx2.HTTPError as exc:
            raise UpstreamError(_reason(exc)) from None
        return _HttpxResponse(response, scrubber)

    async def aclose(self) -> None:
        await self._pool.aclose()
        if self._client is not None:
            await self._client.aclose()


def _timeout_text(timeout: float) -> str:
    shown = f"{timeout:g}" if math.isfinite(timeout) else "?"
    return f"no response headers from upstream within {shown}s"


def lower_headers(headers: Mapping[str, str]) -> dict[str, str]:
    return {k.lower(): v for k, v in headers.items()}
