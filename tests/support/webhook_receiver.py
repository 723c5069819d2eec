"""A real in-process webhook receiver on port 0 (trio + h11) for the event tests.

    async with webhook_receiver(signing_key="k") as receiver:
        ...  # point a webhook at receiver.url; inspect receiver.received / receiver.ids

Each POST is recorded with its headers and raw body; the signature is checked with `hmac`
against `signing_key` (`signature_ok`). `script(number, request)` decides each answer:
`(status, headers, delay_seconds)`; the default is 200. `down()` / `up()` close and reopen
the listener on the same port (a receiver that is unreachable for a while).
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

import h11
import orjson
import trio

Answer = tuple[int, list[tuple[str, str]], float]


@dataclass
class Received:
    headers: dict[str, str]
    body: bytes
    time: float
    signature_ok: bool

    @property
    def event(self) -> dict[str, Any]:
        parsed = orjson.loads(self.body)
        assert isinstance(parsed, dict)
        return parsed


@dataclass
class Receiver:
    signing_key: str
    script: Callable[[int, Received], Answer]
    port: int = 0
    received: list[Received] = field(default_factory=list)
    keep: bool = True  # record what arrives (False: only count, for bursts)
    attempts: int = 0
    attempt_times: list[float] = field(default_factory=list)
    in_flight: int = 0
    max_in_flight: int = 0
    arrived: trio.Event = field(default_factory=trio.Event)
    _scope: trio.CancelScope | None = None
    _stopped: trio.Event = field(default_factory=trio.Event)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/hook"

    @property
    def ids(self) -> list[str]:
        """Event ids of the deliveries answered 2xx, in arrival order."""
        return [r.headers["x-event-id"] for r in self.received]

    async def wait_for(self, count: int) -> None:
        while len(self.received) < count:
            await self.arrived.wait()
            self.arrived = trio.Event()

    def _record(self, request: h11.Request, body: bytes) -> Received:
        headers = {k.decode().lower(): v.decode() for k, v in request.headers}
        expected = "sha256=" + hmac.new(self.signing_key.encode(), body, hashlib.sha256).hexdigest()
        ok = hmac.compare_digest(expected, headers.get("x-webhook-signature", ""))
        return Received(headers, body, trio.current_time(), ok)

    async def handle(self, stream: trio.SocketStream) -> None:
        conn = h11.Connection(h11.SERVER)
        try:
            while True:
                request, body = await _read_request(conn, stream)
                if request is None:
                    return
                self.attempts += 1
                if self.keep:
                    self.attempt_times.append(trio.current_time())
                seen = self._record(request, body)
                status, headers, delay = self.script(self.attempts, seen)
                self.in_flight += 1
                self.max_in_flight = max(self.max_in_flight, self.in_flight)
                try:
                    await trio.sleep(delay)
                finally:
                    self.in_flight -= 1
                if 200 <= status < 300 and self.keep:
                    self.received.append(seen)
                    self.arrived.set()
                reply = h11.Response(
                    status_code=status, headers=[*headers, ("content-length", "2")]
                )
                await stream.send_all(conn.send(reply) + conn.send(h11.Data(data=b"ok")))
                await stream.send_all(conn.send(h11.EndOfMessage()))
                if conn.our_state is h11.MUST_CLOSE:
                    return
                conn.start_next_cycle()
        except (trio.BrokenResourceError, trio.ClosedResourceError, h11.ProtocolError):
            return
        finally:
            await trio.aclose_forcefully(stream)

    async def up(self, nursery: trio.Nursery) -> None:
        listeners = await nursery.start(self._serve)
        self.port = listeners[0].socket.getsockname()[1]

    async def _serve(self, task_status: trio.TaskStatus[Any]) -> None:
        self._stopped = trio.Event()
        try:
            with trio.CancelScope() as self._scope:
                await trio.serve_tcp(self.handle, self.port, host="127.0.0.1",
                                     task_status=task_status)  # fmt: skip
        finally:
            self._stopped.set()

    async def down(self) -> None:
        """Stop listening and drop open connections (connections are refused until `up`)."""
        assert self._scope is not None
        self._scope.cancel()
        await self._stopped.wait()


async def _read_request(
    conn: h11.Connection, stream: trio.SocketStream
) -> tuple[h11.Request | None, bytes]:
    request: h11.Request | None = None
    body = b""
    while True:
        event = conn.next_event()
        if event is h11.NEED_DATA:
            data = await stream.receive_some(65536)
            if not data:
                return None, b""
            conn.receive_data(data)
        elif isinstance(event, h11.Request):
            request = event
        elif isinstance(event, h11.Data):
            body += event.data
        elif isinstance(event, h11.EndOfMessage):
            return request, body
        else:
            return None, b""


def always_ok(number: int, request: Received) -> Answer:
    return 200, [], 0.0


@asynccontextmanager
async def webhook_receiver(
    signing_key: str = "signing-key", script: Callable[[int, Received], Answer] = always_ok
) -> AsyncIterator[Receiver]:
    receiver = Receiver(signing_key, script)
    async with trio.open_nursery() as nursery:
        await receiver.up(nursery)
        yield receiver
        nursery.cancel_scope.cancel()
