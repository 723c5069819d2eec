"""A streamed reply goes to the server in as few messages as waiting allows (`run._reply`):
what the upstream already holds is not sent part by part but with the terminator, and the
record follows the last part. Each test runs the real server
in-process and calls its request handler with a recording ASGI `send`: each message there is
one write of our server (`services/http_request.Request.send`: the head waits for the first
body part, and a final part is framed with the terminator)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, MutableMapping
from contextlib import asynccontextmanager
from functools import partial
from pathlib import Path
from typing import Any

import orjson
import trio
import trio.testing
from tests.support.proxy import Proxy, start_proxy

from tokenomics.pipeline.run import CLIENT_GONE, WHOLE_BODY

Message = MutableMapping[str, Any]
HANG_GUARD = 20  # seconds: a broken ordering deadlocks the scripted upstream, never a timing


def event(payload: dict[str, Any] | str) -> bytes:
    data = payload if isinstance(payload, str) else orjson.dumps(payload).decode()
    return f"data: {data}\n\n".encode()


def delta(word: str) -> bytes:
    return event(
        {"id": "c1", "model": "gpt-4o", "choices": [{"index": 0, "delta": {"content": word}}]}
    )


USAGE = event(
    {
        "id": "c1",
        "model": "gpt-4o",
        "choices": [],
        "usage": {"prompt_tokens": 3, "completion_tokens": 2},
    }
)
DONE = event("[DONE]")
SSE_HEAD = b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\n"
CHUNKED_HEAD = SSE_HEAD + b"transfer-encoding: chunked\r\n\r\n"


def chunk(data: bytes) -> bytes:
    return b"%x\r\n%s\r\n" % (len(data), data)


class Recorder:
    """The ASGI `send` of one request: its messages, and events a scripted upstream waits on
    (`when(predicate)`: set once a body message matching it was sent)."""

    def __init__(
        self,
        proxy: Proxy,
        on_start: Callable[[], None] | None = None,
        on_last: Callable[[], None] | None = None,
    ) -> None:
        self.proxy = proxy
        self.messages: list[Message] = []
        self.recorded_at_last: int | None = None  # requests recorded when the last part came
        self.token = ""  # the request's token (`serve`)
        self.spent_at_last = -1  # the tokens its budget counted settled when the last part came
        self._waits: list[tuple[Callable[[Message], bool], trio.Event]] = []
        self._on_start = on_start
        self._on_last = on_last  # called as the last part is handed over, before its write

    def when(self, predicate: Callable[[Message], bool]) -> trio.Event:
        done = trio.Event()
        self._waits.append((predicate, done))
        return done

    async def send(self, message: Message) -> None:
        last = message["type"] == "http.response.body" and not message.get("more_body", False)
        if last and self._on_last is not None:
            self._on_last()
        await trio.lowlevel.checkpoint()  # as a write does: a cancelled request ends here
        self.messages.append(message)
        if message["type"] == "http.response.start" and self._on_start is not None:
            self._on_start()
        if message["type"] == "http.response.body" and not message.get("more_body", False):
            self.recorded_at_last = self.proxy.server.stats.totals.request_count
            budgets = self.proxy.server.deps.budgets
            self.spent_at_last = budgets.settled(self.proxy.key.hash(self.token)).tokens
        for predicate, done in self._waits:
            if message["type"] == "http.response.body" and predicate(message):
                done.set()

    def parts(self) -> list[tuple[bytes, bool]]:
        """The body messages: (body, more_body)."""
        return [
            (m.get("body", b""), m.get("more_body", False))
            for m in self.messages
            if m["type"] == "http.response.body"
        ]


def request_scope(token: str, body: bytes, when_gone: Callable[[Any], None]) -> dict[str, Any]:
    headers = [
        (b"host", b"proxy.test"),
        (b"authorization", f"Bearer {token}".encode()),
        (b"content-type", b"application/json"),
        (b"content-length", str(len(body)).encode()),
    ]
    return {
        "type": "http", "http_version": "1.1", "method": "POST", "scheme": "http",
        "path": "/v1/chat/completions", "raw_path": b"/v1/chat/completions",
        "query_string": b"", "headers": headers, "client": ("127.0.0.1", 40000),
        "extensions": {CLIENT_GONE: when_gone, WHOLE_BODY: lambda: body},
    }  # fmt: skip


async def serve(
    proxy: Proxy, token: str, recorder: Recorder, stream: bool = True
) -> list[Callable[[], bool]]:
    """One chat request (streamed unless told) through the server's handler; returns its
    client-gone callbacks (our server's extension: the request is cancelled when one returns
    True)."""
    body = orjson.dumps(
        {"model": "gpt-4o", "stream": stream, "messages": [{"role": "user", "content": "hi"}]}
    )
    gone: list[Callable[[], bool]] = []
    recorder.token = token

    async def receive() -> Message:
        await trio.sleep_forever()
        raise AssertionError("unreachable")

    app = proxy.server.app
    assert app is not None
    with trio.fail_after(HANG_GUARD):
        await app.requests.serve(request_scope(token, body, gone.append), receive, recorder.send)
    return gone


async def read_request(stream: trio.SocketStream) -> None:
    """The proxy's request to the upstream, head and body (its Content-Length)."""
    data = b""
    while b"\r\n\r\n" not in data:
        data += await stream.receive_some()
    head, _, rest = data.partition(b"\r\n\r\n")
    length = next(
        int(line.split(b":", 1)[1])
        for line in head.lower().split(b"\r\n")
        if line.startswith(b"content-length:")
    )
    while len(rest) < length:
        rest += await stream.receive_some()


