"""The recorder's hand-off (issue 12 item 11): the record channel is bounded, a full channel
makes the finishing request wait (back-pressure), a request cancelled while it waits still
hands its record over, and the journal gets every record at once, before any waiting."""

from __future__ import annotations

import pytest
import trio
import trio.testing

from tokenomics.config.settings import LoggingSettings
from tokenomics.domain.usage import Usage
from tokenomics.pipeline.exchange import Exchange, Incoming, Settled
from tokenomics.services.finished import Finished
from tokenomics.services.recorder import Recorder
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
