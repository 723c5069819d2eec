"""The server's response head writing (`head_bytes`) as it was before it was made cheaper
(main 1eb851c), kept verbatim but for what no test reads (`DateHeader`, read the clock
itself: the date test compares with `formatdate` directly): `test_http_fast_reference`
compares the product's code with it on generated and hostile input."""

from __future__ import annotations

from http import HTTPStatus

# How the body of a response is framed on the wire.
NONE, LENGTH, CHUNKED, UNTIL_CLOSE = range(4)
_status_lines: dict[int, bytes] = {}


def status_line(status: int) -> bytes:
    line = _status_lines.get(status)
    if line is None:
        try:
            phrase = HTTPStatus(status).phrase
        except ValueError:
            phrase = ""
        line = _status_lines[status] = f"HTTP/1.1 {status} {phrase}\r\n".encode("ascii")
    return line


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


def head_bytes(
    status: int,
    headers: list[tuple[bytes, bytes]],
    *,
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
        elif lowered in (b"transfer-encoding", b"date"):
            continue
        lines.append(name + b": " + value + b"\r\n")
    if status < 200 or status in (204, 304) or method == "HEAD":
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
    # whole head, in C, instead of one per header).
    if head.count(b"\r") != len(lines) or head.count(b"\n") != len(lines) or b"\0" in head:
        raise ValueError("a response header holds CR, LF or NUL")
    return head, Framing(mode, remaining, close)
