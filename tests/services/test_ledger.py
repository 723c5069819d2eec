"""The ledger flusher (D17, D18): journal per batch, atomic session JSON at close, recovery of
crashed sessions (never of a live one), write failures kept and retried, memory and events."""

from __future__ import annotations

import json
import os
import stat
from collections.abc import Sequence
from functools import partial
from pathlib import Path
from typing import Any

import orjson
import pytest
import trio
import trio.testing
from tests.services.ledger_support import A, finished

from tokenomics.domain.budget import Spend
from tokenomics.services import ledger as ledger_service
from tokenomics.services.finished import Finished
from tokenomics.services.ledger import Ledger
from tokenomics.services.ledger_files import ensure_dir, recover_all


def journal_lines(ledger: Ledger) -> list[dict[str, Any]]:
    return [json.loads(line) for line in ledger.journal_path.read_text().splitlines()]


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


async def open_ledger(root: Path, **kwargs: Any) -> Ledger:
    ledger = await Ledger.open(root / "data" / "sessions", root, **kwargs)
    assert ledger is not None
    return ledger


def unopened_ledger(root: Path) -> Ledger:
    """A ledger whose journal is not open yet (`Ledger.open` opens it): its path can be
    blocked first."""
    sessions = root / "data" / "sessions"
    ensure_dir(sessions)
    return Ledger(sessions, root)


async def write(ledger: Ledger, *records: Finished) -> None:
    """What the server does: each record journaled by its request, then the batch written."""
    for record in records:
        ledger.record(record)
    await ledger.write(records)


async def test_each_batch_is_in_the_journal_after_the_header_with_private_modes(
    tmp_path: Path,
) -> None:
    ledger = await open_ledger(tmp_path)
    await write(ledger, finished(1), finished(2))
    header, *records = journal_lines(ledger)
    assert header == {
        "session_id": ledger.session_id,
        "started_at": ledger.started_at.strftime("%Y-%m-%dT%H:%M:%SZ"),
        "git": {},
        "pid": os.getpid(),
    }
    assert [r["request"]["input_tokens"] for r in records] == [10, 20]
    assert mode(ledger.journal_path) == 0o600
    assert mode(tmp_path / "data" / "sessions") == 0o700
    assert ledger.statistics().requests_recorded == 2
    assert len(ledger.session_id) == 8 and int(ledger.session_id, 16) >= 0
    await ledger.close()


async def test_the_service_writes_the_session_atomically_and_removes_the_journal(
    tmp_path: Path,
) -> None:
    ledger = await open_ledger(tmp_path)
    send, receive = trio.open_memory_channel[Finished](float("inf"))
    async with trio.open_nursery() as nursery:
        await nursery.start(ledger_service.run, ledger, receive)
        for n in (1, 2, 3):
            ledger.record(finished(n))
            send.send_nowait(finished(n))
        await send.aclose()
    session = json.loads(ledger.session_path.read_text())
    assert not ledger.journal_path.exists()
    assert ledger.session_path.name == f"{ledger.started_at:%Y-%m-%d}_{ledger.session_id}.json"
    assert mode(ledger.session_path) == 0o600
    assert session["totals"]["request_count"] == 3
    assert session["totals"]["input_tokens"] == 60
    assert session["totals"]["cost_usd"] == pytest.approx(0.006)
    assert session["by_token"][A]["models_used"] == ["gpt-4o"]
    assert "communication_events" not in session
    assert [p.name for p in ledger.session_path.parent.iterdir()] == [ledger.session_path.name]


async def test_cancellation_still_writes_the_session(tmp_path: Path) -> None:
    ledger = await open_ledger(tmp_path)
    send, receive = trio.open_memory_channel[Finished](float("inf"))
    async with trio.open_nursery() as nursery:
        await nursery.start(ledger_service.run, ledger, receive)
        ledger.record(finished(1))
        send.send_nowait(finished(1))
        nursery.cancel_scope.cancel()
    session = json.loads(ledger.session_path.read_text())
    assert session["totals"]["request_count"] == 1


