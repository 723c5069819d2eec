"""The ledger index filled by the real server (issue 20): sessions served on two branches of a
real git repository are indexed as the server writes them, `ledger summary --by branch` splits
their cost as the session files do, and a session recovered from a crashed journal at start is
indexed before anything reads it."""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

from tests.e2e.test_ledger import CHAT, OPENAI, post
from tests.support.ledger_entries import EntryValues, records_line, request_entry
from tests.support.proxy import start_proxy

from tokenomics.domain.ledger import parse_time
from tokenomics.services.ledger_files import Journal
from tokenomics.store.db import Database
from tokenomics.store.ledger_index import LedgerIndex
from tokenomics.store.ledger_query import LedgerFilter


def git(repo: Path, *args: str) -> str:
    done = subprocess.run(
        ["git", "-c", "user.name=t", "-c", "user.email=t@example.com", *args],
        cwd=repo, check=True, capture_output=True, text=True,
    )  # fmt: skip
    return done.stdout.strip()


def commit(repo: Path, name: str) -> str:
    (repo / name).write_text(name)
    git(repo, "add", name)
    git(repo, "commit", "-q", "-m", name)
    return git(repo, "rev-parse", "--short", "HEAD")


def indexed(data: Path) -> dict[str, tuple[str, int]]:
    """What the server's store holds for its sessions directory: stem -> (kind, requests)."""
    db = Database.open(data / "tokenomics.db")
    try:
        rows = db.query(
            "SELECT stem, kind, request_count FROM ledger_files WHERE dir = ?",
            (os.path.abspath(data / "sessions"),),
        )
    finally:
        db.close()
    return {str(stem): (str(kind), int(n)) for stem, kind, n in rows}


async def test_summary_by_branch_splits_the_cost_of_two_git_branches(
    tmp_path: Path, cli: Callable[..., Any]
) -> None:
    work, data = tmp_path / "work", tmp_path / "data"
    git(work, "init", "-q", "-b", "main")
    commits = {"main": commit(work, "a.txt")}
    for branch, model, count in (("main", "gpt-4o", 2), ("feature/login", "gpt-4o-mini", 3)):
        if branch != "main":
            git(work, "checkout", "-q", "-b", branch)
            commits[branch] = commit(work, "b.txt")
        async with start_proxy(tmp_path) as proxy, proxy.client() as client:
            token = proxy.token(OPENAI)
            for n in range(count):
                body = {
                    **CHAT,
                    "model": model,
                    "messages": [{"role": "user", "content": "hi " * n}],
                }
                assert (await post(client, token, body)).status_code == 200
    files = {p.stem: json.loads(p.read_text()) for p in (data / "sessions").glob("*.json")}
    # the servers indexed their sessions as they wrote them: nothing has read the files yet
    assert indexed(data) == {stem: ("json", len(s["requests"])) for stem, s in files.items()}
    expected = {s["git"]["branch"]: s["totals"] for s in files.values()}
    assert sorted(expected) == ["feature/login", "main"]
    result = cli("--db", str(data / "tokenomics.db"), "ledger", "summary", "--by", "branch",
                 "--json", "--dir", str(data))  # fmt: skip
    assert result.code == 0, result.err
    groups = {g["branch"]: g for g in json.loads(result.out)["groups"]}
    for branch, totals in expected.items():
        assert groups[branch]["request_count"] == totals["request_count"]
        assert groups[branch]["cost_usd"] == totals["cost_usd"] > 0
    assert groups["main"]["cost_usd"] != groups["feature/login"]["cost_usd"]
    by_commit = cli("--db", str(data / "tokenomics.db"), "ledger", "summary", "--by", "commit",
                    "--json", "--dir", str(data))  # fmt: skip
    assert {g["commit"] for g in json.loads(by_commit.out)["groups"]} == set(commits.values())


async def test_a_session_recovered_from_a_crashed_journal_is_indexed_at_start(
    tmp_path: Path,
) -> None:
    sessions = tmp_path / "data" / "sessions"
    sessions.mkdir(parents=True)
    moment = parse_time("2026-11-30T09:00:00Z")
    assert moment is not None
    values = EntryValues(
        recorded_at=moment, token_hash="f" * 64, model="gpt-4o", provider="openai",
        input_tokens=7, output_tokens=3, duration_ms=1, status_code=200, cost_usd=0.25,
    )  # fmt: skip
    journal = Journal(
        sessions / "2026-11-30_0badc0de.journal",
        {"session_id": "0badc0de", "started_at": "2026-11-30T08:59:00Z", "git": {"branch": "wip"}},
    )
    journal.append([records_line(request_entry(values))] * 2)
    journal.close()  # the process that wrote it is gone: its lock went with it
    async with start_proxy(tmp_path) as proxy:
        assert (sessions / "2026-11-30_0badc0de.json").exists()
        assert indexed(tmp_path / "data")["2026-11-30_0badc0de"] == ("json", 2)
        index = LedgerIndex(Database.open(Path(proxy.settings.storage.db_path)))
        try:
            key = str(sessions)  # absolute already
            (group,) = index.groups(key, LedgerFilter(branch="wip"), ("branch",))
            assert (group[1].request_count, group[1].cost_usd) == (2, 0.5)
        finally:
            index.close()
