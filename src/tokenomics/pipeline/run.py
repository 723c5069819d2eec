"""A proxied request's life, from the bytes of its head to its record: the one module to read.

`Requests.serve` is called once per proxied request by the server's routing
(`services/asgi.py`) and reads top to bottom:

    1. parse    `exchange`: the head becomes an `Exchange` (`exchange.py` states the order in
                which its parts are written)
    2. admit    the route, then the head stages (framing, token): a refusal is answered
                before a byte of the body is read (the connection closes when one is left)
    3. body     read under a deadline, a size limit and the process-wide cap (`body.py`);
                a client gone before its body was whole leaves nothing to record
    4. stages   `BODY_STAGES` (`stages.py`): policy, limits, rules, budget, each `(ex, deps)`
    5. forward  the upstream call, with retries and fallbacks (`forward.py`)
    6. relay    the response, buffered or streamed as it arrives (`relay.py`)
    7. reply    sent to the client, a stream block by block as it arrives, in as few writes
                as waiting allows (what came with the upstream's end goes out in one, with
                the terminator)
    8. finish   exactly once, here (`finish.py`), in two halves around the reply's last
                byte. Settle (price, budget, token windows, the parallel slot) before it: a
                client's next request finds its slot free and its spend counted, whatever the
                counters' backend. Record (statistics, journal, memory, events) right after
                it, off the reply's path, with no checkpoint between when the write went out
                at once: no other request runs before it is journaled (D17 allows 1 s). Else,
                shielded, on the way out: refused, failed upstream, client gone, cancelled, or
                a bug. A bug in finish itself is logged, and the exchange is settled (its slot
                let go) and recorded with its error where that can be done.

Steps 4-7 are cancelled when the client leaves before the whole reply was sent (the upstream
call with them): our server calls back and cancels the request's call itself (`CLIENT_GONE`;
the `trio.Cancelled` goes through step 8 on its way out); under another server, a watcher
task in the request's own nursery waits for `http.disconnect` and cancels that nursery. A
failure there (a bug in a stage, the relay, the watcher) ends this request only: it is
logged, answered 500 in the client's API family when nothing was sent yet, and recorded.
Errors of ours (`TokenomicsError`) are answered in the client's API family by `error_reply`.
"""

from __future__ import annotations

import logging
import os
import random
import time
from functools import partial
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

import trio

from tokenomics.domain.errors import BudgetExceeded, ProxyError, TokenomicsError
from tokenomics.domain.memo import remember
from tokenomics.formats.classify import route_request
from tokenomics.formats.errors import error_body
from tokenomics.pipeline.body import Bodies, ClientGone, close_after
from tokenomics.pipeline.exchange import Exchange, Incoming, Reply
from tokenomics.pipeline.finish import finish_after_bug, record_now, settle_now
from tokenomics.pipeline.forward import forward
from tokenomics.pipeline.relay import relay
from tokenomics.pipeline.run_budget import reserve_run_budget
from tokenomics.pipeline.stages import HEAD_STAGES, STAGES, undefer
from tokenomics.pipeline.stream_capture import EVENT_BODIES, StreamCapture, is_event_stream
from tokenomics.upstream.client import header

if TYPE_CHECKING:
    from collections.abc import AsyncGenerator, Awaitable, Callable, MutableMapping

    from tokenomics.pipeline.deps import Deps

    Scope = MutableMapping[str, Any]
    Receive = Callable[[], Awaitable[MutableMapping[str, Any]]]
    Send = Callable[[MutableMapping[str, Any]], Awaitable[None]]

log = logging.getLogger("tokenomics.server")
# The scope extension of our HTTP server (`services/http_request.CLIENT_GONE`, the same
# string): `when_gone(callback)` calls back once if the client leaves before the response's
# last byte, where another server needs a watcher task per request waiting in `receive()` (a
# task per request was ~4% of the proxy's CPU at c=64).
CLIENT_GONE = "tokenomics.client_gone"
# And `whole_body()`: the body when it has all arrived, read then without a deadline (a
# cancel scope per request; `services/http_request.WHOLE_BODY`).
WHOLE_BODY = "tokenomics.whole_body"
JSON = ("content-type", "application/json")
# The body stages, then the run's own budget on top of the policy's (`tokenomics run --max-*`).
BODY_STAGES = (*STAGES, reserve_run_budget)


