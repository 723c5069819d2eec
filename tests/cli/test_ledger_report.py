"""`ledger summary --by/--since/--until/--repo/--branch`, `ledger top`, `ledger export` and
`ledger reindex` over session files (the ledger index, `cli/ledger_report.py`), their JSON and
CSV shapes, and the per-day chart on a terminal (plain text when piped)."""

from __future__ import annotations

import csv
import io
import json
import os
import re
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from tests.support.ledger_entries import EntryValues, request_entry

from tokenomics.cli import ledger_report
from tokenomics.cli.context import Context
from tokenomics.cli.ledger_chart import bar, chart_rows
from tokenomics.domain.ledger_session import session_json

NOW = datetime.now(UTC).replace(microsecond=0)
MIDNIGHT = NOW.replace(hour=0, minute=0, second=0)
RECENT = NOW - min(timedelta(hours=2), (NOW - MIDNIGHT) / 2)  # today, whatever the hour
A, B = "a" * 64, "b" * 64
Cli = Callable[..., Any]


def entry(moment: datetime, cost: float | None, **kw: Any) -> dict[str, Any]:
    values: dict[str, Any] = {
        "recorded_at": moment, "token_hash": A, "model": "gpt-4o", "provider": "openai",
        "input_tokens": 100, "output_tokens": 10, "duration_ms": 3, "status_code": 200,
        "cost_usd": cost,
    }  # fmt: skip
    values.update(kw)
    return request_entry(EntryValues(**values))


def write(data: Path, sid: str, started: datetime, branch: str, requests: list[dict[str, Any]],
          repo: str = "/src/proj") -> None:  # fmt: skip
    session = session_json(
        session_id=sid, started_at=started, ended_at=started + timedelta(minutes=5),
        git={"branch": branch, "commit_start": f"c{sid[:6]}", "repo_root": repo},
        requests=requests,
    )  # fmt: skip
    sessions = data / "sessions"
    sessions.mkdir(parents=True, exist_ok=True)
    (sessions / f"{started:%Y-%m-%d}_{sid}.json").write_text(json.dumps(session))


@pytest.fixture
def data(home: Path) -> Path:
    """Three days back, a day back and up to two hours back (today still, past midnight: the
    tests group by day), on two branches and two repos."""
    data = home / ".tokenomics"
    old, day, recent = NOW - timedelta(days=3), NOW - timedelta(days=1), RECENT
    write(data, "aaaa0001", old, "main", [entry(old, 0.5), entry(old, 0.25, token_hash=B)])
    write(data, "bbbb0002", day, "feature/x", [
        entry(day, 1.0, metadata={"agent_id": "claude"}),
        entry(day, None, model="mystery", metadata={"agent_id": "claude"}),
    ])  # fmt: skip
    write(data, "cccc0003", recent, "main", [entry(recent, 2.0, model="=HYPERLINK(1)")],
          repo="/elsewhere/tool")  # fmt: skip
    return data


def out_json(cli: Cli, *args: str) -> Any:
    result = cli("ledger", *args)
    assert result.code == 0, result.err
    return json.loads(result.out)


def test_by_branch_splits_the_cost(cli: Cli, data: Path) -> None:
    out = out_json(cli, "summary", "--by", "branch", "--json")
    assert list(out) == ["sessions", "by", "totals", "groups"]
    assert out["sessions"] == 3 and out["by"] == ["branch"]
    by = {g["branch"]: g for g in out["groups"]}
    assert (by["main"]["cost_usd"], by["main"]["request_count"]) == (2.75, 3)
    assert by["feature/x"]["cost_usd"] == 1.0 and by["feature/x"]["unpriced_count"] == 1
    assert out["totals"]["cost_usd"] == 3.75 and out["totals"]["unpriced_count"] == 1
    text = cli("ledger", "summary", "--by", "branch").out
    assert "By Branch:" in text and "  main       3" in text and "$1.00+" in text
    assert "█" not in text and "┃" not in text  # piped: plain tables, no chart


def test_several_keys_group_in_order(cli: Cli, data: Path) -> None:
    out = out_json(cli, "summary", "--by", "branch", "--by", "token", "--json")
    keys = [(g["branch"], g["token"]) for g in out["groups"]]
    assert keys == [("feature/x", A[:16]), ("main", A[:16]), ("main", B[:16])]
    days = out_json(cli, "summary", "--by", "day", "--by", "agent", "--json")["groups"]
    assert [(g["day"], g["agent"]) for g in days] == [
        ((NOW - timedelta(days=3)).strftime("%Y-%m-%d"), ""),
        ((NOW - timedelta(days=1)).strftime("%Y-%m-%d"), "claude"),
        (RECENT.strftime("%Y-%m-%d"), ""),
    ]


def test_since_and_until_take_durations_dates_and_timestamps(cli: Cli, data: Path) -> None:
    def total(*args: str) -> tuple[int, int]:
        out = out_json(cli, "summary", "--json", *args)
        return out["sessions"], out["totals"]["request_count"]

    assert total() == (3, 5)
    assert total("--since", "2d") == (2, 3)
    assert total("--since", "12h") == (1, 1)
    assert total("--until", "12h") == (2, 4)
    assert total("--since", "1w", "--until", "30h") == (1, 2)
    yesterday = (NOW - timedelta(days=1)).strftime("%Y-%m-%d")
    assert total("--since", yesterday, "--until", yesterday) == (1, 2)  # the whole day
    stamp = (NOW - timedelta(hours=3)).strftime("%Y-%m-%dT%H:%M:%SZ")
    assert total("--since", stamp) == (1, 1)
    result = cli("ledger", "summary", "--since", "last tuesday")
    assert result.code == 1 and "invalid time" in result.err and "7d" in result.err