@asynccontextmanager
async def upstream(
    proxy: Proxy, script: Callable[[trio.SocketStream], Any], **policy: Any
) -> AsyncIterator[str]:
    """A raw upstream playing `script` after reading the request; yields a token to it (its
    policy with `policy`'s keys added)."""

    async def handle(stream: trio.SocketStream) -> None:
        await read_request(stream)
        await script(stream)
        await trio.sleep_forever()  # keep-alive: the proxy decides when it is done

    async with trio.open_nursery() as nursery:
        [listener] = await nursery.start(partial(trio.serve_tcp, handle, 0, host="127.0.0.1"))
        port = listener.socket.getsockname()[1]
        url = f"http://127.0.0.1:{port}"
        yield proxy.token({"base_key_env": "OPENAI_KEY", "upstream_url": url, **policy})
        nursery.cancel_scope.cancel()


def recorded_after_the_end(recorder: Recorder) -> None:
    """Settled (its usage counted) but not recorded yet when the last part went out; recorded
    once when the handler returned."""
    assert recorder.spent_at_last > 0
    assert recorder.recorded_at_last == 0
    assert recorder.proxy.server.stats.totals.request_count == 1


def payloads(parts: list[tuple[bytes, bool]]) -> bytes:
    return b"".join(body for body, _ in parts)


async def test_a_whole_chunked_upstream_reply_goes_out_with_its_head_in_one_part_then_the_end(
    tmp_path: Path,
) -> None:
    """Head, events and terminator in one upstream write: the head goes with all the blocks
    and the end in one body message (no empty part to flush it, no part per block), then
    the record."""
    whole = CHUNKED_HEAD + chunk(delta("a") + delta("b")) + chunk(USAGE + DONE) + b"0\r\n\r\n"

    async def script(stream: trio.SocketStream) -> None:
        await stream.send_all(whole)

    async with start_proxy(tmp_path) as proxy, upstream(proxy, script) as token:
        recorder = Recorder(proxy)
        await serve(proxy, token, recorder)
    assert recorder.messages[0]["type"] == "http.response.start"
    stripped = delta("a") + delta("b") + DONE  # the usage-only chunk the proxy asked for: gone
    assert recorder.parts() == [(stripped, False)]
    recorded_after_the_end(recorder)


async def test_a_whole_content_length_upstream_reply_is_one_part(
    tmp_path: Path,
) -> None:
    """The benchmark's upstream (nginx): head and body, framed by Content-Length, in one read."""
    body = delta("a") + USAGE + DONE
    head = SSE_HEAD + b"content-length: %d\r\n\r\n" % len(body)

    async def script(stream: trio.SocketStream) -> None:
        await stream.send_all(head + body)

    async with start_proxy(tmp_path) as proxy, upstream(proxy, script) as token:
        recorder = Recorder(proxy)
        await serve(proxy, token, recorder)
    assert recorder.parts() == [(delta("a") + DONE, False)]
    recorded_after_the_end(recorder)


async def test_the_in_process_mock_stream_is_one_part(tmp_path: Path) -> None:
    """The built-in mock sends its unpaced events at once: they go out together too."""
    async with start_proxy(tmp_path) as proxy:
        recorder = Recorder(proxy)
        await serve(proxy, proxy.token({"base_key_env": "OPENAI_KEY"}), recorder)
    [(body, more)] = recorder.parts()  # role, "Mock reply to: hi", finish, [DONE]
    assert not more and body.endswith(DONE) and body.count(b"data: ") == 7
    recorded_after_the_end(recorder)


