"""Keep-alive HTTP/1.1 connections to upstreams: a stack of idle ones per origin.

Requests are written and responses read by `http11` (our own HTTP/1.1: with httpcore2's
connection on h11 the client cost ~0.18 ms of CPU per request on the benchmark machine, with it
~0.08 ms, `bench/floors.sh`) over plain TCP (`tcp.py`) or trio's TLS streams, the request head
and a small body in one write. Behaviour is httpx2's: its default TLS context
(`SSL_CERT_FILE`/`SSL_CERT_DIR` honoured), the same automatic headers, keep-alive for 30 s, an
idle connection the server has closed is dropped before use, at most `max_connections` open
(further requests wait). A connection goes back to the pool only after a whole response that
allows keep-alive; anything else (an unread body, an error, a cancellation) closes it.
"""

from __future__ import annotations

import base64
from dataclasses import dataclass
from typing import TYPE_CHECKING

import httpx2
import trio

from tokenomics.domain.memo import remember
from tokenomics.upstream.head_timer import shut_down
from tokenomics.upstream.http11 import (
    Head,
    ProtocolError,
    ResponseReader,
    encode_request,
    valid_target,
)
from tokenomics.upstream.tcp import TCPStream, poller

if TYPE_CHECKING:
    import socket
    import ssl
    from collections.abc import Awaitable

RawHeaders = list[tuple[bytes, bytes]]
_Key = tuple[bytes, bytes, int]
_USER_AGENT = f"python-httpx2/{httpx2.__version__}".encode()
_USER_AGENT_LINE = f"user-agent: python-httpx2/{httpx2.__version__}\r\n"
_TOKENS: dict[str, int] = {}  # methods and header names `encode_request` accepted: their bit
_DEFAULT_BITS = {"accept": 1, "connection": 2, "user-agent": 4}  # headers httpx2 adds if absent
_DEFAULT_LINES = ("accept: */*\r\n", "connection: keep-alive\r\n", _USER_AGENT_LINE)
# the default lines to add, and how many, for each set of their names present (`_head`)
_DEFAULTS = [
    (
        "".join(
            line for bit, line in zip((1, 2, 4), _DEFAULT_LINES, strict=True) if not seen & bit
        ),
        sum(1 for bit in (1, 2, 4) if not seen & bit),
    )
    for seen in range(8)
]
_TOKENS_LIMIT = 1024
_EMPTY_BODY_LENGTH = frozenset({"POST", "PUT", "PATCH", "QUERY"})  # httpx2 sends length 0 there
_URL_CACHE_SIZE = 1024
COALESCE_LIMIT = 64 * 1024  # a larger body is written after the head, not copied behind it
READ_SIZE = 64 * 1024


