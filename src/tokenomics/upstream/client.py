"""Talking to upstream providers: the only user of httpx2.

One pooled `httpx2.AsyncClient` serves every upstream (connections are pooled per origin).
`open()` bounds connect + time to response headers (D9); reading the body then uses an idle
timeout per chunk, never a cap on total duration. `mock://` URLs are answered in-process by the
built-in mock provider. Transport errors become `UpstreamError` with a safe message: never a
URL, a query string or a key.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol
from urllib.parse import urlsplit

import httpx2
import trio

from tokenomics.domain.errors import TokenomicsError
from tokenomics.upstream.mock import MockProvider, MockReply

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Mapping

Headers = list[tuple[str, str]]


class UpstreamError(TokenomicsError):
    """The upstream could not be reached or broke off; `reason` is safe to show."""

    status = 502

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class UpstreamTimeout(UpstreamError):
    status = 504


@dataclass(frozen=True, slots=True)
class UpstreamRequest:
    method: str
    url: str
    headers: Headers
    body: bytes


class UpstreamResponse(Protocol):
    status: int
    headers: Headers  # lower-case names

    def chunks(self, idle_timeout: float) -> AsyncIterator[bytes]: ...

    async def aclose(self) -> None: ...


def header(headers: Headers, name: str) -> str:
    return next((value for key, value in headers if key == name), "")


async def read_all(response: UpstreamResponse, limit: int, idle_timeout: float) -> bytes:
    """The whole body; more than `limit` bytes is an `UpstreamError` (never silently cut)."""
    parts: list[bytes] = []
    size = 0
    async for chunk in response.chunks(idle_timeout):
        size += len(chunk)
        if size > limit:
            raise UpstreamError(f"upstream response larger than {limit // (1024 * 1024)} MiB")
        parts.append(chunk)
    return b"".join(parts)


class _HttpResponse:
    def __init__(self, response: httpx2.Response) -> None:
        self._response = response
        self.status = response.status_code
        self.headers = [(k.lower(), v) for k, v in response.headers.multi_items()]

    async def chunks(self, idle_timeout: float) -> AsyncIterator[bytes]:
        iterator = self._response.aiter_bytes().__aiter__()
        while True:
            try:
                with trio.fail_after(idle_timeout):
                    chunk = await iterator.__anext__()
            except StopAsyncIteration:
                return
            except trio.TooSlowError:
                raise UpstreamTimeout(f"no data from upstream for {idle_timeout:g}s") from None
            except httpx2.HTTPError as exc:
                raise UpstreamError(_reason(exc)) from None
            if chunk:
                yield chunk

    async def aclose(self) -> None:
        await self._response.aclose()


class _MockResponse:
    def __init__(self, reply: MockReply) -> None:
        self._reply = reply
        self.status = reply.status
        self.headers = [(k.lower(), v) for k, v in reply.headers]

    async def chunks(self, idle_timeout: float) -> AsyncIterator[bytes]:
        for index, chunk in enumerate(self._reply.chunks):
            if index and self._reply.chunk_interval:
                if self._reply.chunk_interval > idle_timeout:
                    await trio.sleep(idle_timeout)
                    raise UpstreamTimeout(f"no data from upstream for {idle_timeout:g}s")
                await trio.sleep(self._reply.chunk_interval)
            yield chunk

    async def aclose(self) -> None:
        return None


def _reason(exc: Exception) -> str:
    if isinstance(exc, httpx2.TimeoutException):
        return "upstream timed out"
    if isinstance(exc, httpx2.ConnectError):
        return "could not connect to upstream"
    if isinstance(exc, httpx2.RemoteProtocolError):
        return "upstream closed the connection or sent an invalid response"
    if isinstance(exc, httpx2.DecodingError):
        return "upstream response could not be decoded"
    return "upstream connection failed"


class Upstreams:
    """The pooled client for every upstream, plus the in-process mock provider."""

    def __init__(self, mock: MockProvider | None = None, *, max_connections: int = 1000) -> None:
        limits = httpx2.Limits(
            max_connections=max_connections, max_keepalive_connections=256, keepalive_expiry=30
        )
        self._client = httpx2.AsyncClient(
            timeout=httpx2.Timeout(None), limits=limits, follow_redirects=False
        )
        self.mock = mock or MockProvider()

    async def open(self, request: UpstreamRequest, *, headers_timeout: float) -> UpstreamResponse:
        """Send the request; returns once response headers arrived (within `headers_timeout` s)."""
        parts = urlsplit(request.url)
        if parts.scheme == "mock":
            reply = self.mock.respond(
                request.method, parts.path, parts.query, dict(request.headers), request.body
            )
            if reply.first_byte_delay > headers_timeout:
                await trio.sleep(headers_timeout)
                raise UpstreamTimeout(_timeout_text(headers_timeout))
            await trio.sleep(reply.first_byte_delay)
            return _MockResponse(reply)
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
        return _HttpResponse(response)

    async def aclose(self) -> None:
        await self._client.aclose()


def _timeout_text(timeout: float) -> str:
    shown = f"{timeout:g}" if math.isfinite(timeout) else "?"
    return f"no response headers from upstream within {shown}s"


def lower_headers(headers: Mapping[str, str]) -> dict[str, str]:
    return {k.lower(): v for k, v in headers.items()}
