"""An in-process OTLP/HTTP receiver for the export tests: hypercorn on a free loopback port,
accepting `POST /v1/traces` with a JSON `ExportTraceServiceRequest`.

    async with otlp_receiver() as receiver:
        ...  # export to receiver.url; receiver.spans(), receiver.requests
        receiver.fail_with = [503, 503]  # the next answers (then 200)
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from functools import partial
from typing import Any

import orjson
import trio
from hypercorn.config import Config
from hypercorn.trio import serve
from tests.support.mock_upstream import Receive, Scope, Send, _lifespan, _read_body


@dataclass
class Export:
    path: str
    headers: dict[str, str]
    body: Any


@dataclass
class OtlpReceiver:
    url: str = ""
    requests: list[Export] = field(default_factory=list)
    fail_with: list[int] = field(default_factory=list)  # statuses of the next answers
    hang: bool = False  # read each export, never answer it
    _arrived: trio.Event = field(default_factory=trio.Event)  # replaced after each export

    def spans(self) -> list[dict[str, Any]]:
        return [
            span
            for export in self.requests
            for resource in export.body["resourceSpans"]
            for scope in resource["scopeSpans"]
            for span in scope["spans"]
        ]

    async def wait_for_spans(self, count: int) -> list[dict[str, Any]]:
        while len(self.spans()) < count:
            await self._arrived.wait()
        return self.spans()

    async def serve(self, *, task_status: trio.TaskStatus[OtlpReceiver]) -> None:
        config = Config()
        config.bind = ["127.0.0.1:0"]
        config.keep_alive_timeout = 3600
        config.graceful_timeout = 0
        config.loglevel = "WARNING"
        async with trio.open_nursery() as nursery:
            binds = await nursery.start(partial(serve, self, config, mode="asgi"))  # type: ignore[arg-type]
            self.url = binds[0]
            task_status.started(self)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await _lifespan(receive, send)
            return
        body = await _read_body(receive)
        if self.hang:
            await trio.sleep_forever()
        headers = {k.decode().lower(): v.decode() for k, v in scope["headers"]}
        status = self.fail_with.pop(0) if self.fail_with else 200
        if status == 200:
            assert headers["content-type"] == "application/json"
            self.requests.append(Export(scope["path"], headers, orjson.loads(body)))
            self._arrived.set()
            self._arrived = trio.Event()
        await send({
            "type": "http.response.start", "status": status,
            "headers": [(b"content-type", b"application/json")],
        })  # fmt: skip
        await send({"type": "http.response.body", "body": b"{}" if status == 200 else b""})


def attributes(items: list[dict[str, Any]]) -> dict[str, Any]:
    """`KeyValue`s of the JSON encoding as a plain dict."""
    out: dict[str, Any] = {}
    for item in items:
        ((kind, value),) = item["value"].items()
        if kind == "intValue":
            value = int(value)
        elif kind == "arrayValue":
            value = [next(iter(v.values())) for v in value["values"]]
        out[item["key"]] = value
    return out


@asynccontextmanager
async def otlp_receiver() -> AsyncIterator[OtlpReceiver]:
    async with trio.open_nursery() as nursery:
        receiver = await nursery.start(OtlpReceiver().serve)
        try:
            yield receiver
        finally:
            nursery.cancel_scope.cancel()
