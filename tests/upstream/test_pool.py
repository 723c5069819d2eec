"""A pooled connection on its own: a server that answers before reading the whole request (a
413) is heard, and such a connection is never reused; a whole keep-alive exchange is."""

from __future__ import annotations

import trio
from hypothesis import given, settings
from hypothesis import strategies as st

from tokenomics.upstream.http11 import encode_request
from tokenomics.upstream.pool import Connection, Destination

Headers = list[tuple[str, str]]

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


# The request's bytes: the fast path (one string, checked once) must write exactly what the
# checked path (`Destination.headers` + `encode_request`) writes, and refuse what it refuses.
_NAME = st.sampled_from(
    ["authorization", "content-type", "accept", "user-agent", "connection", "x-a", "X-B"]
)
_VALUE = st.text(alphabet=st.characters(max_codepoint=0x17F), max_size=12)
_URLS = ["http://upstream.test/v1/chat?x=1", "http://u:p@upstream.test:8080/v1", "https://a.b/"]


def _checked(destination: Destination, method: str, headers: Headers, body: bytes) -> bytes:
    head_headers = destination.headers(method, headers, body)
    return encode_request(method, destination.target, head_headers, b"") + body


@settings(max_examples=300, deadline=None)
@given(
    st.sampled_from(_URLS),
    st.sampled_from(["POST", "GET", "PUT", "DELETE", "G(T"]),
    st.lists(st.tuples(_NAME | st.sampled_from(["bad name", "x:y"]), _VALUE), max_size=5),
    st.binary(max_size=8),
)
def test_the_request_bytes_match_the_checked_encoding(
    url: str, method: str, headers: Headers, body: bytes
) -> None:
    destination = Destination.parse(url)
    for _ in range(2):  # the second time, names already accepted take the fast path
        try:
            expected: bytes | None = _checked(destination, method, headers, body)
        except ValueError:
            expected = None
        try:
            data, rest = destination.encode(method, headers, body)
        except ValueError:
            assert expected is None
            continue
        assert (data, rest) == (expected, b"")
