"""The ASGI application: `/ping`, `/health`, `/stats`, `/metrics`, and the proxy for the rest.

Request bodies are read up to `server.max_request_mb` (413 beyond). Each proxied request runs
the pipeline while a watcher notices a client disconnect and cancels the upstream call; the
exchange is finished (recorded) exactly once, shielded, whatever happened.
"""

from __future__ import annotations

import base64
import hmac
import ipaddress
import os
import random
import time
from collections.abc import Awaitable, Callable, MutableMapping
from functools import partial
from typing import TYPE_CHECKING, Any

import orjson
import trio

from tokenomics.formats.classify import classify
from tokenomics.formats.errors import error_body
from tokenomics.pipeline.exchange import Exchange, Reply
from tokenomics.pipeline.finish import finish
from tokenomics.pipeline.run import run_pipeline
from tokenomics.services.finished import BODY_LIMIT

if TYPE_CHECKING:
    from tokenomics.pipeline.deps import Deps
    from tokenomics.services.stats import Stats

Scope = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[MutableMapping[str, Any]]]
Send = Callable[[MutableMapping[str, Any]], Awaitable[None]]
JSON = [(b"content-type", b"application/json")]


class _TooLarge(Exception):
    pass


class _Disconnected(Exception):
    pass


def _is_loopback(scope: Scope) -> bool:
    client = scope.get("client")
    if not client:
        return False
    try:
        address = ipaddress.ip_address(client[0])
    except ValueError:
        return False
    # a dual-stack listener (`server.host: "::"`) sees IPv4 peers as ::ffff:a.b.c.d
    mapped = address.ipv4_mapped if isinstance(address, ipaddress.IPv6Address) else None
    return (mapped or address).is_loopback


async def _send(send: Send, status: int, headers: list[tuple[bytes, bytes]], body: bytes) -> None:
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


def _capture(ex: Exchange, chunk: bytes, clock: Callable[[], float]) -> None:
    """Keep what the client received of a stream, up to `BODY_LIMIT`, for memory and events."""
    if ex.first_byte_ms is None:
        ex.first_byte_ms = int((clock() - ex.started) * 1000)
    if ex.capture and ex.sent_bytes < BODY_LIMIT:
        ex.sent_chunks.append(chunk[: BODY_LIMIT - ex.sent_bytes])
    ex.sent_bytes += len(chunk)


async def _read_body(receive: Receive, limit: int) -> bytes:
    parts: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            raise _Disconnected
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            raise _TooLarge
        parts.append(chunk)
        if not message.get("more_body", False):
            return b"".join(parts)


