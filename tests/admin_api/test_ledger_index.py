"""The incremental ledger index: a journal read as it grows (a half-written last line waits),
replaced by its session JSON without counting twice, a rewritten file read again."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import orjson

from tokenomics.domain.ledger import EntryValues, request_entry
from tokenomics.services.admin.aggregate import COUNT, INPUT
from tokenomics.services.admin.ledger_index import LedgerIndex
from tokenomics.services.ledger_files import build_session, read_journal, records_line

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


def test_a_growing_journal_is_read_from_where_it_stopped(tmp_path: Path) -> None:
    journal = tmp_path / "2026-12-01_s1.journal"
    journal.write_bytes(header() + records_line(entry(0)))
    index = LedgerIndex(tmp_path)
    index.refresh()
    assert index.total.totals()[COUNT] == 1
    line = records_line(entry(1))
    with journal.open("ab") as f:
        f.write(line[:20])  # half a line: not yet
    index.refresh()
    assert index.total.totals()[COUNT] == 1
    with journal.open("ab") as f:
        f.write(line[20:] + orjson.dumps({"git": {"branch": "dev"}}) + b"\n")
    index.refresh()
    assert index.total.totals()[COUNT] == 2 and index.total.totals()[INPUT] == 20
    assert index.files["2026-12-01_s1"].branch == "dev"
    assert index.files["2026-12-01_s1"].meta["running"] is False  # nobody holds it


def test_a_journal_replaced_by_its_session_json_counts_once(tmp_path: Path) -> None:
    journal = tmp_path / "2026-12-01_s1.journal"
    journal.write_bytes(header() + b"".join(records_line(entry(n)) for n in range(3)))
    index = LedgerIndex(tmp_path)
    index.refresh()
    assert index.total.totals()[COUNT] == 3
    content = read_journal(journal)
    assert content is not None
    session = build_session(content, T0 + timedelta(minutes=1), {})
    journal.with_suffix(".json").write_bytes(orjson.dumps(session))
    index.refresh()  # both files there: the JSON wins
    assert index.total.totals()[COUNT] == 3 and len(index.files) == 1
    journal.unlink()
    index.refresh()
    assert index.total.totals()[COUNT] == 3 and len(index.files) == 1
    journal.with_suffix(".json").unlink()
    index.refresh()
    assert index.total.totals()[COUNT] == 0 and index.total.cells == {}


def test_unreadable_and_foreign_files_are_skipped(tmp_path: Path) -> None:
    (tmp_path / "broken.json").write_bytes(b"{not json")
    (tmp_path / "list.json").write_bytes(b"[1, 2]")
    (tmp_path / "notes.txt").write_bytes(b"hello")
    (tmp_path / "headless.journal").write_bytes(b"garbage\n")
    index = LedgerIndex(tmp_path)
    index.refresh()
    assert index.files == {} and index.total.totals()[COUNT] == 0
    missing = LedgerIndex(tmp_path / "nope")
    missing.refresh()
    assert missing.files == {}
