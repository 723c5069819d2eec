"""`GET /admin/api/sessions` (the list, without requests, newest first, paged) and
`GET /admin/api/sessions/{id}` (one session with a page of its requests)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import orjson
import trio

from tokenomics.domain.errors import AdminError
from tokenomics.domain.ledger import parse_time
from tokenomics.domain.ledger_rows import Aggregate
from tokenomics.services.admin.http import Request, Response, json_response
from tokenomics.services.admin.router import Route, route
from tokenomics.services.ledger_files import SESSION, journal_session

if TYPE_CHECKING:
    import re
    from pathlib import Path

    from tokenomics.services.admin.ledger_view import LedgerView, SessionFile

Entry = dict[str, Any]
SUMMARY_KEYS = ("request_count", "input_tokens", "output_tokens", "total_tokens", "cost_usd")


def _duration_ms(started_at: str, ended_at: str) -> int:
    """From the session's start to its end (a running one's: now)."""
    start, end = parse_time(started_at), parse_time(ended_at)
    duration = round((end - start).total_seconds() * 1000) if start and end else 0
    return max(0, duration)


def _item(f: SessionFile, totals: Aggregate) -> Entry:
    return {
        "session_id": f.session_id, "started_at": f.started_at, "ended_at": f.ended_at,
        "duration_ms": _duration_ms(f.started_at, f.ended_at), "git": f.git,
        "running": f.running, "totals": totals.as_totals(),
    }  # fmt: skip


def session_list(view: LedgerView) -> tuple[Entry, list[Entry]]:
    """Blocking: the summary over all sessions and each session's metadata with its totals."""
    view.refresh()
    sums = view.groups("session")
    total = view.total()
    items = [_item(f, sums.get((f.session_id,), Aggregate())) for f in view.files()]
    items.sort(key=lambda s: str(s["session_id"]))
    items.sort(key=lambda s: str(s["started_at"]), reverse=True)
    totals = total.as_totals()
    summary = {"sessions": len(items), **{k: totals.get(k) for k in SUMMARY_KEYS}}
    return summary, items


def find(view: LedgerView, wanted: str) -> tuple[Path, bool]:
    """The file of the session `wanted` (exact id, else a unique prefix) and whether it runs."""
    view.refresh()
    files = view.files()
    exact = [f for f in files if f.session_id == wanted]
    found = exact or [f for f in files if f.session_id.startswith(wanted)]
    if not wanted or not found:
        raise AdminError(404, "session not found")
    if len(found) > 1:
        raise AdminError(400, "session id prefix is ambiguous")
    return found[0].path, found[0].running


def read_session(path: Path) -> Entry:
    """Blocking: the whole session (a journal as `ledger show` reads it)."""
    try:
        data = orjson.loads(path.read_bytes()) if path.suffix == SESSION else journal_session(path)
    except (OSError, orjson.JSONDecodeError):
        data = None
    if not isinstance(data, dict):
        raise AdminError(404, "session not found")
    return data


def routes(view: LedgerView) -> list[Route]:
    async def listing(request: Request, _match: re.Match[str]) -> Response:
        offset, limit = request.int_param("offset", 0), request.int_param("limit", 50)
        summary, items = await trio.to_thread.run_sync(session_list, view)
        page = items[offset : offset + limit]
        return json_response(200, {"count": len(items), "summary": summary, "sessions": page})

    async def one(request: Request, match: re.Match[str]) -> Response:
        offset, limit = request.int_param("offset", 0), request.int_param("limit", 500)
        path, running = await trio.to_thread.run_sync(find, view, match["id"])
        session = await trio.to_thread.run_sync(read_session, path)
        requests = session.get("requests")
        requests = requests if isinstance(requests, list) else []
        session.setdefault("running", running)
        session.pop("communication_events", None)
        page = {"requests": requests[offset : offset + limit], "request_count": len(requests)}
        return json_response(200, {**session, **page, "offset": offset, "limit": limit})

    return [route("GET", "/sessions", listing), route("GET", "/sessions/(?P<id>[^/]+)", one)]
