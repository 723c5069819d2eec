"""An in-process mock upstream for end-to-end tests: `MockProvider` behind hypercorn on port 0.

    async with mock_upstream() as mock:
        ...  # point the proxy at mock.url; inspect mock.requests, mock.max_in_flight

On top of the provider's steering (see `tokenomics.upstream.mock`) the server handles:

    gzip-…                  buffered JSON replies are gzip-encoded (`content-encoding: gzip`)
    br-…                    buffered replies say `content-encoding: br` (the body unchanged)
    reflect-…               echoes the request like a careless proxy: its path and headers in
                            `x-echo-*` headers and in the body (a JSON object; streamed, an SSE
                            event sent one byte per chunk, before the stream's own events)
    close_after_headers-…   sends the status and headers, then drops the connection
    garbage-…               200 with a body that is not JSON

Every request except `/_requests` is recorded (`mock.requests`, and `GET /_requests` over HTTP;
`DELETE /_requests` clears). A client that goes away mid-reply is noticed: its record gets
`disconnected=True` and the server stops sending.
"""

from __future__ import annotations

import dataclasses
import gzip
from collections.abc import AsyncIterator, Awaitable, Callable, MutableMapping
from contextlib import asynccontextmanager
from dataclasses import dataclass
from functools import partial
from typing import Any

import orjson
import trio
from hypercorn.config import Config
from hypercorn.trio import serve

from tokenomics.upstream.mock import (
    JSON_TYPE,
    SSE_TYPE,
    MockProvider,
    MockReply,
    parse_steering,
    request_model,
)

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
GARBAGE = b"<html>this is not JSON {"


@dataclass(slots=True)
class RecordedRequest:
    method: str
    path: str  # with the query string, as sent
    headers: dict[str, str]  # lower-cased names
    body: bytes
    json: Any  # parsed body, or None
    time: float  # trio.current_time() at arrival
    disconnected: bool = False

    def to_json(self) -> dict[str, Any]:
        return {
            "method": self.method,
            "path": self.path,
            "headers": self.headers,
            "body": self.body.decode("utf-8", "replace"),
            "json": self.json,
            "time": self.time,
            "disconnected": self.disconnected,
        }


def _parse(body: bytes) -> Any:
    try:
        return orjson.loads(body)
    except orjson.JSONDecodeError:
        return None


class MockUpstream:
    """The ASGI app plus what the tests inspect."""

    def __init__(self, provider: MockProvider | None = None) -> None:
        self.provider = provider if provider is not None else MockProvider()
        self.url = ""
        self.requests: list[RecordedRequest] = []
        self.in_flight = 0
        self.max_in_flight = 0
        self._idle = trio.Event()
        self._idle.set()

    def clear(self) -> None:
        self.requests.clear()
        self.max_in_flight = self.in_flight

    async def wait_idle(self) -> None:
        """Return once no request is in flight (e.g. after the server noticed a disconnect)."""
        await self._idle.wait()

    async def serve(self, *, task_status: trio.TaskStatus[MockUpstream]) -> None:
        """Serve until cancelled; `task_status.started(self)` once `self.url` is known."""
        config = Config()
        config.bind = ["127.0.0.1:0"]
        config.keep_alive_timeout = 3600  # idle keep-alive must not expire under autojump
        config.graceful_timeout = 0
        config.loglevel = "WARNING"  # no "Running on …" line per test; app errors still show
        async with trio.open_nursery() as nursery:
            binds = await nursery.start(partial(serve, self, config, mode="asgi"))  # type: ignore[arg-type]
            self.url = binds[0]
            task_status.started(self)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await _lifespan(receive, send)
        elif scope["type"] == "http":
            await self._http(scope, receive, send)

    async def _http(self, scope: Scope, receive: Receive, send: Send) -> None:
        body = await _read_body(receive)
        if scope["path"] == "/_requests":
            await self._requests_endpoint(scope["method"], send)
            return
        query = scope["query_string"].decode("latin-1")
        raw_path = scope["raw_path"].decode("latin-1")
        headers: dict[str, str] = {}
        for name, value in scope["headers"]:
            key, text = name.decode("latin-1").lower(), value.decode("latin-1")
            headers[key] = f"{headers[key]}, {text}" if key in headers else text
        record = RecordedRequest(
            scope["method"], raw_path + (f"?{query}" if query else ""), headers, body,
            _parse(body), trio.current_time(),
        )  # fmt: skip
        self.requests.append(record)
        if not self.in_flight:
            self._idle = trio.Event()
        self.in_flight += 1
        self.max_in_flight = max(self.max_in_flight, self.in_flight)
        left = False

        def leave() -> None:  # before the last byte: a client that has it sees us idle
            nonlocal left
            if not left:
                left = True
                self.in_flight -= 1
                if not self.in_flight:
                    self._idle.set()

        try:
            reply = self.provider.respond(scope["method"], scope["path"], query, headers, body)
            flags = parse_steering(request_model(scope["path"], _as_dict(record.json))).flags
            if "reflect" in flags:
                reply = _reflected(reply, record)
            send_reply = partial(_send_reply, send, reply, flags, leave)
            await _watching(record, receive, send, send_reply)
        finally:
            leave()

    async def _requests_endpoint(self, method: str, send: Send) -> None:
        if method == "DELETE":
            self.clear()
            await _send_json(send, 200, {"cleared": True})
        elif method == "GET":
            await _send_json(send, 200, [r.to_json() for r in self.requests])
        else:
            await _send_json(send, 405, {"error": {"message": "use GET or DELETE"}})


