"""`tokenomics ledger` (`cli.md` §7.8, scenarios 84-91, plus cost columns): summary, sessions,
show, their JSON forms, sorting, durations, branch cut, prefixes and foreign files."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from tests.support.ledger_entries import EntryValues, records_line, request_entry

from tokenomics.domain.ledger_session import session_json
from tokenomics.services.ledger_files import Journal

T0 = datetime(2026, 2, 25, 10, 30, 0, tzinfo=UTC)
A, B = "a" * 64, "b" * 64


def entry(token: str, model: str, inp: int, out: int, cost: float | None, **kw: Any) -> dict:
    return request_entry(
        EntryValues(
            recorded_at=T0, token_hash=token, model=model, provider=kw.pop("provider", "openai"),
            input_tokens=inp, output_tokens=out, duration_ms=3, status_code=200, cost_usd=cost,
            **kw,
        )
    )  # fmt: skip


def write_session(
    data: Path, sid: str, started: datetime, ms: int, requests: list[dict], branch: str = ""
) -> dict[str, Any]:
    session = session_json(
        session_id=sid, started_at=started, ended_at=started + timedelta(milliseconds=ms),
        git={"branch": branch, "commit_start": "abc1234", "commit_end": "def5678"},
        requests=requests,
    )  # fmt: skip
    sessions = data / "sessions"
    sessions.mkdir(parents=True, exist_ok=True)
    (sessions / f"{started:%Y-%m-%d}_{sid}.json").write_text(json.dumps(session, indent=2))
    return session


@pytest.fixture
def data(home: Path) -> Path:
    return home / ".tokenomics"


@pytest.fixture
def two(data: Path) -> Path:
    """Session 2 (started later) is written first, so sorting is visible."""
    write_session(
        data, "bbbb2222", T0 + timedelta(hours=1), 59_000,
        [entry(B, "claude-x", 150, 75, None, provider="anthropic")],
        branch="feature/a-very-long-branch-name-here",
    )  # fmt: skip
    write_session(
        data, "aaaa1111", T0, 600_000,
        [entry(A, "gpt-4", 100, 50, 0.0045),
         entry(A, "gpt-4", 200, 100, 0.009, provider_meta={"cached_input_tokens": 50})],
        branch="main",
    )  # fmt: skip
    (data / "sessions" / "x.json").write_text("{not json")
    (data / "sessions" / "notes.txt").write_text("hello")
    return data


Cli = Callable[..., Any]


def test_no_sessions(cli: Cli) -> None:
    for args in (("summary",), ("sessions",)):
        result = cli("ledger", *args)
        assert (result.code, result.out) == (0, "No sessions found.\n")
    assert json.loads(cli("ledger", "sessions", "--json").out) == []
    assert json.loads(cli("ledger", "summary", "--json").out)["sessions"] == 0


def test_summary_table(cli: Cli, two: Path) -> None:
    result = cli("ledger", "summary")
    assert result.code == 0, result.err
    assert result.out == (
        "Sessions: 2\n"
        "\n"
        "Totals:\n"
        "  Requests        3\n"
        "  Input tokens    450\n"
        "  Output tokens   225\n"
        "  Total tokens    675\n"
        "  Cached input    50\n"
        "  Cost            $0.0135+ (1 request without a price)\n"
        "\n"
        "By Model:\n"
        "  NAME      REQUESTS  INPUT  OUTPUT  TOTAL  COST\n"
        "  claude-x  1         150    75      225    n/a\n"
        "  gpt-4     2         300    150     450    $0.0135\n"
        "\n"
        "By Provider:\n"
        "  NAME       REQUESTS  INPUT  OUTPUT  TOTAL  COST\n"
        "  anthropic  1         150    75      225    n/a\n"
        "  openai     2         300    150     450    $0.0135\n"
    )


def test_summary_json(cli: Cli, two: Path) -> None:
    out = json.loads(cli("ledger", "summary", "--json").out)
    assert list(out) == ["sessions", "totals", "by_model", "by_provider", "by_token"]
    assert out["sessions"] == 2 and out["totals"]["cost_usd"] == 0.0135
    assert out["totals"]["unpriced_count"] == 1
    assert "models_used" not in out["by_token"][A]


def test_sessions_table_sorted_with_durations_and_cut_branch(cli: Cli, two: Path) -> None:
    lines = cli("ledger", "sessions").out.splitlines()
    assert lines[0].split() == [
        "SESSION",
        "STARTED",
        "DURATION",
        "REQUESTS",
        "TOKENS",
        "BRANCH",
        "COST",
    ]
    assert lines[1].split() == [
        "aaaa1111",
        "2026-02-25T10:30:00",
        "10m0s",
        "2",
        "450",
        "main",
        "$0.0135",
    ]
    assert lines[2].split() == [
        "bbbb2222", "2026-02-25T11:30:00", "59s", "1", "225", "feature/a-very-long-branch-...", "n/a"
    ]  # fmt: skip
    assert lines[0].index("STARTED") == lines[1].index("2026") == 10


def test_sessions_json_is_the_full_objects_in_order(cli: Cli, two: Path) -> None:
    out = json.loads(cli("ledger", "sessions", "--json").out)
    assert [s["session_id"] for s in out] == ["aaaa1111", "bbbb2222"]
    assert out[0]["requests"][0]["cost_usd"] == 0.0045


def test_show_by_prefix(cli: Cli, two: Path) -> None:
    result = cli("ledger", "show", "aaaa")
    assert result.code == 0, result.err
    lines = result.out.splitlines()
    assert lines[:10] == [
        "Session: aaaa1111",
        "Started: 2026-02-25T10:30:00Z",
        "Ended:   2026-02-25T10:40:00Z",
        "Duration: 10m0s",
        "",
        "Git:",
        "  Branch: main",
        "  Start:  abc1234",
        "  End:    def5678",
        "",
    ]
    assert "Totals:" in lines and "By Model:" in lines and "By Provider:" in lines
    assert "  Cost            $0.0135" in lines
    assert json.loads(cli("ledger", "show", "bbbb2222", "--json").out)["session_id"] == "bbbb2222"


def test_show_not_found_and_ambiguous(cli: Cli, two: Path, data: Path) -> None:
    result = cli("ledger", "show", "99999999")
    assert (result.code, result.err) == (1, 'Error: session "99999999" not found\n')
    write_session(data, "aaaa9999", T0, 1000, [])
    result = cli("ledger", "show", "aaaa")
    assert result.code == 1
    assert "ambiguous" in result.err and "aaaa1111, aaaa9999" in result.err


def test_dir_flag_reads_only_that_directory(cli: Cli, two: Path, tmp_path: Path) -> None:
    other = tmp_path / "other"
    write_session(other, "cccc3333", T0, 1000, [])
    out = json.loads(cli("ledger", "sessions", "--json", "--all", "--dir", str(other)).out)
    assert [s["session_id"] for s in out] == ["cccc3333"]


def test_a_crashed_journal_is_listed_read_only(cli: Cli, data: Path) -> None:
    sessions = data / "sessions"
    sessions.mkdir(parents=True)
    path = sessions / "2026-02-25_dddd4444.journal"
    journal = Journal(
        path, {"session_id": "dddd4444", "started_at": "2026-02-25T10:30:00Z", "git": {}}
    )
    journal.append([records_line(entry(A, "gpt-4", 1, 2, 0.1))])
    journal.close()
    out = json.loads(cli("ledger", "sessions", "--json").out)
    assert [(s["session_id"], s["totals"]["total_tokens"]) for s in out] == [("dddd4444", 3)]
    assert "running" not in out[0]  # no process holds its lock: it crashed
    assert path.exists()


def test_sessions_started_in_one_second_are_listed_by_their_end(cli: Cli, data: Path) -> None:
    """Times are whole seconds; a crashed session and the restart after it often share one."""
    for sid, ms in (("zzzz9999", 400), ("aaaa0000", 2_000), ("mmmm5555", 1_100)):
        write_session(data, sid, T0, ms, [])
    out = json.loads(cli("ledger", "sessions", "--json", "--all").out)
    assert [s["session_id"] for s in out] == ["zzzz9999", "mmmm5555", "aaaa0000"]