@dataclass(frozen=True, slots=True)
class Destination:
    """One upstream URL, parsed and normalised once (httpx2's percent-encoding and IDNA)."""

    key: _Key
    target: bytes  # path and query, percent-encoded
    host: bytes  # the Host header
    basic_auth: bytes | None  # from user:password@ in the URL, as httpx2 would send it
    line_rest: str  # " <target> HTTP/1.1\r\nhost: <host>\r\n" for `encode` ("": a bad target)

    @classmethod
    def parse(cls, url: str) -> Destination:
        parsed = httpx2.URL(url)
        scheme, host = parsed.raw_scheme, parsed.raw_host
        port = parsed.port or (443 if scheme == b"https" else 80)
        auth = None
        if parsed.username or parsed.password:
            pair = f"{parsed.username}:{parsed.password}".encode()
            auth = b"Basic " + base64.b64encode(pair)
        target, netloc = parsed.raw_path, parsed.netloc
        rest = b" " + target + b" HTTP/1.1\r\nhost: " + netloc + b"\r\n"
        line_rest = rest.decode("latin-1") if valid_target(target) else ""
        return cls((scheme, host, port), target, netloc, auth, line_rest)

    def encode(
        self, method: str, headers: list[tuple[str, str]], body: bytes
    ) -> tuple[bytes, bytes]:
        """The request's bytes to write: the head with a small body joined to it, and a body
        too large to copy behind it (else b""). ValueError: see `encode_request`."""
        large = len(body) > COALESCE_LIMIT
        head = self._head(method, headers, body)
        if head is None:  # something to refuse, or not known good yet: `encode_request` says
            head_headers = self.headers(method, headers, body)
            head = encode_request(method, self.target, head_headers, b"")
            for name in (method, *(name for name, _ in headers)):  # all tokens: known good
                remember(_TOKENS, name, _DEFAULT_BITS.get(name, 0), _TOKENS_LIMIT)
        return (head, body) if large else (head + body, b"")

    def _head(self, method: str, headers: list[tuple[str, str]], body: bytes) -> bytes | None:
        """`encode_request` of `headers(...)`, built as one string and checked once (~3x
        cheaper); None when a name or the method is not a known token, or a CR, LF or NUL
        is out of place (the slow path then refuses it)."""
        if self.basic_auth is not None or method not in _TOKENS or not self.line_rest:
            return None
        parts = [method, self.line_rest]
        seen = 0  # which of the defaults' names were given (`_DEFAULT_BITS`)
        for name, value in headers:
            bit = _TOKENS.get(name)
            if bit is None:
                return None
            seen |= bit
            parts += (name, ": ", value, "\r\n")
        defaults, lines = _DEFAULTS[seen]  # the lines of the defaults not given
        if body or method in _EMPTY_BODY_LENGTH:
            parts += (defaults, "content-length: ", str(len(body)), "\r\n\r\n")
            lines += 1
        else:
            parts += (defaults, "\r\n")
        text = "".join(parts)
        lines += len(headers) + 3  # a CRLF per header, the blank line, two in `line_rest`:
        # any other CR or LF came in a value
        if text.count("\n") != lines or text.count("\r") != lines or "\0" in text:
            return None
        try:
            return text.encode("latin-1")
        except UnicodeEncodeError:
            return None

    def headers(self, method: str, headers: list[tuple[str, str]], body: bytes) -> RawHeaders:
        """The request headers as httpx2 sends them: Host first, its defaults where absent."""
        out: RawHeaders = [(b"host", self.host)]
        names = set()
        for name, value in headers:
            if name == "authorization" and self.basic_auth is not None:
                continue
            names.add(name)
            out.append((name.encode("latin-1"), value.encode("latin-1")))
        if self.basic_auth is not None:
            out.append((b"authorization", self.basic_auth))
        if "accept" not in names:
            out.append((b"accept", b"*/*"))
        if "connection" not in names:
            out.append((b"connection", b"keep-alive"))
        if "user-agent" not in names:
            out.append((b"user-agent", _USER_AGENT))
        if body or method in _EMPTY_BODY_LENGTH:
            out.append((b"content-length", str(len(body)).encode()))
        return out


class TransportError(Exception):
    """The connection failed: reset, closed while writing, or no TLS."""


class ConnectError(TransportError):
    """No connection could be made (refused, unresolvable, TLS handshake failed)."""


class Connection:
    """One HTTP/1.1 connection over a trio socket or TLS stream, one request at a time."""

    __slots__ = (
        "_idle_since", "_poll", "_socket", "_stream", "_unsent", "key", "reader", "timed_out",
        "watch",
    )  # fmt: skip

    def __init__(
        self, stream: trio.abc.Stream, sock: socket.socket | trio.socket.SocketType, key: _Key
    ) -> None:
        self._stream, self._socket, self.key = stream, sock, key
        self._poll = poller(sock)  # asked whether the server closed it while idle
        self._idle_since = 0.0
        self._unsent = False  # a request was not written whole: never reuse the connection
        self.reader: ResponseReader | None = None  # of the current or last response
        self.watch = 0  # its entry in the `HeadTimer`, while the response head is awaited
        self.timed_out = False  # ... and the timer shut it down: no head in time

    async def request(self, data: bytes, body: bytes, method: str) -> Head:
        """Write the request (`data`, then `body` when it was too large to join it); return
        the response head. A server may answer before reading the whole request (a 413) and
        close: its answer is read all the same."""
        reader = self.reader = ResponseReader(method)
        try:
            await self._write(data)
            if body:
                await self._write(body)
        except TransportError as exc:
            self._unsent = True
            try:
                return await self._head(reader)
            except (TransportError, ProtocolError):
                raise exc from None
        return await self._head(reader)

    async def _head(self, reader: ResponseReader) -> Head:
        stream = self._stream
        if isinstance(stream, TCPStream):  # the request just went out: nothing is there yet
            reader.feed(await self._receive(stream.receive_when_ready(READ_SIZE)))
        while (head := reader.head()) is None:
            reader.feed(await self.receive())
        return head

    async def _write(self, data: bytes) -> None:
        stream = self._stream
        try:
            if isinstance(stream, TCPStream):  # the response is awaited right after
                await stream.send_now(data)
            else:
                await stream.send_all(data)
        except (trio.BrokenResourceError, trio.ClosedResourceError) as exc:
            raise TransportError("write failed") from exc

    async def receive(self) -> bytes:
        return await self._receive(self._stream.receive_some(READ_SIZE))

    @staticmethod
    async def _receive(receiving: Awaitable[bytes | bytearray]) -> bytes:
        try:
            return bytes(await receiving)  # no copy for bytes
        except (trio.BrokenResourceError, trio.ClosedResourceError) as exc:
            raise TransportError("read failed") from exc

    @property
    def reusable(self) -> bool:
        reader = self.reader
        return reader is not None and reader.done and reader.keep_alive and not self._unsent

    def idle(self) -> None:
        self._idle_since = trio.current_time()

    def expired(self, expiry: float) -> bool:
        """Idle too long, or readable while idle: the server closed it (or sent junk)."""
        return trio.current_time() - self._idle_since > expiry or bool(self._poll.poll(0))

    def shut_down(self) -> None:
        """End the connection's I/O now (no head in time): what waits on it fails."""
        shut_down(self._socket)

    async def aclose(self) -> None:
        await trio.aclose_forcefully(self._stream)