def _reflected(reply: MockReply, record: RecordedRequest) -> MockReply:
    """`reply` with the request echoed in headers and body (see the module docstring)."""
    echo = orjson.dumps({"path": record.path, "headers": record.headers})
    headers = (
        *reply.headers, ("x-echo-path", record.path),
        *((f"x-echo-{name}", value) for name, value in record.headers.items()),
    )  # fmt: skip
    if dict(reply.headers).get("content-type") != SSE_TYPE:
        return dataclasses.replace(reply, headers=headers, chunks=(echo,))
    event = b"data: " + echo + b"\n\n"
    split = tuple(event[i : i + 1] for i in range(len(event)))
    return dataclasses.replace(reply, headers=headers, chunks=(*split, *reply.chunks))


def _as_dict(value: Any) -> dict[str, Any] | None:
    return value if isinstance(value, dict) else None


async def _lifespan(receive: Receive, send: Send) -> None:
    while True:
        message = await receive()
        if message["type"] == "lifespan.startup":
            await send({"type": "lifespan.startup.complete"})
        elif message["type"] == "lifespan.shutdown":
            await send({"type": "lifespan.shutdown.complete"})
            return


async def _read_body(receive: Receive) -> bytes:
    body = bytearray()
    while True:
        message = await receive()
        if message["type"] != "http.request":
            return bytes(body)
        body += message.get("body", b"")
        if not message.get("more_body", False):
            return bytes(body)


async def _send_json(send: Send, status: int, value: Any) -> None:
    body = orjson.dumps(value)
    headers = [(b"content-type", JSON_TYPE.encode()), (b"content-length", b"%d" % len(body))]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


async def _watching(
    record: RecordedRequest, receive: Receive, send: Send, reply: Callable[[], Awaitable[bool]]
) -> None:
    """Run `reply` while watching for the client going away; stop sending if it does.

    `reply` sends everything but the final empty body and says whether that is still due.
    hypercorn reports `http.disconnect` for every finished stream (during the final send), so
    only a disconnect seen before the final send is the client's doing.
    """
    finished = False

    async def watch(cancel_scope: trio.CancelScope) -> None:
        while (await receive())["type"] != "http.disconnect":
            pass
        if not finished:
            record.disconnected = True
            cancel_scope.cancel()

    async with trio.open_nursery() as nursery:
        nursery.start_soon(watch, nursery.cancel_scope)
        if await reply():
            finished = True
            await send({"type": "http.response.body", "body": b"", "more_body": False})
        nursery.cancel_scope.cancel()


async def _send_reply(
    send: Send, reply: MockReply, flags: frozenset[str], leave: Callable[[], None]
) -> bool:
    await trio.sleep(reply.first_byte_delay)
    headers = [(k.encode(), v.encode()) for k, v in reply.headers]
    chunks, status = ((GARBAGE,), 200) if "garbage" in flags else (reply.chunks, reply.status)
    buffered = len(chunks) == 1
    if buffered and "gzip" in flags and dict(reply.headers).get("content-type") == JSON_TYPE:
        chunks = (gzip.compress(chunks[0], mtime=0),)
        headers.append((b"content-encoding", b"gzip"))
    if buffered and "br" in flags:
        headers.append((b"content-encoding", b"br"))
    if buffered:
        headers.append((b"content-length", b"%d" % len(chunks[0])))
    await send({"type": "http.response.start", "status": status, "headers": headers})
    if "close_after_headers" in flags:
        return False  # returning without a body makes hypercorn drop the connection
    for index, chunk in enumerate(chunks):
        if index:
            await trio.sleep(reply.chunk_interval)
        if index == len(chunks) - 1:
            leave()
        await send({"type": "http.response.body", "body": chunk, "more_body": True})
    return True


@asynccontextmanager
async def mock_upstream(provider: MockProvider | None = None) -> AsyncIterator[MockUpstream]:
    """Start a mock upstream on a free loopback port; stop it on exit."""
    async with trio.open_nursery() as nursery:
        server = await nursery.start(MockUpstream(provider).serve)
        try:
            yield server
        finally:
            nursery.cancel_scope.cancel()
