"""Keep-alive HTTP/1.1 connections to upstreams, on httpcore2 (httpx2's own transport) directly.

An `httpx2.AsyncClient` cost ~0.6-0.7 ms CPU per request on the benchmark machine (request and
response models, a pool that scans every connection, probing each idle socket, twice per
request, cancel scopes per read); this module ~0.2 ms: `httpcore2.AsyncHTTP11Connection`s kept
in a stack of idle ones per origin, on a lean network stream (`_Stream`) that opens no cancel
scope when there is no timeout and sends the request head together with the body (one syscall).
Behaviour is httpx2's: its default TLS context (`SSL_CERT_FILE`/`SSL_CERT_DIR` honoured),
HTTP/1.1, the same automatic headers, keep-alive for 30 s, an idle connection the server has
closed is dropped before use, at most `max_connections` open (further requests wait).
"""

from __future__ import annotations

import base64
from dataclasses import dataclass
from typing import TYPE_CHECKING

import httpcore2
import httpx2
import trio

if TYPE_CHECKING:
    import ssl

RawHeaders = list[tuple[bytes, bytes]]
_Key = tuple[bytes, bytes, int]
_USER_AGENT = f"python-httpx2/{httpx2.__version__}".encode()
_EMPTY_BODY_LENGTH = frozenset({"POST", "PUT", "PATCH", "QUERY"})  # httpx2 sends length 0 there
_URL_CACHE_SIZE = 1024
COALESCE_LIMIT = 64 * 1024


@dataclass(frozen=True, slots=True)
class Destination:
    """One upstream URL, parsed and normalised once (httpx2's percent-encoding and IDNA)."""

    key: _Key
    url: httpcore2.URL
    host: bytes  # the Host header
    basic_auth: bytes | None  # from user:password@ in the URL, as httpx2 would send it

    @classmethod
    def parse(cls, url: str) -> Destination:
        parsed = httpx2.URL(url)
        scheme, host = parsed.raw_scheme, parsed.raw_host
        port = parsed.port or (443 if scheme == b"https" else 80)
        auth = None
        if parsed.username or parsed.password:
            pair = f"{parsed.username}:{parsed.password}".encode()
            auth = b"Basic " + base64.b64encode(pair)
        target = httpcore2.URL(scheme=scheme, host=host, port=port, target=parsed.raw_path)
        return cls((scheme, host, port), target, parsed.netloc, auth)

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


class _Stream(httpcore2.AsyncNetworkStream):
    """httpcore2's network stream over a trio socket or TLS stream.

    Like httpcore2's `TrioStream`, minus a cancel scope and two context managers per read and
    write when no timeout is set (most of them). It can also hold one write back and send it
    with the next: the request head waits for the body. (The `timeout` parameters are
    httpcore2's interface.)
    """

    def __init__(self, stream: trio.abc.Stream, socket: trio.socket.SocketType) -> None:
        self._stream = stream
        self._socket = socket
        self.hold_next = False
        self._held = b""

    async def read(self, max_bytes: int, timeout: float | None = None) -> bytes:  # noqa: ASYNC109
        try:
            if timeout is None:
                return bytes(await self._stream.receive_some(max_bytes))  # no copy for bytes
            with trio.move_on_after(timeout):
                return bytes(await self._stream.receive_some(max_bytes))
        except (trio.BrokenResourceError, trio.ClosedResourceError) as exc:
            raise httpcore2.ReadError(exc) from exc
        raise httpcore2.ReadTimeout(f"no data within {timeout}s")

    async def write(self, buffer: bytes, timeout: float | None = None) -> None:  # noqa: ASYNC109
        if self.hold_next:
            self.hold_next, self._held = False, buffer
            return
        if self._held:
            buffer, self._held = self._held + buffer, b""
        if not buffer:
            return
        try:
            if timeout is None:
                await self._stream.send_all(buffer)
                return
            with trio.move_on_after(timeout):
                await self._stream.send_all(buffer)
                return
        except (trio.BrokenResourceError, trio.ClosedResourceError) as exc:
            raise httpcore2.WriteError(exc) from exc
        raise httpcore2.WriteTimeout(f"could not write within {timeout}s")

    async def aclose(self) -> None:
        await self._stream.aclose()

    def get_extra_info(self, info: str) -> object:
        if info == "is_readable":  # an idle connection that is readable was closed by the server
            return self._socket.is_readable()
        if info == "ssl_object" and isinstance(self._stream, trio.SSLStream):
            return self._stream._ssl_object  # as httpcore2 does
        if info == "socket":
            return self._socket
        if info == "client_addr":
            return self._socket.getsockname()
        if info == "server_addr":
            return self._socket.getpeername()
        return None


@dataclass(slots=True)
class Connection:
    http: httpcore2.AsyncHTTP11Connection
    stream: _Stream
    key: _Key


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
            if len(self._destinations) >= _URL_CACHE_SIZE:
                self._destinations.clear()
            found = self._destinations[url] = Destination.parse(url)
        return found

    async def send(
        self, destination: Destination, request: httpcore2.Request, body_size: int
    ) -> tuple[Connection, httpcore2.Response]:
        """Send on a pooled or new connection; returns once the response headers arrived.

        The connection (and its slot) is the caller's until `checkin`, also on failure here.
        """
        try:
            self._slots.acquire_nowait()
        except trio.WouldBlock:
            await self._slots.acquire()
        try:
            connection = await self._checkout(destination)
            connection.stream.hold_next = 0 < body_size <= COALESCE_LIMIT  # the head waits
            return connection, await connection.http.handle_async_request(request)
        except BaseException:
            self._slots.release()  # httpcore2 closed the connection already
            raise

    async def checkin(self, connection: Connection) -> None:
        """Take a connection back after its response was closed; reusable ones are kept."""
        self._slots.release()
        http = connection.http
        if not http.is_idle():
            if not http.is_closed():
                await http.aclose()
            return
        idle = self._idle.setdefault(connection.key, [])
        if len(idle) < self._max_idle:
            idle.append(connection)
        else:
            await http.aclose()

    async def _checkout(self, destination: Destination) -> Connection:
        idle = self._idle.get(destination.key)
        while idle:
            connection = idle.pop()
            if not connection.http.has_expired():  # keep-alive over, or the server closed it
                return connection
            await connection.http.aclose()
        return await self._connect(destination.key)

    async def _connect(self, key: _Key) -> Connection:
        scheme, host, port = key
        hostname = host.decode("ascii")
        try:
            tcp = await trio.open_tcp_stream(hostname, port)  # TCP_NODELAY is trio's default
        except OSError as exc:
            raise httpcore2.ConnectError(exc) from exc
        stream: trio.abc.Stream = tcp
        if scheme == b"https":
            tls = trio.SSLStream(
                tcp, self._ssl_context, server_hostname=hostname, https_compatible=True
            )
            try:
                await tls.do_handshake()
            except BaseException as exc:
                with trio.CancelScope(shield=True):
                    await tcp.aclose()
                if isinstance(exc, trio.BrokenResourceError):
                    raise httpcore2.ConnectError(exc) from exc
                raise
            stream = tls
        wrapped = _Stream(stream, tcp.socket)
        origin = httpcore2.Origin(scheme, host, port)
        http = httpcore2.AsyncHTTP11Connection(origin, wrapped, self._keepalive_expiry)
        return Connection(http, wrapped, key)

    async def aclose(self) -> None:
        idle, self._idle = self._idle, {}
        for connections in idle.values():
            for connection in connections:
                await connection.http.aclose()
