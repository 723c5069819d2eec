"""`GET /admin/api/analytics/summary`: totals and breakdowns (model, provider, branch, token,
UTC day) of the whole ledger, with cost and its unpriced/estimated flags, summed in SQL by the
ledger index (`ledger_view.LedgerView`). A result is kept until the index moves."""

from __future__ import annotations

import heapq
import threading
import time
from dataclasses import fields
from typing import TYPE_CHECKING, Any

import trio

from tokenomics.domain.ledger_rows import Aggregate
from tokenomics.services.admin.http import Request, Response, json_response
from tokenomics.services.admin.router import Route, route

if TYPE_CHECKING:
    import re
    from collections.abc import Mapping

    from tokenomics.services.admin.context import AdminContext
    from tokenomics.services.admin.ledger_view import LedgerView

DEFAULT_TOP = 20
RECENT = 50
FEW = 100  # sessions ended since the last summary that are added to it (more: summed anew)


def _rank(item: tuple[str, Aggregate]) -> tuple[bool, float, int, str]:
    key, a = item
    return (
        a.unpriced_count >= a.request_count, -a.cost_usd, -(a.input_tokens + a.output_tokens), key
    )  # fmt: skip


def ranked(group: Mapping[str, Aggregate], top: int) -> list[dict[str, Any]]:
    """Costliest first (wholly unpriced last), then most tokens; the first `top` (0: all)."""
    items = (
        heapq.nsmallest(top, group.items(), key=_rank) if top else sorted(group.items(), key=_rank)
    )
    return [{"key": k, **a.as_rollup()} for k, a in items]


def _small(a: Aggregate) -> dict[str, Any]:
    d = a.as_rollup()
    return {"total_tokens": d["total_tokens"], "cost_usd": d["cost_usd"]}


# What a summary sums: name -> the index's group keys.
GROUPINGS: dict[str, tuple[str, ...]] = {
    "total": (), "model": ("model",), "provider": ("provider",), "branch": ("branch",),
    "token": ("token",), "day": ("day",), "day_model": ("day", "model"),
    "day_provider": ("day", "provider"), "day_branch": ("day", "branch"),
}  # fmt: skip
Sums = dict[str, dict[tuple[str, ...], Aggregate]]


def sums(view: LedgerView, kind: str = "", files: tuple[int, ...] = ()) -> Sums:
    return {name: view.groups(*keys, kind=kind, files=files) for name, keys in GROUPINGS.items()}


def merged(mine: Sums, theirs: Sums) -> Sums:
    """Both sums added up (neither changed: `mine` is kept between calls)."""
    out: Sums = {}
    for name, group in mine.items():
        extra = theirs.get(name)
        if not extra:
            out[name] = group
            continue
        combined = dict(group)
        for key, a in extra.items():
            found = combined.get(key)
            combined[key] = a if found is None else _added(found, a)
        out[name] = combined
    return out


def _added(a: Aggregate, b: Aggregate) -> Aggregate:
    total = Aggregate()
    total.add(a)
    total.add(b)
    return total


def by_day(s: Sums) -> list[dict[str, Any]]:
    """Every UTC day's sums, split by model, provider and the branch of its sessions (by key:
    `add_token_days`)."""
    days: dict[str, dict[str, Any]] = {
        day: {"key": day, **a.as_rollup(), "by_model": {}, "by_provider": {}, "by_branch": {}}
        for (day,), a in sorted(s["day"].items())
    }
    for name in ("model", "provider", "branch"):
        for (day, key), a in sorted(s[f"day_{name}"].items()):
            if key or name != "provider":  # like `by_provider`: requests with one only
                days[day][f"by_{name}"][key] = _small(a)
    return list(days.values())


def _less(total: Aggregate, parts: list[Aggregate]) -> Aggregate:
    """What `total` holds beyond `parts` (a part of its requests)."""
    rest = Aggregate()
    for f in fields(Aggregate):
        setattr(rest, f.name, getattr(total, f.name) - sum(getattr(a, f.name) for a in parts))
    rest.cost_usd = max(rest.cost_usd, 0.0)  # not below 0 for the rounding of the sums
    return rest


def add_token_days(
    days: list[dict[str, Any]], per_day: Mapping[tuple[str, ...], Aggregate], s: Sums
) -> None:
    """Each day's split by key (`per_day`: the sums per day and key of the keys shown): the
    keys shown as `by_token`, the day's other keys together as `by_token_other` (when any)."""
    split: dict[str, dict[str, Aggregate]] = {}
    for (key, token), a in sorted(per_day.items()):
        split.setdefault(key, {})[token] = a
    for day in days:
        shown = split.get(day["key"], {})
        day["by_token"] = {token: _small(a) for token, a in shown.items()}
        rest = _less(s["day"].get((day["key"],), Aggregate()), list(shown.values()))
        if rest.request_count > 0:
            day["by_token_other"] = _small(rest)


def summarize(s: Sums, recent: list[dict[str, Any]], top: int) -> dict[str, Any]:
    def keyed(name: str) -> dict[str, Aggregate]:
        return {key[0]: a for key, a in s[name].items() if key[0] or name != "provider"}

    tokens = keyed("token")
    return {
        "totals": s["total"].get((), Aggregate()).as_totals(),
        "by_model": ranked(keyed("model"), top),
        "by_provider": ranked(keyed("provider"), top),  # like the ledger's: with one only
        "by_branch": ranked(keyed("branch"), top),
        "by_token": ranked(tokens, top),
        "token_count": len(tokens),
        "by_day": by_day(s),
        "recent": recent,
    }


class Analytics:
    """The summary, kept until the index moves. The sums of the finished sessions (most of the
    ledger) are kept too: a session that ends adds its own sums to them, a growing journal
    costs only the journals' sums; a finished session changed or removed sums them anew."""

    def __init__(self, view: LedgerView) -> None:
        self.view = view
        self._kept: dict[int, tuple[tuple[int, int], dict[str, Any]]] = {}  # top -> result
        self._settled: tuple[frozenset[tuple[int, int, int, int]], Sums] | None = None
        self._lock = threading.Lock()

    def _settled_sums(self) -> Sums:
        files = self.view.settled()
        known = self._settled
        if known is None or not known[0] <= files or len(files - known[0]) > FEW:
            settled = sums(self.view, "json")
        elif known[0] != files:
            added = tuple(sorted(f[0] for f in files - known[0]))
            settled = merged(known[1], sums(self.view, files=added))
        else:
            return known[1]
        self._settled = (files, settled)
        return settled

    def _sums(self) -> Sums:
        return merged(self._settled_sums(), sums(self.view, "journal"))

    def _summary(self, top: int) -> dict[str, Any]:
        s = self._sums()
        result = summarize(s, self.view.newest(RECENT), top)
        # per day and key: the keys of `by_token` only (all of them: too many to hold)
        shown = tuple(t["key"] for t in result["by_token"])
        every = len(shown) >= result["token_count"]
        per_day = self.view.groups("day", "token", tokens=() if every else shown) if shown else {}
        add_token_days(result["by_day"], per_day, s)
        return result

    def summary(self, top: int) -> dict[str, Any]:
        """Blocking (syncs the index): call on a worker thread."""
        view = self.view
        with self._lock:
            version = view.refresh()
            kept = self._kept.get(top)
            if kept is None or kept[0] != version:
                kept = (version, self._summary(top))
                self._kept = {top: kept}  # one size kept: the UI's
            files = view.files()
        running = sum(1 for f in files if f.running)
        return {"sessions": len(files), "running_sessions": running, **kept[1]}


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
