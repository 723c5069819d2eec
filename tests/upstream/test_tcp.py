"""`TCPStream`, the plain TCP stream of our server and upstream pool, over a real socket pair:
what it sends arrives whole and in order, closing wakes a waiting task, errors are trio's, and
every call is a cancellation point."""

from __future__ import annotations

import socket

import pytest
import trio
import trio.lowlevel
import trio.testing

from tokenomics.upstream.tcp import TCPStream, poller

BIG = bytes(range(256)) * 40_000  # ~10 MB: far more than the socket buffers hold


def pair() -> tuple[TCPStream, TCPStream]:
    left, right = socket.socketpair()
    return TCPStream(left), TCPStream(right)


async def test_a_large_send_arrives_whole_while_the_peer_reads_slowly() -> None:
    sender, receiver = pair()
    received = bytearray()

    async def read() -> None:
        while len(received) < len(BIG):
            received.extend(await receiver.receive_some(4096))
            await trio.lowlevel.checkpoint()

    async with trio.open_nursery() as nursery:
        nursery.start_soon(read)
        await sender.send_all(BIG)
    assert bytes(received) == BIG
    await sender.aclose()
    await receiver.aclose()


async def test_send_eof_and_close_are_seen_by_the_peer_as_the_end() -> None:
    left, right = pair()
    await left.send_all(b"last words")
    await left.send_eof()
    assert await right.receive_some() == b"last words"
    assert await right.receive_some() == b""
    await right.send_all(b"still open the other way")
    assert await left.receive_some() == b"still open the other way"
    await left.aclose()
    await right.aclose()


async def test_closing_wakes_a_task_waiting_to_receive_and_later_calls_fail_closed() -> None:
    left, right = pair()
    failures: list[BaseException] = []

    async def wait() -> None:
        try:
            await left.receive_some()
        except trio.ClosedResourceError as exc:
            failures.append(exc)

    async with trio.open_nursery() as nursery:
        nursery.start_soon(wait)
        await trio.testing.wait_all_tasks_blocked()
        await left.aclose()
    assert len(failures) == 1
    for call in (left.receive_some(), left.send_all(b"x"), left.send_eof()):
        with pytest.raises(trio.ClosedResourceError):
            await call
    await left.aclose()  # twice is fine
    await right.aclose()


async def test_closing_wakes_a_writer_blocked_on_a_peer_that_does_not_read() -> None:
    left, right = pair()
    outcome: list[type[BaseException]] = []

    async def flood() -> None:
        try:
            await left.send_all(BIG)
        except trio.ClosedResourceError as exc:
            outcome.append(type(exc))

    async with trio.open_nursery() as nursery:
        nursery.start_soon(flood)
        await trio.testing.wait_all_tasks_blocked()
        await trio.aclose_forcefully(left)  # what the server's sweep does
    assert outcome == [trio.ClosedResourceError]
    await right.aclose()


async def test_a_broken_connection_is_a_broken_resource() -> None:
    left, right = pair()
    await right.aclose()
    with pytest.raises(trio.BrokenResourceError):
        for _ in range(100):  # the first send may still be buffered
            await left.send_all(b"x" * 65536)
    await left.aclose()


async def test_every_call_is_a_cancellation_point_even_when_it_need_not_wait() -> None:
    left, right = pair()
    await right.send_all(b"ready")
    with trio.CancelScope() as scope:
        scope.cancel()
        await left.receive_some()
    assert scope.cancelled_caught
    assert await left.receive_some() == b"ready"  # nothing was lost
    with trio.CancelScope() as scope:
        scope.cancel()
        await left.send_all(b"unsent")
    assert scope.cancelled_caught
    await left.aclose()
    await right.aclose()


async def test_a_kept_poller_tells_an_idle_connection_the_peer_closed() -> None:
    left, right = pair()
    poll = poller(left.socket)  # made once, asked at each reuse (`pool.Connection.expired`)
    assert not poll.poll(0)
    assert not poll.poll(0)
    await right.aclose()
    assert poll.poll(0)
    await left.aclose()


@pytest.mark.parametrize("data", [b"short", BIG], ids=["taken-at-once", "larger-than-buffers"])
async def test_send_now_delivers_whole_and_is_a_cancel_point(data: bytes) -> None:
    sender, receiver = pair()
    received = bytearray()

    async def read() -> None:
        while len(received) < len(data):
            received.extend(await receiver.receive_some(65536))

    async with trio.open_nursery() as nursery:
        nursery.start_soon(read)
        await sender.send_now(data)
    assert bytes(received) == data
    with trio.CancelScope() as scope:
        scope.cancel()
        await sender.send_now(b"never sent")
    assert scope.cancelled_caught
    await sender.aclose()
    assert not poller(receiver.socket).poll(0) or await receiver.receive_some() == b""
    await receiver.aclose()


async def test_receive_when_ready_waits_for_the_bytes_then_the_end_and_fails_closed() -> None:
    left, right = pair()
    got: list[bytes] = []

    async def read() -> None:
        got.append(await left.receive_when_ready())
        got.append(await left.receive_when_ready())

    async with trio.open_nursery() as nursery:
        nursery.start_soon(read)
        await trio.testing.wait_all_tasks_blocked()
        assert got == []  # waiting: nothing came yet
        await right.send_all(b"reply")
        await trio.testing.wait_all_tasks_blocked()
        await right.aclose()
    assert got == [b"reply", b""]
    with trio.CancelScope() as scope:  # a cancel point like `receive_some`
        scope.cancel()
        await left.receive_when_ready()
    assert scope.cancelled_caught
    await left.aclose()
    with pytest.raises(trio.ClosedResourceError):
        await left.receive_when_ready()


async def test_receive_now_reads_what_arrived_without_waiting_and_errors_as_trio() -> None:
    left, right = pair()
    assert right.receive_now() is None  # nothing yet: no wait, no exception
    await left.send_all(b"the body")
    assert right.receive_now(64) == b"the body"
    await left.aclose()
    assert right.receive_now() == b""  # the peer's end
    await right.aclose()
    with pytest.raises(trio.ClosedResourceError):
        right.receive_now()