class _Life:
    """Where one request's reply stands; `finished` makes the record exactly once."""

    __slots__ = ("ex", "finished", "replied", "send", "started")

    def __init__(self, ex: Exchange, send: Send) -> None:
        self.ex = ex
        self.send = send
        self.started = False  # the response head went to the server
        self.replied = False  # the whole reply did (the server then reports a disconnect)
        self.finished = False


class Requests:
    """The proxied requests of one server: their shared parts (body cap, request ids)."""

    def __init__(self, deps: Deps, clock: Callable[[], float]) -> None:
        self.deps = deps
        self.clock = clock
        server = deps.settings.server
        self.bodies = Bodies(
            max_request_mb=server.max_request_mb,
            max_buffered_mb=server.max_buffered_mb,
            timeout=server.body_timeout,
        )
        # Streamed replies are kept (bounded) for ledger memory and events; a token whose
        # policy has memory turns it on for its own requests (`stages.authenticate`).
        ledger = deps.settings.ledger
        self._capture = ledger.enabled and (ledger.memory or ledger.event_ledger)
        self._event_bodies = EVENT_BODIES if ledger.event_ledger else 0  # events list them
        # Request ids only need to be unique: a PRNG seeded from the OS, not a syscall each.
        self._ids = random.Random(os.urandom(32))
        self._second = -1
        self._second_text = ""

    async def serve(self, scope: Scope, receive: Receive, send: Send) -> None:
        """One proxied request, steps 1 to 8 of the module's docstring."""
        ex = self.exchange(scope)
        try:
            reply = await self._admit(ex, scope, receive)
        except ClientGone:  # before the request was whole: nothing to record
            return
        life = _Life(ex, send)
        try:
            if reply is None:
                await self._run(life, scope, receive)
            else:
                await self._reply(life, reply)
        finally:
            # The relay closes the upstream response; not when the reply never started.
            if ex.upstream is not None and not ex.upstream.closed:
                with trio.CancelScope(shield=True):
                    await ex.upstream.aclose()
            if not life.finished:  # shielded where it waits
                await self._finish(life)

    # 1. parse -----------------------------------------------------------------------------

    def exchange(self, scope: Scope) -> Exchange:
        names = _NAMES
        raw = [(names.get(k) or _name(k), v.decode("latin-1")) for k, v in scope["headers"]]
        client = scope.get("client")
        # Positional, in field order (keywords cost ~2x, timeit): method, raw_headers,
        # headers, peer, started, started_at, client_request_id.
        request = Incoming(
            scope["method"],
            raw,
            dict(raw),
            client[0] if client else "",
            self.clock(),
            self._started_at(),
            f"req_{self._ids.getrandbits(128):032x}",
        )
        query = scope.get("query_string", b"").decode("latin-1")
        ex = Exchange(request, _raw_path(scope), query)
        ex.capture = self._capture  # a keyword among Exchange's ~40 parameters costs more
        return ex

    def _started_at(self) -> str:
        """Now in RFC 3339 UTC with milliseconds; the part to the second is formatted once."""
        now = time.time()
        second = int(now)
        if second != self._second:
            self._second = second
            self._second_text = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(second))
        return f"{self._second_text}.{int((now - second) * 1000):03d}Z"

    # 2.-3. admit, body --------------------------------------------------------------------

    async def _admit(self, ex: Exchange, scope: Scope, receive: Receive) -> Reply | None:
        """The checks on the request's head, then its body: the error reply when one fails
        (closing the connection when the body stays unread), else None."""
        try:
            admit(ex, self.deps)
            whole = scope.get("extensions", {}).get(WHOLE_BODY)
            ex.body_bytes = await self.bodies.read(receive, ex.request.headers, whole)
        except TokenomicsError as exc:
            reply = error_reply(ex, exc)
            if close_after(ex.request.headers):
                reply.headers.append(("connection", "close"))
            ex.status, ex.reply = reply.status, reply
            return reply
        return None

    # 4.-7. stages, forward, relay, reply, beside the watcher ------------------------------

    async def _run(self, life: _Life, scope: Scope, receive: Receive) -> None:
        try:
            when_gone = scope.get("extensions", {}).get(CLIENT_GONE)
            if when_gone is not None:  # our server calls back, and cancels: no task, no scope
                when_gone(partial(_client_gone, life))
                await self._reply(life, await run_pipeline(life.ex, self.deps))
            else:
                async with trio.open_nursery() as watched:
                    watched.start_soon(_watch, receive, watched.cancel_scope, life)
                    await self._reply(life, await run_pipeline(life.ex, self.deps))
        except Exception:  # a bug: this request ends, the server goes on
            log.exception("request %s failed", life.ex.request.client_request_id)
            await self._failed(life)

    async def _failed(self, life: _Life) -> None:
        ex = life.ex
        ex.error = "internal error"
        if not life.started:
            reply = error_reply(ex, ProxyError(500, "internal error"))
            ex.status, ex.reply = reply.status, reply
            await self._reply(life, reply)

    async def _reply(self, life: _Life, reply: Reply) -> None:
        """Send the reply; settle the exchange before its last byte, record it after.
        `replied` is set before the last send, because the server reports `http.disconnect`
        for every finished response while it is under way."""
        ex, send = life.ex, life.send
        headers = [(k.encode("latin-1"), v.encode("latin-1")) for k, v in reply.headers]
        life.started = True
        if reply.stream is None:
            headers.append((b"content-length", str(len(reply.body)).encode()))
            ex.first_byte_ms = int((self.clock() - ex.request.started) * 1000)
            await send({"type": "http.response.start", "status": reply.status, "headers": headers})
            last = reply.body
        else:
            await send({"type": "http.response.start", "status": reply.status, "headers": headers})
            last = await self._stream(life, reply.stream, header(reply.headers, "content-type"))
        life.replied = True
        settled = await self._settle(life)
        try:
            await send({"type": "http.response.body", "body": last})
        finally:  # however the last send ends
            await self._record(life, settled)

    async def _stream(
        self, life: _Life, stream: AsyncGenerator[bytes, None], content_type: str
    ) -> bytes:
        """Relay a stream's blocks as they come, in as few writes as waiting allows: the head
        waits for the first block when body bytes came with it, and once the upstream's body
        is whole (no wait lies ahead) the blocks are held and go out together at the stream's
        end, with the terminator (`_reply`): a whole upstream reply is one write, head
        included. A stream that trickles gets its head, then each block, at once. Returns
        what was held (b"" when nothing was)."""
        ex, send = life.ex, life.send
        upstream = ex.upstream
        if ex.capture:
            ex.sent = StreamCapture(is_event_stream(content_type), self._event_bodies)
        held: list[bytes] = []
        try:  # the stream is closed (and its usage read) however the sends end
            if upstream is None or not upstream.buffered:
                # An empty part flushes the head now: the server holds it for the first body part.
                await send({"type": "http.response.body", "body": b"", "more_body": True})
            async for chunk in stream:
                _capture(ex, chunk, self.clock)
                if upstream is not None and upstream.complete:
                    held.append(chunk)
                else:
                    await send({"type": "http.response.body", "body": chunk, "more_body": True})
        except BaseException:  # cut short: its `finally` runs whole, shielded
            with trio.CancelScope(shield=True):
                await stream.aclose()
            raise
        # Read to its end, the generator has finished (its `finally` ran): nothing to close,
        # and no cancel scope for it. What was held goes out with the terminator.
        return held[0] if len(held) == 1 else b"".join(held)

    # 8. finish ----------------------------------------------------------------------------

    async def _finish(self, life: _Life) -> None:
        """Settle, then record (on the way out: no reply, or it ended early)."""
        await self._record(life, await self._settle(life))

    async def _settle(self, life: _Life) -> bool:
        """The first half (`finish.settle_now`): False when a bug hit it, logged, and the
        exchange was saved as it could be (`finish_after_bug`), its record made then."""
        life.finished = True
        return await self._step(life.ex, settle_now)

    async def _record(self, life: _Life, settled: bool) -> None:
        """The second half (`finish.record_now`), then the body's memory is let go."""
        try:
            if settled:
                await self._step(life.ex, record_now)
        finally:
            self.bodies.release(len(life.ex.body_bytes))

    async def _step(
        self, ex: Exchange, step: Callable[[Exchange, Deps], Awaitable[None] | None]
    ) -> bool:
        """One half of finishing: without a checkpoint when it can (nothing can cancel it),
        else what it returned is awaited shielded. A bug in it is logged; the reply stays
        whole and the exchange keeps what can be saved (`finish_after_bug`)."""
        try:
            rest = step(ex, self.deps)
            if rest is not None:
                await _shielded(rest)
        except Exception:
            log.exception("request %s: finishing it failed", ex.request.client_request_id)
            await _shielded(finish_after_bug(ex, self.deps))
            return False
        return True


