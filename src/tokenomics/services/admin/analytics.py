"""`GET /admin/api/analytics/summary`: totals and breakdowns (model, provider, branch, token,
UTC day) of the whole ledger, with cost and its unpriced/estimated flags, from the incremental
`LedgerIndex`. A result is kept until the ledger's numbers move (`LedgerIndex.version`)."""

from __future__ import annotations

import heapq
import time
from typing import TYPE_CHECKING, Any

import trio

from tokenomics.services.admin.aggregate import (
    COST,
    COUNT,
    INPUT,
    OUTPUT,
    UNPRICED,
    Vector,
    add_into,
    new_vector,
    rollup_dict,
    totals_dict,
)
from tokenomics.services.admin.http import Request, Response, json_response
from tokenomics.services.admin.router import Route, route

if TYPE_CHECKING:
    import re
    from collections.abc import Mapping

    from tokenomics.services.admin.aggregate import Aggregate
    from tokenomics.services.admin.context import AdminContext
    from tokenomics.services.admin.ledger_index import LedgerIndex

Entry = dict[str, Any]
DEFAULT_TOP = 20
RECENT = 50


def _rank(item: tuple[str, Vector]) -> tuple[bool, float, float, str]:
    key, v = item
    return v[UNPRICED] >= v[COUNT], -v[COST], -(v[INPUT] + v[OUTPUT]), key


def ranked(group: Mapping[str, Vector], top: int) -> list[dict[str, Any]]:
    """Costliest first (wholly unpriced last), then most tokens; the first `top` (0: all)."""
    items = (
        heapq.nsmallest(top, group.items(), key=_rank) if top else sorted(group.items(), key=_rank)
    )
    return [{"key": k, **rollup_dict(v)} for k, v in items]


def _stamp(entry: Entry) -> str:
    return str(entry.get("timestamp", ""))


def newest(index: LedgerIndex) -> list[Entry]:
    """The latest `RECENT` requests of the whole ledger, newest first, with their session."""
    files = [s for s in index.files.values() if s.recent]
    files = heapq.nlargest(RECENT, files, key=lambda s: _stamp(s.recent[-1]))
    pairs = ((e, s.meta.get("session_id", "")) for s in files for e in s.recent)
    return [
        {**entry, "session_id": session_id}
        for entry, session_id in heapq.nlargest(RECENT, pairs, key=lambda p: _stamp(p[0]))
    ]


def _small(v: Vector) -> dict[str, Any]:
    d = rollup_dict(v)
    return {"total_tokens": d["total_tokens"], "cost_usd": d["cost_usd"]}


def by_day(total: Aggregate) -> list[dict[str, Any]]:
    days: dict[str, dict[str, Any]] = {
        day: {"key": day, **rollup_dict(v), "by_model": {}, "by_provider": {}}
        for day, v in sorted(total.group("day").items())
    }
    for name, group in (("by_model", total.group("day_model")),
                        ("by_provider", total.group("day_provider"))):  # fmt: skip
        for (day, key), v in sorted(group.items()):
            days[day][name][key] = _small(v)
    return list(days.values())


def with_branches(days: list[dict[str, Any]], index: LedgerIndex) -> list[dict[str, Any]]:
    """Add `by_branch` to each day of `by_day`: a session's branch is its git context, so the
    day x branch cells come from each session's own days (the UI charts spend per branch)."""
    cells: dict[str, dict[str, Vector]] = {}
    for state in index.files.values():
        for day, v in state.aggregate.group("day").items():
            add_into(cells.setdefault(day, {}).setdefault(state.branch, new_vector()), v)
    for entry in days:
        entry["by_branch"] = {b: _small(v) for b, v in sorted(cells.get(entry["key"], {}).items())}
    return days


def summarize(index: LedgerIndex, top: int) -> dict[str, Any]:
    """Blocking: call with `index.lock` held, after `index.refresh()`."""
    total = index.total
    branches: dict[str, Vector] = {}
    for state in index.files.values():
        add_into(branches.setdefault(state.branch, new_vector()), state.aggregate.totals())
    return {
        "sessions": len(index.files),
        "running_sessions": sum(1 for s in index.files.values() if s.meta.get("running")),
        "totals": totals_dict(total.totals()),
        "by_model": ranked(total.group("model"), top),
        "by_provider": ranked(total.group("provider"), top),
        "by_branch": ranked(branches, top),
        "by_token": ranked(total.tokens, top),
        "token_count": len(total.tokens),
        "by_day": with_branches(by_day(total), index),
        "recent": newest(index),
    }


class Analytics:
    def __init__(self, index: LedgerIndex) -> None:
        self.index = index
        self._kept: dict[int, tuple[int, dict[str, Any]]] = {}  # top -> (version, result)

    def summary(self, top: int) -> dict[str, Any]:
        """Blocking (reads new ledger lines): call on a worker thread."""
        index = self.index
        index.refresh()
        with index.lock:
            kept = self._kept.get(top)
            if kept is not None and kept[0] == index.version:
                return kept[1]
            result = summarize(index, top)
            self._kept = {top: (index.version, result)}  # one size kept: the UI's
            return result


def routes(ctx: AdminContext, analytics: Analytics) -> list[Route]:
    async def summary(request: Request, _match: re.Match[str]) -> Response:
        top = request.int_param("top", DEFAULT_TOP)
        result = await trio.to_thread.run_sync(analytics.summary, top)
        stats = ctx.stats
        realtime = {
            **stats.totals.as_dict(), "active_tokens": len(stats.by_token),
            "in_flight": stats.in_flight,
        }  # fmt: skip
        generated = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(ctx.now()))
        return json_response(200, {"generated_at": generated, **result, "realtime": realtime})

    return [route("GET", "/analytics/summary", summary)]
