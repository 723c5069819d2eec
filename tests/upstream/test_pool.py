"""A pooled connection on its own: a server that answers before reading the whole request (a
413) is heard, and such a connection is never reused; a whole keep-alive exchange is."""

from __future__ import annotations

import trio

from tokenomics.upstream.pool import Connection

KEY = (b"http", b"upstream.test", 80)
ANSWER = b"HTTP/1.1 413 Payload Too Large\r\ncontent-length: 4\r\n\r\nbig!"


class FakeStream(trio.abc.Stream):
    """Replies with `answer`; fails writes when `refuse_writes` (the server closed early)."""

    def __init__(self, answer: bytes, refuse_writes: bool) -> None:
        self.answer, self.refuse_writes = answer, refuse_writes
        self.written = b""

    async def send_all(self, data: bytes | bytearray | memoryview) -> None:
        await trio.lowlevel.checkpoint()
        if self.refuse_writes:
            raise trio.BrokenResourceError("connection reset by peer")
        self.written += bytes(data)

    async def wait_send_all_might_not_block(self) -> None:
        await trio.lowlevel.checkpoint()

    async def receive_some(self, max_bytes: int | None = None) -> bytes:
        await trio.lowlevel.checkpoint()
        answer, self.answer = self.answer, b""
        return answer

    async def aclose(self) -> None:
        await trio.lowlevel.checkpoint()


async def exchange(refuse_writes: bool) -> tuple[Connection, int, bytes]:
    stream = FakeStream(ANSWER, refuse_writes)
    with trio.socket.socket() as sock:
        connection = Connection(stream, sock, KEY)
        head = await connection.request(b"POST / HTTP/1.1\r\n\r\n", b"x" * 100, "POST")
        assert connection.reader is not None
        return connection, head.status, connection.reader.body()


async def test_an_answer_to_a_request_the_server_stopped_reading_is_heard_not_reused() -> None:
    connection, status, body = await exchange(refuse_writes=True)
    assert (status, body) == (413, b"big!")
    assert not connection.reusable


async def test_a_whole_keep_alive_exchange_leaves_the_connection_reusable() -> None:
    connection, status, body = await exchange(refuse_writes=False)
    assert (status, body) == (413, b"big!")
    assert connection.reusable
