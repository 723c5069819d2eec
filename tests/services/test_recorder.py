"""The recorder's hand-off (issue 12 item 11): the record channel is bounded, a full channel
makes the finishing request wait (back-pressure), a request cancelled while it waits still
hands its record over, and the journal gets every record at once, before any waiting."""

from __future__ import annotations

from functools import partial

import pytest
import trio
import trio.testing

from tokenomics.config.settings import LoggingSettings
from tokenomics.domain.usage import Usage
from tokenomics.pipeline.exchange import Exchange, Incoming, Settled
from tokenomics.services.finished import Finished, from_exchange
from tokenomics.services.recorder import (
    PEAK_RATE,
    RECORD_QUEUE,
    Recorder,
    drain_interval,
    gather,
)
from tokenomics.services.stats import Stats


def exchange(n: int) -> Exchange:
    ex = Exchange(Incoming("POST", [], {}, "peer", 0.0, "", f"req_{n}"), "/v1/chat/completions", "")
    ex.settle(Settled(Usage(), 0.0, None))
    return ex


async def test_a_full_channel_makes_requests_wait_and_loses_no_record() -> None:
    send, receive = trio.open_memory_channel[Finished](2)
    journaled: list[str] = []
    recorder = Recorder(
        Stats(lambda model: True), LoggingSettings(), trio.current_time,
        journal=lambda f: journaled.append(f.client_request_id), sink=send,
    )  # fmt: skip
    done: list[int] = []

    async def finish(n: int, cancel: bool) -> None:
        with trio.CancelScope() as scope:
            if cancel:
                scope.cancel()  # e.g. the client went away: the hand-off is shielded
            await recorder.record(exchange(n))
        done.append(n)

    async with trio.open_nursery() as nursery:
        for n in range(5):
            nursery.start_soon(finish, n, n == 4)
        await trio.testing.wait_all_tasks_blocked()
        assert len(done) == 2  # two fit; three wait for room
        assert len(journaled) == 5  # ... journaled nonetheless
        received = [(await receive.receive()).client_request_id for _ in range(5)]
    assert sorted(received) == [f"req_{n}" for n in range(5)]
    assert sorted(done) == list(range(5))


async def test_a_closed_channel_is_logged_not_raised(caplog: pytest.LogCaptureFixture) -> None:
    send, receive = trio.open_memory_channel[Finished](1)
    recorder = Recorder(Stats(lambda model: True), LoggingSettings(), trio.current_time, sink=send)
    receive.close()
    await recorder.record(exchange(1))
    assert "after the record consumers stopped" in caplog.text


class _Steps(trio.abc.Instrument):
    """Counts the steps (wake-ups) of the tasks of one name."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.count = 0

    def before_task_step(self, task: trio.lowlevel.Task) -> None:
        if task.name == self.name:
            self.count += 1


def finished_record(n: int) -> Finished:
    ex = exchange(n)
    return from_exchange(ex, 0)


@pytest.fixture
def autojump_clock() -> trio.testing.MockClock:
    return trio.testing.MockClock(autojump_threshold=0)


async def test_a_quiet_batch_gathers_with_few_wake_ups(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """One record in a 200 ms batch: two drains, not one every `DRAIN_SECONDS` (10)."""
    send, receive = trio.open_memory_channel[Finished](RECORD_QUEUE)
    steps = _Steps("gathering")
    trio.lowlevel.add_instrument(steps)
    batch: list[Finished] = []

    async def gathering() -> None:
        assert await gather(receive, batch, seconds=0.2, limit=256)

    async with trio.open_nursery() as nursery:
        nursery.start_soon(gathering, name="gathering")
        await trio.sleep(1)  # idle: the gatherer waits for the first record
        send.send_nowait(finished_record(1))
    trio.lowlevel.remove_instrument(steps)
    assert len(batch) == 1
    assert steps.count <= 4  # start, first record, a drain at 64 ms, one at 200 ms


async def test_a_burst_after_a_quiet_spell_never_finds_the_channel_full(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """Records at 1.5 times `PEAK_RATE` right after a quiet first one: each goes in at once."""
    send, receive = trio.open_memory_channel[Finished](RECORD_QUEUE)
    batch: list[Finished] = []
    record = finished_record(1)
    async with trio.open_nursery() as nursery:
        nursery.start_soon(partial(gather, receive, batch, seconds=0.2, limit=10_000))
        await trio.sleep(1)
        send.send_nowait(record)
        for _ in range(599):  # 0.2 s at 3,000 a second
            await trio.sleep(1 / (1.5 * PEAK_RATE))
            send.send_nowait(record)  # raises trio.WouldBlock when full
    assert len(batch) == 600


@pytest.mark.parametrize(("taken", "elapsed", "interval"), [
    (1, 0.0, 0.064),  # the first wait: half the channel at `PEAK_RATE`
    (3000, 0.0, 0.02),  # ... or sooner, when that many were waiting already
    (2, 0.064, 4.096),  # ~30 a second: the batch's time (its caller takes the lesser)
    (100, 0.1, 0.128),  # 1,000 a second: half the channel in 128 ms
    (100, 0.02, 0.0256),  # 5,000 a second
    (1000, 0.02, 0.02),  # 50,000 a second: every `DRAIN_SECONDS`
])  # fmt: skip
def test_the_drain_interval_follows_the_arrival_rate(
    taken: int, elapsed: float, interval: float
) -> None:
    assert drain_interval(taken, elapsed, RECORD_QUEUE) == pytest.approx(interval)
