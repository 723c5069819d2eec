"""The HTTP and HTTPS listeners: hypercorn's Trio worker serving the ASGI app."""

from __future__ import annotations

import errno
import gc
import logging
import socket
import time
from email.utils import formatdate
from typing import TYPE_CHECKING, Any

import h11
import hypercorn.protocol
import hypercorn.trio
import hypercorn.trio.tcp_server
import hypercorn.trio.worker_context
import trio
from hypercorn.config import Config
from hypercorn.events import RawData
from hypercorn.protocol.events import StreamClosed
from hypercorn.protocol.h11 import H11Protocol

from tokenomics.domain.errors import ConfigError

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable

    from tokenomics.services.tls import CertPaths

log = logging.getLogger("tokenomics.server")
# Each request allocates a few hundred short-lived GC-tracked objects (coroutines, tasks, cancel
# scopes, h11 events) that reference counting frees. At the default first threshold (700) the
# cyclic collector ran every ~20-60 requests and found nothing, ~10% of the CPU per request on
# the benchmark. Cycles are still collected, after 10,000 net allocations instead of 700.
GC_THRESHOLDS = (10_000, 10, 10)
# hypercorn's own messages ("Running on ...") duplicate ours; keep only its warnings and errors.
hypercorn_log = logging.getLogger("tokenomics.server.hypercorn")
hypercorn_log.setLevel(logging.WARNING)


class KeepAliveTimer:
    """hypercorn's `TrioSingleTask` (its per-connection keep-alive timer, stopped when a request
    arrives and restarted when the response is done) without the lock and the `nursery.start`
    handshake per restart: the next timer task is scheduled with its cancel scope made here,
    so stopping it before it first runs is covered too. Same behaviour, about 0.26 M fewer
    instructions per request (11% of hypercorn's own cost, measured with callgrind)."""

    def __init__(self) -> None:
        self._scope: trio.CancelScope | None = None

    async def restart(self, task_group: Any, action: Callable[[], Awaitable[None]]) -> None:
        if self._scope is not None:
            self._scope.cancel()
        scope = self._scope = trio.CancelScope()
        task_group._nursery.start_soon(_timer, scope, action)  # as hypercorn's own class does

    async def stop(self) -> None:
        if self._scope is not None:
            self._scope.cancel()
            self._scope = None


async def _timer(scope: trio.CancelScope, action: Callable[[], Awaitable[None]]) -> None:
    with scope:
        if not scope.cancel_called:  # stopped or replaced before it got to run
            await action()


def use_keep_alive_timer() -> bool:
    """Put `KeepAliveTimer` in hypercorn's TCP server, if it is the hypercorn it was written
    for (its connections take `TrioSingleTask` from `worker_context`); else change nothing."""
    tcp_server = hypercorn.trio.tcp_server
    current = getattr(tcp_server, "TrioSingleTask", None)
    if current is KeepAliveTimer:
        return True
    if current is not getattr(hypercorn.trio.worker_context, "TrioSingleTask", None):
        return False
    tcp_server.TrioSingleTask = KeepAliveTimer  # type: ignore[assignment,attr-defined]
    return True


class CoalescingH11Protocol(H11Protocol):
    """hypercorn's HTTP/1.1 protocol writing less often. The bytes of a response wait until
    it ends or until the next pass of the scheduler, whichever comes first (a flush is
    scheduled when bytes start to wait): the head, the chunks that are ready and the end of a
    response go out in one write, while a stream waiting on its upstream still sends what it
    has at once - a pass later. The empty write that ends a Content-Length body is skipped.
    Each write saved is a lock, a shielded cancel scope and a checkpoint (a pass of the
    scheduler): 0.4 M fewer instructions per request, buffered or streamed (callgrind)."""

    _held = b""

    async def _send_h11_event(self, event: Any) -> None:
        try:
            data = self.connection.send(event) or b""
        except h11.LocalProtocolError:
            if self.connection.their_state != h11.ERROR:
                raise
            return
        if isinstance(event, (h11.Response, h11.Data)):
            if data and not self._held:
                self.task_group.spawn(self._flush)
            self._held += data
            return
        data, self._held = self._held + data, b""
        if data:
            await self.send(RawData(data=data))

    async def _flush(self) -> None:
        if self._held:
            held, self._held = self._held, b""
            await self.send(RawData(data=held))

    async def stream_send(self, event: Any) -> None:
        if isinstance(event, StreamClosed):  # the app ended, maybe without its body
            await self._flush()
        await super().stream_send(event)


