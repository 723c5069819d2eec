"""Ledger sessions as flat rows for the ledger index, and index aggregates back as rollups.

Pure. `request_rows` turns one session (`cli.md` §7.3) into one tuple per request in the column
order of `REQUEST_COLUMNS`, with the session's git context on each row; `Aggregate` holds the
sums one SQL group returns (`SUMS_SQL`) and renders them in the very shapes
`domain.ledger.Rollup` and `Totals` give (`as_rollup`, `as_totals`), so a summary read from the
index and one computed from the files are the same JSON.

The `agent` of a request is its `agent_id` metadata (the OpenClaw header), else its `run_id`
metadata, else the session's `run_id`; the `commit` of a session is the commit it started on
(`git.commit_start`, else `commit_end`).
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from tokenomics.domain.ledger import parse_time
from tokenomics.domain.ledger_session import session_requests

if TYPE_CHECKING:
    from collections.abc import Mapping

_EXTRA = ("cached_input_tokens", "cache_creation_tokens", "reasoning_tokens")
_INT_MAX = 2**62  # far beyond any real figure; keeps hostile numbers inside SQLite's int64
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)

REQUEST_COLUMNS = (
    "seq", "ts", "day", "session_id", "model", "provider", "token_hash", "branch",
    "git_commit", "repo", "agent", "status_code", "input_tokens", "output_tokens",
    "cached_input_tokens", "cache_creation_tokens", "reasoning_tokens", "cost_usd",
    "estimated", "retry_count", "rule_failures", "duration_ms", "path",
)  # fmt: skip

# The summed columns of `ledger_daily`, and the same values for one row of `ledger_requests`;
# `Aggregate.from_sql` reads `SUMS_SQL` over either.
SUMMED = (
    "n", "input_tokens", "output_tokens", "cached_input_tokens", "cache_creation_tokens",
    "reasoning_tokens", "cost_usd", "unpriced", "estimated", "errors", "rate_limited",
    "retry_count", "rule_failures",
)  # fmt: skip
PER_REQUEST_SQL = (
    "1 AS n, input_tokens, output_tokens, cached_input_tokens, cache_creation_tokens,"
    " reasoning_tokens, COALESCE(cost_usd, 0.0) AS cost_usd, cost_usd IS NULL AS unpriced,"
    " estimated, status_code >= 400 AS errors, status_code = 429 AS rate_limited, retry_count,"
    " rule_failures"
)
SUMS_SQL = ", ".join(f"TOTAL({c})" if c == "cost_usd" else f"SUM({c})" for c in SUMMED)


def _int(entry: Mapping[str, Any], key: str) -> int:
    value = entry.get(key)
    if isinstance(value, int) and not isinstance(value, bool):
        return max(-_INT_MAX, min(value, _INT_MAX))
    return 0


def _text(mapping: Mapping[str, Any], key: str) -> str:
    value = mapping.get(key)
    return value if isinstance(value, str) else ""


def _map(mapping: Mapping[str, Any], key: str) -> Mapping[str, Any]:
    value = mapping.get(key)
    return value if isinstance(value, dict) else {}


def micros(moment: datetime) -> int:
    """Microseconds since the epoch (UTC)."""
    delta = moment - _EPOCH
    return (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds


def from_micros(value: int) -> datetime:
    return datetime.fromtimestamp(value / 1_000_000, UTC)


@dataclass(frozen=True, slots=True)
class SessionRow:
    """The `ledger_files` values of one session."""

    session_id: str
    started_at: str
    ended_at: str
    branch: str
    commit: str
    repo: str
    request_count: int


def session_row(session: Mapping[str, Any]) -> SessionRow:
    git = _map(session, "git")
    return SessionRow(
        _text(session, "session_id"), _text(session, "started_at"), _text(session, "ended_at"),
        _text(git, "branch"), _text(git, "commit_start") or _text(git, "commit_end"),
        _text(git, "repo_root"), len(session_requests(session)),
    )  # fmt: skip


def _cost(entry: Mapping[str, Any]) -> float | None:
    cost = entry.get("cost_usd")
    if isinstance(cost, int | float) and not isinstance(cost, bool):
        return float(cost)
    return None


def _rule_failures(entry: Mapping[str, Any]) -> int:
    matches = entry.get("rule_matches")
    if not isinstance(matches, list):
        return 0
    return sum(1 for m in matches if isinstance(m, dict) and m.get("action") == "fail")


def _agent(entry: Mapping[str, Any], session: Mapping[str, Any]) -> str:
    meta = _map(entry, "metadata")
    return _text(meta, "agent_id") or _text(meta, "run_id") or _text(session, "run_id")


def request_rows(session: Mapping[str, Any]) -> list[tuple[Any, ...]]:
    """One tuple per request of `session`, in `REQUEST_COLUMNS` order."""
    head = session_row(session)
    started = parse_time(head.started_at)
    rows: list[tuple[Any, ...]] = []
    for seq, entry in enumerate(session_requests(session)):
        moment = parse_time(_text(entry, "timestamp")) or started or _EPOCH
        meta = _map(entry, "provider_meta")
        rows.append((
            seq, micros(moment), f"{moment.astimezone(UTC):%Y-%m-%d}", head.session_id,
            str(entry.get("model", "")), _text(entry, "provider"), _text(entry, "token_hash"),
            head.branch, head.commit, head.repo, _agent(entry, session),
            _int(entry, "status_code"), _int(entry, "input_tokens"),
            _int(entry, "output_tokens"), *(_int(meta, key) for key in _EXTRA), _cost(entry),
            int(bool(entry.get("estimated"))), _int(entry, "retry_count"),
            _rule_failures(entry), _int(entry, "duration_ms"), _text(entry, "path"),
        ))  # fmt: skip
    return rows


@dataclass(slots=True)
class Aggregate:
    """The sums of one group of requests (`SUMS_SQL`, in that order)."""

    request_count: int = 0
    input_tokens: int = 0
    output_tokens: int = 0
    cached_input_tokens: int = 0
    cache_creation_tokens: int = 0
    reasoning_tokens: int = 0
    cost_usd: float = 0.0  # over the priced requests
    unpriced_count: int = 0
    estimated_count: int = 0
    error_count: int = 0
    rate_limit_count: int = 0
    retry_count: int = 0
    rule_violation_count: int = 0

    @classmethod
    def from_sql(cls, values: tuple[Any, ...]) -> Aggregate:
        n = [int(v or 0) for v in values[:13]]
        return cls(
            n[0], n[1], n[2], n[3], n[4], n[5], float(values[6] or 0.0), n[7], n[8], n[9],
            n[10], n[11], n[12],
        )  # fmt: skip

    def add(self, other: Aggregate) -> None:
        for f in fields(self):
            setattr(self, f.name, getattr(self, f.name) + getattr(other, f.name))

    def tokens(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "request_count": self.request_count,
            "input_tokens": self.input_tokens,
            "output_tokens": self.output_tokens,
            "total_tokens": self.input_tokens + self.output_tokens,
        }
        out.update((key, getattr(self, key)) for key in _EXTRA if getattr(self, key))
        return out

    def cost(self) -> dict[str, Any]:
        priced = self.unpriced_count < self.request_count or not self.request_count
        out: dict[str, Any] = {"cost_usd": round(self.cost_usd, 10) if priced else None}
        if self.unpriced_count:
            out["unpriced_count"] = self.unpriced_count
        if self.estimated_count:
            out["estimated_count"] = self.estimated_count
        return out

    def as_rollup(self) -> dict[str, Any]:
        return self.tokens() | self.cost()

    def as_totals(self) -> dict[str, Any]:
        counts = {
            "error_count": self.error_count,
            "retry_count": self.retry_count,
            "rule_violation_count": self.rule_violation_count,
            "rate_limit_count": self.rate_limit_count,
        }
        return self.tokens() | counts | self.cost()
