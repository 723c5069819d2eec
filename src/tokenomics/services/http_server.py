"""The HTTP and HTTPS listeners: our own HTTP/1.1 server (`http_connection.py` on the llhttp
parser, `http_parser.py`) calling the ASGI app, TLS through `trio.SSLStream`.

HTTP/1.1 only, as documented: TLS offers no other protocol (ALPN), a connection opening with
the HTTP/2 preface is answered with GOAWAY (HTTP_1_1_REQUIRED), and a request asking to
upgrade to h2c is refused by the app (505). Graceful shutdown: the listeners close, idle
connections close at once, busy ones after their response (`Connection: close`), and whatever
is still running when `grace` seconds have passed is cancelled. `docs/DECISIONS.md` says why
this replaced hypercorn.
"""

from __future__ import annotations

import errno
import ipaddress
import logging
import socket
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import trio

from tokenomics.domain.errors import ConfigError
from tokenomics.services.http_connection import Connection, Limits
from tokenomics.services.http_response import DateHeader
from tokenomics.services.tls import ssl_context
from tokenomics.upstream.tcp import TCPStream

if TYPE_CHECKING:
    import ssl
    from collections.abc import Awaitable, Callable

    from tokenomics.services.tls import CertPaths

log = logging.getLogger("tokenomics.server")
MAX_HEAD = 64 * 1024  # request line and headers; 431 beyond
BACKLOG = 1024
ACCEPT_RETRY = 0.1  # seconds to wait when out of file descriptors
SWEEP = 1.0  # seconds at most between two looks for idle connections and stalled writes


@dataclass(frozen=True)
class ServerConfig:
    """What to listen on: `secure` binds (with `tls`) and `plain` ones, as (host, port)."""

    secure: tuple[tuple[str, int], ...]
    plain: tuple[tuple[str, int], ...]
    tls: CertPaths | None
    grace: float
    idle_timeout: float
    max_head: int = MAX_HEAD
    reuse_port: bool = False  # `server.workers`: every worker binds the same ports


def server_config(
    *,
    host: str,
    http_port: int,
    https_port: int,
    tls: CertPaths | None,
    grace: float,
    idle_timeout: float = 75,
    ephemeral: bool = False,
    reuse_port: bool = False,
) -> ServerConfig:
    """Listeners per the settings; `ephemeral` binds free ports instead (for `run` and tests).
    A connection with no request under way (idle, or still sending its head) is closed after
    `idle_timeout` seconds."""
    secure = ((host, 0 if ephemeral else https_port),) if tls is not None else ()
    plain = ((host, 0),) if ephemeral else ((host, http_port),) if http_port else ()
    if not secure and not plain:
        raise ConfigError(
            "no listener to start: server.http_port is 0 and TLS is disabled "
            "(set server.http_port or server.tls.enabled)"
        )
    return ServerConfig(secure, plain, tls, grace, idle_timeout, reuse_port=reuse_port)