def use_coalescing_writes() -> bool:
    """Put `CoalescingH11Protocol` in hypercorn's protocol switch, if it is the hypercorn it
    was written for (its `_send_h11_event` encodes and writes every h11 event); else change
    nothing."""
    current = getattr(hypercorn.protocol, "H11Protocol", None)
    if current is CoalescingH11Protocol:
        return True
    if current is not H11Protocol or not hasattr(H11Protocol, "_send_h11_event"):
        return False
    hypercorn.protocol.H11Protocol = CoalescingH11Protocol  # type: ignore[attr-defined]
    return True


class ServerConfig(Config):
    """hypercorn's `Config` with the `Date` header formatted once a second rather than for
    every response (in place of hypercorn's own, turned off here)."""

    include_date_header = False
    _date_second = -1
    _date = b""

    def response_headers(self, protocol: str) -> list[tuple[bytes, bytes]]:
        now = time.time()
        if int(now) != self._date_second:
            self._date_second, self._date = int(now), formatdate(now, usegmt=True).encode()
        return [(b"date", self._date), *super().response_headers(protocol)]


def _bind(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def _reuse_port_socket(bind: str) -> str:
    """A listening socket bound with SO_REUSEPORT, handed to hypercorn as `fd://N` (hypercorn
    owns and closes it): the kernel spreads connections over the workers' sockets."""
    host, _, port = bind.replace("[", "").replace("]", "").rpartition(":")
    sock = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        sock.bind((host, int(port)))
    except OSError as exc:
        sock.close()
        raise ConfigError(f"cannot listen on {bind}: {exc.strerror or exc}") from None
    return f"fd://{sock.detach()}"


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
) -> Config:
    """Listeners per the settings; `ephemeral` binds free ports instead (for `run` and tests).

    HTTP/1.1 only, as documented: TLS offers no other protocol (ALPN), and an HTTP/2
    connection opened with prior knowledge may open no stream (it is refused with GOAWAY).
    hypercorn answers an `Upgrade: h2c` itself before the app sees it; the app refuses such a
    request (`asgi.py`). A connection with no request under way (idle, or still sending its
    head) is closed after `idle_timeout` seconds."""
    config = ServerConfig()
    secure = [_bind(host, 0 if ephemeral else https_port)] if tls is not None else []
    plain = [_bind(host, 0)] if ephemeral else [_bind(host, http_port)] if http_port else []
    if tls is not None:
        config.certfile, config.keyfile = str(tls.cert), str(tls.key)
        config.bind, config.insecure_bind = secure, plain
    else:
        config.bind, config.insecure_bind = plain, []
    if not config.bind:
        raise ConfigError(
            "no listener to start: server.http_port is 0 and TLS is disabled "
            "(set server.http_port or server.tls.enabled)"
        )
    config.graceful_timeout = grace
    if reuse_port:  # `server.workers`: every worker binds the same ports
        config.bind = [_reuse_port_socket(bind) for bind in config.bind]
        config.insecure_bind = [_reuse_port_socket(bind) for bind in config.insecure_bind]
    config.accesslog = None
    config.errorlog = hypercorn_log
    config.keep_alive_timeout = idle_timeout
    config.alpn_protocols = ["http/1.1"]
    config.h2_max_concurrent_streams = 0
    config.include_server_header = False
    config.h11_max_incomplete_size = 64 * 1024
    return config


def _os_error(exc: BaseException) -> OSError | None:
    """The OSError behind `exc`, also when hypercorn's nurseries wrapped it in groups."""
    while isinstance(exc, BaseExceptionGroup) and len(exc.exceptions) == 1:
        exc = exc.exceptions[0]
    return exc if isinstance(exc, OSError) else None


async def serve(
    app: Any,
    config: Config,
    *,
    shutdown_trigger: Callable[[], Awaitable[None]],
    task_status: trio.TaskStatus[list[str]] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Serve until `shutdown_trigger` returns; in-flight requests get the graceful period."""
    gc.set_threshold(*GC_THRESHOLDS)
    use_keep_alive_timer()
    use_coalescing_writes()
    try:
        await hypercorn.trio.serve(
            app, config, shutdown_trigger=shutdown_trigger, task_status=task_status
        )
    except (OSError, BaseExceptionGroup) as caught:
        exc = _os_error(caught)
        if exc is None:
            raise
        if exc.errno == errno.EADDRINUSE:
            binds = ", ".join([*config.bind, *config.insecure_bind])
            raise ConfigError(
                f"cannot listen on {binds}: the port is already in use (is another Tokenomics "
                "running? try `tokenomics status`), or choose another port"
            ) from None
        raise ConfigError(
            f"cannot listen on {', '.join(config.bind)}: {exc.strerror or exc}"
        ) from None