async def _shielded(rest: Awaitable[None]) -> None:
    """Shielded: a cancellation (client gone, shutdown) while the exchange settles or records
    must not leave the request unrecorded and its hold or slot taken."""
    with trio.CancelScope(shield=True):
        await rest


async def _watch(receive: Receive, request: trio.CancelScope, life: _Life) -> None:
    """The client, while its request runs: gone before the whole reply was sent, the request
    is cancelled. Ends by itself: the server reports `http.disconnect` once a reply is whole."""
    while (await receive())["type"] != "http.disconnect":
        pass
    if _client_gone(life):
        request.cancel()


def _client_gone(life: _Life) -> bool:
    """The client left: True (cancel the request) unless the whole reply was sent."""
    if life.replied:
        return False
    life.ex.error = life.ex.error or "client disconnected"
    return True


def _capture(ex: Exchange, chunk: bytes, clock: Callable[[], float]) -> None:
    """Read what the client receives of a stream for memory and events (`stream_capture`)."""
    if ex.first_byte_ms is None:
        ex.first_byte_ms = int((clock() - ex.request.started) * 1000)
    if ex.sent is not None:
        ex.sent.feed(chunk)
    ex.sent_bytes += len(chunk)


# Header names as the exchange keeps them (decoded, lower-case), by their bytes: the same few
# on every request.
_NAMES: dict[bytes, str] = {}
NAMES_LIMIT = 1024


