"""The admin API's view of the ledger index: a journal read as it grows (a half-written last
line waits), replaced by its session JSON without counting twice, a removed file taken away,
foreign files skipped, the latest requests read whole from their files."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import orjson
import pytest
from tests.support.ledger_entries import EntryValues, records_line, request_entry

from tokenomics.services.admin.ledger_view import LedgerView
from tokenomics.services.ledger_files import build_session, read_journal

T0 = datetime(2026, 12, 1, 12, tzinfo=UTC)


def entry(n: int) -> dict[str, object]:
    return request_entry(
        EntryValues(
            recorded_at=T0 + timedelta(seconds=n), token_hash="t" * 64, model="gpt-4o",
            provider="openai", input_tokens=10, output_tokens=5, duration_ms=1, status_code=200,
            cost_usd=0.001,
        )
    )  # fmt: skip


def header() -> bytes:
    head = {"session_id": "s1", "started_at": "2026-12-01T12:00:00Z", "git": {}, "pid": 1}
    return orjson.dumps(head) + b"\n"


def view_of(tmp_path: Path) -> LedgerView:
    (tmp_path / "sessions").mkdir(exist_ok=True)
    return LedgerView.open(tmp_path / "tokenomics.db", tmp_path / "sessions")


def count(view: LedgerView) -> int:
    view.refresh()
    return view.total().request_count


def test_a_growing_journal_is_read_as_it_grows(tmp_path: Path) -> None:
    view = view_of(tmp_path)
    journal = tmp_path / "sessions" / "2026-12-01_s1.journal"
    journal.write_bytes(header() + records_line(entry(0)))
    assert count(view) == 1
    line = records_line(entry(1))
    with journal.open("ab") as f:
        f.write(line[:20])  # half a line: not yet
    assert count(view) == 1
    with journal.open("ab") as f:
        f.write(line[20:] + orjson.dumps({"git": {"branch": "dev"}}) + b"\n")
    assert count(view) == 2 and view.total().input_tokens == 20
    [only] = view.files()
    assert only.git == {"branch": "dev"} and only.session_id == "s1"
    assert only.running is False  # nobody holds it
    assert [e["timestamp"] for e in view.newest(5)] == [
        entry(1)["timestamp"],
        entry(0)["timestamp"],
    ]
    assert view.newest(5)[0]["session_id"] == "s1"
    view.close()


def test_a_journal_replaced_by_its_session_json_counts_once(tmp_path: Path) -> None:
    view = view_of(tmp_path)
    journal = tmp_path / "sessions" / "2026-12-01_s1.journal"
    journal.write_bytes(header() + b"".join(records_line(entry(n)) for n in range(3)))
    assert count(view) == 3
    content = read_journal(journal)
    assert content is not None
    session = build_session(content, T0 + timedelta(minutes=1), {})
    journal.with_suffix(".json").write_bytes(orjson.dumps(session))
    assert count(view) == 3 and len(view.files()) == 1  # both files there: the JSON wins
    journal.unlink()
    assert count(view) == 3 and len(view.files()) == 1
    journal.with_suffix(".json").unlink()
    assert count(view) == 0 and view.files() == [] and view.groups("model") == {}
    view.close()


def test_unreadable_and_foreign_files_are_skipped(tmp_path: Path) -> None:
    view = view_of(tmp_path)
    sessions = tmp_path / "sessions"
    (sessions / "broken.json").write_bytes(b"{not json")
    (sessions / "list.json").write_bytes(b"[1, 2]")
    (sessions / "notes.txt").write_bytes(b"hello")
    (sessions / "headless.journal").write_bytes(b"garbage\n")
    assert count(view) == 0 and view.files() == [] and view.newest(5) == []
    missing = LedgerView.open(tmp_path / "tokenomics.db", tmp_path / "nope")
    assert count(missing) == 0 and missing.files() == []
    off = LedgerView.open(tmp_path / "tokenomics.db", None)
    assert count(off) == 0 and off.files() == [] and off.newest(5) == []
    view.close()
    missing.close()


def test_the_summary_adds_a_growing_journal_to_the_finished_sessions(tmp_path: Path) -> None:
    """The finished sessions' sums are kept while a journal grows; both count, once."""
    from tests.support.ledger_data import token_hashes, write_sessions

    from tokenomics.domain.ledger_session import summary
    from tokenomics.services.admin.analytics import Analytics
    from tokenomics.services.ledger_files import read_sessions

    view = view_of(tmp_path)
    sessions = tmp_path / "sessions"
    write_sessions(sessions, sessions=3, requests=90, tokens=token_hashes(7))
    analytics = Analytics(view)
    assert analytics.summary(0)["totals"]["request_count"] == 90
    journal = sessions / "2026-12-01_s1.journal"
    journal.write_bytes(header() + records_line(entry(0)))
    got = analytics.summary(0)
    assert got["totals"]["request_count"] == 91 and got["sessions"] == 4
    with journal.open("ab") as f:
        f.write(records_line(entry(1)))
    got = analytics.summary(0)
    expected = summary(read_sessions(sessions))
    assert got["totals"]["request_count"] == expected["totals"]["request_count"] == 92
    assert got["totals"]["cost_usd"] == pytest.approx(expected["totals"]["cost_usd"])
    tokens = {t["key"]: t["request_count"] for t in got["by_token"]}
    assert tokens == {k: v["request_count"] for k, v in expected["by_token"].items()}
    assert got["recent"][0]["timestamp"] == entry(1)["timestamp"]
    # a session that ends is added to the kept sums; one removed has them summed anew
    write_sessions(sessions, sessions=1, requests=10, tokens=token_hashes(7), seed=3)
    same_as_files(analytics.summary(0), sessions, 102)
    sorted(sessions.glob("*.json"))[0].unlink()
    same_as_files(analytics.summary(0), sessions, None)
    view.close()


def same_as_files(got: dict[str, Any], sessions: Path, count: int | None) -> None:
    from tokenomics.domain.ledger_session import summary
    from tokenomics.services.ledger_files import read_sessions

    expected = summary(read_sessions(sessions))
    assert got["totals"]["request_count"] == expected["totals"]["request_count"]
    assert count is None or got["totals"]["request_count"] == count
    assert got["totals"]["cost_usd"] == pytest.approx(expected["totals"]["cost_usd"])
    for name in ("by_token", "by_model", "by_provider"):
        ours = {t["key"]: (t["request_count"], t["total_tokens"]) for t in got[name]}
        theirs = {k: (v["request_count"], v["total_tokens"]) for k, v in expected[name].items()}
        assert ours == theirs, name
