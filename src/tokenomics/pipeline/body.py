"""A proxied request's body: read only once its head has passed (framing, token), within
`server.body_timeout`, up to `server.max_request_mb`, and while all requests together hold at
most `server.max_buffered_mb` of bodies in memory.

So a client without a valid token costs no memory for its body, a client sending its body too
slowly gets 408 when the time is up (and holds only the bytes it sent, not its declared
length), and a burst of large bodies gets 503 with `Retry-After` instead of growing the
process: at once when a declared length cannot fit, else when the bytes that arrived do not.
A reply sent before the whole body was read closes the connection (`close_after`): the rest of
the body is never read. (the server ends a connection as soon as a reply is sent while its
request's body is unread.)
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

import trio

from tokenomics.domain.errors import ProxyError

Receive = Callable[[], Awaitable[MutableMapping[str, Any]]]
MIB = 1024 * 1024
RETRY_BUSY = 1.0  # seconds; bodies are let go as their requests end


class ClientGone(Exception):
    """The client disconnected before its whole body arrived."""


class BodyTooLarge(Exception):
    """A small body (`read_small`) went past its limit."""


async def read_small(receive: Receive, limit: int) -> bytes:
    """The whole body of a request to the admin API, the remote API or a webhook: more than
    `limit` bytes raises `BodyTooLarge` (never silently cut), a client that leaves before the
    end `ClientGone`. The caller bounds the time."""
    parts: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            raise ClientGone
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            raise BodyTooLarge
        parts.append(chunk)
        if not message.get("more_body", False):
            return b"".join(parts)


def _declared(headers: dict[str, str]) -> int | None:
    """The Content-Length (the server's parser has checked it is one number), if any."""
    value = headers.get("content-length")
    return int(value) if value is not None and value.strip().isdigit() else None


def close_after(headers: dict[str, str]) -> bool:
    """Whether a reply sent before the body was read must close the connection: the request
    has a body, which stays unread (or a framing that was refused, `stages.check_framing`)."""
    return "transfer-encoding" in headers or bool(_declared(headers))


class Bodies:
    """Reads request bodies, and counts the body bytes that requests hold in memory."""

    def __init__(self, *, max_request_mb: int, max_buffered_mb: int, timeout: float) -> None:
        self.max_request_mb = max_request_mb
        self.max_buffered_mb = max_buffered_mb
        self.timeout = timeout
        self.held = 0  # bytes of bodies read or being read, until `release`

    def _fits(self, size: int) -> bool:
        return self.held + size <= self.max_buffered_mb * MIB

    def _busy(self) -> ProxyError:
        return ProxyError(
            503,
            f"too many request bodies in memory at once (limit {self.max_buffered_mb} MiB); "
            "retry later",
            retry_after=RETRY_BUSY,
        )

    def _take(self, size: int) -> None:
        if not self._fits(size):
            raise self._busy()
        self.held += size

    def release(self, size: int) -> None:
        self.held -= size

    def _too_large(self) -> ProxyError:
        return ProxyError(413, f"request body larger than {self.max_request_mb} MiB")

    async def read(
        self,
        receive: Receive,
        headers: dict[str, str],
        whole: Callable[[], bytes | None] | None = None,
    ) -> bytes:
        """The whole body; the caller releases `len(body)` when its request ends. Raises
        ProxyError 413, 503 or 408, or ClientGone; nothing stays held then. `whole`: the
        server's way to take a body that has already arrived whole (None when it has not),
        read then without a deadline."""
        declared = _declared(headers)
        limit = self.max_request_mb * MIB
        if declared is not None and declared > limit:
            raise self._too_large()
        body = whole() if whole is not None else None
        if body is not None:
            if len(body) > limit:
                raise self._too_large()
            self._take(len(body))  # the server framed it: its declared length, if any
            return body
        if declared and not self._fits(declared):  # 503 before a byte is read
            raise self._busy()
        taken = 0
        try:
            with trio.move_on_after(self.timeout):
                parts: list[bytes] = []
                while True:  # memory is taken as the bytes arrive, not for bytes promised
                    message = await receive()
                    if message["type"] == "http.disconnect":
                        raise ClientGone
                    chunk = message.get("body", b"")
                    if taken + len(chunk) > limit:
                        raise self._too_large()
                    self._take(len(chunk))
                    taken += len(chunk)
                    parts.append(chunk)
                    if not message.get("more_body", False):
                        return b"".join(parts)
        except BaseException:
            self.release(taken)
            raise
        self.release(taken)
        raise ProxyError(408, f"request body not received within {self.timeout:g} s")