def _name(raw: bytes) -> str:
    return remember(_NAMES, raw, raw.decode("latin-1").lower(), NAMES_LIMIT)


def _raw_path(scope: Scope) -> str:
    """The path as the client sent it, still percent-encoded: the pipeline decodes it once
    and classifies what it sends upstream (`formats/paths.py`). `raw_path` is optional in ASGI."""
    raw = scope.get("raw_path")
    return raw.decode("latin-1") if raw is not None else quote(scope["path"], safe="/")


# The stages -------------------------------------------------------------------------------


def admit(ex: Exchange, deps: Deps) -> None:
    """Route the request and run the head stages (framing, token); raises their error.
    `ex.path` comes as the client sent it and becomes the path that goes upstream."""
    ex.route = route_request(ex.request.method, ex.path, ex.request.headers)
    ex.path = ex.route.path
    for stage in HEAD_STAGES:
        stage(ex, deps)


async def run_pipeline(ex: Exchange, deps: Deps) -> Reply:
    """The body stages, the upstream call and the relay, once `admit` passed and the body was
    read; our errors become the reply, in the client's API family."""
    try:
        for stage in BODY_STAGES:
            step = stage(ex, deps)
            if step is not None:
                await step
        await forward(ex, deps)
        reply = await relay(ex, deps)
    except TokenomicsError as exc:
        reply = error_reply(ex, await undefer(ex, deps, exc))
    ex.status, ex.reply = reply.status, reply
    return reply


def error_reply(ex: Exchange, error: TokenomicsError) -> Reply:
    family = error.family or ex.family
    headers = [JSON]
    if error.retry_after is not None:
        headers.append(("retry-after", str(max(1, round(error.retry_after + 0.499)))))
    if isinstance(error, BudgetExceeded):  # not transient: the SDKs need not retry it
        headers.append(("x-should-retry", "false"))
    ex.error = ex.error or error.message
    return Reply(error.status, headers, body=error_body(family, error.status, error.message))
