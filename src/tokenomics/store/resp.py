"""A minimal Redis client on Trio (non-blocking sockets it waits on): a small connection
pool, a bounded timeout per call, and a circuit that fails fast while Redis is down. The RESP2
encoding and parser are in `resp_wire.py`.

Why not coredis (declared as the `redis` extra): it runs on Trio (through anyio), but on this
2-CPU machine one EVALSHA through it costs ~0.5 ms against ~0.1 ms over a plain Trio stream,
and the hot path makes one call per admitted request (issue 18 asks for <= 0.3 ms added). What
we need is small: send a command (or a pipeline), read typed replies, subscribe. coredis stays
the reference in the differential test (`tests/store/test_resp.py`).

A malformed reply is a `RedisUnavailable`, never a crash. A connection whose call did not
finish (timeout, cancel, error) is closed, never reused: its reply stream is out of step.
"""

from __future__ import annotations

import math
import secrets
import socket
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Union

import trio

from tokenomics.domain.errors import RedisUnavailable
from tokenomics.store.resp_wire import Arg, Parser, Reply, RespError, Stamped, encode

if TYPE_CHECKING:
    from collections.abc import Callable, Sequence

READ_SIZE = 65536
BACKOFF_FIRST = 0.05
BACKOFF_MAX = 2.0
# Idle connections kept: as many as calls run at once, so a burst does not open (and Redis
# accept) a connection per call over the bound and close it after: at concurrency 64 with 32
# kept, opening them was ~3% of the proxy's samples. An idle connection costs a socket.
POOL_SIZE = 256
LATENCY_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.1, math.inf)


Command = Union["Sequence[Arg]", Stamped]  # a command, or one completed as it is sent

# What makes a call fail with `RedisUnavailable` (and opens the circuit).
UNAVAILABLE = (OSError, trio.TooSlowError, trio.BrokenResourceError, RedisUnavailable)


class Connection:
    """One connection, used by one task at a time (the pool hands it out).

    A plain non-blocking socket that waits on Trio only when the kernel says it would block:
    Trio's `SocketStream` yields to the scheduler around every send and receive (a checkpoint
    each, and a conflict detector), which cost more than the Redis call itself at concurrency 1.
    A call still waits at least once (for the reply), so it is cancellable (its timeout)."""

    def __init__(self, sock: socket.socket) -> None:
        sock.setblocking(False)
        self._sock = sock
        self._parser = Parser()
        self.stream = secrets.token_hex(8)  # for `Stamped` commands: this connection's id
        self.stamped = 0  # and how many it sent
        self.expired = False  # its call outlived the client's timeout (`RedisClient.watch`)

    def expire(self) -> None:
        """End the call in progress: a task waiting on the socket wakes with
        `trio.ClosedResourceError` (the connection is closed after, never reused)."""
        self.expired = True
        trio.lowlevel.notify_closing(self._sock)

    @classmethod
    async def open(cls, host: str, port: int) -> Connection:
        stream = await trio.open_tcp_stream(host, port)  # resolution, happy eyeballs, NODELAY
        return cls(socket.socket(fileno=stream.socket.detach()))

    async def send(self, data: bytes) -> None:
        view = memoryview(data)
        while view:
            try:
                sent = self._sock.send(view)
            except BlockingIOError:
                await trio.lowlevel.wait_writable(self._sock)
                continue
            view = view[sent:]

    async def read(self) -> Reply:
        parser = self._parser
        while True:
            reply = parser.next()
            if reply is not Parser.MORE:
                return reply  # type: ignore[return-value]
            try:
                data = self._sock.recv(READ_SIZE)
            except BlockingIOError:
                await trio.lowlevel.wait_readable(self._sock)
                continue
            if not data:
                raise RedisUnavailable("Redis closed the connection")
            parser.feed(data)

    async def execute(self, commands: Sequence[Command]) -> list[Reply]:
        await self.send(b"".join([self._encode(command) for command in commands]))
        if not self._parser.buffered:  # a reply is not there yet: no recv to learn it
            await trio.lowlevel.wait_readable(self._sock)
        return [await self.read() for _ in commands]

    def _encode(self, command: Command) -> bytes:
        if isinstance(command, Stamped):
            self.stamped += 1
            return encode(*command.stamp(self.stream, self.stamped))
        return encode(*command)

    async def aclose(self) -> None:
        trio.lowlevel.notify_closing(self._sock)
        self._sock.close()
        await trio.lowlevel.checkpoint()


@dataclass(frozen=True, slots=True)
class RedisAddress:
    host: str
    port: int
    password: str = ""
    db: int = 0

    @classmethod
    def parse(cls, addr: str, password: str = "", db: int = 0) -> RedisAddress:
        """`host:port`, `[v6]:port` or `host` (port 6379)."""
        host, port = addr.strip(), 6379
        if host.startswith("["):
            host, _, rest = host[1:].partition("]")
            port = int(rest.removeprefix(":") or 6379)
        elif host.count(":") == 1:
            host, text = host.split(":")
            port = int(text)
        return cls(host or "localhost", port, password, db)


@dataclass(slots=True)
class RedisHealth:
    """What `status`, `doctor` and `/metrics` show."""

    up: bool = True
    errors: int = 0
    calls: int = 0
    latency_seconds: float = 0.0  # sum over `calls`
    last_error: str = ""
    down_until: float = 0.0
    backoff: float = 0.0
    buckets: list[int] = field(default_factory=lambda: [0] * len(LATENCY_BUCKETS))


