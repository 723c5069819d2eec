"""The headers deadline of pooled requests (`upstream/head_timer.py`), on trio's autojump
clock: a connection still waiting at its deadline is shut down and told so, an unwatched one
never, the heap stays bounded, and a shorter timeout than any before moves the wake-up."""

from __future__ import annotations

import pytest
import trio
import trio.testing

from tokenomics.upstream.head_timer import HeadTimer


@pytest.fixture
def autojump_clock() -> trio.testing.MockClock:
    return trio.testing.MockClock(autojump_threshold=0)


class Waiting:
    """A connection as the timer sees it; records when it was shut down."""

    def __init__(self) -> None:
        self.watch = 0
        self.timed_out = False
        self.shut_at: float | None = None

    def shut_down(self) -> None:
        self.shut_at = trio.current_time()


async def test_a_connection_still_waiting_at_its_deadline_is_shut_down_then(
    autojump_clock: trio.abc.Clock,
) -> None:
    timer = HeadTimer()
    late, answered = Waiting(), Waiting()
    async with trio.open_nursery() as nursery:
        await nursery.start(timer.run)
        start = trio.current_time()
        timer.watch(late, 5)
        timer.watch(answered, 5)
        await trio.sleep(1)
        timer.unwatch(answered)
        await trio.sleep(10)
        nursery.cancel_scope.cancel()
    assert late.timed_out and late.shut_at == pytest.approx(start + 5)
    assert not answered.timed_out and answered.shut_at is None
    assert timer.statistics()["watched"] == 0 and not timer.running


async def test_a_timeout_shorter_than_any_before_moves_the_wake_up(
    autojump_clock: trio.abc.Clock,
) -> None:
    timer = HeadTimer()
    slow, quick = Waiting(), Waiting()
    async with trio.open_nursery() as nursery:
        await nursery.start(timer.run)
        start = trio.current_time()
        timer.watch(slow, 30)
        await trio.sleep(1)
        timer.watch(quick, 2)
        await trio.sleep(40)
        nursery.cancel_scope.cancel()
    assert quick.shut_at == pytest.approx(start + 3)
    assert slow.shut_at == pytest.approx(start + 30)


async def test_unwatched_entries_do_not_pile_up_behind_a_waiting_one(
    autojump_clock: trio.abc.Clock,
) -> None:
    timer = HeadTimer()
    waiting = Waiting()
    async with trio.open_nursery() as nursery:
        await nursery.start(timer.run)
        timer.watch(waiting, 60)  # at the top of the heap for the whole loop
        for _ in range(10_000):
            answered = Waiting()
            timer.watch(answered, 60)
            timer.unwatch(answered)
        assert timer.statistics()["watched"] == 1
        assert timer.statistics()["entries"] <= 2 + 64 + 1
        nursery.cancel_scope.cancel()
    assert waiting.shut_at is None
