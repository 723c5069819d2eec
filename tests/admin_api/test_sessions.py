"""`/admin/api/sessions`: the list (newest first, paged, no requests) and one session (exact id
or unique prefix) with a page of its requests; the running session of the proxy itself."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import orjson
import trio
from tests.support.ledger_data import token_hashes, write_sessions
from tests.support.proxy import Proxy

from tokenomics.domain.ledger_session import session_json

CHAT = {"model": "gpt-4o", "messages": [{"role": "user", "content": "hi"}]}
XSS = "<img src=x onerror=alert(1)>"


def write_session(directory: Path, session_id: str, started: datetime, branch: str) -> None:
    session = session_json(
        session_id=session_id, started_at=started, ended_at=started + timedelta(minutes=1),
        git={"branch": branch}, requests=[],
    )  # fmt: skip
    (directory / f"{started:%Y-%m-%d}_{session_id}.json").write_bytes(orjson.dumps(session))


async def test_the_list_is_newest_first_without_requests(proxy: Proxy) -> None:
    directory = proxy.settings.sessions_dir
    write_sessions(directory, sessions=5, requests=50, tokens=token_hashes(3))
    async with proxy.client() as client:
        got = (await client.get("/admin/api/sessions")).json()
        page = (await client.get("/admin/api/sessions?limit=2&offset=1")).json()
    assert got["count"] == 6  # and the proxy's own, running
    started = [s["started_at"] for s in got["sessions"]]
    assert started == sorted(started, reverse=True)
    assert got["sessions"][0]["running"] is True
    keys = {"session_id", "started_at", "ended_at", "duration_ms", "git", "running", "totals"}
    assert all(set(s) == keys for s in got["sessions"])
    assert all("requests" not in s for s in got["sessions"])
    assert got["summary"]["sessions"] == 6 and got["summary"]["request_count"] == 50
    assert sum(s["totals"]["request_count"] for s in got["sessions"]) == 50
    assert [s["session_id"] for s in page["sessions"]] == [
        s["session_id"] for s in got["sessions"][1:3]
    ]


async def test_one_session_by_id_or_prefix_with_a_page_of_requests(proxy: Proxy) -> None:
    directory = proxy.settings.sessions_dir
    write_sessions(directory, sessions=1, requests=30, tokens=token_hashes(3))
    listing = (await _get(proxy, "/admin/api/sessions"))["sessions"]
    session_id = next(s["session_id"] for s in listing if not s["running"])
    whole = await _get(proxy, f"/admin/api/sessions/{session_id}")
    assert whole["request_count"] == 30 and len(whole["requests"]) == 30
    assert whole["totals"]["request_count"] == 30 and "by_model" in whole
    page = await _get(proxy, f"/admin/api/sessions/{session_id[:6]}?offset=10&limit=5")
    assert page["session_id"] == session_id
    assert page["requests"] == whole["requests"][10:15]
    assert (page["offset"], page["limit"], page["request_count"]) == (10, 5, 30)


async def test_unknown_and_ambiguous_ids(proxy: Proxy) -> None:
    directory = proxy.settings.sessions_dir
    directory.mkdir(parents=True, exist_ok=True)
    t0 = datetime(2026, 10, 1, tzinfo=UTC)
    write_session(directory, "abc111", t0, "main")
    write_session(directory, "abc222", t0 + timedelta(hours=1), "main")
    async with proxy.client() as client:
        missing = await client.get("/admin/api/sessions/zzz")
        assert (missing.status_code, missing.json()) == (404, {"error": "session not found"})
        ambiguous = await client.get("/admin/api/sessions/abc")
        assert ambiguous.status_code == 400
        assert ambiguous.json() == {"error": "session id prefix is ambiguous"}
        exact = await client.get("/admin/api/sessions/abc222")
        assert exact.status_code == 200 and exact.json()["session_id"] == "abc222"


async def test_a_hostile_branch_name_is_json_data(proxy: Proxy) -> None:
    directory = proxy.settings.sessions_dir
    directory.mkdir(parents=True, exist_ok=True)
    write_session(directory, "x1", datetime(2026, 10, 1, tzinfo=UTC), XSS)
    async with proxy.client() as client:
        response = await client.get("/admin/api/sessions")
        one = await client.get("/admin/api/sessions/x1")
    assert response.headers["content-type"] == "application/json"
    assert response.headers["x-content-type-options"] == "nosniff"
    branches = [s["git"].get("branch") for s in response.json()["sessions"]]
    assert XSS in branches
    assert one.json()["git"]["branch"] == XSS


async def test_the_running_session_shows_its_requests(proxy: Proxy) -> None:
    raw = proxy.token({"base_key_env": "OPENAI_KEY"})
    async with proxy.client() as client:
        reply = await client.post("/v1/chat/completions", json=CHAT, headers={"x-api-key": raw})
        assert reply.status_code == 200
        session_id = proxy.server.session_id
        with trio.fail_after(5):
            while True:
                got = (await client.get(f"/admin/api/sessions/{session_id}")).json()
                if got["request_count"]:
                    break
                await trio.sleep(0.02)
    assert got["running"] is True
    assert got["requests"][0]["model"] == "gpt-4o"
    assert got["requests"][0]["token_hash"] == proxy.key.hash(raw)


async def _get(proxy: Proxy, path: str) -> Any:
    async with proxy.client() as client:
        response = await client.get(path)
    assert response.status_code == 200, response.text
    return response.json()