class ConnectionPool:
    """Idle connections per origin, most recently used first; a semaphore bounds the open ones."""

    def __init__(
        self,
        ssl_context: ssl.SSLContext,
        *,
        max_connections: int,
        max_idle_per_origin: int = 256,
        keepalive_expiry: float = 30.0,
    ) -> None:
        ssl_context.set_alpn_protocols(["http/1.1"])
        self._ssl_context = ssl_context
        self._max_idle = max_idle_per_origin
        self._keepalive_expiry = keepalive_expiry
        self._idle: dict[_Key, list[Connection]] = {}
        self._slots = trio.Semaphore(max_connections)
        self._destinations: dict[str, Destination] = {}

    def destination(self, url: str) -> Destination:
        found = self._destinations.get(url)
        if found is None:
            found = remember(self._destinations, url, Destination.parse(url), _URL_CACHE_SIZE)
        return found

    async def send(
        self, destination: Destination, data: bytes, rest: bytes, method: str
    ) -> tuple[Connection, Head]:
        """Write `data` then `rest` (from `Destination.encode`) on a pooled or new connection;
        returns once the response head arrived.

        The connection (and its slot) is the caller's until `checkin`; on failure here it is
        closed and its slot freed."""
        try:
            self._slots.acquire_nowait()
        except trio.WouldBlock:
            await self._slots.acquire()
        connection = None
        try:
            connection = await self._checkout(destination)
            return connection, await connection.request(data, rest, method)
        except BaseException:
            self._slots.release()
            if connection is not None:
                await connection.aclose()
            raise

    def checkout_nowait(self, destination: Destination) -> Connection | None:
        """An idle connection to `destination` and its slot, when both are there now (no
        wait, no I/O); the caller then sends with `request_on`."""
        idle = self._idle.get(destination.key)
        if not idle or idle[-1].expired(self._keepalive_expiry):
            return None
        try:
            self._slots.acquire_nowait()
        except trio.WouldBlock:
            return None
        return idle.pop()

    async def request_on(
        self, connection: Connection, data: bytes, rest: bytes, method: str
    ) -> Head:
        """`send` on a connection from `checkout_nowait`."""
        try:
            return await connection.request(data, rest, method)
        except BaseException:
            self._slots.release()
            await connection.aclose()
            raise

    async def checkin(self, connection: Connection) -> None:
        """Take a connection back after its response; one that can carry another is kept."""
        if not self.checkin_nowait(connection):
            self._slots.release()
            await connection.aclose()

    def checkin_nowait(self, connection: Connection) -> bool:
        """`checkin` of a connection that is kept (no I/O); False, and nothing done, when it
        is to be closed."""
        idle = self._idle.setdefault(connection.key, [])
        if not connection.reusable or len(idle) >= self._max_idle:
            return False
        self._slots.release()
        connection.idle()
        idle.append(connection)
        return True

    async def _checkout(self, destination: Destination) -> Connection:
        idle = self._idle.get(destination.key)
        while idle:
            connection = idle.pop()
            if not connection.expired(self._keepalive_expiry):
                return connection
            await connection.aclose()
        return await self._connect(destination.key)

    async def _connect(self, key: _Key) -> Connection:
        scheme, host, port = key
        hostname = host.decode("ascii")
        try:
            tcp = await trio.open_tcp_stream(hostname, port)  # TCP_NODELAY is trio's default
        except OSError as exc:
            raise ConnectError("connect failed") from exc
        if scheme != b"https":  # plain: our leaner stream on the connected socket
            plain = TCPStream.adopt(tcp)
            return Connection(plain, plain.socket, key)
        context = self._ssl_context
        tls = trio.SSLStream(tcp, context, server_hostname=hostname, https_compatible=True)
        try:
            await tls.do_handshake()
        except BaseException as exc:
            await trio.aclose_forcefully(tcp)
            if isinstance(exc, trio.BrokenResourceError):
                raise ConnectError("TLS handshake failed") from exc
            raise
        return Connection(tls, tcp.socket, key)

    async def aclose(self) -> None:
        idle, self._idle = self._idle, {}
        for connections in idle.values():
            for connection in connections:
                await connection.aclose()
