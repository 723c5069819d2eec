"""Undoing `content-encoding` on upstream replies: we ask for identity, but must cope.

gzip and deflate (zlib-wrapped or raw), several in a row, undone from the one applied last. A
coding we have no decoder for (br, zstd) ends that: it and the codings applied before it stay
on the body, and stay named in the `content-encoding` the client gets, so it can undo them (a
body relayed without its coding would be garbage). Corrupt data raises `zlib.error`, and so
does a chunk that would decode to more than `MAX_DECODED` bytes (a decompression bomb, nested
codings multiplying it): a hostile upstream cannot make one read take unbounded memory.
"""

from __future__ import annotations

import zlib

MAX_DECODED = 64 * 1024 * 1024  # bytes one step may make of one chunk


class _Step:
    __slots__ = ("_raw_fallback", "_z")

    def __init__(self, coding: str) -> None:
        self._raw_fallback = coding == "deflate"  # servers send both zlib and raw deflate
        self._z = zlib.decompressobj(zlib.MAX_WBITS | 16 if coding == "gzip" else zlib.MAX_WBITS)

    def decode(self, data: bytes) -> bytes:
        try:
            out = self._z.decompress(data, MAX_DECODED)
        except zlib.error:
            if not self._raw_fallback:
                raise
            self._z = zlib.decompressobj(-zlib.MAX_WBITS)
            out = self._z.decompress(data, MAX_DECODED)
        self._raw_fallback = False
        if self._z.unconsumed_tail:
            raise zlib.error(f"a chunk decodes to more than {MAX_DECODED} bytes")
        return out

    def flush(self) -> bytes:
        return self._z.flush()


class ContentDecoder:
    """Decodes a body chunk by chunk; `flush()` at the end returns what is left."""

    __slots__ = ("_steps",)

    def __init__(self, codings: list[str]) -> None:
        self._steps = [_Step(coding) for coding in reversed(codings)]  # applied last, undone first

    def decode(self, data: bytes) -> bytes:
        for step in self._steps:
            data = step.decode(data)
        return data

    def flush(self) -> bytes:
        data = b""
        for step in self._steps:
            data = step.decode(data) + step.flush() if data else step.flush()
        return data


def decoder_for(content_encoding: str) -> tuple[ContentDecoder | None, str]:
    """The decoder for what we can undo of a `content-encoding` value, and the value naming
    the codings left (`br, gzip`: a gzip decoder, and `br`); (None, the value) when there is
    nothing to undo."""
    codings = [c.strip().lower() for c in content_encoding.split(",") if c.strip()]
    undone: list[str] = []
    while codings and codings[-1] in ("gzip", "deflate", "identity"):
        coding = codings.pop()
        if coding != "identity":
            undone.append(coding)
    if not undone:
        return None, content_encoding
    return ContentDecoder(undone[::-1]), ", ".join(codings)
