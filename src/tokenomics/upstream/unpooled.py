"""Responses that do not come from the connection pool: httpx2's, when the environment names an
outbound proxy (it honours `HTTP(S)_PROXY`, `ALL_PROXY` and `NO_PROXY`), and the in-process
mock provider's (`mock://` URLs). Their bodies are read like a pooled one's (`response_body.py`)."""

from __future__ import annotations

import zlib
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

import httpx2
import trio

from tokenomics.domain.errors import UpstreamError, UpstreamTimeout
from tokenomics.upstream.response_body import (
    CONNECT_FAILED,
    FAILED,
    INVALID_REPLY,
    UNDECODABLE,
    Body,
    idle_text,
    timeout_text,
)

if TYPE_CHECKING:
    from collections.abc import AsyncIterator

    from tokenomics.upstream.mock import MockProvider, MockReply
    from tokenomics.upstream.scrub import Scrubber

    Outgoing = tuple[str, str, list[tuple[str, str]], bytes]  # method, URL, headers, body


class HttpxResponse:
    """A response from the httpx2 client (used when the environment names a proxy), its body
    read raw and decoded like a pooled one's."""

    def __init__(self, response: httpx2.Response, scrubber: Scrubber | None) -> None:
        self._response = response
        self.closed = False
        self.status = response.status_code
        self._body = Body([(k.lower(), v) for k, v in response.headers.multi_items()], scrubber)
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
                    raise UpstreamTimeout(idle_text(idle_timeout)) from None
                except httpx2.HTTPError as exc:
                    raise UpstreamError(httpx_reason(exc)) from None
                if chunk := self._body.feed(chunk):
                    yield chunk
            if tail := self._body.end():
                yield tail
        except zlib.error:
            raise UpstreamError(UNDECODABLE) from None

    # httpx2 says nothing of what it holds: every part goes out as it comes (no holding back).
    buffered = False
    complete = False

    def release(self) -> bool:
        return self.closed

    async def aclose(self) -> None:
        self.closed = True
        await self._response.aclose()


async def open_httpx(
    client: httpx2.AsyncClient,
    request: Outgoing,
    headers_timeout: float,
    scrubber: Scrubber | None,
) -> HttpxResponse:
    """Send `request` through `client`; returns once its headers arrived in time."""
    method, url, headers, body = request
    built = client.build_request(method, url, headers=headers, content=body)
    try:
        with trio.fail_after(headers_timeout):
            response = await client.send(built, stream=True)
    except trio.TooSlowError:
        raise UpstreamTimeout(timeout_text(headers_timeout)) from None
    except httpx2.HTTPError as exc:
        raise UpstreamError(httpx_reason(exc)) from None
    return HttpxResponse(response, scrubber)


def httpx_reason(exc: Exception) -> str:
    """The safe text for one of httpx2's errors (the same texts as the pool's)."""
    if isinstance(exc, httpx2.TimeoutException):
        return "upstream timed out"
    if isinstance(exc, httpx2.ConnectError):
        return CONNECT_FAILED
    if isinstance(exc, httpx2.RemoteProtocolError):
        return INVALID_REPLY
    return FAILED


class MockResponse:
    def __init__(self, reply: MockReply, scrubber: Scrubber | None) -> None:
        self._reply = reply
        self._given = 0  # chunks `chunks()` has given
        self.closed = False
        self.status = reply.status
        self._body = Body([(k.lower(), v) for k, v in reply.headers], scrubber)
        self.headers = self._body.headers

    async def chunks(self, idle_timeout: float) -> AsyncIterator[bytes]:
        for index, chunk in enumerate(self._reply.chunks):
            if index and self._reply.chunk_interval:
                if self._reply.chunk_interval > idle_timeout:
                    await trio.sleep(idle_timeout)
                    raise UpstreamTimeout(idle_text(idle_timeout))
                await trio.sleep(self._reply.chunk_interval)
            self._given = index + 1
            if scrubbed := self._body.feed(chunk):
                yield scrubbed
        if tail := self._body.end():
            yield tail

    @property
    def buffered(self) -> bool:
        """The first chunk comes at once, and the others too when they are not paced."""
        return self._given == 0 or self.complete

    @property
    def complete(self) -> bool:
        """Every chunk is here when they are not paced, else once the last was given."""
        reply = self._reply
        return not reply.chunk_interval or self._given >= len(reply.chunks)

    def release(self) -> bool:
        self.closed = True
        return True

    async def aclose(self) -> None:
        self.closed = True


async def open_mock(
    mock: MockProvider,
    request: Outgoing,
    headers_timeout: float,
    scrubber: Scrubber | None,
) -> MockResponse:
    """The mock provider's reply to `request`, after its first-byte delay."""
    method, url, headers, body = request
    parts = urlsplit(url)
    reply = mock.respond(method, parts.path, parts.query, dict(headers), body)
    if reply.first_byte_delay > headers_timeout:
        await trio.sleep(headers_timeout)
        raise UpstreamTimeout(timeout_text(headers_timeout))
    await trio.sleep(reply.first_byte_delay)
    return MockResponse(reply, scrubber)
