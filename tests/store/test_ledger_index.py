"""The ledger index (`store/ledger_index.py`, `store/ledger_query.py`): what it sums is what the
session files hold, whole days and part days alike (hypothesis), and files that change or go
away are indexed again or dropped."""

from __future__ import annotations

import json
import math
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from tests.support.ledger_entries import EntryValues, request_entry

from tokenomics.domain.ledger import parse_time, rollups
from tokenomics.domain.ledger_report import classic, total
from tokenomics.domain.ledger_rows import micros
from tokenomics.domain.ledger_session import session_json, summary
from tokenomics.services.ledger_index import LedgerIndexer
from tokenomics.store.db import Database
from tokenomics.store.ledger_index import LedgerIndex
from tokenomics.store.ledger_query import DAY_US, LedgerFilter, plan

T0 = datetime(2026, 11, 1, tzinfo=UTC)
TOKENS = ["a" * 64, "b" * 64, "c" * 64]


def entry(moment: datetime, **kw: Any) -> dict[str, Any]:
    values: dict[str, Any] = {
        "recorded_at": moment, "token_hash": TOKENS[0], "model": "gpt-4o", "provider": "openai",
        "input_tokens": 10, "output_tokens": 5, "duration_ms": 1, "status_code": 200,
        "cost_usd": 0.01,
    }  # fmt: skip
    values.update(kw)
    return request_entry(EntryValues(**values))


requests_st = st.lists(
    st.builds(
        entry,
        moment=st.integers(0, 5 * 24 * 3600 - 1).map(lambda s: T0 + timedelta(seconds=s)),
        token_hash=st.sampled_from(TOKENS),
        model=st.sampled_from(["gpt-4o", "claude-x", ""]),
        provider=st.sampled_from(["openai", "anthropic", ""]),
        input_tokens=st.integers(0, 10**9),
        output_tokens=st.integers(0, 10**6),
        status_code=st.sampled_from([200, 400, 429, 500]),
        cost_usd=st.one_of(st.none(), st.floats(0, 100, allow_nan=False)),
        retry_count=st.integers(0, 3),
        estimated=st.booleans(),
        provider_meta=st.fixed_dictionaries({
            "cached_input_tokens": st.integers(0, 1000), "reasoning_tokens": st.integers(0, 50),
        }),
        rule_matches=st.lists(st.fixed_dictionaries(
            {"action": st.sampled_from(["fail", "warn"]), "message": st.just("m")}
        ), max_size=2),
    ),
    max_size=12,
)  # fmt: skip
sessions_st = st.lists(
    st.tuples(st.sampled_from(["main", "feature/x", ""]), requests_st), min_size=0, max_size=4
)


def make_session(n: int, branch: str, requests: list[dict[str, Any]]) -> dict[str, Any]:
    return session_json(
        session_id=f"{n:08x}", started_at=T0, ended_at=T0 + timedelta(days=5),
        git={"branch": branch, "commit_start": "abc1234", "repo_root": "/src/proj"},
        requests=requests,
    )  # fmt: skip


def write(sessions: Path, specs: list[tuple[str, list[dict[str, Any]]]]) -> list[dict[str, Any]]:
    sessions.mkdir(parents=True, exist_ok=True)
    made = []
    for n, (branch, requests) in enumerate(specs):
        session = make_session(n, branch, requests)
        (sessions / f"2026-11-01_{n:08x}.json").write_text(json.dumps(session))
        made.append(session)
    return made


def same(a: dict[str, Any], b: dict[str, Any]) -> bool:
    """Equal, costs to float rounding (SQLite and Python add in different orders)."""
    if a.keys() != b.keys():
        return False
    for key, value in a.items():
        other = b[key]
        if isinstance(value, dict):
            if not same(value, other):
                return False
        elif isinstance(value, float) and isinstance(other, float):
            if not math.isclose(value, other, rel_tol=1e-9, abs_tol=1e-9):
                return False
        elif value != other:
            return False
    return True


def indexer(sessions: Path) -> LedgerIndexer:
    return LedgerIndexer(LedgerIndex(Database.in_memory()), sessions)


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(specs=sessions_st)
def test_summary_from_the_index_is_the_summary_of_the_files(
    tmp_path_factory: Any, specs: list[tuple[str, list[dict[str, Any]]]]
) -> None:
    sessions = tmp_path_factory.mktemp("ledger") / "sessions"
    made = write(sessions, specs)
    ix = indexer(sessions)
    ix.sync()
    singles = [
        ix.index.groups(ix.key, LedgerFilter(), (k,)) for k in ("model", "provider", "token")
    ]
    from_index = classic(ix.index.session_count(ix.key, LedgerFilter()), *singles)
    # the per-day sums of every mix of facets add up the same
    mixed = ix.index.groups(ix.key, LedgerFilter(), ("model", "token", "branch"))
    assert same(total(mixed).as_totals(), from_index["totals"])
    assert same(from_index, summary(made)), (from_index, summary(made))


