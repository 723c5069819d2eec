"""Slow streams: many concurrent SSE responses that trickle, to see the proxy's memory.

python bench/slow_streams.py upstream PORT INTERVAL SECONDS   an upstream whose every response
                                                             is a stream: one chunk per
                                                             INTERVAL s for SECONDS s, usage last
python bench/slow_streams.py client PORT TOKEN N             N streamed requests at once through
                                                             the proxy; prints completed/failed
"""

from __future__ import annotations

import json
import sys
from functools import partial
from typing import Any

import trio
from responses import MODEL, USAGE, request_body  # bench/ is on sys.path as a script

from tokenomics.services import http_server


def chunk(text: str) -> bytes:
    delta = {"content": text}
    choice = {"index": 0, "delta": delta, "finish_reason": None}
    body = {"id": "chatcmpl-slow", "object": "chat.completion.chunk", "created": 1700000000,
            "model": MODEL, "choices": [choice]}  # fmt: skip
    return b"data: " + json.dumps(body).encode() + b"\n\n"


def upstream_app(interval: float, seconds: float) -> Any:
    async def app(scope: Any, receive: Any, send: Any) -> None:
        while (await receive()).get("more_body"):
            pass
        headers = [(b"content-type", b"text/event-stream")]
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        for i in range(int(seconds / interval)):
            await send({"type": "http.response.body", "body": chunk(f" w{i}"), "more_body": True})
            await trio.sleep(interval)
        usage = {"id": "chatcmpl-slow", "object": "chat.completion.chunk", "created": 1700000000,
                 "model": MODEL, "choices": [], "usage": USAGE}  # fmt: skip
        tail = b"data: " + json.dumps(usage).encode() + b"\n\ndata: [DONE]\n\n"
        await send({"type": "http.response.body", "body": tail})

    return app


STREAM_TIMEOUT = 300  # seconds: a stream not done by then counts as failed


async def one(port: int, request: bytes, results: list[bool]) -> None:
    with trio.move_on_after(STREAM_TIMEOUT):
        await _one(port, request, results)
        return
    results.append(False)


async def _one(port: int, request: bytes, results: list[bool]) -> None:
    try:
        stream = await trio.open_tcp_stream("127.0.0.1", port)
        async with stream:
            await stream.send_all(request)
            received = b""
            while data := await stream.receive_some(65536):
                received = (received + data)[-64:]
                if received.endswith(b"0\r\n\r\n"):
                    break
        results.append(b"[DONE]" in received)
    except OSError:
        results.append(False)


async def client(port: int, token: str, count: int) -> None:
    body = request_body(True).encode()
    request = (
        b"POST /v1/chat/completions HTTP/1.1\r\nhost: bench\r\ncontent-type: application/json\r\n"
        b"authorization: Bearer %s\r\ncontent-length: %d\r\n\r\n%s"
        % (token.encode(), len(body), body)
    )
    results: list[bool] = []
    async with trio.open_nursery() as nursery:
        for _ in range(count):
            nursery.start_soon(one, port, request, results)
            await trio.sleep(0.002)  # a ramp, not a SYN flood
    print(f"{sum(results)}\t{len(results) - sum(results)}")


def upstream(port: int, interval: float, seconds: float) -> None:
    config = http_server.server_config(
        host="127.0.0.1", http_port=port, https_port=0, tls=None, grace=1
    )
    never = trio.Event()
    trio.run(partial(http_server.serve, upstream_app(interval, seconds), config,
                     shutdown_trigger=never.wait))  # fmt: skip


if __name__ == "__main__":
    match sys.argv[1:]:
        case ["upstream", port, interval, seconds]:
            upstream(int(port), float(interval), float(seconds))
        case ["client", port, token, count]:
            trio.run(client, int(port), token, int(count))
        case _:
            sys.exit(__doc__)
