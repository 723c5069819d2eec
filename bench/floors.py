"""The floors under the proxy: what its libraries cost without the pipeline (see bench/floors.sh).

python bench/floors.py trivial PORT             our HTTP/1.1 server, an ASGI app that
                                                answers the fixed completion itself
python bench/floors.py passthrough PORT URL     the same, forwarding every request to URL with
                                                tokenomics' upstream client (no pipeline)
python bench/floors.py client URL CONC SECONDS  the upstream client alone: req/s, CPU/request
"""

from __future__ import annotations

import signal
import sys
import time
from functools import partial
from typing import Any

import trio
from responses import completion  # bench/ is on sys.path when this file runs as a script

from tokenomics.services import http_server
from tokenomics.upstream.client import UpstreamRequest, Upstreams, read_all

BODY = (
    b'{"model":"gpt-4o-mini","messages":[{"role":"user","content":"Say hello to the benchmark."}]}'
)
HEADERS = [("content-type", "application/json"), ("accept-encoding", "identity")]


async def _lifespan(receive: Any, send: Any) -> None:
    while True:
        message = await receive()
        if message["type"] == "lifespan.startup":
            await send({"type": "lifespan.startup.complete"})
        elif message["type"] == "lifespan.shutdown":
            await send({"type": "lifespan.shutdown.complete"})
            return


async def _read(receive: Any) -> bytes:
    parts = []
    while True:
        message = await receive()
        parts.append(message.get("body", b""))
        if not message.get("more_body"):
            return b"".join(parts)


async def _reply(send: Any, status: int, body: bytes) -> None:
    headers = [(b"content-type", b"application/json"), (b"content-length", b"%d" % len(body))]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


def trivial_app() -> Any:
    answer = completion().encode()

    async def app(scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] == "lifespan":
            await _lifespan(receive, send)
        elif scope["type"] == "http":
            await _read(receive)
            await _reply(send, 200, answer)

    return app


def passthrough_app(url: str) -> Any:
    upstreams = Upstreams()

    async def app(scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] == "lifespan":
            await _lifespan(receive, send)
        elif scope["type"] == "http":
            request = UpstreamRequest("POST", url, HEADERS, await _read(receive))
            response = await upstreams.open(request, headers_timeout=30)
            try:
                body = await read_all(response, 1 << 25, 30)
            finally:
                await response.aclose()
            await _reply(send, response.status, body)

    return app


def serve(app: Any, port: str) -> None:
    config = http_server.server_config(
        host="127.0.0.1", http_port=int(port), https_port=0, tls=None, grace=1
    )

    async def terminated() -> None:
        with trio.open_signal_receiver(signal.SIGTERM, signal.SIGINT) as signals:
            async for _ in signals:
                return

    trio.run(partial(http_server.serve, app, config, shutdown_trigger=terminated))


async def client(url: str, concurrency: int, seconds: float) -> None:
    upstreams = Upstreams()

    async def one() -> None:
        response = await upstreams.open(
            UpstreamRequest("POST", url, HEADERS, BODY), headers_timeout=30
        )
        try:
            await read_all(response, 1 << 25, 30)
        finally:
            await response.aclose()

    for _ in range(50):
        await one()
    count = 0
    started, cpu = time.monotonic(), time.process_time()

    async def worker() -> None:
        nonlocal count
        while time.monotonic() < started + seconds:
            await one()
            count += 1

    async with trio.open_nursery() as nursery:
        for _ in range(concurrency):
            nursery.start_soon(worker)
    elapsed, used = time.monotonic() - started, time.process_time() - cpu
    print(f"{count / elapsed:.0f}\t{used / count * 1000:.3f}")


if __name__ == "__main__":
    match sys.argv[1:]:
        case ["trivial", port]:
            serve(trivial_app(), port)
        case ["passthrough", port, url]:
            serve(passthrough_app(url), port)
        case ["client", url, concurrency, seconds]:
            trio.run(client, url, int(concurrency), float(seconds))
        case _:
            sys.exit(__doc__)
