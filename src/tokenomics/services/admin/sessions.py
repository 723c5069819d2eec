"""`GET /admin/api/sessions` (the list, without requests, newest first, paged) and
`GET /admin/api/sessions/{id}` (one session with a page of its requests)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import orjson
import trio

from tokenomics.domain.ledger import parse_time
from tokenomics.services.admin.aggregate import totals_dict
from tokenomics.services.admin.http import AdminError, Request, Response, json_response
from tokenomics.services.admin.router import Route, route
from tokenomics.services.ledger_files import SESSION, journal_session

if TYPE_CHECKING:
    import re
    from pathlib import Path

    from tokenomics.services.admin.ledger_index import LedgerIndex

Entry = dict[str, Any]
SUMMARY_KEYS = ("request_count", "input_tokens", "output_tokens", "total_tokens", "cost_usd")


def _with_duration(meta: Entry) -> Entry:
    """A journal's metadata has no `duration_ms` yet: from its start to its last request."""
    if isinstance(meta.get("duration_ms"), int):
        return meta
    start, end = parse_time(str(meta.get("started_at", ""))), parse_time(str(meta.get("ended_at")))
    duration = round((end - start).total_seconds() * 1000) if start and end else 0
    return {**meta, "duration_ms": max(0, duration)}


def session_list(index: LedgerIndex) -> tuple[Entry, list[Entry]]:
    """Blocking: the summary over all sessions and each session's metadata with its totals."""
    index.refresh()
    with index.lock:
        items = [
            {**_with_duration(state.meta), "totals": totals_dict(state.aggregate.totals())}
            for state in index.files.values()
        ]
        totals = totals_dict(index.total.totals())
    items.sort(key=lambda s: str(s.get("session_id", "")))
    items.sort(key=lambda s: str(s.get("started_at", "")), reverse=True)
    summary = {"sessions": len(items), **{k: totals.get(k) for k in SUMMARY_KEYS}}
    return summary, items


def find(index: LedgerIndex, wanted: str) -> tuple[Path, bool]:
    """The file of the session `wanted` (exact id, else a unique prefix) and whether it runs."""
    index.refresh()
    with index.lock:
        states = list(index.files.values())
    exact = [s for s in states if s.meta.get("session_id") == wanted]
    found = exact or [s for s in states if str(s.meta.get("session_id", "")).startswith(wanted)]
    if not wanted or not found:
        raise AdminError(404, "session not found")
    if len(found) > 1:
        raise AdminError(400, "session id prefix is ambiguous")
    return found[0].path, bool(found[0].meta.get("running"))


def read_session(path: Path) -> Entry:
    """Blocking: the whole session (a journal as `ledger show` reads it)."""
    try:
        data = orjson.loads(path.read_bytes()) if path.suffix == SESSION else journal_session(path)
    except (OSError, orjson.JSONDecodeError):
        data = None
    if not isinstance(data, dict):
        raise AdminError(404, "session not found")
    return data


def routes(index: LedgerIndex) -> list[Route]:
    async def listing(request: Request, _match: re.Match[str]) -> Response:
        offset, limit = request.int_param("offset", 0), request.int_param("limit", 50)
        summary, items = await trio.to_thread.run_sync(session_list, index)
        page = items[offset : offset + limit]
        return json_response(200, {"count": len(items), "summary": summary, "sessions": page})

    async def one(request: Request, match: re.Match[str]) -> Response:
        offset, limit = request.int_param("offset", 0), request.int_param("limit", 500)
        path, running = await trio.to_thread.run_sync(find, index, match["id"])
        session = await trio.to_thread.run_sync(read_session, path)
        requests = session.get("requests")
        requests = requests if isinstance(requests, list) else []
        session.setdefault("running", running)
        session.pop("communication_events", None)
        page = {"requests": requests[offset : offset + limit], "request_count": len(requests)}
        return json_response(200, {**session, **page, "offset": offset, "limit": limit})

    return [route("GET", "/sessions", listing), route("GET", "/sessions/(?P<id>[^/]+)", one)]
