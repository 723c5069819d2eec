"""Raw HTTP/1.1 against the real server, for what an SDK will not send: a head without its
body, a body one byte at a time, conflicting framings. `limited` is the server with small
limits (`LIMITS`, `start_limited`)."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from contextlib import AbstractAsyncContextManager, asynccontextmanager, suppress
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import trio
from tests.support.proxy import Proxy, start_proxy

OPENAI = {"base_key_env": "OPENAI_KEY"}
LIMITS = "server:\n  body_timeout: 30\n  idle_timeout: 20\n  max_buffered_mb: 1\n"
ROUTES = [
    ("/v1/chat/completions", "openai"),
    ("/v1/messages", "anthropic"),
    ("/v1beta/models/gemini-2.5-flash:generateContent", "gemini"),
]


def start_limited(root: Path, upstream: str) -> AbstractAsyncContextManager[Proxy]:
    """The real server with small limits (`LIMITS`)."""
    return start_proxy(root, upstream, config=LIMITS)


@dataclass
class Answer:
    status: int
    headers: dict[str, str]
    body: Any


def error_message(answer: Answer, family: str) -> str:
    """The message of a proxy error, checking the family's shape (D8)."""
    error = answer.body["error"]
    if family == "anthropic":
        assert answer.body["type"] == "error" and set(error) == {"type", "message"}
    elif family == "gemini":
        assert set(error) == {"code", "message", "status"} and error["code"] == answer.status
    else:
        assert (error["type"], error["code"]) == ("tokenomics_error", answer.status)
    return str(error["message"])


@asynccontextmanager
async def connection(proxy: Proxy) -> AsyncIterator[trio.SocketStream]:
    port = int(proxy.url.rsplit(":", 1)[1])
    stream = await trio.open_tcp_stream("127.0.0.1", port)
    try:
        yield stream
    finally:
        await stream.aclose()


def head(path: str, token: str, **headers: str) -> bytes:
    lines = [f"POST {path} HTTP/1.1", "host: proxy", "content-type: application/json"]
    if token:
        lines.append(f"x-api-key: {token}")
    lines += [f"{name.replace('_', '-')}: {value}" for name, value in headers.items()]
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


async def answer(stream: trio.SocketStream) -> Answer:
    """One response with a sized body."""
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = await stream.receive_some()
        assert chunk, f"closed after {data!r}"
        data += chunk
    top, body = data.split(b"\r\n\r\n", 1)
    lines = top.decode("latin-1").split("\r\n")
    headers = {k.strip().lower(): v.strip() for k, v in (line.split(":", 1) for line in lines[1:])}
    while len(body) < int(headers.get("content-length", "0")):
        body += await stream.receive_some()
    return Answer(int(lines[0].split()[1]), headers, json.loads(body) if body else None)


async def closes(stream: trio.SocketStream) -> None:
    """The server ends the connection (a reset counts: it had unread bytes)."""
    with suppress(trio.BrokenResourceError):
        assert await stream.receive_some() == b""
