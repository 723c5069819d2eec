"""The webhook delivery process (`services/delivery_process.py` + `delivery_child.py`): a real
child process delivering to a real receiver. SIGKILLed, it is restarted and delivers
everything once per id; stopped (SIGTERM) with events pending, they stay in the outbox and the
next start delivers them; its counters are stored where another process reads them; it runs
at nice 19."""

from __future__ import annotations

import os
import signal
from pathlib import Path

import pytest
import trio
from tests.support.webhook_receiver import Receiver, webhook_receiver

from tokenomics.domain import events
from tokenomics.services.delivery_child import ChildConfig
from tokenomics.services.delivery_process import DeliveryProcess
from tokenomics.services.webhook_send import WebhookTarget
from tokenomics.store.db import Database
from tokenomics.store.outbox import Counters, Outbox

pytestmark = pytest.mark.slow
KEY = "process-signing-key"


def append(db_path: Path, count: int, start: int = 0) -> list[str]:
    batch = [events.event("request.completed", {"n": n}) for n in range(start, start + count)]
    db = Database.open(db_path)
    try:
        Outbox(db).append(batch)
    finally:
        db.close()
    return [e.id for e in batch]


def counters(db_path: Path, target: WebhookTarget) -> Counters:
    db = Database.open(db_path)
    try:
        return Outbox(db).counters([(target.name, target.events)])[0]
    finally:
        db.close()


def config(db_path: Path, receiver: Receiver) -> tuple[ChildConfig, WebhookTarget]:
    target = WebhookTarget(receiver.url, receiver.url, signing_secret=KEY, timeout=5)
    return ChildConfig(str(db_path), (target,), 3600.0, grace=2.0, poll_interval=0.1), target


async def until(check: object, seconds: float = 30) -> None:
    assert callable(check)
    with trio.fail_after(seconds):
        while True:
            if check():
                return
            await trio.sleep(0.05)


async def test_a_killed_delivery_process_is_restarted_and_delivers_everything_once(
    tmp_path: Path,
) -> None:
    db_path = tmp_path / "tokenomics.db"
    first = append(db_path, 20)
    async with webhook_receiver(KEY) as receiver, trio.open_nursery() as nursery:
        child, target = config(db_path, receiver)
        delivery = DeliveryProcess(child, os.environ)
        await nursery.start(delivery.run)
        await until(lambda: counters(db_path, target).delivered == 20)  # stored as delivered
        await receiver.down()
        second = append(db_path, 30, start=20)
        delivery.wake()
        await until(lambda: counters(db_path, target).failed >= 1)  # trying the second batch
        killed = delivery.process
        assert killed is not None
        killed.kill()
        await until(lambda: delivery.starts == 2 and delivery.process is not killed)
        await receiver.up(nursery)
        await until(lambda: set(first + second) <= set(receiver.ids))
        await until(lambda: counters(db_path, target).pending == 0)
        nursery.cancel_scope.cancel()
    assert killed.returncode == -signal.SIGKILL
    assert sorted(receiver.ids) == sorted(first + second)  # once per id
    assert all(r.signature_ok for r in receiver.received)
    stored = counters(db_path, target)
    assert (stored.delivered, stored.dead_lettered, stored.pending) == (50, 0, 0)
    assert stored.failed >= 1 and stored.retried == stored.failed


async def test_a_stopped_process_leaves_pending_events_for_the_next_start(tmp_path: Path) -> None:
    db_path = tmp_path / "tokenomics.db"
    ids = append(db_path, 10)
    async with webhook_receiver(KEY) as receiver:
        await receiver.down()
        child, target = config(db_path, receiver)
        delivery = DeliveryProcess(child, os.environ)
        async with trio.open_nursery() as nursery:
            await nursery.start(delivery.run)
            await until(lambda: counters(db_path, target).failed >= 1)
            nursery.cancel_scope.cancel()  # as `serve` stops: SIGTERM, the grace period
        assert delivery.process is not None and delivery.process.returncode == 0
        assert counters(db_path, target).pending == 10
        async with trio.open_nursery() as nursery:
            await receiver.up(nursery)
            again = DeliveryProcess(child, os.environ)
            await nursery.start(again.run)
            await until(lambda: set(ids) <= set(receiver.ids))
            await until(lambda: counters(db_path, target).pending == 0)
            nursery.cancel_scope.cancel()
    assert sorted(receiver.ids) == sorted(ids)


async def test_the_child_runs_at_the_lowest_priority(tmp_path: Path) -> None:
    db_path = tmp_path / "tokenomics.db"
    async with webhook_receiver(KEY) as receiver, trio.open_nursery() as nursery:
        child, _ = config(db_path, receiver)
        delivery = DeliveryProcess(child, os.environ)
        await nursery.start(delivery.run)
        assert delivery.process is not None
        pid = delivery.process.pid
        await until(lambda: _nice(pid) == 19)
        nursery.cancel_scope.cancel()


def _nice(pid: int) -> int:
    """Field 19 of /proc/<pid>/stat (after the parenthesised command name)."""
    stat = Path(f"/proc/{pid}/stat").read_text()
    return int(stat.rsplit(")", 1)[1].split()[16])


async def test_two_delivery_processes_on_one_outbox_deliver_each_event_once(
    tmp_path: Path,
) -> None:
    """The second waits for the first's lock (two `serve`s on one store, or a new child
    starting while the old one of a killed server is still finishing)."""
    db_path = tmp_path / "tokenomics.db"
    ids = append(db_path, 40)
    async with webhook_receiver(KEY) as receiver, trio.open_nursery() as nursery:
        child, target = config(db_path, receiver)
        first, second = DeliveryProcess(child, os.environ), DeliveryProcess(child, os.environ)
        await nursery.start(first.run)
        await nursery.start(second.run)
        await until(lambda: counters(db_path, target).pending == 0)
        more = append(db_path, 40, start=40)
        first.wake()
        second.wake()
        await until(lambda: set(ids + more) <= set(receiver.ids))
        await until(lambda: counters(db_path, target).pending == 0)
        assert first.process is not None
        first.process.kill()  # the second takes over
        last = append(db_path, 10, start=80)
        second.wake()
        await until(lambda: set(last) <= set(receiver.ids))
        nursery.cancel_scope.cancel()
    assert sorted(receiver.ids) == sorted(ids + more + last)
