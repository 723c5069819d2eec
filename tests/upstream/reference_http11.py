"""The response reader of `upstream/http11.py` as it was at main 1eb851c, the reference of
`test_http11_reference.py`: kept verbatim but for the request's encoding, which no test
reads. Its docstring then:

HTTP/1.1 on the wire to upstreams: a request's bytes, and a sans-I/O reader of the response.

The upstream client used to drive httpcore2's HTTP/1.1 connection (on h11): about 0.18 ms of
CPU per request on the benchmark machine, most of what forwarding cost. A proxy's client needs
little of their generality (it always has the whole request body; it reads one response at a
time), so this module does the RFC 9112 parts it needs directly:

- the request: the request line and the headers as given, validated (no CR, LF or NUL in a
  value, token names): a header can never be smuggled into another;
- the response: the status line and headers (bare LF line ends and obsolete folds tolerated,
  a size limit on the head), 1xx responses skipped, then the body framing of RFC 9112 §6.3 -
  none for HEAD, 204 and 304, chunked, Content-Length (several equal values accepted,
  different ones refused), else until the connection closes;
- whether the connection can carry another request (`keep_alive`).

It is at least as strict as h11 (0.16, the parser httpcore2 used; `tests/upstream/
test_http11_hostile.py` checks it on generated hostile responses): no NUL, lone CR, VT or FF
in a head or trailer; a space after the version and after the status code; a status of 100
or more; at most one Transfer-Encoding, and only `chunked` (h11 supports no other; an empty
one is not "absent"); a valid Content-Length even beside Transfer-Encoding; a chunk-size line
of hex digits, then optional extensions and trailing blanks, ended by CRLF; chunk data
followed by exactly CRLF (a bare LF there is how CVE-2025-43859 smuggled a request); trailers
checked like headers. Stricter than h11: only HTTP/1.0 and 1.1; a 64 KiB head (httpcore2
gave h11 100 KiB); a 16-digit chunk size; no CR or NUL in a chunk extension.
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass
from typing import Final

from tokenomics.domain.memo import remember

RawHeaders = list[tuple[bytes, bytes]]

MAX_HEAD_BYTES: Final = 64 * 1024  # status line and headers; the same limit for trailers
MAX_CHUNK_LINE: Final = 1024  # a chunk-size line with its extensions
_NAMES: dict[bytes, bytes] = {}  # header names seen, lower-cased (valid tokens only)
_NAMES_LIMIT: Final = 1024

_TOKEN: Final = re.compile(rb"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")
_STATUS_LINE: Final = re.compile(rb"HTTP/1\.([01]) ([0-9]{3})(?: [^\r\n]*)?")
_HEAD_END: Final = re.compile(rb"\n\r?\n")
_CHUNK_SIZE: Final = re.compile(rb"([0-9A-Fa-f]{1,16})(?:;[^\r\n\x00]*)?[ \t]*\r\n")

# Body framing
_NONE, _LENGTH, _CHUNKED, _UNTIL_EOF = range(4)
# Where a chunked body is
_SIZE, _DATA, _DATA_END, _TRAILERS, _END = range(5)


class ProtocolError(Exception):
    """The upstream sent something that is not an HTTP/1.1 response we can read, or closed the
    connection before the end of it."""


@dataclass(slots=True)  # not frozen: a frozen __init__ costs ~0.25 us per field
class Head:
    status: int
    headers: RawHeaders  # names lower-cased, values stripped, in the order received


@functools.lru_cache(maxsize=1024)  # the same few names go out with every request
def _valid_name(name: bytes) -> bool:
    return _TOKEN.fullmatch(name) is not None


def _tokens(headers: RawHeaders, name: bytes, *, empty: bool = False) -> list[bytes]:
    """The comma-separated list values of every `name` header, lower-cased (empty items only
    when asked: a Content-Length of "" is invalid, not absent)."""
    return [
        item.strip(b" \t").lower()
        for key, value in headers
        if key == name
        for item in value.split(b",")
        if empty or item.strip(b" \t")
    ]


def _check_bytes(raw: bytes) -> None:
    """No NUL, VT, FF or CR outside a CRLF in a head or trailer (h11 refuses them too)."""
    _check_flat(raw.replace(b"\r\n", b"\n"))


def _check_flat(flat: bytes) -> None:
    """`_check_bytes` of a head whose CRLFs were made LFs: any CR left is a lone one."""
    if b"\r" in flat or b"\x00" in flat or b"\x0b" in flat or b"\x0c" in flat:
        raise ProtocolError("NUL, VT, FF or a lone CR in the response head or trailers")


def _field_name(name: bytes) -> bytes | None:
    """`name` lower-cased, or None when it is not a token (known names from a memo)."""
    lowered = _NAMES.get(name)
    if lowered is None and _valid_name(name):
        lowered = remember(_NAMES, name, name.lower(), _NAMES_LIMIT)
    return lowered


def _parse_fields(lines: list[bytes]) -> RawHeaders:
    """Header (or trailer) lines: names lower-cased, values stripped, folds joined."""
    headers: RawHeaders = []
    for line in lines:
        if line[:1] in (b" ", b"\t"):  # obsolete line folding: continues the previous value
            if not headers:
                raise ProtocolError("folded line before the first header")
            name, value = headers[-1]
            headers[-1] = (name, (value + b" " + line.strip(b" \t")).strip(b" \t"))
            continue
        name, colon, value = line.partition(b":")
        lowered = _field_name(name) if colon else None
        if lowered is None:
            raise ProtocolError("invalid header line")
        headers.append((lowered, value.strip(b" \t")))
    return headers


def _framing_fields(headers: RawHeaders) -> tuple[bool, int | None]:
    """(chunked?, Content-Length) of a head or trailers, checked whether or not they frame a
    body: at most one Transfer-Encoding, and only `chunked`; one Content-Length of digits."""
    codings: list[bytes] = []
    lengths: set[bytes] = set()
    for name, value in headers:
        if name == b"content-length":
            lengths.update(item.strip(b" \t") for item in value.split(b","))
        elif name == b"transfer-encoding":
            codings.append(value)
    if len(codings) > 1 or (codings and codings[0].lower() != b"chunked"):
        raise ProtocolError("unsupported Transfer-Encoding")
    if not lengths:
        return bool(codings), None
    length = lengths.pop()
    if lengths or not length.isdigit() or len(length) > 18:
        raise ProtocolError("invalid Content-Length")
    return bool(codings), int(length)


def _parse_head(raw: bytes) -> tuple[int, bool, RawHeaders]:
    """Status line and headers of one head (without its blank line): status, HTTP/1.1?, headers."""
    flat = raw.replace(b"\r\n", b"\n")
    _check_flat(flat)
    lines = flat.split(b"\n")
    status_line = _STATUS_LINE.fullmatch(lines[0])
    if status_line is None or status_line[2] < b"100":
        raise ProtocolError("invalid status line")
    return int(status_line[2]), status_line[1] == b"1", _parse_fields(lines[1:])


class ResponseReader:
    """Sans-I/O reader of one HTTP/1.1 response to a request with the given method.

    `feed` what arrives (b"" when the connection closed), call `head()` until it returns the
    head, then `body()` for the body bytes as they arrive, until `done`."""

    __slots__ = (
        "_buf",
        "_chunk",
        "_eof",
        "_extra",
        "_framing",
        "_head",
        "_keep_alive",
        "_max_head",
        "_method_head",
        "_pos",
        "_remaining",
        "_scanned",
        "_trailer_bytes",
        "_trailers",
    )

    def __init__(self, method: str, max_head_bytes: int = MAX_HEAD_BYTES) -> None:
        self._method_head = method.upper() == "HEAD"
        self._max_head = max_head_bytes
        self._buf = b""
        self._pos = 0  # of the first unread byte in _buf
        self._scanned = 0  # bytes of _buf already searched for the end of the head
        self._eof = False
        self._head: Head | None = None
        self._keep_alive = False
        self._framing = _NONE
        self._remaining = 0  # of a Content-Length body, or of the current chunk
        self._chunk = _SIZE
        self._trailer_bytes = 0
        self._trailers: list[bytes] = []
        self._extra = False  # bytes arrived after the end of the response

    def feed(self, data: bytes) -> None:
        if not data:
            self._eof = True
        elif self.done:
            self._extra = True
        elif self._pos >= len(self._buf):
            self._buf, self._pos, self._scanned = data, 0, 0
        else:
            self._buf = self._buf[self._pos :] + data
            self._scanned -= self._pos
            self._pos = 0

    @property
    def done(self) -> bool:
        if self._head is None:
            return False
        if self._framing == _LENGTH:
            return self._remaining == 0
        if self._framing == _CHUNKED:
            return self._chunk == _END
        if self._framing == _UNTIL_EOF:
            return self._eof and self._pos >= len(self._buf)
        return True

    @property
    def whole_buffered(self) -> bool:
        """The head was read and all of the body is buffered (`body()` then ends it)."""
        if self._head is None:
            return False
        if self._framing == _LENGTH:
            return len(self._buf) - self._pos >= self._remaining
        return self._framing == _NONE

    @property
    def unread(self) -> bool:
        """The head was read and bytes after it arrived that `body()` has not taken yet."""
        return self._head is not None and self._pos < len(self._buf)

    @property
    def keep_alive(self) -> bool:
        return self._keep_alive and not self._extra and self._pos >= len(self._buf)

    def head(self) -> Head | None:
        while self._head is None:
            found = _HEAD_END.search(self._buf, max(self._pos, self._scanned - 2))
            if found is None:
                self._scanned = len(self._buf)
                if len(self._buf) - self._pos > self._max_head:
                    raise ProtocolError("response head too large")
                if self._eof:
                    raise ProtocolError("connection closed before a complete response head")
                return None
            if found.start() - self._pos > self._max_head:
                raise ProtocolError("response head too large")
            raw = self._buf[self._pos : found.start()].removesuffix(b"\r")
            self._pos = self._scanned = found.end()
            status, http11, headers = _parse_head(raw)
            if status == 101:
                raise ProtocolError("unexpected 101 Switching Protocols")
            chunked, length = _framing_fields(headers)  # checked on 1xx heads too, as h11 does
            if status >= 200:
                self._frame(status, http11, headers, chunked, length)
                self._head = Head(status, headers)
        return self._head

    def _frame(
        self, status: int, http11: bool, headers: RawHeaders, chunked: bool, length: int | None
    ) -> None:
        self._keep_alive = http11 and b"close" not in _tokens(headers, b"connection")
        if self._method_head or status in (204, 304):
            return
        if chunked:  # a Content-Length beside it is ignored, and the connection not reused
            self._framing = _CHUNKED
            self._keep_alive = self._keep_alive and length is None
        elif length is None:
            self._framing, self._keep_alive = _UNTIL_EOF, False
        else:
            self._framing, self._remaining = _LENGTH, length

    def body(self) -> bytes:
        if self._framing == _LENGTH:
            return self._length_body()
        if self._framing == _CHUNKED:
            return self._chunked_body()
        if self._framing == _UNTIL_EOF:
            data = self._buf[self._pos :]
            self._pos = len(self._buf)
            return data
        return b""

    def _length_body(self) -> bytes:
        pos = self._pos
        data = self._buf[pos : pos + self._remaining]  # the whole of it is no copy
        self._pos = pos + len(data)
        self._remaining -= len(data)
        if self._remaining and self._eof:
            raise ProtocolError("connection closed before the end of the response body")
        return data

    def _chunked_body(self) -> bytes:
        out: list[bytes] = []
        buf, pos, end = self._buf, self._pos, len(self._buf)
        while self._chunk != _END:
            if self._chunk == _DATA:
                if pos == end:
                    break
                data = buf[pos : pos + self._remaining]
                out.append(data)
                pos += len(data)
                self._remaining -= len(data)
                if not self._remaining:
                    self._chunk = _DATA_END
                continue
            if self._chunk == _DATA_END:
                if buf.startswith(b"\r\n", pos):
                    pos += 2
                    self._chunk = _SIZE
                    continue
                if end - pos >= 2 or (pos < end and buf[pos] != 13):
                    raise ProtocolError("chunk data not followed by CRLF")
                break
            line_end = buf.find(b"\n", pos)
            if line_end < 0:
                if end - pos > (MAX_CHUNK_LINE if self._chunk == _SIZE else self._max_head):
                    raise ProtocolError("chunk-size line or trailers too long")
                break
            if self._chunk == _SIZE:
                size = _CHUNK_SIZE.fullmatch(buf, pos, line_end + 1)
                if size is None:
                    raise ProtocolError("invalid chunk-size line")
                self._remaining = int(size[1], 16)
                self._chunk = _DATA if self._remaining else _TRAILERS
            else:
                self._trailer(buf[pos:line_end].removesuffix(b"\r"))
            pos = line_end + 1
        self._pos = pos
        if self._chunk != _END and self._eof:
            raise ProtocolError("connection closed before the end of the chunked body")
        return b"".join(out) if len(out) != 1 else out[0]

    def _trailer(self, line: bytes) -> None:
        """One trailer line (its line end removed); the blank one ends the body, once the
        trailers passed the checks of a head."""
        if line:
            self._trailers.append(line)
            self._trailer_bytes += len(line)
            if self._trailer_bytes > self._max_head:
                raise ProtocolError("trailers too large")
            return
        if self._trailers:
            _check_bytes(b"".join(self._trailers))  # no LF in them: any CR left is lone
            _framing_fields(_parse_fields(self._trailers))
        self._chunk = _END
