"""A whole ledger session (`cli.md` §7.3) and the merge of many for `ledger summary` (§7.8).

Pure: sessions are JSON-shaped dicts in, dicts out. See `domain/ledger.py` for entries, rollups
and how an unknown price is kept apart from a zero cost.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from tokenomics.domain.durations import format_rfc3339
from tokenomics.domain.ledger import Entry, rollups

if TYPE_CHECKING:
    from collections.abc import Iterable, Mapping, Sequence
    from datetime import datetime

ROLLUP_KEYS = ("totals", "by_model", "by_provider", "by_token")
_PLAIN_TOKEN_KEYS = ("models_used", "first_seen", "last_seen")


def session_json(
    *,
    session_id: str,
    started_at: datetime,
    ended_at: datetime,
    git: Mapping[str, Any],
    requests: Sequence[Entry],
    events: Sequence[Entry] = (),
) -> Entry:
    """The session object in the key order of §7.3; `communication_events` only when present.

    `started_at`/`ended_at` are written with second precision, `duration_ms` from the exact
    times (never negative).
    """
    duration = max(0, round((ended_at - started_at).total_seconds() * 1000))
    session: Entry = {
        "session_id": session_id,
        "started_at": format_rfc3339(started_at),
        "ended_at": format_rfc3339(ended_at),
        "duration_ms": duration,
        "git": {k: v for k, v in git.items() if v not in ("", None, False)},
        **rollups(requests),
        "requests": list(requests),
    }
    if events:
        session["communication_events"] = list(events)
    return session


def is_session(value: Any) -> bool:
    """A parsed file looks like a session (an object with a string `session_id`)."""
    return isinstance(value, dict) and isinstance(value.get("session_id"), str)


def session_requests(session: Mapping[str, Any]) -> list[Entry]:
    requests = session.get("requests")
    return [r for r in requests if isinstance(r, dict)] if isinstance(requests, list) else []


def summary(sessions: Iterable[Mapping[str, Any]]) -> Entry:
    """`ledger summary --json`: session count and rollups over every request of every session;
    `by_token` reduced to plain UsageRollups (no models_used / first_seen / last_seen)."""
    count = 0
    requests: list[Entry] = []
    for session in sessions:
        count += 1
        requests.extend(session_requests(session))
    merged = rollups(requests)
    by_token = {
        k: {f: v for f, v in r.items() if f not in _PLAIN_TOKEN_KEYS}
        for k, r in merged["by_token"].items()
    }
    return {"sessions": count, **merged, "by_token": by_token}


def format_duration(duration_ms: int) -> str:
    """`59s` up to 60 000 ms, else `<m>m<s>s` in whole minutes (4 500 000 ms is `75m0s`)."""
    seconds = max(0, duration_ms) // 1000
    if duration_ms <= 60_000:
        return f"{seconds}s"
    return f"{seconds // 60}m{seconds % 60}s"
