"""Writing responses for the HTTP/1.1 server: the status line and headers of an ASGI
`http.response.start`, the framing of its body (RFC 9112 §6), the `Date` header formatted
once a second."""

from __future__ import annotations

import time
from email.utils import formatdate
from http import HTTPStatus
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from collections.abc import Callable

CONTINUE = b"HTTP/1.1 100 Continue\r\n\r\n"
# How the body of a response is framed on the wire.
NONE, LENGTH, CHUNKED, UNTIL_CLOSE = range(4)
_status_lines: dict[int, bytes] = {}
UNSAFE = b"\r\n\0"  # in a head, only as the lines' ends (CR LF)


def status_line(status: int) -> bytes:
    line = _status_lines.get(status)
    if line is None:
        try:
            phrase = HTTPStatus(status).phrase
        except ValueError:
            phrase = ""
        line = _status_lines[status] = f"HTTP/1.1 {status} {phrase}\r\n".encode("ascii")
    return line


class DateHeader:
    """The `date` header line, formatted again only when the second changes."""

    def __init__(self, clock: Callable[[], float] = time.time) -> None:
        self._clock = clock
        self._second = -1.0  # the second the line was made in: [_second, _second + 1)
        self._line = b""

    def line(self) -> bytes:
        now = self._clock()
        second = self._second
        if not second <= now < second + 1:  # one comparison a request, no int() each time
            self._second = float(int(now))
            self._line = b"date: " + formatdate(now, usegmt=True).encode() + b"\r\n"
        return self._line


class Framing:
    """What the head said about the body: its `mode`, the bytes still due (LENGTH), and
    whether the connection closes after it."""

    __slots__ = ("close", "mode", "remaining")

    def __init__(self, mode: int, remaining: int, close: bool) -> None:
        self.mode = mode
        self.remaining = remaining
        self.close = close

    def frame(self, body: bytes, more: bool) -> bytes:
        """`body` as it goes on the wire; sets `close` when the app broke its own framing."""
        mode = self.mode
        if mode == LENGTH:
            if len(body) > self.remaining:  # more than announced: cut, and end the connection
                body, self.close = body[: self.remaining], True
            self.remaining -= len(body)
            if not more and self.remaining:  # less than announced: the client must not wait
                self.close = True
            return body
        if mode == CHUNKED:
            data = b"%x\r\n%s\r\n" % (len(body), body) if body else b""
            return data + b"0\r\n\r\n" if not more else data
        return body if mode == UNTIL_CLOSE else b""


def head_bytes(  # its arguments can be given by position: keywords cost a third more
    status: int,
    headers: list[tuple[bytes, bytes]],
    method: str,
    version: str,
    keep_alive: bool,
    whole: bytes | None,
    date: bytes,
) -> tuple[bytes, Framing]:
    """The head to write and the body's framing. `whole` is the entire body when the app
    gave it in one message (it gets a Content-Length), None when more is coming."""
    lines = [status_line(status)]
    length: int | None = None
    close = not keep_alive
    for name, value in headers:
        lowered = name.lower()
        if lowered == b"content-length":
            if not value.isdigit():
                raise ValueError(f"invalid content-length in the response: {value!r}")
            length = int(value)
        elif lowered == b"connection":
            close = close or b"close" in value.lower()
            continue  # ours is written below
        elif lowered == b"transfer-encoding" or lowered == b"date":
            continue
        lines.append(name + b": " + value + b"\r\n")
    if status < 200 or status == 204 or status == 304 or method == "HEAD":
        mode, remaining = NONE, 0
    elif length is not None:
        mode, remaining = LENGTH, length
    elif whole is not None:
        mode, remaining = LENGTH, len(whole)
        lines.append(b"content-length: %d\r\n" % remaining)
    elif version == "1.1":
        mode, remaining = CHUNKED, 0
        lines.append(b"transfer-encoding: chunked\r\n")
    else:  # an HTTP/1.0 client: the body ends when the connection does
        mode, remaining, close = UNTIL_CLOSE, 0, True
    if close:
        lines.append(b"connection: close\r\n")
    elif version == "1.0":
        lines.append(b"connection: keep-alive\r\n")
    lines.append(date)
    lines.append(b"\r\n")
    head = b"".join(lines)
    # No CR, LF or NUL in a name or value: each line holds only its own CRLF (one check of the
    # whole head, in C, instead of one per header). The lines made here hold one CR and one LF
    # each, so any other CR, LF or NUL makes more than two per line (one pass, where counting
    # CRs, then LFs, then looking for NUL made three).
    if len(head) - len(head.translate(None, UNSAFE)) != 2 * len(lines):
        raise ValueError("a response header holds CR, LF or NUL")
    return head, Framing(mode, remaining, close)