def test_repo_and_branch_filters(cli: Cli, data: Path) -> None:
    out = out_json(cli, "summary", "--json", "--branch", "main")
    assert (out["sessions"], out["totals"]["request_count"]) == (2, 3)
    assert out_json(cli, "summary", "--json", "--repo", "tool")["totals"]["cost_usd"] == 2.0
    assert out_json(cli, "summary", "--json", "--repo", "/src/proj")["sessions"] == 2
    assert out_json(cli, "summary", "--json", "--repo", "pro%")["sessions"] == 0  # no wildcard


def test_csv_shapes(cli: Cli, data: Path) -> None:
    rows = list(csv.reader(io.StringIO(cli("ledger", "summary", "--by", "model", "--csv").out)))
    assert rows[0][:4] == ["model", "request_count", "input_tokens", "output_tokens"]
    by = {r[0]: dict(zip(rows[0], r, strict=True)) for r in rows[1:]}
    assert by["mystery"]["cost_usd"] == "" and by["mystery"]["unpriced_count"] == "1"
    assert by["gpt-4o"]["cost_usd"] == "1.75"
    result = cli("ledger", "summary", "--json", "--csv")
    assert result.code == 1 and "cannot be used together" in result.err


def test_top_ranks_sessions_and_branches_by_cost(cli: Cli, data: Path) -> None:
    top = out_json(cli, "top", "--json", "--limit", "2")
    assert [(t["session"], t["cost_usd"]) for t in top] == [("cccc0003", 2.0), ("bbbb0002", 1.0)]
    assert top[0]["branch"] == "main" and top[0]["started_at"].endswith("Z")
    assert [t["branch"] for t in out_json(cli, "top", "--by", "branch", "--json")] == [
        "main", "feature/x"
    ]  # fmt: skip
    lines = cli("ledger", "top", "--by", "token").out.splitlines()
    assert lines[0] == "Top 2 by cost:" and lines[2].split()[0] == A[:16]
    rows = list(csv.reader(io.StringIO(cli("ledger", "top", "--csv").out)))
    assert rows[0][:3] == ["session", "started_at", "branch"] and rows[1][0] == "cccc0003"


def test_export_csv_and_json_lines(cli: Cli, data: Path, tmp_path: Path) -> None:
    rows = list(csv.DictReader(io.StringIO(cli("ledger", "export").out)))
    assert [r["session_id"] for r in rows] == ["aaaa0001"] * 2 + ["bbbb0002"] * 2 + ["cccc0003"]
    assert rows[0]["token"] == A[:16] and rows[0]["branch"] == "main"
    assert (rows[3]["cost_usd"], rows[3]["unpriced"]) == ("", "true")
    assert rows[4]["model"] == "'=HYPERLINK(1)"  # a spreadsheet shows it, never runs it
    lines = cli("ledger", "export", "--json", "--since", "2d").out.splitlines()
    records = [json.loads(line) for line in lines]
    assert [r["model"] for r in records] == ["gpt-4o", "mystery", "=HYPERLINK(1)"]
    assert records[1]["cost_usd"] is None and records[1]["agent"] == "claude"
    target = tmp_path / "out.jsonl"
    result = cli("ledger", "export", "--json", "--branch", "main", "--output", str(target))
    assert result.code == 0 and "Exported 3 requests" in result.err and result.out == ""
    assert len(target.read_text().splitlines()) == 3
    assert os.stat(target).st_mode & 0o777 == 0o600


def test_reindex_creates_the_index_in_the_store_and_commands_use_it(cli: Cli, data: Path) -> None:
    db = data / "tokenomics.db"
    out_json(cli, "summary", "--json")
    assert not db.exists()  # a read-only command never creates the store
    result = cli("ledger", "reindex")
    assert result.code == 0 and "Indexed 3 session files (5 requests)" in result.out
    assert db.exists()
    write(data, "dddd0004", NOW, "main", [entry(NOW, 4.0)])  # indexed lazily by the next read
    assert out_json(cli, "summary", "--json")["totals"]["cost_usd"] == 7.75


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_a_terminal_gets_rich_tables_and_a_per_day_chart(data: Path, home: Path) -> None:
    out = Terminal()
    ctx = Context(environ={"HOME": str(home), "TOKENOMICS_HASH_KEY": "k"}, cwd=home, stdout=out)
    ledger_report.summary(by=("branch",), ctx=ctx)
    text = re.sub(r"\x1b\[[0-9;]*m", "", out.getvalue())
    assert "┃ BRANCH" in text and "│ feature/x │" in text and "Spend per day (UTC)" in text
    chart = text.split("Spend per day (UTC)")[1].splitlines()[1:]
    days = [(NOW - timedelta(days=n)).strftime("%Y-%m-%d") for n in (3, 2, 1, 0)]
    assert [line.split()[0] for line in chart] == days  # every day, those without requests too
    assert chart[1].split()[1:] == ["$0.0000"] and chart[3].split()[1].startswith("█" * 40)


def test_chart_rows_fill_days_without_requests() -> None:
    rows = chart_rows([
        ("2026-12-01", {"cost_usd": 1.0, "request_count": 1}),
        ("2026-12-03", {"cost_usd": 2.0, "request_count": 2, "unpriced_count": 1}),
    ])  # fmt: skip
    assert [(d, c) for d, _, c in rows] == [
        ("2026-12-01", "$1.00"), ("2026-12-02", "$0.0000"), ("2026-12-03", "$2.00+")
    ]  # fmt: skip
    assert len(rows[2][1]) == 40 and len(rows[0][1]) == 20 and rows[1][1] == ""
    assert bar(1, 3, 1) == "▍" and bar(0, 3) == ""