async def test_a_buffered_reply_is_one_part_its_exchange_settled_before_and_recorded_after(
    tmp_path: Path,
) -> None:
    async with start_proxy(tmp_path) as proxy:
        recorder = Recorder(proxy)
        await serve(proxy, proxy.token({"base_key_env": "OPENAI_KEY"}), recorder, stream=False)
    [(body, more)] = recorder.parts()
    assert not more and orjson.loads(body)["choices"][0]["message"]["content"]
    recorded_after_the_end(recorder)


async def test_a_trickling_stream_gets_its_head_alone_then_each_block_as_it_arrives(
    tmp_path: Path,
) -> None:
    """The upstream sends the head alone and each event only once the proxy relayed the one
    before (else this deadlocks): the head is flushed at once, each block sent as it comes,
    the last events, which came with the upstream's end, together with the end."""
    async with start_proxy(tmp_path) as proxy:
        recorder = Recorder(proxy)
        flushed = recorder.when(lambda m: m["body"] == b"" and m["more_body"])
        got_a = recorder.when(lambda m: m["body"] == delta("a"))
        got_b = recorder.when(lambda m: m["body"] == delta("b"))

        async def script(stream: trio.SocketStream) -> None:
            await stream.send_all(CHUNKED_HEAD)
            await flushed.wait()
            await stream.send_all(chunk(delta("a")))
            await got_a.wait()
            await stream.send_all(chunk(delta("b")))
            await got_b.wait()
            await stream.send_all(chunk(USAGE) + chunk(DONE) + b"0\r\n\r\n")

        async with upstream(proxy, script) as token:
            await serve(proxy, token, recorder)
    assert recorder.parts() == [
        (b"", True),
        (delta("a"), True),
        (delta("b"), True),
        (DONE, False),
    ]
    recorded_after_the_end(recorder)


async def test_a_head_with_its_first_event_goes_out_with_that_event(tmp_path: Path) -> None:
    """Body bytes came with the head: no empty part, the head goes with the first block;
    the last ones, which came with the upstream's end, go with the end."""
    async with start_proxy(tmp_path) as proxy:
        recorder = Recorder(proxy)
        got_a = recorder.when(lambda m: m["body"] == delta("a"))

        async def script(stream: trio.SocketStream) -> None:
            await stream.send_all(CHUNKED_HEAD + chunk(delta("a")))
            await got_a.wait()
            await stream.send_all(chunk(delta("b") + USAGE + DONE) + b"0\r\n\r\n")

        async with upstream(proxy, script) as token:
            await serve(proxy, token, recorder)
    assert recorder.parts() == [(delta("a"), True), (delta("b") + DONE, False)]
    recorded_after_the_end(recorder)


async def test_a_client_gone_while_a_whole_reply_is_held_is_still_recorded_once(
    tmp_path: Path,
) -> None:
    """The client leaves after the head was handed over while the blocks are held: the
    request is cancelled (as our server does), recorded once, as a client disconnect."""
    async with start_proxy(tmp_path) as proxy:
        cancel = trio.CancelScope()
        callbacks: list[Callable[[], bool]] = []

        def leave() -> None:
            [callback] = callbacks
            if callback():
                cancel.cancel()

        recorder = Recorder(proxy, on_start=leave)
        body = orjson.dumps(
            {"model": "gpt-4o", "stream": True, "messages": [{"role": "user", "content": "hi"}]}
        )
        token = proxy.token({"base_key_env": "OPENAI_KEY"})
        app = proxy.server.app
        assert app is not None

        async def receive() -> Message:
            await trio.sleep_forever()
            raise AssertionError("unreachable")

        with cancel, trio.fail_after(HANG_GUARD):
            scope = request_scope(token, body, callbacks.append)
            await app.requests.serve(scope, receive, recorder.send)
        assert cancel.cancelled_caught
        await trio.testing.wait_all_tasks_blocked()
        totals = proxy.server.stats.totals
        assert (totals.request_count, totals.error_count) == (1, 1)
    assert recorder.parts() == []  # nothing more went out


async def test_a_request_cancelled_during_its_last_send_is_still_recorded_once(
    tmp_path: Path,
) -> None:
    """A cancellation (a shutdown) while the reply's last part is being written: the exchange
    was settled before it, and is recorded once on the way out."""
    async with start_proxy(tmp_path) as proxy:
        cancel = trio.CancelScope()
        recorder = Recorder(proxy, on_last=cancel.cancel)
        token = proxy.token({"base_key_env": "OPENAI_KEY"})
        with cancel:
            await serve(proxy, token, recorder, stream=False)
        assert cancel.cancelled_caught
        assert proxy.server.stats.totals.request_count == 1
        assert proxy.server.deps.budgets.settled(proxy.key.hash(token)).tokens > 0
    assert recorder.parts() == []  # the last part never went out
