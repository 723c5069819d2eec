"""What every upstream response shares, whichever client carried it (the pool, httpx2 on the
proxy-env path, the in-process mock): how its body is read (content codings undone, then the
request's secrets scrubbed) and the safe texts its errors carry (never a URL or a key)."""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

from tokenomics.upstream.decoding import ContentDecoder, decoder_for
from tokenomics.upstream.http11 import ProtocolError
from tokenomics.upstream.pool import ConnectError

if TYPE_CHECKING:
    from tokenomics.upstream.scrub import Scrubber

Headers = list[tuple[str, str]]
UNDECODABLE = "upstream response could not be decoded"
CONNECT_FAILED = "could not connect to upstream"
INVALID_REPLY = "upstream closed the connection or sent an invalid response"
FAILED = "upstream connection failed"


def idle_text(idle_timeout: float) -> str:
    return f"no data from upstream for {idle_timeout:g}s"


def timeout_text(timeout: float) -> str:
    shown = f"{timeout:g}" if math.isfinite(timeout) else "?"
    return f"no response headers from upstream within {shown}s"


def core_reason(exc: Exception) -> str:
    """The safe text for one of the pool's errors."""
    if isinstance(exc, ConnectError):
        return CONNECT_FAILED
    if isinstance(exc, ProtocolError):
        return INVALID_REPLY
    return FAILED


def _decoding(headers: Headers) -> tuple[ContentDecoder | None, Headers]:
    """The decoder for the content codings we can undo, and the headers naming those left."""
    codings = [v for k, v in headers if k == "content-encoding"]
    if not codings:
        return None, headers
    decoder, rest = decoder_for(", ".join(codings))
    if decoder is None:
        return None, headers
    kept = [(k, v) for k, v in headers if k != "content-encoding"]
    return decoder, [*kept, ("content-encoding", rest)] if rest else kept


class Body:
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
