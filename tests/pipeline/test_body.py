"""`Bodies`: whatever a client sends, a read ends with the whole body or one error, and the
count of body bytes held in memory never leaks (it is what the successful reads hold)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

import pytest
import trio
import trio.testing
from hypothesis import given
from hypothesis import strategies as st

from tokenomics.domain.errors import ProxyError
from tokenomics.pipeline.body import MIB, Bodies, ClientGone, close_after

Message = MutableMapping[str, Any]


def messages(chunks: list[bytes], end: str = "complete") -> Callable[[], Awaitable[Message]]:
    """An ASGI `receive` giving `chunks`, then the end: the last has `more_body` false
    ("complete"), or the client disconnects ("disconnect"), or nothing more comes ("stall")."""
    queue: list[Message] = [
        {"type": "http.request", "body": c, "more_body": i < len(chunks) - 1 or end != "complete"}
        for i, c in enumerate(chunks)
    ]

    async def receive() -> Message:
        if queue:
            await trio.lowlevel.checkpoint()
            return queue.pop(0)
        if end == "disconnect":
            return {"type": "http.disconnect"}
        await trio.sleep_forever()
        raise AssertionError("unreachable")

    return receive


def bodies(max_buffered_mb: int = 1) -> Bodies:
    return Bodies(max_request_mb=1, max_buffered_mb=max_buffered_mb, timeout=60)


chunk_lists = st.lists(st.integers(0, 300 * 1024), max_size=6).map(
    lambda sizes: [b"x" * n for n in sizes] or [b""]
)


async def never_received() -> Message:
    raise AssertionError("the body was received, not taken whole")


@given(
    chunks=chunk_lists,
    declare=st.booleans(),
    already_held=st.integers(0, MIB),
    arrived=st.booleans(),
)
def test_a_read_holds_exactly_its_body_or_nothing(
    chunks: list[bytes], declare: bool, already_held: int, arrived: bool
) -> None:
    """Received part by part, or taken whole from the server (`arrived`): the same outcome."""
    reader = bodies()
    reader.held = already_held
    total = sum(map(len, chunks))
    headers = {"content-length": str(total)} if declare else {"transfer-encoding": "chunked"}

    def whole() -> bytes:
        return b"".join(chunks)

    async def main() -> None:
        try:
            if arrived:
                body = await reader.read(never_received, headers, whole)
            else:
                body = await reader.read(messages(chunks), headers, lambda: None)
        except ProxyError as error:
            assert reader.held == already_held
            if total > MIB:
                assert error.status in (413, 503)
            else:
                assert error.status == 503 and already_held + total > MIB
                assert error.retry_after == 1.0
        else:
            assert body == b"".join(chunks)
            assert reader.held == already_held + total <= MIB

    trio.run(main)


async def test_a_declared_length_over_the_limit_is_413_before_a_byte_is_read() -> None:
    reader = bodies()

    async def receive() -> Message:
        raise AssertionError("the body was read")

    with pytest.raises(ProxyError) as refused:
        await reader.read(receive, {"content-length": str(MIB + 1)})
    assert refused.value.status == 413 and reader.held == 0


async def test_a_client_gone_mid_body_leaves_nothing_held() -> None:
    reader = bodies()
    with pytest.raises(ClientGone):
        await reader.read(messages([b"a" * 1000], "disconnect"), {"content-length": "5000"})
    assert reader.held == 0


async def test_a_stalled_body_is_408_after_the_timeout_and_leaves_nothing_held(
    autojump_clock: trio.testing.MockClock,
) -> None:
    reader = bodies()
    started = trio.current_time()
    with pytest.raises(ProxyError) as timed_out:
        await reader.read(messages([b"a" * 10], "stall"), {"transfer-encoding": "chunked"})
    assert timed_out.value.status == 408
    assert timed_out.value.message == "request body not received within 60 s"
    assert trio.current_time() - started == 60
    assert reader.held == 0


@pytest.fixture
def autojump_clock() -> trio.testing.MockClock:
    return trio.testing.MockClock(autojump_threshold=0)


@pytest.mark.parametrize(
    ("headers", "closes"),
    [
        ({}, False),
        ({"content-length": "0"}, False),
        ({"content-length": "12"}, True),
        ({"transfer-encoding": "chunked"}, True),
        ({"content-length": "12", "transfer-encoding": "chunked"}, True),
    ],
)
def test_an_early_reply_closes_the_connection_only_when_a_body_stays_unread(
    headers: dict[str, str], closes: bool
) -> None:
    assert close_after(headers) is closes


async def test_a_slow_upload_holds_the_bytes_it_sent_not_its_declared_length() -> None:
    """Two uploads declare 700 KiB each under a 1 MiB budget: the second is not refused for
    the first's promised bytes, only the bytes that arrived count (each sent byte is held)."""
    reader = bodies()
    first_sent, go_on = trio.Event(), trio.Event()
    held_while_stalled: list[int] = []
    declared = {"content-length": str(700 * 1024)}

    async def slow() -> Message:
        if not first_sent.is_set():
            first_sent.set()
            return {"type": "http.request", "body": b"a" * (100 * 1024), "more_body": True}
        held_while_stalled.append(reader.held)
        await go_on.wait()
        return {"type": "http.request", "body": b"a" * (600 * 1024), "more_body": False}

    async def slow_read() -> None:
        with pytest.raises(ProxyError) as busy:
            await reader.read(slow, declared, lambda: None)
        assert busy.value.status == 503

    async with trio.open_nursery() as nursery:
        nursery.start_soon(slow_read)
        await first_sent.wait()
        await trio.testing.wait_all_tasks_blocked()
        fast = await reader.read(messages([b"b" * (700 * 1024)]), declared, lambda: None)
        assert len(fast) == 700 * 1024 and reader.held == 800 * 1024
        go_on.set()  # the slow one's rest no longer fits beside the fast one's whole body
    assert held_while_stalled == [100 * 1024]
    assert reader.held == 700 * 1024  # the fast body, until its request releases it
