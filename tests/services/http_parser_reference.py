"""The server's request parsing (`RequestParser`, its llhttp callbacks and `_check`) as it was before it was made
cheaper (main 1eb851c), kept verbatim: `test_http_fast_reference` compares the product's
code with it on generated and hostile input."""

from __future__ import annotations

from typing import Protocol

import httptools

# The whole head of an HTTP/2 connection opened with prior knowledge (RFC 9113 §3.4).
H2_PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
BOTH_FRAMINGS = "request has both Content-Length and Transfer-Encoding"
PER_HEADER = 4  # ": " and CRLF, counted towards the head's size
HTTP1 = ("1.1", "1.0")
UNSUPPORTED_CODING = "unsupported Transfer-Encoding (only chunked is accepted)"


class BadRequest(Exception):
    """The bytes are not a request we serve: answer `status` with `reason`, then close."""

    def __init__(self, status: int, reason: str) -> None:
        super().__init__(reason)
        self.status = status
        self.reason = reason
        # What was read of the request, for an error in its API family ("" when unknown).
        self.method = ""
        self.target = b""
        self.headers: list[tuple[bytes, bytes]] = []


class Head:
    """A request's line and headers (names lower-cased, in the order received)."""

    __slots__ = (
        "expect_continue",
        "headers",
        "keep_alive",
        "method",
        "target",
        "upgrade",
        "version",
    )

    def __init__(
        self,
        method: str,
        target: bytes,
        version: str,
        headers: list[tuple[bytes, bytes]],
        *,
        keep_alive: bool,
        upgrade: bool,
        expect_continue: bool,
    ) -> None:
        self.method = method
        self.target = target
        self.version = version
        self.headers = headers
        self.keep_alive = keep_alive
        self.upgrade = upgrade
        self.expect_continue = expect_continue


class Sink(Protocol):
    def on_head(self, head: Head) -> None: ...
    def on_body(self, data: bytes) -> None: ...
    def on_end(self) -> None: ...


class RequestParser:
    """One connection's requests, one after another (pipelining is just more bytes)."""

    def __init__(self, sink: Sink, *, max_head: int) -> None:
        self._sink = sink
        self._max_head = max_head
        self._parser = httptools.HttpRequestParser(self)
        self._url = b""
        self._headers: list[tuple[bytes, bytes]] = []
        self._size = 0  # bytes of the head (or trailers) so far
        self._in_head = False
        self._in_body = False
        self._problem: BadRequest | None = None
        self.closed = False  # a request that ends the connection is complete

    @property
    def idle(self) -> bool:
        """No request started: between requests, not even its first byte seen."""
        return not self._in_head and not self._in_body

    def feed(self, data: bytes | bytearray) -> bytes | bytearray | None:
        """Parse `data`; returns the bytes after a request that asked for a protocol upgrade
        (its message complete; the server switches no protocol), else None."""
        try:
            self._parser.feed_data(data)
        except httptools.HttpParserUpgrade as upgrade:
            return data[upgrade.args[0] :]
        except httptools.HttpParserError as exc:
            if self.closed:  # bytes after a request that ends the connection: never read
                return None
            raise self._describe(self._problem or BadRequest(400, _reason(exc))) from None
        if self._problem is not None:
            raise self._describe(self._problem)
        if self._size > self._max_head:
            raise self._describe(BadRequest(431, "request header fields too large"))
        return None

    def _describe(self, problem: BadRequest) -> BadRequest:
        if self._url:
            try:
                problem.method = self._parser.get_method().decode("ascii")
            except (httptools.HttpParserError, UnicodeDecodeError):
                problem.method = ""
            problem.target, problem.headers = self._url, self._headers
        return problem

    # httptools callbacks: they only record (an exception in one becomes a generic error).

    def on_message_begin(self) -> None:
        self._in_head, self._url, self._headers, self._size = True, b"", [], 0

    def on_url(self, url: bytes) -> None:
        self._url += url
        self._size += len(url)

    def on_header(self, name: bytes, value: bytes) -> None:
        self._size += len(name) + len(value) + PER_HEADER
        if self._in_head:
            self._headers.append((name.lower(), value.strip(b" \t")))

    def on_headers_complete(self) -> None:
        self._in_head, self._in_body = False, True
        if self._size > self._max_head:
            self._problem = BadRequest(431, "request header fields too large")
            return
        parser = self._parser
        version = parser.get_http_version()
        expect_continue = False
        if b"#" in self._url:  # RFC 9112 §3.2: no fragment; an upstream URL would drop it
            problem: BadRequest | None = BadRequest(
                400, "invalid request target: '#' is not allowed"
            )
        elif version in HTTP1:
            problem, expect_continue = _check(self._headers, version)
        else:
            problem = BadRequest(505, f"HTTP/{version} is not served; use HTTP/1.1")
        if problem is not None:
            self._problem = problem
            return
        self._size = 0  # from here on, counts trailers
        head = Head(
            parser.get_method().decode("ascii"),
            self._url,
            version,
            self._headers,
            keep_alive=parser.should_keep_alive(),
            upgrade=parser.should_upgrade(),
            expect_continue=expect_continue,
        )
        self._sink.on_head(head)

    def on_body(self, data: bytes) -> None:
        if self._problem is None:
            self._sink.on_body(data)

    def on_message_complete(self) -> None:
        self._in_body = False
        if self._problem is None:
            self._size = 0
            self.closed = not self._parser.should_keep_alive()
            self._sink.on_end()


def _check(headers: list[tuple[bytes, bytes]], version: str) -> tuple[BadRequest | None, bool]:
    """The rules llhttp leaves to the server, and whether the client expects a 100 Continue
    (one pass over the headers)."""
    hosts = codings = 0
    expect = False
    for name, value in headers:
        if name == b"host":
            hosts += 1
        elif name == b"transfer-encoding":
            codings += 1
            if value.lower() != b"chunked":
                return BadRequest(501, UNSUPPORTED_CODING), False
        elif name == b"expect" and value.strip().lower() == b"100-continue":
            expect = True
    if codings > 1:
        return BadRequest(400, "repeated Transfer-Encoding header"), False
    if hosts > 1 or (hosts == 0 and version == "1.1"):
        return BadRequest(400, "an HTTP/1.1 request needs exactly one Host header"), False
    return None, expect and version == "1.1"


_REASONS = {  # llhttp's words for the framings RFC 9112 §6.1 forbids, as the app words them
    "Transfer-Encoding can't be present with Content-Length": BOTH_FRAMINGS,
    "Content-Length can't be present with Transfer-Encoding": BOTH_FRAMINGS,
}


def _reason(exc: Exception) -> str:
    """llhttp's reason, which names the rule broken (it echoes no input bytes)."""
    text = str(exc).strip() or "malformed request"
    if not (text.isascii() and text.isprintable()):
        return "malformed request"
    return _REASONS.get(text, text)
