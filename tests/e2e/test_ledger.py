"""The session ledger with the real in-process server and the built-in mock provider
(`cli.md` §7, scenarios 72, 73, 77, 80, 81, 82; D17): the session file after shutdown, the journal
while running, rejected requests with status and rule matches, OpenClaw metadata, cost, the
ledger switched off, and a sessions directory that cannot be created."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import httpx2
import trio
from tests.e2e.test_observability import parse_metrics
from tests.support.proxy import start_proxy

OPENAI: dict[str, Any] = {"providers": {"mock": [{"base_key_env": "ANY"}]}}
CHAT = {"model": "gpt-4o", "messages": [{"role": "user", "content": "hello there"}]}
SESSION_KEYS = [
    "session_id", "started_at", "ended_at", "duration_ms", "git", "totals", "by_model",
    "by_provider", "by_token", "requests",
]  # fmt: skip


def sessions_dir(root: Path) -> Path:
    return root / "data" / "sessions"


def only_session(root: Path) -> dict[str, Any]:
    files = sorted(sessions_dir(root).iterdir())
    assert [p.suffix for p in files] == [".json"], files
    session: dict[str, Any] = json.loads(files[0].read_text())
    assert files[0].name == f"{session['started_at'][:10]}_{session['session_id']}.json"
    return session


async def post(
    client: httpx2.AsyncClient, token: str, body: dict[str, Any] = CHAT, **headers: str
) -> httpx2.Response:
    return await client.post(
        "/v1/chat/completions", json=body, headers={"x-api-key": token, **headers}
    )


async def test_requests_are_in_the_journal_at_once_and_in_the_session_after_shutdown(
    tmp_path: Path,
) -> None:
    async with start_proxy(tmp_path) as proxy, proxy.client() as client:
        token = proxy.token({**OPENAI, "metadata": {"team": "policy-team", "cost_center": "42"}})
        first = await post(client, token, **{"X-OpenClaw-Agent-ID": "a1", "X-OpenClaw-Team": "ml"})
        second = await post(client, token)
        assert first.status_code == second.status_code == 200
        assert proxy.server.session_id
        journal = sessions_dir(tmp_path) / f"{proxy.server.ledger.base.name}.journal"  # type: ignore[union-attr]
        # no waiting: each request is journaled right after its response's last byte
        records = [line for line in journal.read_text().splitlines() if '"request"' in line]
        assert len(records) == 2
    session = only_session(tmp_path)
    assert list(session) == SESSION_KEYS
    assert not journal.exists()
    usage = [r.json()["usage"] for r in (first, second)]
    totals = session["totals"]
    assert totals["request_count"] == 2
    assert totals["input_tokens"] == sum(u["prompt_tokens"] for u in usage)
    assert totals["output_tokens"] == sum(u["completion_tokens"] for u in usage)
    assert totals["cost_usd"] > 0 and "unpriced_count" not in totals
    entry = session["requests"][0]
    assert entry["token_hash"] == proxy.key.hash(token)
    assert (entry["model"], entry["status_code"], entry["provider"]) == ("gpt-4o", 200, "mock")
    assert entry["metadata"] == {"agent_id": "a1", "team": "policy-team", "cost_center": "42"}
    assert entry["upstream_request_id"].startswith("req_mock_")
    assert session["by_token"][entry["token_hash"]]["models_used"] == ["gpt-4o"]


async def test_rejected_requests_are_recorded_with_status_and_rule_matches(tmp_path: Path) -> None:
    rule = {"name": "no-sql", "type": "keyword", "keywords": ["drop table"], "action": "fail"}
    async with start_proxy(tmp_path) as proxy, proxy.client() as client:
        guarded = proxy.token({**OPENAI, "rules": [rule]})
        limited = proxy.token(
            {**OPENAI, "rate_limit": {"rules": [{"requests": 1, "window": "1m"}]}}
        )
        assert (await post(client, "tkn_unknown")).status_code == 401
        blocked = {**CHAT, "messages": [{"role": "user", "content": "please drop table users"}]}
        assert (await post(client, guarded, blocked)).status_code == 403
        assert (await post(client, limited)).status_code == 200
        assert (await post(client, limited)).status_code == 429
    session = only_session(tmp_path)
    statuses = [r["status_code"] for r in session["requests"]]
    assert statuses == [401, 403, 200, 429]
    rejected = session["requests"][1]
    assert rejected["rule_matches"][0]["action"] == "fail"
    assert rejected["error"].startswith("request blocked by rule")
    assert rejected["cost_usd"] == 0.0
    totals = session["totals"]
    assert (totals["error_count"], totals["rule_violation_count"]) == (3, 1)
    assert totals["rate_limit_count"] == 1


async def test_an_unpriced_model_is_flagged_not_counted_as_free(tmp_path: Path) -> None:
    async with start_proxy(tmp_path) as proxy, proxy.client() as client:
        token = proxy.token(OPENAI)
        assert (await post(client, token, {**CHAT, "model": "no-price-model"})).status_code == 200
    session = only_session(tmp_path)
    assert session["requests"][0]["cost_usd"] is None
    assert session["requests"][0]["unpriced"] is True
    assert session["totals"]["unpriced_count"] == 1


async def test_communication_events_only_with_the_event_ledger(tmp_path: Path) -> None:
    env = {"TOKENOMICS_LEDGER_EVENT_LEDGER": "true"}
    async with start_proxy(tmp_path, env=env) as proxy, proxy.client() as client:
        assert (await post(client, proxy.token(OPENAI))).status_code == 200
    events = only_session(tmp_path)["communication_events"]
    types = [e["type"] for e in events]
    assert types.index("request.received") < types.index("response.started")
    assert all(len(e["token_hash"]) == 16 for e in events if "token_hash" in e)
    for event in events:
        names = {n.lower() for n in event.get("headers", {})}
        assert not names & {"authorization", "x-api-key"}


async def test_no_session_file_when_the_ledger_is_off(tmp_path: Path) -> None:
    env = {"TOKENOMICS_LEDGER_ENABLED": "false"}
    async with start_proxy(tmp_path, env=env) as proxy, proxy.client() as client:
        assert (await post(client, proxy.token(OPENAI))).status_code == 200
        assert proxy.server.session_id == ""
    assert not sessions_dir(tmp_path).exists() or not list(sessions_dir(tmp_path).iterdir())


async def test_the_proxy_serves_when_the_sessions_dir_cannot_be_created(tmp_path: Path) -> None:
    (tmp_path / "data").mkdir()
    sessions_dir(tmp_path).write_text("a file where the directory should be")
    async with start_proxy(tmp_path) as proxy, proxy.client() as client:
        response = await post(client, proxy.token(OPENAI))
        assert response.status_code == 200
        assert proxy.server.session_id == ""
    assert sessions_dir(tmp_path).read_text() == "a file where the directory should be"


async def test_duration_is_the_real_latency(tmp_path: Path) -> None:
    """Scenario 81: the original recorded 0 for every chat completion."""
    async with start_proxy(tmp_path) as proxy, proxy.client() as client:
        slow = {**CHAT, "model": "slow-150-gpt-4o"}  # the mock waits 150 ms before answering
        assert (await post(client, proxy.token(OPENAI), slow)).status_code == 200
    (entry,) = only_session(tmp_path)["requests"]
    assert entry["duration_ms"] >= 150


async def test_metrics_show_what_the_ledger_has_written(tmp_path: Path) -> None:
    async with start_proxy(tmp_path) as proxy, proxy.client() as client:
        token = proxy.token(OPENAI)
        for _ in range(2):
            assert (await post(client, token)).status_code == 200

        async def recorded() -> dict[str, float]:
            text = (await client.get("/metrics")).text
            return parse_metrics(text)

        with trio.fail_after(5):
            while (await recorded()).get("tokenomics_ledger_recorded") != 2:  # noqa: ASYNC110
                await trio.sleep(0.05)
        metrics = await recorded()
        assert metrics["tokenomics_ledger_pending"] == 0
        assert metrics["tokenomics_ledger_write_errors"] == 0
