"""The ASGI application: `/ping`, `/health`, `/stats`, `/metrics` and `/admin…` (when
`admin.enabled`), and the proxy for the rest, over HTTP/1.x only.

A proxied request's life is `ProxyApp._proxy`: its head is checked (framing, then the token)
before any body byte is read; the body is read under a deadline, a size limit and the
process-wide cap on bodies in memory (`body.py`); the pipeline runs while a watcher notices a
client disconnect and cancels the upstream call; the exchange is finished (recorded) exactly
once, shielded, whatever happened.
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
from urllib.parse import quote

import orjson
import trio

from tokenomics.domain.errors import TokenomicsError
from tokenomics.formats.classify import classify
from tokenomics.formats.errors import error_body
from tokenomics.pipeline.exchange import Exchange, Reply
from tokenomics.pipeline.finish import finish
from tokenomics.pipeline.run import admit, error_reply, run_pipeline
from tokenomics.services.body import Bodies, ClientGone, close_after
from tokenomics.services.finished import BODY_LIMIT
from tokenomics.services.http_request import CLIENT_GONE

if TYPE_CHECKING:
    from tokenomics.pipeline.deps import Deps
    from tokenomics.services.stats import Stats

Scope = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[MutableMapping[str, Any]]]
Send = Callable[[MutableMapping[str, Any]], Awaitable[None]]
JSON = [(b"content-type", b"application/json")]
HTTP1 = ("1.0", "1.1")


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


def _asks_h2c(scope: Scope) -> bool:
    return any(k == b"upgrade" and b"h2c" in v.lower() for k, v in scope["headers"])


def _raw_path(scope: Scope) -> str:
    """The path as the client sent it, still percent-encoded: the pipeline decodes it once
    and classifies what it sends upstream (`formats/paths.py`). `raw_path` is optional in ASGI."""
    raw = scope.get("raw_path")
    return raw.decode("latin-1") if raw is not None else quote(scope["path"], safe="/")


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


def _client_gone(scope: trio.CancelScope, ex: Exchange) -> None:
    if not ex.replied:
        ex.error = ex.error or "client disconnected"
        scope.cancel()


class ProxyApp:
    def __init__(
        self,
        deps: Deps,
        stats: Stats,
        clock: Callable[[], float],
        spawn: Callable[..., object],
        *,
        admin: Callable[[Scope, Receive, Send], Awaitable[None]] | None = None,
    ) -> None:
        """`spawn` starts each request's disconnect watcher (`start_soon` of the composition
        root's nursery, which outlives the requests; a nursery per request cost 1.2% more
        instructions). A watcher ends by itself: the server reports `http.disconnect` when a
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
        self._admin_enabled = deps.settings.admin.enabled
        # The inbound webhook of remote sync (`remote_webhook.py`), set by the composition root.
        self.webhook: Callable[[Scope, Receive, Send], Awaitable[None]] | None = None
        self._webhook_path = deps.settings.remote.webhook.path
        self._admin_app = admin  # `/admin…`: the admin UI and API (services/admin)
        server = deps.settings.server
        self.bodies = Bodies(
            max_request_mb=server.max_request_mb,
            max_buffered_mb=server.max_buffered_mb,
            timeout=server.body_timeout,
        )

    def _started_at(self) -> str:
        """Now in RFC 3339 UTC with milliseconds; the part to the second is formatted once."""
        now = time.time()
        second = int(now)
        if second != self._second:
            self._second = second
            self._second_text = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(second))
        return f"{self._second_text}.{int((now - second) * 1000):03d}Z"

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":  # our server (`http_server.py`) sends no lifespan events
            return
        method, path = scope["method"], scope["path"]
        if scope.get("http_version") not in HTTP1 or _asks_h2c(scope):
            await self._refuse_version(scope, send)
        elif path == "/ping" and method in ("GET", "HEAD"):
            await _send(send, 200, [(b"content-type", b"text/plain")], b".")
        elif path == "/health" and method == "GET":
            await _send(send, 200, self._health_headers, b'{"status":"ok"}')
        elif path in ("/stats", "/metrics") and method == "GET" and self._admin_enabled:
            await self._admin(scope, send, path)
        elif self.webhook is not None and path == self._webhook_path:
            await self.webhook(scope, receive, send)
        elif self._admin_app is not None and (path == "/admin" or path.startswith("/admin/")):
            await self._admin_app(scope, receive, send)
        else:  # with admin off, its paths are the proxy's (`cli.md` §8.1)
            await self._proxy(scope, receive, send)

    @staticmethod
    async def _refuse_version(scope: Scope, send: Send) -> None:
        """HTTP/2 is not served (only HTTP/1.1 is documented): a request asking to upgrade
        to it (`Upgrade: h2c`), or one a server upgraded itself, is refused here."""
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}
        family = classify(scope["method"], scope["path"], headers).family
        message = "HTTP/2 is not served; use HTTP/1.1"
        await _send(send, 505, JSON, error_body(family, 505, message))

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

    def _exchange(self, scope: Scope) -> Exchange:
        raw = [(k.decode("latin-1").lower(), v.decode("latin-1")) for k, v in scope["headers"]]
        client = scope.get("client")
        return Exchange(
            method=scope["method"],
            path=_raw_path(scope),
            query=scope.get("query_string", b"").decode("latin-1"),
            raw_headers=raw,
            body_bytes=b"",
            peer=client[0] if client else "",
            started=self.clock(),
            started_at=self._started_at(),
            client_request_id=f"req_{self._ids.getrandbits(128):032x}",
            headers=dict(raw),
            capture=self._capture,
        )

    async def _proxy(self, scope: Scope, receive: Receive, send: Send) -> None:
        """A proxied request's life: its head is checked, then its body read (`_admit`); the
        pipeline runs unless that refused it; the reply is sent; the exchange is finished."""
        ex = self._exchange(scope)
        try:
            reply = await self._admit(ex, receive)
        except ClientGone:  # before the request was whole: nothing to record
            return
        self.stats.in_flight += 1
        try:
            with trio.CancelScope() as request:
                if reply is None:
                    self._on_disconnect(scope, receive, request, ex)
                    reply = await run_pipeline(ex, self.deps)
                await self._send_reply(send, reply, ex, self.clock, partial(finish, ex, self.deps))
        finally:
            self.stats.in_flight -= 1
            self.bodies.release(len(ex.body_bytes))
            # The relay closes the upstream response; not when the reply never started.
            if ex.upstream is not None and not ex.upstream.closed:
                with trio.CancelScope(shield=True):
                    await ex.upstream.aclose()
            if not ex.finished:  # else done before the reply's last byte
                with trio.CancelScope(shield=True):
                    await finish(ex, self.deps)

    async def _admit(self, ex: Exchange, receive: Receive) -> Reply | None:
        """The checks on the request's head (framing, token), then its body: the error reply
        when one fails (closing the connection when the body stays unread), else None."""
        try:
            admit(ex, self.deps)
            ex.body_bytes = await self.bodies.read(receive, ex.headers)
        except TokenomicsError as exc:
            reply = error_reply(ex, exc)
            if close_after(ex.headers):
                reply.headers.append(("connection", "close"))
            ex.status, ex.reply = reply.status, reply
            return reply
        return None

    def _on_disconnect(
        self, scope: Scope, receive: Receive, request: trio.CancelScope, ex: Exchange
    ) -> None:
        """Cancel the request if its client leaves before the reply is sent: told by our server
        (`http_request.CLIENT_GONE`, no task), else by a watcher task waiting in `receive`."""
        when_gone = scope.get("extensions", {}).get(CLIENT_GONE)
        if when_gone is not None:
            when_gone(partial(_client_gone, request, ex))
        else:
            self._spawn(self._watch_disconnect, receive, request, ex)

    @staticmethod
    async def _watch_disconnect(receive: Receive, scope: trio.CancelScope, ex: Exchange) -> None:
        while (await receive())["type"] != "http.disconnect":
            pass
        _client_gone(scope, ex)

    @staticmethod
    async def _send_reply(
        send: Send,
        reply: Reply,
        ex: Exchange,
        clock: Callable[[], float],
        finished: Callable[[], Awaitable[None]],
    ) -> None:
        """Send the reply; `ex.replied` is set before the final send, because the server reports
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
        # An empty part flushes the head now: the server holds it for the first body part.
        await send({"type": "http.response.body", "body": b"", "more_body": True})
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
