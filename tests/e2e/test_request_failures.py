"""A failure inside one request (here: its disconnect watcher raising) ends that request only.

The running server's own app is called the way its HTTP server calls it, with a `receive`
that hands over the body, then raises when the watcher asks for the client's next message.
The request must end without raising into the server, answered 500 in its API family when
nothing was sent yet, recorded once; and the server keeps serving over HTTP.
"""

from __future__ import annotations

import logging
from collections.abc import MutableMapping
from typing import Any

import orjson
import pytest
import trio
import trio.lowlevel
from tests.support.proxy import Proxy, settled

Message = MutableMapping[str, Any]
ANTHROPIC = {"base_key_env": "ANTHROPIC_KEY"}
OPENAI = {"base_key_env": "OPENAI_KEY"}


class WatcherBug(Exception):
    pass


class Client:
    """One request's side of the server: the body, then a bug on the watcher's `receive`
    (after `fail_after_sent` body parts reached the client); what the app sent."""

    def __init__(self, body: dict[str, Any], fail_after_sent: int = 0) -> None:
        self.body = orjson.dumps(body)
        self.sent: list[Message] = []
        self.fail_after_sent = fail_after_sent
        self.may_fail = trio.Event()
        if not fail_after_sent:  # at once: before the reply is ready
            self.may_fail.set()
        self.body_given = False

    async def receive(self) -> Message:
        if not self.body_given:
            self.body_given = True
            return {"type": "http.request", "body": self.body, "more_body": False}
        await self.may_fail.wait()
        raise WatcherBug("the watcher broke")

    async def send(self, message: Message) -> None:
        self.sent.append(message)
        parts = sum(1 for m in self.sent if m["type"] == "http.response.body" and m["body"])
        if parts >= self.fail_after_sent and not self.may_fail.is_set():
            self.may_fail.set()
            await trio.lowlevel.checkpoint()  # the watcher runs before the next part goes out

    def scope(self, path: str, token: str) -> dict[str, Any]:
        headers = [
            (b"x-api-key", token.encode()),
            (b"content-type", b"application/json"),
            (b"content-length", str(len(self.body)).encode()),
        ]
        return {
            "type": "http", "http_version": "1.1", "method": "POST", "path": path,
            "raw_path": path.encode(), "query_string": b"", "headers": headers,
            "client": ("127.0.0.1", 5000), "server": ("127.0.0.1", 8080), "scheme": "http",
        }  # fmt: skip


async def serve(proxy: Proxy, client: Client, path: str, token: str) -> None:
    """As the server calls its app for one request."""
    app = proxy.server.app
    assert app is not None
    await app(client.scope(path, token), client.receive, client.send)


async def test_a_request_whose_watcher_raises_gets_500_in_its_family_and_the_server_serves_on(
    proxy: Proxy, caplog: pytest.LogCaptureFixture
) -> None:
    token = proxy.token(ANTHROPIC)
    body = {
        "model": "claude-3-5-haiku",
        "max_tokens": 5,
        "messages": [{"role": "user", "content": "hi"}],
    }
    client = Client(body)
    with caplog.at_level(logging.ERROR, logger="tokenomics.server"):
        await serve(proxy, client, "/v1/messages", token)
    start, *parts = client.sent
    assert start["type"] == "http.response.start" and start["status"] == 500
    error = orjson.loads(b"".join(p["body"] for p in parts))
    assert error["type"] == "error" and error["error"]["type"] == "api_error"
    assert "request req_" in caplog.text and "WatcherBug" in caplog.text
    await settled(proxy)
    totals = proxy.server.stats.snapshot()["totals"]
    assert totals["request_count"] == 1 and totals["error_count"] == 1
    async with proxy.client() as http:
        after = await http.post("/v1/messages", json=body, headers={"x-api-key": token})
    assert after.status_code == 200, after.text
    await settled(proxy)
    assert proxy.server.stats.snapshot()["totals"]["request_count"] == 2


async def test_a_watcher_failing_mid_stream_ends_that_stream_and_is_recorded_once(
    proxy: Proxy, caplog: pytest.LogCaptureFixture
) -> None:
    token = proxy.token(OPENAI)
    chat = {"model": "pace-20-gpt", "stream": True, "messages": [{"role": "user", "content": "hi"}]}
    client = Client(chat, fail_after_sent=1)
    with caplog.at_level(logging.ERROR, logger="tokenomics.server"):
        await serve(proxy, client, "/v1/chat/completions", token)
    starts = [m for m in client.sent if m["type"] == "http.response.start"]
    assert [m["status"] for m in starts] == [200]  # no second head after the stream began
    assert client.sent[-1].get("more_body") is True  # the stream was cut, not ended
    assert "WatcherBug" in caplog.text
    await settled(proxy)
    totals = proxy.server.stats.snapshot()["totals"]
    assert totals["request_count"] == 1 and totals["error_count"] == 1
    async with proxy.client() as http:
        after = await http.post(
            "/v1/chat/completions", json={**chat, "stream": False}, headers={"x-api-key": token}
        )
    assert after.status_code == 200, after.text
