"""One client connection of the HTTP/1.1 server.

The connection's own task reads: it feeds bytes to the parser, which queues each request as
its head completes. A second task serves them one at a time, in order (pipelining), calling
the ASGI app: one serving task for the connection's life rather than one per request (a spawn
per request was ~3% of the proxy's CPU, py-spy). Reading goes on while a request is served, so
a client that leaves is noticed (`http.disconnect`, and the app's `when_gone` callback, which
may have the app's call cancelled: the serving task's one cancel scope, not one per request),
and stops while too many bytes wait unconsumed (the app reads a body at its own pace).
`idle_timeout` bounds the time with no request under way: idle between requests, or still
sending a request line and headers; a write that has not finished after `idle_timeout` ends
the connection (a client that stops reading). Both are found by the server's sweep
(`http_server.Listeners.sweep`, at least once a second, and when a connection is due), which
closes an idle connection, and the socket under a stalled write (the write then fails): a
cancel scope per write cost more than the rest of the write's Python code, and moving the
read's deadline twice per request cost more than a cancel scope.

After a response the connection closes when the request or the response said so, when the
request's body was not read to its end (its remaining bytes cannot be told from the next
request), when the response broke its own framing, or when the server is shutting down.
"""

from __future__ import annotations

import logging
import math
from collections import deque
from typing import TYPE_CHECKING, Any
from urllib.parse import unquote

import trio

from tokenomics.formats.classify import classify
from tokenomics.formats.errors import error_body
from tokenomics.services.http_parser import H2_PREFACE, BadRequest, Head, RequestParser
from tokenomics.services.http_request import CLIENT_GONE, WHOLE_BODY, Request
from tokenomics.services.http_response import DateHeader, head_bytes
from tokenomics.upstream.tcp import TCPStream

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable

    from tokenomics.domain.usage import Family

    App = Callable[..., Awaitable[None]]

log = logging.getLogger("tokenomics.server")
READ_SIZE = 64 * 1024
MAX_UNCONSUMED = 256 * 1024  # body bytes read but not yet received by the app
MAX_QUEUED = 16  # pipelined requests waiting behind the one being served
LINGER = 1.0  # seconds to read (and drop) what a client still sends after our close
ASGI = {"version": "3.0", "spec_version": "2.3"}
# HTTP/2 SETTINGS (empty) then GOAWAY(last stream 0, HTTP_1_1_REQUIRED): RFC 9113 §6.8, §7.
H2_REFUSAL = b"\0\0\0\x04\0\0\0\0\0" + b"\0\0\x08\x07\0\0\0\0\0" + b"\0\0\0\0\0\0\0\x0d"


class Limits:
    __slots__ = ("idle_timeout", "max_head")

    def __init__(self, *, idle_timeout: float, max_head: int) -> None:
        self.idle_timeout = idle_timeout
        self.max_head = max_head


