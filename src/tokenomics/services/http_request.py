"""A request being served by the HTTP/1.1 server: its ASGI `receive` (the body as it
arrives, then `http.disconnect` once the response is complete or the client has left) and
`send` (the response, framed by `http_response.head_bytes`; the head goes out with the first
body part, so an app flushes a stream's head by sending an empty part)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import trio

from tokenomics.services.http_response import CONTINUE, Framing, head_bytes

if TYPE_CHECKING:
    from collections.abc import Callable, MutableMapping

    from tokenomics.services.http_connection import Connection
    from tokenomics.services.http_parser import Head

DISCONNECT = {"type": "http.disconnect"}
# An extension of the scope (`scope["extensions"]`): `when_gone(callback)` has the server call
# `callback()` once if the client leaves (or its connection breaks) before the response's
# last byte, where an app would otherwise need a task of its own waiting in `receive()` for
# `http.disconnect` (a task per request cost the proxy ~4% of its CPU at c=64, py-spy). When
# `callback()` returns True the server cancels the app's call (it ends in `trio.Cancelled`,
# which the server takes): the app needs no cancel scope of its own (one per request, ~3%).
CLIENT_GONE = "tokenomics.client_gone"
# Another: `whole_body()` is the request's whole body when it has all arrived and the app has
# received none of it (what `receive()` would return without waiting), else None; an app then
# needs no timeout (a cancel scope, ~2.5% of the proxy's CPU at c=64) around reading it.
WHOLE_BODY = "tokenomics.whole_body"


class Request:
    """A request being served: its ASGI `receive` and `send`."""

    __slots__ = (
        "body_done",
        "broken",
        "chunks",
        "complete",
        "conn",
        "continue_sent",
        "framing",
        "head",
        "headers",
        "last",
        "on_gone",
        "responded",
        "scope",
        "started",
        "status",
        "waiter",
    )  # fmt: skip

    def __init__(self, conn: Connection, head: Head, scope: dict[str, Any]) -> None:
        self.conn = conn
        self.head = head
        self.scope = scope
        self.chunks: list[bytes] = []
        self.complete = False  # the whole body arrived
        self.body_done = False  # ... and the app received its end
        self.broken = False  # the body was malformed
        self.last = head.upgrade  # no request is read after this one
        self.continue_sent = False
        self.started = False
        self.responded = False  # the response's last byte was sent
        self.status = 0
        self.headers: list[tuple[bytes, bytes]] = []
        self.framing: Framing | None = None
        self.waiter: trio.Event | None = None
        self.on_gone: Callable[[], bool | None] | None = None

    def when_gone(self, callback: Callable[[], bool | None]) -> None:
        """Call `callback()` once if the client leaves before the response is complete (at
        once if it already has); the app's call is cancelled when it returns True."""
        self.on_gone = callback
        if self.conn.gone:
            self.gone()

    def gone(self) -> None:
        """The connection is lost: tell the app, unless the response was complete."""
        callback, self.on_gone = self.on_gone, None
        if callback is not None and not self.responded and callback():
            self.conn.serve_scope.cancel()

    def whole_body(self) -> bytes | None:
        """The whole body, taken, when it is all here and none of it was received; else None."""
        if self.body_done or not self.complete or self.broken:
            return None
        chunks = self.chunks
        body = chunks[0] if len(chunks) == 1 else b"".join(chunks)
        chunks.clear()
        self.conn.consumed(len(body))
        self.body_done = True
        return body

    def wake(self) -> None:
        waiter = self.waiter
        if waiter is not None:
            self.waiter = None
            waiter.set()

    async def receive(self) -> MutableMapping[str, Any]:
        conn = self.conn
        while True:
            if not self.body_done:
                if self.chunks:
                    chunks = self.chunks
                    body = chunks[0] if len(chunks) == 1 else b"".join(chunks)
                    chunks.clear()
                    conn.consumed(len(body))
                    self.body_done = self.complete
                    return {"type": "http.request", "body": body, "more_body": not self.complete}
                if self.complete:
                    self.body_done = True
                    return {"type": "http.request", "body": b"", "more_body": False}
                if self.broken or conn.gone:
                    return DISCONNECT
                if self.head.expect_continue and not self.continue_sent and not self.started:
                    self.continue_sent = True
                    await conn.write(CONTINUE)
                    continue
            elif self.responded or conn.gone:
                return DISCONNECT
            waiter = self.waiter
            if waiter is None:
                waiter = self.waiter = trio.Event()
            await waiter.wait()

    async def send(self, message: MutableMapping[str, Any]) -> None:
        kind = message["type"]
        if kind == "http.response.start":
            if self.started:
                raise RuntimeError("the response has already started")
            self.started = True
            self.status = message["status"]
            self.headers = message.get("headers") or []
            return
        if kind != "http.response.body" or not self.started or self.responded:
            raise RuntimeError(f"unexpected ASGI message {kind!r} at this point")
        body = message.get("body", b"")
        more = message.get("more_body", False)
        data = b""
        framing = self.framing
        if framing is None:
            data, framing = self._head(None if more else body)
            self.framing = framing
        data += framing.frame(body, more)
        if not more:
            self.responded = True
        if data:
            await self.conn.write(data)
        if not more:
            self.wake()  # `http.disconnect` for whoever still listens

    def head_only(self) -> tuple[bytes, Framing]:
        """The head of a response the app ended without a body message; the connection
        closes after it (the body is missing)."""
        data, framing = self._head(None)
        framing.close = True
        return data, framing

    def _head(self, whole: bytes | None) -> tuple[bytes, Framing]:
        conn, head = self.conn, self.head
        return head_bytes(
            self.status,
            self.headers,
            head.method,
            head.version,
            head.keep_alive and not conn.closing and not self.last,  # keep_alive
            whole,
            conn.date.line(),
        )