def _bind(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def _family(host: str) -> socket.AddressFamily:
    try:
        return socket.AF_INET6 if ipaddress.ip_address(host).version == 6 else socket.AF_INET
    except ValueError:  # a name: resolved by bind, as IPv4
        return socket.AF_INET


async def _listen(host: str, port: int, reuse_port: bool = False) -> trio.SocketListener:
    """A listening socket on `host:port`; an IPv6 wildcard also takes IPv4 (dual stack). With
    `reuse_port` several processes bind the same port and the kernel spreads connections."""
    sock = trio.socket.socket(_family(host), socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if reuse_port:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        if sock.family == socket.AF_INET6:
            sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
        await sock.bind((host, port))
        sock.listen(BACKLOG)
    except OSError as exc:
        sock.close()
        if exc.errno == errno.EADDRINUSE:
            raise ConfigError(
                f"cannot listen on {_bind(host, port)}: the port is already in use (is another "
                "Tokenomics running? try `tokenomics status`), or choose another port"
            ) from None
        raise ConfigError(f"cannot listen on {_bind(host, port)}: {exc.strerror or exc}") from None
    return trio.SocketListener(sock)


def _address(sock: trio.socket.SocketType, peer: bool) -> tuple[str, int] | None:
    try:
        address = sock.getpeername() if peer else sock.getsockname()
    except OSError:
        return None
    return (address[0], address[1])


class Listeners:
    """The accept loops and the live connections, for the graceful stop."""

    def __init__(self, app: Any, config: ServerConfig) -> None:
        self.app = app
        self.limits = Limits(idle_timeout=config.idle_timeout, max_head=config.max_head)
        self.date = DateHeader()
        self.connections: set[Connection] = set()
        self.stopping = False
        self.context: ssl.SSLContext | None = None
        if config.tls is not None:
            self.context = ssl_context(config.tls)
            self.context.set_alpn_protocols(["http/1.1"])  # HTTP/1.1 only, as documented

    async def accept(
        self, listener: trio.SocketListener, secure: bool, nursery: trio.Nursery
    ) -> None:
        while True:
            try:
                stream = await listener.accept()
            except OSError as exc:  # out of descriptors or memory: wait for some to free
                log.warning("accept failed: %s", exc)
                await trio.sleep(ACCEPT_RETRY)
                continue
            nursery.start_soon(self.connection, stream, secure)

    async def sweep(self) -> None:
        """Close connections with no request under way for `idle_timeout`, and those whose
        write has not finished for as long (clients that stopped reading), when they are due:
        the sweep wakes at the earliest due, or after `SWEEP` seconds (at most a quarter of
        the timeout, so a connection that becomes idle meanwhile is not due before)."""
        period = min(SWEEP, self.limits.idle_timeout / 4)
        wake = trio.current_time() + period
        while True:
            await trio.sleep_until(wake)
            now = trio.current_time()
            wake = now + period
            for conn in list(self.connections):
                conn.close_if_idle(now)
                await conn.drop_if_stalled(now)
                wake = min(wake, conn.due())

    async def connection(self, tcp: trio.SocketStream, secure: bool) -> None:
        client, server = _address(tcp.socket, True), _address(tcp.socket, False)
        stream: trio.abc.Stream
        if secure and self.context is not None:
            stream = trio.SSLStream(tcp, self.context, server_side=True, https_compatible=True)
        else:
            stream = TCPStream.adopt(tcp)
        conn = Connection(
            stream, self.app, self.limits, self.date, scheme="https" if secure else "http",
            client=client, server=server,
        )  # fmt: skip
        self.connections.add(conn)
        if self.stopping:  # accepted just before the listeners closed
            conn.shutdown()
        try:
            await conn.run()
        except Exception:  # one connection's failure never takes the server down
            log.exception("connection failed")
        finally:
            self.connections.discard(conn)


async def serve(
    app: Any,
    config: ServerConfig,
    *,
    shutdown_trigger: Callable[[], Awaitable[None]],
    task_status: trio.TaskStatus[list[str]] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Serve until `shutdown_trigger` returns; in-flight requests get the graceful period.
    Started with the URLs listened on (HTTPS first)."""
    listeners = Listeners(app, config)
    bound: list[tuple[trio.SocketListener, bool]] = []
    urls: list[str] = []
    try:
        for binds, secure in ((config.secure, True), (config.plain, False)):
            for host, port in binds:
                listener = await _listen(host, port, config.reuse_port)
                bound.append((listener, secure))
                name = listener.socket.getsockname()
                urls.append(f"{'https' if secure else 'http'}://{_bind(host, name[1])}")
        async with trio.open_nursery() as connections:
            async with trio.open_nursery() as accepting:
                for listener, secure in bound:
                    accepting.start_soon(listeners.accept, listener, secure, connections)
                accepting.start_soon(listeners.sweep)
                task_status.started(urls)
                await shutdown_trigger()
                accepting.cancel_scope.cancel()
            for listener, _ in bound:
                await listener.aclose()
            listeners.stopping = True
            for conn in list(listeners.connections):
                conn.shutdown()
            connections.cancel_scope.deadline = trio.current_time() + config.grace
    finally:
        for listener, _ in bound:
            with trio.CancelScope(shield=True):
                await listener.aclose()
