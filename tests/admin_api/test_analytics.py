"""`GET /admin/api/analytics/summary`: the ledger's totals and breakdowns, the same numbers
as the ledger's own rollups (`ledger summary`), kept up to date incrementally."""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx2
import pytest
import trio
from tests.support.ledger_data import BRANCHES, token_hashes, write_sessions
from tests.support.proxy import Proxy

from tokenomics.domain.ledger import rollups
from tokenomics.domain.ledger_session import session_requests, summary
from tokenomics.services.ledger_files import read_sessions

CHAT = {"model": "gpt-4o", "messages": [{"role": "user", "content": "hi"}]}


def keyed(items: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {item["key"]: {k: v for k, v in item.items() if k != "key"} for item in items}


def same(ours: dict[str, Any], theirs: dict[str, Any]) -> None:
    """Equal, the costs to rounding (sums taken in another order)."""
    assert set(ours) == set(theirs)
    for key, value in theirs.items():
        if key == "cost_usd" and value is not None:
            assert ours[key] == pytest.approx(value, abs=1e-9), key
        else:
            assert ours[key] == value, key


async def analytics(client: httpx2.AsyncClient, top: int = 0) -> dict[str, Any]:
    response = await client.get(f"/admin/api/analytics/summary?top={top}")
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "application/json"
    return dict(response.json())


async def eventually(check: Callable[[], Any], seconds: float = 5) -> None:
    with trio.fail_after(seconds):
        while not await check():  # noqa: ASYNC110 - the ledger is written by another task
            await trio.sleep(0.02)


async def test_the_numbers_are_the_ledgers_own_rollups(proxy: Proxy) -> None:
    sessions_dir = proxy.settings.sessions_dir
    write_sessions(sessions_dir, sessions=8, requests=1200, tokens=token_hashes(40))
    expected = summary(read_sessions(sessions_dir))
    requests = [r for s in read_sessions(sessions_dir) for r in session_requests(s)]
    async with proxy.client() as client:
        got = await analytics(client)
    # the 8 files and the running session of the proxy itself
    assert got["sessions"] == expected["sessions"] == 9 and got["token_count"] == 40
    same(got["totals"], expected["totals"])
    for name in ("by_model", "by_provider", "by_token"):
        ours, theirs = keyed(got[name]), expected[name]
        assert set(ours) == set(theirs), name
        for key in theirs:
            same(ours[key], theirs[key])
    days: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for request in requests:
        days[request["timestamp"][:10]].append(request)
    assert [d["key"] for d in got["by_day"]] == sorted(days)
    for day in got["by_day"]:
        theirs = rollups(days[day["key"]])
        split = ("key", "by_model", "by_provider", "by_branch", "by_token")
        plain = {k: v for k, v in day.items() if k not in split}
        same(plain, {k: v for k, v in theirs["totals"].items() if k in plain})
        # each day's spend split by the git branch of its sessions adds up to the day
        assert set(day["by_branch"]) <= set(BRANCHES)
        assert sum(b["total_tokens"] for b in day["by_branch"].values()) == plain["total_tokens"]
        assert {m: v["total_tokens"] for m, v in day["by_model"].items()} == {
            m: r["total_tokens"] for m, r in theirs["by_model"].items()
        }
        # split by key (`top=0`: every key, nothing folded into `by_token_other`)
        assert "by_token_other" not in day
        assert set(day["by_token"]) == set(theirs["by_token"])
        for token, r in theirs["by_token"].items():
            same(day["by_token"][token], {k: r[k] for k in ("total_tokens", "cost_usd")})
    branches = keyed(got["by_branch"])
    assert set(branches) == set(BRANCHES)
    assert sum(b["request_count"] for b in branches.values()) == 1200
    # unpriced requests are flagged, never counted as free (only its failed requests, which
    # consumed nothing, cost a known 0)
    unpriced = keyed(got["by_model"])["local-unpriced"]
    assert unpriced["cost_usd"] == 0.0 and unpriced["unpriced_count"] > 0
    assert got["totals"]["unpriced_count"] == unpriced["unpriced_count"]
    assert got["totals"]["estimated_count"] > 0


async def test_top_ranks_by_cost_and_cuts(proxy: Proxy) -> None:
    write_sessions(proxy.settings.sessions_dir, sessions=2, requests=300, tokens=token_hashes(30))
    async with proxy.client() as client:
        got = await analytics(client, top=5)
        default = (await client.get("/admin/api/analytics/summary")).json()
        bad = await client.get("/admin/api/analytics/summary?top=x")
    assert len(got["by_token"]) == 5 and got["token_count"] == 30
    costs = [t["cost_usd"] for t in got["by_token"]]
    assert costs == sorted(costs, reverse=True)
    models = [m["key"] for m in got["by_model"]]
    assert models[-1] == "local-unpriced"  # no known cost ranks last
    assert len(default["by_token"]) == 20
    assert bad.status_code == 400
    async with proxy.client() as client:
        every = {d["key"]: d for d in (await analytics(client))["by_day"]}
    # each day's split by key: the top 5 keys' own numbers, the other 25 summed together
    top = {t["key"] for t in got["by_token"]}
    folded = 0
    for day in got["by_day"]:
        whole = every[day["key"]]
        assert set(day["by_token"]) == top & set(whole["by_token"])
        for token, numbers in day["by_token"].items():
            same(numbers, whole["by_token"][token])
        rest = [v for k, v in whole["by_token"].items() if k not in top]
        other = day.get("by_token_other")
        assert (other is None) == (not rest)
        if other is not None:
            folded += 1
            assert other["total_tokens"] == sum(v["total_tokens"] for v in rest)
            cost = sum(v["cost_usd"] or 0 for v in rest)  # None: wholly unpriced
            assert (other["cost_usd"] or 0) == pytest.approx(cost, abs=1e-6)
        shown = sum(v["total_tokens"] for v in day["by_token"].values())
        assert shown + (other or {}).get("total_tokens", 0) == day["total_tokens"]
    assert folded == len(got["by_day"])  # 30 keys over every day: always some folded


async def test_a_request_through_the_proxy_shows_at_once(proxy: Proxy) -> None:
    raw = proxy.token({"base_key_env": "OPENAI_KEY", "metadata": {"who": "<b>x</b>"}})
    async with proxy.client() as client:
        before = await analytics(client)
        assert before["totals"]["request_count"] == 0
        for n in (1, 2):
            reply = await client.post("/v1/chat/completions", json=CHAT, headers={"x-api-key": raw})
            assert reply.status_code == 200

            async def shown(n: int = n) -> bool:
                return bool((await analytics(client))["totals"]["request_count"] == n)

            await eventually(shown)
        got = await analytics(client)
    assert got["running_sessions"] == 1 and got["sessions"] == 1
    assert keyed(got["by_model"])["gpt-4o"]["request_count"] == 2
    assert keyed(got["by_token"])[proxy.key.hash(raw)]["request_count"] == 2
    (today,) = got["by_day"]
    assert set(today["by_token"]) == {proxy.key.hash(raw)} and "by_token_other" not in today
    assert today["by_token"][proxy.key.hash(raw)]["total_tokens"] == today["total_tokens"] > 0
    assert got["recent"][0]["model"] == "gpt-4o"
    assert got["recent"][0]["session_id"] == proxy.server.session_id
    assert got["realtime"]["request_count"] == 2


async def test_a_hostile_model_name_comes_back_as_json_data(proxy: Proxy) -> None:
    hostile = '"><img src=x onerror=alert(1)><script>alert(2)</script>'
    raw = proxy.token({"base_key_env": "OPENAI_KEY"})
    async with proxy.client() as client:
        reply = await client.post(
            "/v1/chat/completions", json={**CHAT, "model": hostile}, headers={"x-api-key": raw}
        )
        assert reply.status_code == 200

        async def shown() -> bool:
            return bool((await analytics(client))["totals"]["request_count"] == 1)

        await eventually(shown)
        response = await client.get("/admin/api/analytics/summary")
    assert response.headers["content-type"] == "application/json"
    assert response.headers["x-content-type-options"] == "nosniff"
    assert "script-src 'self'" in response.headers["content-security-policy"]
    got = response.json()
    assert hostile in keyed(got["by_model"])
    assert got["recent"][0]["model"] == hostile


async def test_files_added_and_removed_are_counted_and_taken_away(proxy: Proxy) -> None:
    sessions_dir = proxy.settings.sessions_dir
    tokens = token_hashes(10)
    write_sessions(sessions_dir, sessions=2, requests=100, tokens=tokens)
    async with proxy.client() as client:
        assert (await analytics(client))["totals"]["request_count"] == 100
        write_sessions(sessions_dir, sessions=1, requests=50, tokens=tokens, seed=5)
        grown = await analytics(client)
        # three files and the proxy's own running session
        assert grown["totals"]["request_count"] == 150 and grown["sessions"] == 4
        victim = sorted(sessions_dir.glob("*.json"))[0]
        removed = json.loads(victim.read_bytes())["totals"]["request_count"]
        victim.unlink()
        shrunk = await analytics(client)
    assert shrunk["totals"]["request_count"] == 150 - removed and shrunk["sessions"] == 3
    expected = summary(read_sessions(sessions_dir))
    same(shrunk["totals"], expected["totals"])


async def test_without_a_ledger_the_numbers_are_zero(tmp_path: Path) -> None:
    from tests.support.proxy import start_proxy

    env = {"TOKENOMICS_LEDGER_ENABLED": "false"}
    async with start_proxy(tmp_path, env=env) as proxy, proxy.client() as client:
        got = await analytics(client)
    assert got["sessions"] == 0 and got["totals"]["request_count"] == 0
    assert got["totals"]["cost_usd"] == 0.0
    assert got["by_day"] == [] and got["recent"] == []