async def test_an_empty_session_is_still_written(tmp_path: Path) -> None:
    ledger = await open_ledger(tmp_path)
    await ledger.close()
    session = json.loads(ledger.session_path.read_text())
    assert session["requests"] == [] and session["totals"]["request_count"] == 0


async def test_a_crashed_journal_becomes_a_session_and_a_truncated_line_is_skipped(
    tmp_path: Path,
) -> None:
    ledger = await open_ledger(tmp_path)
    await write(ledger, finished(1), finished(2))
    assert ledger._journal is not None
    ledger._journal.close()  # the process died: its lock is gone
    with ledger.journal_path.open("ab") as journal:
        journal.write(b'{"request": {"timestamp": "2026-')
    last = ledger.journal_path.read_text().splitlines()[2]
    assert await trio.to_thread.run_sync(recover_all, ledger.journal_path.parent) == 1
    session = json.loads(ledger.session_path.read_text())
    assert not ledger.journal_path.exists()
    assert session["session_id"] == ledger.session_id
    assert session["totals"]["request_count"] == 2
    assert session["ended_at"] == json.loads(last)["request"]["timestamp"][:19] + "Z"


@pytest.mark.parametrize("content", [b"", b'{"session_id": "ab'], ids=["empty", "torn"])
async def test_a_journal_killed_in_its_header_is_removed_by_recovery(
    tmp_path: Path, content: bytes
) -> None:
    sessions = tmp_path / "sessions"
    ensure_dir(sessions)
    journal = sessions / "2026-12-06_abcdef01.journal"
    journal.write_bytes(content)
    assert await trio.to_thread.run_sync(recover_all, sessions) == 1
    assert list(sessions.iterdir()) == []


async def test_the_next_open_recovers_and_a_live_locked_journal_is_left_alone(
    tmp_path: Path,
) -> None:
    live = await open_ledger(tmp_path)
    await write(live, finished(1))
    crashed = await open_ledger(tmp_path)
    await write(crashed, finished(2))
    assert crashed._journal is not None
    crashed._journal.close()
    third = await open_ledger(tmp_path)  # recovers `crashed` only
    assert crashed.session_path.exists() and not crashed.journal_path.exists()
    assert live.journal_path.exists() and not live.session_path.exists()
    assert journal_lines(live)[1]["request"]["input_tokens"] == 10
    await live.close()
    await third.close()
    assert json.loads(live.session_path.read_text())["totals"]["request_count"] == 1


async def test_a_journal_with_a_complete_session_is_only_removed(tmp_path: Path) -> None:
    ledger = await open_ledger(tmp_path)
    await write(ledger, finished(1))
    assert ledger._journal is not None
    ledger._journal.close()
    ledger.session_path.write_text(json.dumps({"session_id": "x", "requests": []}))
    recover_all(ledger.journal_path.parent)
    assert json.loads(ledger.session_path.read_text()) == {"session_id": "x", "requests": []}
    assert not ledger.journal_path.exists()