class Connection:
    def __init__(
        self,
        stream: trio.abc.Stream,
        app: App,
        limits: Limits,
        date: DateHeader,
        *,
        scheme: str,
        client: tuple[str, int] | None,
        server: tuple[str, int] | None,
    ) -> None:
        self.stream = stream
        self.app = app
        self.limits = limits
        self.date = date
        self.scheme = scheme
        self.client = client
        self.server = server
        self.parser = RequestParser(self, max_head=limits.max_head)
        self.scope: dict[str, Any] = {  # each request's scope is a copy, its own keys filled
            "type": "http", "asgi": ASGI, "http_version": "", "method": "",
            "scheme": scheme, "path": "", "raw_path": b"",
            "query_string": b"", "root_path": "", "headers": [],
            "client": client, "server": server,
        }  # fmt: skip
        self.queue: deque[Request | BadRequest] = deque()
        self.current: Request | BadRequest | None = None
        self.reading: Request | None = None  # the request whose body is arriving
        self.unconsumed = 0
        self.gone = False  # the client closed, or a write failed
        self.closing = False  # no request is read or served after the current one
        self.linger = False  # close by sending EOF first, then reading what is left
        self.read_scope = trio.CancelScope()
        self.serve_scope = trio.CancelScope()  # cancelled for an app that asked (`when_gone`)
        self.resume: trio.Event | None = None
        self.parked: trio.lowlevel.Task | None = None  # the serving task, waiting for work
        self.reading_ended = False
        self.writing_since: float | None = None  # when the write under way began
        # trio.current_time(), read from the run's clock itself: one call where it makes three
        self.now = trio.lowlevel.current_clock().current_time
        self.idle_since: float | None = self.now()  # no request under way since
        self.stalled = False  # a write did not finish in time: the sweep closed the socket

    async def run(self) -> None:
        """Serve the connection's requests until it closes; the stream is closed after."""
        try:
            async with trio.open_nursery() as nursery:
                nursery.start_soon(self._serving)
                try:
                    with self.read_scope:
                        await self._read()
                finally:
                    self.reading_ended = True
                    self._wake()
            if self.linger and not self.gone:
                await self._linger()
        finally:
            with trio.CancelScope(shield=True), trio.move_on_after(LINGER):
                await self.stream.aclose()

    def shutdown(self) -> None:
        """Graceful stop: an idle connection closes now, a busy one after its response."""
        self.closing = True
        if self.current is None:
            self.read_scope.cancel()

    async def _read(self) -> None:
        first = True
        tcp = self.stream if isinstance(self.stream, TCPStream) else None
        waits = False  # the client sent whole requests only: it waits for their answers
        woken = False  # the last read waited for the socket: this task was just scheduled
        while not self.closing:
            if self.unconsumed > MAX_UNCONSUMED or len(self.queue) > MAX_QUEUED:
                self.resume = trio.Event()
                await self.resume.wait()
                waits = woken = False
                continue
            data: bytes | bytearray | None
            try:
                if tcp is None:
                    data = await self.stream.receive_some(READ_SIZE)
                elif waits:  # nothing there yet: wait, then read
                    data, woken = await tcp.receive_when_ready(READ_SIZE), True
                elif woken:  # the rest of a request (its body) sent apart: already here?
                    data, woken = tcp.receive_now(READ_SIZE), False
                    if data is None:
                        data, woken = await tcp.receive_when_ready(READ_SIZE), True
                else:
                    data = await tcp.receive_some(READ_SIZE)
            except (trio.BrokenResourceError, trio.ClosedResourceError):
                data = b""
            if not data:
                self._lost()
                return
            if first and data.startswith(H2_PREFACE[:14]):
                self._enqueue(BadRequest(0, "HTTP/2 preface"))
                return
            first = False
            try:
                if self.parser.feed(data) is not None:
                    return  # an upgrade was asked for: its request is the last one
                waits = self.parser.idle
            except BadRequest as refused:
                if self.reading is not None:  # its body was malformed
                    self.reading.broken = True
                    self.reading.wake()
                self._enqueue(refused)
                return

    async def _linger(self) -> None:
        """Send EOF and read what the client still sends, so that closing with unread bytes
        does not reset the connection before the client has read our response."""
        if not isinstance(self.stream, trio.abc.HalfCloseableStream):  # TLS: no EOF to send
            return
        with trio.move_on_after(LINGER):
            try:
                await self.stream.send_eof()
                while await self.stream.receive_some(READ_SIZE):
                    pass
            except (trio.BrokenResourceError, trio.ClosedResourceError):
                pass

    # Parser sink --------------------------------------------------------------------------

    def on_head(self, head: Head) -> None:
        path, _, query = head.target.partition(b"?")
        scope = self.scope.copy()  # a copy and six stores cost less than a dict of 13 keys
        scope["http_version"], scope["method"] = head.version, head.method
        scope["path"], scope["raw_path"] = _decoded(path), path
        scope["query_string"], scope["headers"] = query, head.headers
        request = self.reading = Request(self, head, scope)
        scope["extensions"] = {CLIENT_GONE: request.when_gone, WHOLE_BODY: request.whole_body}
        self.idle_since = None
        self._enqueue(request)

    def on_body(self, data: bytes) -> None:
        request = self.reading
        if request is not None and data:
            request.chunks.append(data)
            self.unconsumed += len(data)
            request.wake()

    def on_end(self) -> None:
        request = self.reading
        if request is not None:
            self.reading = None
            request.complete = True
            request.wake()

    # Serving ------------------------------------------------------------------------------

    def consumed(self, size: int) -> None:
        self.unconsumed -= size
        if self.resume is not None and self.unconsumed <= MAX_UNCONSUMED:
            self.resume.set()
            self.resume = None

    def _enqueue(self, item: Request | BadRequest) -> None:
        if self.current is None:
            self.current = item
            self._wake()
        else:
            self.queue.append(item)

    def _wake(self) -> None:
        task = self.parked
        if task is not None:
            self.parked = None
            trio.lowlevel.reschedule(task)

    async def _park(self) -> None:
        """Wait for `_wake` (trio's low-level parking: an Event per wait cost twice as much)."""
        self.parked = trio.lowlevel.current_task()
        await trio.lowlevel.wait_task_rescheduled(self._unpark)

    def _unpark(self, _: Any) -> trio.lowlevel.Abort:
        self.parked = None  # cancelled while parked
        return trio.lowlevel.Abort.SUCCEEDED

    async def _serving(self) -> None:
        """The connection's requests, one after another, until it closes. A cancellation of
        `serve_scope` (the app asked for it when its client left) ends it: the connection is
        gone."""
        with self.serve_scope:
            while True:
                item = self.current
                if item is None:
                    if self.closing or self.reading_ended:
                        return
                    await self._park()
                elif isinstance(item, Request):
                    await self._serve(item)
                else:
                    await self._refuse(item)
        self._done(False)  # the app's call was cancelled (its client left): nothing more

    async def _serve(self, request: Request) -> None:
        try:
            await self.app(request.scope, request.receive, request.send)
        except Exception:
            log.exception("error serving %s %s", request.head.method, request.scope["path"])
            if not request.started:
                await self._error(request, 500, "internal error")
        else:
            if not request.started:  # the app gave no response (a malformed body, or a bug)
                if request.broken:
                    await self._error(request, 400, "malformed request body")
                else:
                    await self._error(request, 500, "no response")
        if request.started and request.framing is None and not self.gone:  # head only
            data, request.framing = request.head_only()
            await self.write(data)
        keep = request.responded and request.complete and not request.last
        framing = request.framing
        self._done(keep and framing is not None and not framing.close and request.head.keep_alive)

    async def _error(self, request: Request, status: int, message: str) -> None:
        head = request.head
        body = error_body(_family(head.method, head.target, head.headers), status, message)
        request.started, request.status, request.last = True, status, True
        request.headers = [(b"content-type", b"application/json")]
        await request.send({"type": "http.response.body", "body": body})

    async def _refuse(self, refused: BadRequest) -> None:
        if refused.status == 0:  # HTTP/2 with prior knowledge
            await self.write(H2_REFUSAL)
        else:
            body = _error_body(refused)
            head, _ = head_bytes(
                refused.status, [(b"content-type", b"application/json")], method="GET",
                version="1.1", keep_alive=False, whole=body, date=self.date.line(),
            )  # fmt: skip
            await self.write(head + body)
        self._done(False)

    def _done(self, keep: bool) -> None:
        """The current request is answered: serve the next one, wait for it, or close."""
        current = self.current
        self.current = None
        if isinstance(current, Request):
            current.responded = True
            current.on_gone = None  # the app's callback (and what it holds) is let go now
            current.wake()
            if current.chunks:  # body bytes the app left unread
                self.consumed(sum(map(len, current.chunks)))
                current.chunks.clear()
        if not keep or self.closing or self.gone:
            self.closing = True
            self.linger = not self.gone
            self.queue.clear()
            self.read_scope.cancel()
            return
        if self.queue:
            self.current = self.queue.popleft()
        else:
            self.idle_since = self.now()
        if self.resume is not None and len(self.queue) <= MAX_QUEUED:
            self.resume.set()
            self.resume = None

    async def write(self, data: bytes) -> None:
        if self.gone:
            return
        self.writing_since = self.now()
        stream = self.stream
        try:
            if isinstance(stream, TCPStream):  # no scheduler trip: a wait follows every write
                await stream.send_now(data)  # (the next request, the next upstream read)
            else:
                await stream.send_all(data)
            return
        except (trio.BrokenResourceError, trio.ClosedResourceError):
            pass
        finally:
            self.writing_since = None
        self._lost()

    def close_if_idle(self, now: float) -> None:
        """End the connection when no request has been under way for `idle_timeout` (called
        by the server's sweep): idle since the last response, or still sending a head."""
        since = self.idle_since
        if since is not None and now >= since + self.limits.idle_timeout:
            self.idle_since = None  # closing: nothing more to time
            self.closing = True
            self.read_scope.cancel()

    async def drop_if_stalled(self, now: float) -> None:
        """Close the socket under a write that has not finished for `idle_timeout` (called by
        the server's sweep): the write fails, and the connection is lost."""
        since = self.writing_since
        if since is None or now < since + self.limits.idle_timeout or self.stalled:
            return
        self.stalled = True
        log.info("closing a connection whose client stopped reading")
        stream = self.stream
        transport = stream.transport_stream if isinstance(stream, trio.SSLStream) else stream
        await trio.aclose_forcefully(transport)

    def due(self) -> float:
        """When the sweep must look at this connection again: its idle time, or its write
        under way, reaches `idle_timeout` then (inf: neither)."""
        timeout, due = self.limits.idle_timeout, math.inf
        if self.idle_since is not None:
            due = self.idle_since + timeout
        if self.writing_since is not None and not self.stalled:
            due = min(due, self.writing_since + timeout)
        return due

    def _lost(self) -> None:
        self.gone = True
        for request in (self.current, self.reading, *self.queue):
            if isinstance(request, Request):
                request.wake()
                request.gone()
        if self.current is None:
            self.read_scope.cancel()


def _decoded(path: bytes) -> str:
    """The ASGI `path`: percent-decoded (most paths have nothing to decode)."""
    text = path.decode("latin-1")
    return unquote(text) if "%" in text else text


def _family(method: str, target: bytes, headers: list[tuple[bytes, bytes]]) -> Family:
    """The API family of the route a request was for, so its error reads like the others."""
    path = unquote(target.partition(b"?")[0].decode("latin-1"))
    named = {k.decode("latin-1"): v.decode("latin-1") for k, v in headers}
    return classify(method, path, named).family if method else "openai"


def _error_body(refused: BadRequest) -> bytes:
    family = _family(refused.method, refused.target, refused.headers)
    return error_body(family, refused.status, refused.reason)
