"""Decision D14: the usage writer saves budget totals through to the store, every interval and
once more at shutdown, and survives failing saves without losing totals."""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping
from functools import partial
from pathlib import Path

import pytest
import trio
import trio.testing

from tokenomics.domain.budget import Budgets, Spend
from tokenomics.domain.errors import StoreError
from tokenomics.services import usage_writer
from tokenomics.store.db import Database
from tokenomics.store.usage import UsageStore

A, B = "a" * 64, "b" * 64
NOW = "2026-01-01T00:00:00Z"


@pytest.fixture
def autojump_clock() -> trio.testing.MockClock:
    return trio.testing.MockClock(autojump_threshold=0)


class FlakyStore(UsageStore):
    """The real store, failing the first `failures` saves like a full disk would.

    Every attempt is reported on `attempts` ("saved" / "failed"), so tests wait for the worker
    thread by event: the autojump clock does not wait for threads, so time-bounded polling
    would race ahead of them.
    """

    def __init__(self, db: Database, failures: int = 0) -> None:
        super().__init__(db)
        self.failures = failures
        self.saves: list[dict[str, Spend]] = []
        self._send, self.attempts = trio.open_memory_channel[str](math.inf)

    def save(self, totals: Mapping[str, Spend], now: str) -> None:
        if self.failures:
            self.failures -= 1
            trio.from_thread.run_sync(self._send.send_nowait, "failed")
            raise StoreError("usage store: database or disk is full")
        super().save(totals, now)
        self.saves.append(dict(totals))
        trio.from_thread.run_sync(self._send.send_nowait, "saved")


@pytest.fixture
def store(tmp_path: Path) -> FlakyStore:
    return FlakyStore(Database.open(tmp_path / "tokenomics.db"))


def spend(budgets: Budgets, key: str, tokens: int, cost: float) -> None:
    reservation = budgets.reserve(
        key, max_tokens=0, max_cost_usd=0, input_tokens=1, cost_estimate_usd=0
    )
    reservation.settle(tokens, cost)


async def start(
    nursery: trio.Nursery, budgets: Budgets, store: UsageStore, interval: float = 0.5
) -> None:
    run = partial(usage_writer.run, budgets, store, interval=interval, clock_now=lambda: NOW)
    await nursery.start(run)


async def test_changed_totals_are_saved_every_interval(
    autojump_clock: trio.testing.MockClock, store: FlakyStore
) -> None:
    budgets = Budgets()
    async with trio.open_nursery() as nursery:
        await start(nursery, budgets, store)
        spend(budgets, A, 10, 0.1)
        assert await store.attempts.receive() == "saved"
        assert store.saves == [{A: Spend(10, 0.1)}]
        assert trio.current_time() == pytest.approx(0.5)
        await trio.sleep(5)  # nothing changed: nothing is written
        assert len(store.saves) == 1
        spend(budgets, B, 3, 0.0)
        assert await store.attempts.receive() == "saved"
        assert store.saves[1] == {B: Spend(3, 0.0)}
        nursery.cancel_scope.cancel()
    assert store.load() == {A: Spend(10, 0.1), B: Spend(3, 0.0)}


async def test_cancellation_saves_the_last_totals_once_more(
    autojump_clock: trio.testing.MockClock, tmp_path: Path
) -> None:
    path = tmp_path / "tokenomics.db"
    budgets = Budgets()
    store = FlakyStore(Database.open(path))
    async with trio.open_nursery() as nursery:
        await start(nursery, budgets, store, interval=3600)
        spend(budgets, A, 42, 0.42)
        nursery.cancel_scope.cancel()
    assert store.saves == [{A: Spend(42, 0.42)}]
    assert UsageStore(Database.open(path)).load() == {A: Spend(42, 0.42)}


async def test_a_failing_save_is_logged_and_retried_with_the_newest_totals(
    autojump_clock: trio.testing.MockClock,
    store: FlakyStore,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.WARNING, logger="tokenomics.usage")
    store.failures = 2
    budgets = Budgets()
    async with trio.open_nursery() as nursery:
        await start(nursery, budgets, store)
        spend(budgets, A, 10, 0.0)
        assert await store.attempts.receive() == "failed"
        spend(budgets, A, 5, 0.0)
        assert await store.attempts.receive() == "failed"
        assert await store.attempts.receive() == "saved"
        assert store.saves == [{A: Spend(15, 0.0)}]
        assert budgets.statistics().dirty == 0
        nursery.cancel_scope.cancel()
    warnings = [r for r in caplog.records if r.name == "tokenomics.usage"]
    assert len(warnings) == 2
    assert all(r.levelno == logging.WARNING for r in warnings)
    assert "database or disk is full" in warnings[0].getMessage()
    assert store.load() == {A: Spend(15, 0.0)}


async def test_a_failing_final_save_is_logged_and_the_totals_stay_dirty(
    autojump_clock: trio.testing.MockClock,
    store: FlakyStore,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.WARNING, logger="tokenomics.usage")
    store.failures = 1
    budgets = Budgets()
    async with trio.open_nursery() as nursery:
        await start(nursery, budgets, store, interval=3600)
        spend(budgets, A, 7, 0.0)
        nursery.cancel_scope.cancel()
    assert [r.levelno for r in caplog.records if r.name == "tokenomics.usage"] == [
        logging.WARNING,
        logging.ERROR,
    ]
    assert budgets.take_dirty() == {A: Spend(7, 0.0)}
    assert store.load() == {}


async def test_flush_without_changes_does_not_touch_the_store(
    autojump_clock: trio.testing.MockClock, store: FlakyStore
) -> None:
    store.failures = 1  # a save would fail: none is attempted
    assert await usage_writer.flush(Budgets(), store, lambda: NOW)
    assert store.failures == 1