async def test_a_failing_write_is_counted_kept_and_retried(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    ledger = unopened_ledger(tmp_path)
    ledger.journal_path.mkdir()  # opening the journal fails like an unwritable directory
    await write(ledger, finished(1))
    await write(ledger, finished(2))
    stats = ledger.statistics()
    assert (stats.requests_recorded, stats.pending, stats.write_errors) == (0, 2, 2)
    assert sum("cannot write" in r.message for r in caplog.records) == 1
    ledger.journal_path.rmdir()
    await write(ledger, finished(3))
    stats = ledger.statistics()
    assert (stats.requests_recorded, stats.pending) == (3, 0)
    assert [r["request"]["input_tokens"] for r in journal_lines(ledger)[1:]] == [10, 20, 30]
    await ledger.close()


async def test_requests_never_written_to_the_journal_still_reach_the_session(
    tmp_path: Path,
) -> None:
    ledger = unopened_ledger(tmp_path)
    ledger.journal_path.mkdir()
    await write(ledger, finished(1))
    await ledger.close()
    assert json.loads(ledger.session_path.read_text())["totals"]["request_count"] == 1


async def test_an_uncreatable_sessions_dir_disables_the_ledger(tmp_path: Path) -> None:
    (tmp_path / "data").write_text("a file, not a directory")
    assert await Ledger.open(tmp_path / "data" / "sessions", tmp_path) is None


class Memory:
    def __init__(self, fail: bool = False) -> None:
        self.batches: list[tuple[int, str]] = []
        self.closed = self.fail = False
        self.fail = fail

    def render(self, records: Sequence[Finished], session_id: str) -> list[tuple[int, str]]:
        return [(len(records), session_id)]

    def write_rendered(self, rendered: Sequence[tuple[int, str]]) -> None:
        self.batches.extend(rendered)
        if self.fail:
            raise OSError("disk full")

    def close(self) -> None:
        self.closed = True


async def test_memory_is_written_per_batch_and_its_errors_are_contained(tmp_path: Path) -> None:
    memory = Memory(fail=True)
    ledger = await open_ledger(tmp_path, memory=memory)
    await write(ledger, finished(1), finished(2))
    await ledger.close()
    assert memory.batches == [(2, ledger.session_id)] and memory.closed
    assert ledger.statistics().requests_recorded == 2


async def test_communication_events_go_to_the_journal_and_the_session(tmp_path: Path) -> None:
    def events(f: Finished) -> list[dict[str, Any]]:
        return [{"timestamp": "t", "type": "request.received", "token_hash": f.hash16}]

    ledger = await open_ledger(tmp_path, events=events)
    await write(ledger, finished(1))
    # the request at once; its events in a line of their own, with the batch
    request_line, events_line = journal_lines(ledger)[1:]
    assert "events" not in request_line and "request" not in events_line
    assert events_line["events"][0]["type"] == "request.received"
    await ledger.close()
    session = orjson.loads(ledger.session_path.read_bytes())
    assert session["communication_events"] == [
        {"timestamp": "t", "type": "request.received", "token_hash": A[:16]}
    ]
    assert list(session)[-1] == "communication_events"
    assert os.listdir(ledger.session_path.parent) == [ledger.session_path.name]


async def test_without_the_ledger_only_memory_is_written(tmp_path: Path) -> None:
    assert await Ledger.open(None, tmp_path) is None
    memory = Memory()
    (tmp_path / "data").write_text("a file")
    ledger = await Ledger.open(tmp_path / "data" / "sessions", tmp_path, memory=memory)
    assert ledger is not None and not ledger.journaling
    await write(ledger, finished(1))
    await ledger.close()
    assert memory.batches == [(1, ledger.session_id)] and memory.closed
    assert (tmp_path / "data").is_file()


async def test_a_record_is_in_the_journal_file_when_record_returns(tmp_path: Path) -> None:
    ledger = await open_ledger(tmp_path)
    ledger.record(finished(1, spend=Spend(42, 0.5)))
    header, record = journal_lines(ledger)  # no batch, no thread hop: already in the file
    assert header["session_id"] == ledger.session_id
    assert record["request"]["input_tokens"] == 10
    assert record["spend"] == {"tokens": 42, "cost_usd": 0.5}
    assert ledger.statistics().requests_recorded == 1
    await ledger.close()


async def test_the_git_context_line_reaches_the_recovered_session(tmp_path: Path) -> None:
    ledger = await Ledger.open(tmp_path / "sessions", Path(__file__).parent)  # in this repo
    assert ledger is not None
    await ledger.take_git_context()
    ledger.record(finished(1))
    git = journal_lines(ledger)[1]["git"]
    assert git["repo_root"]
    assert ledger._journal is not None
    ledger._journal.close()  # the process died
    recover_all(ledger.journal_path.parent)
    assert json.loads(ledger.session_path.read_text())["git"] == git


async def crashed_with(root: Path, *spends: Spend) -> Ledger:
    ledger = await open_ledger(root)
    for n, spend in enumerate(spends, start=1):
        ledger.record(finished(n, spend=spend))
    ledger.record(finished(9, token_hash="b" * 64))  # rejected before the budget: no spend
    assert ledger._journal is not None
    ledger._journal.close()  # the process died: its lock is gone
    return ledger


async def test_the_next_open_restores_the_last_spend_of_each_token_before_recovering(
    tmp_path: Path,
) -> None:
    crashed = await crashed_with(tmp_path, Spend(10, 0.1), Spend(30, 0.3))
    restored: list[dict[str, Spend]] = []

    async def restore(spends: dict[str, Spend]) -> bool:
        assert crashed.journal_path.exists()  # the journal is recovered only after this
        restored.append(spends)
        return True

    await open_ledger(tmp_path, restore=restore)
    assert restored == [{A: Spend(30, 0.3)}]
    assert crashed.session_path.exists() and not crashed.journal_path.exists()


async def test_a_crashed_journal_is_read_once_for_its_spends_and_its_recovery(
    tmp_path: Path,
) -> None:
    """The journal is read before the restore, and its recovery writes what was read then:
    its bytes are not read a second time (here they change in between, which a dead writer's
    journal never does)."""
    crashed = await crashed_with(tmp_path, Spend(10, 0.1), Spend(30, 0.3))

    async def restore(spends: dict[str, Spend]) -> bool:
        crashed.journal_path.write_bytes(b"not read again\n")
        return True

    await open_ledger(tmp_path, restore=restore)
    session = json.loads(crashed.session_path.read_text())
    assert [r["token_hash"][:1] for r in session["requests"]] == ["a", "a", "b"]
    assert not crashed.journal_path.exists()


async def test_a_restore_not_saved_keeps_the_journal_for_the_next_start(tmp_path: Path) -> None:
    crashed = await crashed_with(tmp_path, Spend(10, 0.1))

    async def failed(spends: dict[str, Spend]) -> bool:
        return False

    await open_ledger(tmp_path, restore=failed)
    assert crashed.journal_path.exists() and not crashed.session_path.exists()


@pytest.fixture
def autojump_clock() -> trio.testing.MockClock:
    return trio.testing.MockClock(autojump_threshold=0)


async def test_a_full_record_channel_is_emptied_while_a_batch_gathers(
    tmp_path: Path, autojump_clock: trio.testing.MockClock
) -> None:
    """Finishing requests wait when the bounded channel is full; the ledger empties it every
    `DRAIN_SECONDS` while a batch gathers, instead of leaving them waiting for the whole batch
    time (which capped the proxy's throughput under load)."""
    ledger = await open_ledger(tmp_path)
    send, receive = trio.open_memory_channel[Finished](4)
    async with trio.open_nursery() as nursery:
        await nursery.start(partial(ledger_service.run, ledger, receive, batch_seconds=60))
        start = trio.current_time()
        for n in range(40):
            await send.send(finished(n))
        waited = trio.current_time() - start
        await send.aclose()
    assert waited < 30  # not the batch's 60 s (the git context may take 3 s of the clock)


@pytest.mark.parametrize(
    ("count", "seconds", "size"),
    [
        (8, 0.0001, 16),  # fast: at most twice the last slice
        (64, 0.0005, 128),
        (8, 0.002, 4),  # slow (streams): fewer
        (1, 0.01, 1),  # never none
        (256, 0.0001, 256),  # never over a batch
        (8, 0.0, 16),
    ],
)
def test_a_render_slice_takes_about_a_millisecond(count: int, seconds: float, size: int) -> None:
    assert ledger_service.slice_size(count, seconds) == size