class ProxyApp:
    def __init__(
        self,
        deps: Deps,
        stats: Stats,
        clock: Callable[[], float],
        spawn: Callable[..., object],
    ) -> None:
        """`spawn` starts each request's disconnect watcher (`start_soon` of the composition
        root's nursery, which outlives the requests; a nursery per request cost 1.2% more
        instructions). A watcher ends by itself: hypercorn reports `http.disconnect` when a
        response is complete too."""
        self.deps = deps
        self.stats = stats
        self.clock = clock
        self._spawn = spawn
        auth = deps.settings.admin.auth
        self._admin_auth = (
            (auth.username, auth.password) if auth.username and auth.password else None
        )
        self._second = -1
        self._second_text = ""
        # Request ids only need to be unique: a PRNG seeded from the OS, not a syscall each.
        self._ids = random.Random(os.urandom(32))
        # Streamed replies are kept (bounded) for ledger memory and events; a token whose
        # policy has memory turns it on for its own requests (`stages.authenticate`).
        ledger = deps.settings.ledger
        self._capture = ledger.enabled and (ledger.memory or ledger.event_ledger)
        # `start`/`stop` confirm that a port is served by this very process (D23).
        self._health_headers = [*JSON, (b"x-tokenomics-pid", str(os.getpid()).encode())]

    def _started_at(self) -> str:
        """Now in RFC 3339 UTC with milliseconds; the part to the second is formatted once."""
        now = time.time()
        second = int(now)
        if second != self._second:
            self._second = second
            self._second_text = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(second))
        return f"{self._second_text}.{int((now - second) * 1000):03d}Z"

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await self._lifespan(receive, send)
            return
        if scope["type"] != "http":
            return
        method, path = scope["method"], scope["path"]
        if path == "/ping" and method in ("GET", "HEAD"):
            await _send(send, 200, [(b"content-type", b"text/plain")], b".")
        elif path == "/health" and method == "GET":
            await _send(send, 200, self._health_headers, b'{"status":"ok"}')
        elif path in ("/stats", "/metrics") and method == "GET":
            await self._admin(scope, send, path)
        else:
            await self._proxy(scope, receive, send)

    async def _lifespan(self, receive: Receive, send: Send) -> None:
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await send({"type": "lifespan.shutdown.complete"})
                return

    def _admin_denied(self, scope: Scope) -> tuple[int, list[tuple[bytes, bytes]], bytes] | None:
        """D21: the real peer must be loopback, and basic auth must match when configured."""
        if not _is_loopback(scope):
            return 403, JSON, b'{"error":"admin UI/API is local-only"}'
        if self._admin_auth is None:
            return None
        headers = dict(scope["headers"])
        given = headers.get(b"authorization", b"").decode("latin-1")
        expected = "Basic " + base64.b64encode(":".join(self._admin_auth).encode()).decode()
        if hmac.compare_digest(given.encode(), expected.encode()):
            return None
        challenge = (b"www-authenticate", b'Basic realm="tokenomics-admin"')
        return 401, [*JSON, challenge], b'{"error":"unauthorized"}'

    async def _admin(self, scope: Scope, send: Send, path: str) -> None:
        denied = self._admin_denied(scope)
        if denied is not None:
            await _send(send, *denied)
        elif path == "/stats":
            await _send(
                send, 200, JSON, orjson.dumps(self.stats.snapshot(), option=orjson.OPT_INDENT_2)
            )
        else:
            text = (b"content-type", b"text/plain; version=0.0.4; charset=utf-8")
            await _send(send, 200, [text], self.stats.prometheus().encode())

    def _exchange(self, scope: Scope, body: bytes) -> Exchange:
        raw = [(k.decode("latin-1").lower(), v.decode("latin-1")) for k, v in scope["headers"]]
        client = scope.get("client")
        return Exchange(
            method=scope["method"],
            path=scope["path"],
            query=scope.get("query_string", b"").decode("latin-1"),
            raw_headers=raw,
            body_bytes=body,
            peer=client[0] if client else "",
            started=self.clock(),
            started_at=self._started_at(),
            client_request_id=f"req_{self._ids.getrandbits(128):032x}",
            headers=dict(raw),
            capture=self._capture,
        )

    async def _proxy(self, scope: Scope, receive: Receive, send: Send) -> None:
        limit = self.deps.settings.server.max_request_mb * 1024 * 1024
        try:
            body = await _read_body(receive, limit)
        except _Disconnected:
            return
        except _TooLarge:
            headers = {
                k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]
            }
            family = classify(scope["method"], scope["path"], headers).family
            message = f"request body larger than {self.deps.settings.server.max_request_mb} MiB"
            await _send(send, 413, JSON, error_body(family, 413, message))
            return
        ex = self._exchange(scope, body)
        self.stats.in_flight += 1
        try:
            with trio.CancelScope() as request:
                self._spawn(self._watch_disconnect, receive, request, ex)
                reply = await run_pipeline(ex, self.deps)
                await self._send_reply(send, reply, ex, self.clock, partial(finish, ex, self.deps))
        finally:
            self.stats.in_flight -= 1
            # The relay closes the upstream response; not when the reply never started.
            if ex.upstream is not None and not ex.upstream.closed:
                with trio.CancelScope(shield=True):
                    await ex.upstream.aclose()
            if not ex.finished:  # else done before the reply's last byte
                with trio.CancelScope(shield=True):
                    await finish(ex, self.deps)

    @staticmethod
    async def _watch_disconnect(receive: Receive, scope: trio.CancelScope, ex: Exchange) -> None:
        while (await receive())["type"] != "http.disconnect":
            pass
        if not ex.replied:
            ex.error = ex.error or "client disconnected"
            scope.cancel()

    @staticmethod
    async def _send_reply(
        send: Send,
        reply: Reply,
        ex: Exchange,
        clock: Callable[[], float],
        finished: Callable[[], Awaitable[None]],
    ) -> None:
        """Send the reply; `ex.replied` is set before the final send, because hypercorn reports
        `http.disconnect` for every finished response while that send is under way. The
        exchange is `finished` (journaled) before that send: a client that has the whole
        response can count on its record, even if the process is killed the next instant."""
        headers = [(k.encode("latin-1"), v.encode("latin-1")) for k, v in reply.headers]
        if reply.stream is None:
            headers.append((b"content-length", str(len(reply.body)).encode()))
            ex.first_byte_ms = int((clock() - ex.started) * 1000)
            await send({"type": "http.response.start", "status": reply.status, "headers": headers})
            ex.replied = True
            await finished()
            await send({"type": "http.response.body", "body": reply.body})
            return
        await send({"type": "http.response.start", "status": reply.status, "headers": headers})
        stream = reply.stream
        try:
            async for chunk in stream:
                _capture(ex, chunk, clock)
                await send({"type": "http.response.body", "body": chunk, "more_body": True})
        finally:
            with trio.CancelScope(shield=True):
                await stream.aclose()
        ex.replied = True
        await finished()
        await send({"type": "http.response.body", "body": b""})