bounds_st = st.one_of(st.none(), st.integers(-3600, 6 * 24 * 3600).map(
    lambda s: T0 + timedelta(seconds=s)
))  # fmt: skip


@settings(
    max_examples=80, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    specs=sessions_st, since=bounds_st, until=bounds_st, branch=st.sampled_from(["", "main"]),
    tokens=st.sampled_from([(), (TOKENS[0],), (TOKENS[1], TOKENS[2])]),
)  # fmt: skip
def test_filtered_totals_from_the_index_are_those_of_the_matching_requests(
    tmp_path_factory: Any, specs: list[tuple[str, list[dict[str, Any]]]],
    since: datetime | None, until: datetime | None, branch: str, tokens: tuple[str, ...],
) -> None:  # fmt: skip
    sessions = tmp_path_factory.mktemp("ledger") / "sessions"
    write(sessions, specs)
    ix = indexer(sessions)
    ix.sync()
    f = LedgerFilter(
        micros(since) if since else None, micros(until) if until else None, branch=branch,
        tokens=tokens,
    )  # fmt: skip
    kept = [
        r for b, requests in specs for r in requests
        if (not branch or b == branch)
        and (not tokens or r["token_hash"] in tokens)
        and (since is None or parse_time(r["timestamp"]) >= since)  # type: ignore[operator]
        and (until is None or parse_time(r["timestamp"]) < until)  # type: ignore[operator]
    ]  # fmt: skip
    groups = ix.index.groups(ix.key, f, ("day",))
    from_index, expected = total(groups).as_totals(), rollups(kept)["totals"]
    assert same(from_index, expected), (from_index, expected)
    days = Counter(r["timestamp"][:10] for r in kept)
    assert {g[0][0]: g[1].request_count for g in groups} == days
    # by a facet other than the filtered key's (the per-day sums of every facet then)
    by_model = ix.index.groups(ix.key, f, ("day", "model"))
    assert same(total(by_model).as_totals(), expected)


def test_the_plan_reads_whole_days_from_the_sums_and_part_days_request_by_request() -> None:
    midnight = micros(T0)
    assert plan(LedgerFilter()) == plan(LedgerFilter()).__class__(True, None, None, ())
    whole = plan(LedgerFilter(midnight, midnight + 2 * DAY_US))
    assert (whole.whole, whole.first, whole.end, whole.ranges) == (
        True, "2026-11-01", "2026-11-03", ()
    )  # fmt: skip
    cut = plan(LedgerFilter(midnight + 5, midnight + 2 * DAY_US + 7))
    assert (cut.first, cut.end) == ("2026-11-02", "2026-11-03")
    assert cut.ranges == (
        (midnight + 5, midnight + DAY_US), (midnight + 2 * DAY_US, midnight + 2 * DAY_US + 7)
    )  # fmt: skip
    inside = plan(LedgerFilter(midnight + 5, midnight + 9))
    assert (inside.whole, inside.ranges) == (False, ((midnight + 5, midnight + 9),))
    assert plan(LedgerFilter(midnight + 9, midnight + 5)).ranges == ()  # empty, not an error


def test_changed_and_removed_files_are_indexed_again_or_dropped(tmp_path: Path) -> None:
    sessions = tmp_path / "sessions"
    write(sessions, [("main", [entry(T0)]), ("dev", [entry(T0), entry(T0)])])
    ix = indexer(sessions)
    assert (ix.sync().files, ix.sync().files) == (2, 0)  # the second sync reads nothing
    path = sessions / "2026-11-01_00000000.json"
    path.write_text(json.dumps(make_session(0, "main", [entry(T0)] * 5)))
    (sessions / "2026-11-01_00000001.json").unlink()
    result = ix.sync()
    assert (result.files, result.requests, result.removed) == (1, 5, 1)
    groups = ix.index.groups(ix.key, LedgerFilter(), ("branch",))
    assert [(k, a.request_count) for k, a in groups] == [(("main",), 5)]
    path.write_text("{not json")
    ix.sync()
    assert ix.index.groups(ix.key, LedgerFilter(), ("branch",)) == []
    assert ix.index.session_count(ix.key, LedgerFilter()) == 0


def test_rebuild_gives_the_index_the_lazy_sync_gave(tmp_path: Path) -> None:
    sessions = tmp_path / "sessions"
    write(sessions, [("main", [entry(T0 + timedelta(hours=h)) for h in range(30)]), ("x", [])])
    db = Database.open(tmp_path / "tokenomics.db")
    ix = LedgerIndexer(LedgerIndex(db), sessions)
    ix.sync()

    def contents() -> tuple[list[Any], list[Any]]:
        requests = db.query("SELECT * FROM ledger_requests ORDER BY ts, seq")
        daily = db.query("SELECT * FROM ledger_daily ORDER BY day, model, token_hash")
        return [r[1:] for r in requests], [r[1:] for r in daily]  # without the file ids

    lazy = contents()
    assert ix.rebuild().requests == 30
    assert contents() == lazy and len(lazy[1]) == 2  # two days of sums
    ix.close()