class RedisClient:
    """A pool of connections to one Redis; every call is bounded by `timeout` seconds.

    After a failure the circuit opens: calls fail at once for `backoff` seconds (doubling from
    50 ms to 2 s), then one call probes; a success closes it again.
    """

    def __init__(
        self,
        address: RedisAddress,
        *,
        timeout: float = 0.5,
        pool_size: int = POOL_SIZE,
        clock: Callable[[], float] = trio.current_time,
    ) -> None:
        self.address = address
        self.timeout = timeout
        self._pool_size = pool_size
        self._idle: list[Connection] = []
        self._clock = clock
        self.health = RedisHealth()
        self._watched = False  # `watch` runs: calls on a pooled connection need no scope
        self._calls: dict[Connection, float] = {}  # those calls, and their deadlines

    async def open_connection(self) -> Connection:
        """A connection of its own, outside the pool (for SUBSCRIBE); the caller closes it."""
        with trio.fail_after(self.timeout):
            return await self._connect()

    async def _connect(self) -> Connection:
        conn = await Connection.open(self.address.host, self.address.port)
        setup: list[list[Arg]] = []
        if self.address.password:
            setup.append(["AUTH", self.address.password])
        if self.address.db:
            setup.append(["SELECT", self.address.db])
        for reply in await conn.execute(setup) if setup else []:
            if isinstance(reply, RespError):
                await conn.aclose()
                raise RedisUnavailable(f"Redis refused the connection setup: {reply.code}")
        return conn

    async def execute(self, commands: Sequence[Command]) -> list[Reply]:
        """Send `commands` as one pipeline and return their replies (error replies included).
        A pooled connection goes back to the pool only when its call completed."""
        now = self._clock()
        health = self.health
        if not health.up and now < health.down_until:
            raise RedisUnavailable(f"Redis at {self._where} is unavailable ({health.last_error})")
        conn: Connection | None = None
        try:
            if self._watched and self._idle:  # bounded by `watch`, without a scope per call
                conn = self._idle.pop()
                self._calls[conn] = trio.current_time() + self.timeout
                try:
                    replies = await conn.execute(commands)
                finally:
                    del self._calls[conn]
            else:  # a bare scope: `fail_after` is a generator context manager, dearer
                with trio.CancelScope(deadline=trio.current_time() + self.timeout) as scope:
                    conn = self._idle.pop() if self._idle else await self._connect()
                    replies = await conn.execute(commands)
                if scope.cancelled_caught:
                    raise trio.TooSlowError
        except BaseException as exc:
            await self._fail(conn, now, exc)
            raise RedisUnavailable(
                f"Redis at {self._where} is unavailable ({health.last_error})"
            ) from None
        assert conn is not None
        await self._release(conn)
        self._succeeded(now)
        return replies

    async def _fail(self, conn: Connection | None, started: float, exc: BaseException) -> None:
        """Close the call's connection; re-raise what is not Redis being unavailable."""
        if conn is not None:
            with trio.CancelScope(shield=True):
                await conn.aclose()
            if conn.expired and isinstance(exc, trio.ClosedResourceError):
                exc = trio.TooSlowError()
        if not isinstance(exc, UNAVAILABLE):
            raise exc
        self._failed(started, exc)
        await self._drop_idle()  # as dead as this one, most likely (Redis restarted)

    async def _release(self, conn: Connection) -> None:
        if len(self._idle) < self._pool_size and not conn.expired:
            self._idle.append(conn)
        else:
            with trio.CancelScope(shield=True):
                await conn.aclose()

    async def watch(self, *, tick: float | None = None) -> None:
        """Until cancelled: end the calls that outlive `timeout` (within `tick`, a quarter of
        it by default). While it runs, a call on a pooled connection enters no cancel scope of
        its own (one costs ~6-9 us, a tenth of the call at concurrency 1)."""
        tick = tick if tick is not None else min(max(self.timeout / 4, 0.001), 0.25)
        self._watched = True
        try:
            while True:
                await trio.sleep(tick)
                now = trio.current_time()
                for conn, deadline in list(self._calls.items()):
                    if now >= deadline:  # again each tick while its task has not woken
                        conn.expire()
        finally:
            self._watched = False

    @property
    def pooled(self) -> int:
        """Idle connections kept for the next calls."""
        return len(self._idle)

    async def call(self, *args: Arg) -> Reply:
        return (await self.execute([args]))[0]

    @property
    def _where(self) -> str:
        return f"{self.address.host}:{self.address.port}"

    def _failed(self, started: float, exc: BaseException) -> None:
        health = self.health
        health.errors += 1
        health.up = False
        if isinstance(exc, trio.TooSlowError):
            health.last_error = f"no answer within {self.timeout:g} s"
        else:
            health.last_error = str(exc) or type(exc).__name__
        health.backoff = min(max(health.backoff * 2, BACKOFF_FIRST), BACKOFF_MAX)
        health.down_until = self._clock() + health.backoff
        self._observe(self._clock() - started)

    def _succeeded(self, started: float) -> None:
        health = self.health
        health.up, health.backoff, health.last_error = True, 0.0, ""
        self._observe(self._clock() - started)

    def _observe(self, seconds: float) -> None:
        health = self.health
        health.calls += 1
        health.latency_seconds += seconds
        for i, bound in enumerate(LATENCY_BUCKETS):
            if seconds <= bound:
                health.buckets[i] += 1
                break

    async def aclose(self) -> None:
        await self._drop_idle()

    async def _drop_idle(self) -> None:
        idle, self._idle = self._idle, []
        with trio.CancelScope(shield=True):
            for conn in idle:
                await conn.aclose()
