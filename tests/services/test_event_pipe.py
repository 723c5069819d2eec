"""Events handed to the delivery process over its pipe (`services/event_pipe.py`): the real
child commits each batch and answers; with its parent SIGKILLed, it still commits what is in
the pipe; a child that dies (or is stopped) without answering gets its batches appended by the
serving process itself; a batch written twice repeats the same event ids."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import trio
from tests.support.finished import finished

from tokenomics.domain import events
from tokenomics.services.delivery_child import ChildConfig
from tokenomics.services.delivery_process import CHILD_MODULE, DeliveryProcess, child_env
from tokenomics.services.event_pipe import EventPipe
from tokenomics.services.event_writer import (
    EventWriter,
    decode,
    encode,
    events_of,
    new_key,
    source_of,
)
from tokenomics.services.webhook_send import WebhookTarget
from tokenomics.store.db import Database
from tokenomics.store.outbox import Outbox

pytestmark = pytest.mark.slow
# Unreachable: the events stay in the outbox, where the tests read them.
TARGET = WebhookTarget("hook", "http://127.0.0.1:9/hook", timeout=1)


def stored(db_path: Path) -> list[tuple[str, str]]:
    db = Database.open(db_path)
    try:
        return [
            (str(i), str(t)) for i, t in db.query("SELECT id, type FROM outbox_events ORDER BY seq")
        ]
    finally:
        db.close()


def writer(db_path: Path, pipe: EventPipe | None = None) -> EventWriter:
    return EventWriter(Outbox(Database.open(db_path)), lambda kind: True, lambda: None, pipe)


def payload(count: int) -> bytes:
    return encode(new_key(), [source_of(finished(authenticated=True)) for _ in range(count)])


async def until(check: object, seconds: float = 30) -> None:
    assert callable(check)
    with trio.fail_after(seconds):
        while True:
            if check():
                return
            await trio.sleep(0.05)


async def test_the_child_commits_each_batch_and_answers_with_its_number(
    tmp_path: Path,
) -> None:
    db_path = tmp_path / "tokenomics.db"
    pipe = EventPipe()
    config = ChildConfig(str(db_path), (TARGET,), 1e10, grace=1.0, poll_interval=0.1)
    delivery = DeliveryProcess(config, os.environ, pipe=pipe, spill=writer(db_path).spill)
    async with trio.open_nursery() as nursery:
        await nursery.start(delivery.run)
        assert pipe.offer(payload(3)) and pipe.offer(payload(2))
        await until(lambda: len(stored(db_path)) == 10)  # budget.update + request.completed
        await until(lambda: pipe.unanswered == 0)
        nursery.cancel_scope.cancel()
    types = [kind for _, kind in stored(db_path)]
    assert types == ["budget.update", "request.completed"] * 5
    assert len({eid for eid, _ in stored(db_path)}) == 10


def test_a_killed_parents_batches_are_committed_from_the_pipe(tmp_path: Path) -> None:
    """The parent writes its batches and dies (its end of the pipe closes): the child reads the
    pipe to its end, commits every batch, answers, and exits."""
    db_path = tmp_path / "tokenomics.db"
    Database.open(db_path).close()
    config = ChildConfig(str(db_path), (TARGET,), 1e10, grace=0.5, poll_interval=0.1)
    lines = b"".join(b"%d %s\n" % (n, payload(2)) for n in (1, 2, 3))
    done = subprocess.run(
        [sys.executable, "-m", CHILD_MODULE], input=config.encode() + lines,
        capture_output=True, env=child_env(os.environ), timeout=60, check=True,
    )  # fmt: skip
    assert done.stdout == b"1\n2\n3\n"
    assert len(stored(db_path)) == 12


async def test_batches_a_dead_child_did_not_answer_are_appended_by_the_parent(
    tmp_path: Path,
) -> None:
    """A child that never answers (killed, say, before it read them): the batches it was
    given are appended here when it exits, and none is lost."""
    db_path = tmp_path / "tokenomics.db"
    pipe = EventPipe()
    config = ChildConfig(str(db_path), (TARGET,), 1e10, grace=0.5)
    mute = [sys.executable, "-c", "import time; time.sleep(600)"]
    delivery = DeliveryProcess(
        config, os.environ, command=mute, pipe=pipe, spill=writer(db_path).spill
    )
    async with trio.open_nursery() as nursery:
        await nursery.start(delivery.run)
        first = delivery.process
        assert first is not None and pipe.offer(payload(2))
        first.kill()
        await until(lambda: len(stored(db_path)) == 4)
        await until(lambda: delivery.starts == 2)
        assert pipe.offer(payload(1))  # to the new child
        nursery.cancel_scope.cancel()  # stopped: SIGTERM, no answer
    assert len(stored(db_path)) == 6


async def test_no_child_or_a_full_pipe_means_the_writer_appends_itself(tmp_path: Path) -> None:
    db_path = tmp_path / "tokenomics.db"
    pipe = EventPipe(limit=1000)
    hooked = writer(db_path, pipe)
    await hooked.write([finished(authenticated=True)])  # no child running
    assert len(stored(db_path)) == 2
    pipe.start()
    await hooked.write([finished(authenticated=True)])  # handed over
    assert len(stored(db_path)) == 2 and len(pipe.take()) == 1
    pipe.start()
    await hooked.write([finished(authenticated=True)] * 20)  # more than `limit` bytes
    assert len(stored(db_path)) == 42


def test_a_batch_written_twice_repeats_its_event_ids(tmp_path: Path) -> None:
    db_path = tmp_path / "tokenomics.db"
    batch = payload(2)
    hooked = writer(db_path)
    hooked.commit(batch)
    hooked.commit(batch)
    ids = [eid for eid, _ in stored(db_path)]
    assert len(ids) == 8 and ids[:4] == ids[4:] and len(set(ids)) == 4
    assert all(eid.startswith("evt_") and len(eid) == 4 + 32 for eid in ids)


def test_a_batch_crosses_the_pipe_unchanged() -> None:
    """The events built from a decoded batch are those of the `Finished` records."""
    source = source_of(
        finished(authenticated=True, events=(("rule.warning", {"rule_name": "r", "n": 1.5}),))
    )
    key = new_key()
    (back,) = decode(encode(key, [source]))[1]
    before = [e.envelope() for e in events_of(source, key, 0)]
    after = [e.envelope() for e in events_of(back, key, 0)]
    assert before == after
    assert [events.from_envelope(b).type for b in after] == [
        "rule.warning", "budget.update", "request.completed",
    ]  # fmt: skip
