"""Events through the real server (issue 15): every catalogue event is emitted where it
happens and reaches a real receiver signed, with hash prefixes only; `token.expired` once per
token; `/metrics` counts per webhook; nothing secret is in a body."""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import httpx2
import trio
from tests.support.proxy import Proxy, start_proxy
from tests.support.webhook_receiver import Receiver, webhook_receiver

KEY = "e2e-signing-key"
OPENAI = {"base_key_env": "OPENAI_KEY"}


def chat(content: str = "hello", model: str = "gpt-4o") -> dict[str, Any]:
    return {"model": model, "messages": [{"role": "user", "content": content}]}


@asynccontextmanager
async def proxy_with_webhook(
    tmp_path: Path, receiver: Receiver, events: list[str] | None = None
) -> AsyncIterator[Proxy]:
    hook = {"url": receiver.url, "secret": "shared-secret", "signing_key": KEY,
            "events": events or []}  # fmt: skip
    env = {"TOKENOMICS_EVENTS_WEBHOOKS": json.dumps([hook])}
    async with start_proxy(tmp_path, env=env) as proxy:
        yield proxy


async def wait_types(receiver: Receiver, wanted: dict[str, int], seconds: float = 20) -> None:
    with trio.fail_after(seconds):
        while True:
            got = Counter(r.event["type"] for r in receiver.received)
            if all(got[kind] >= count for kind, count in wanted.items()):
                return
            await trio.sleep(0.05)


def of_type(receiver: Receiver, kind: str) -> list[dict[str, Any]]:
    return [r.event["data"] for r in receiver.received if r.event["type"] == kind]


async def test_every_request_event_reaches_the_webhook_signed_and_without_secrets(
    tmp_path: Path,
) -> None:
    async with (
        webhook_receiver(KEY) as receiver,
        proxy_with_webhook(tmp_path, receiver) as proxy,
        proxy.client() as client,
    ):
        rules = [{"name": "no-sql", "type": "keyword", "keywords": ["drop table"], "action": "fail"},
                 {"name": "warn-hi", "type": "keyword", "keywords": ["hello"], "action": "warn"}]  # fmt: skip
        token = proxy.token({**OPENAI, "rules": rules,
                             "rate_limit": {"rules": [{"requests": 3, "window": "1m"}]}})  # fmt: skip
        headers = {"x-api-key": token, "x-openclaw-agent-id": "agent-7", "x-openclaw-team": "t"}
        ok = await client.post("/v1/chat/completions", json=chat(), headers=headers)
        blocked = await client.post(
            "/v1/chat/completions", json=chat("please drop table users"), headers=headers
        )
        await client.post("/v1/chat/completions", json=chat(), headers=headers)
        limited = await client.post("/v1/chat/completions", json=chat(), headers=headers)
        assert (ok.status_code, blocked.status_code, limited.status_code) == (200, 403, 429)
        poor = proxy.token({**OPENAI, "max_tokens": 1})
        over = await client.post("/v1/chat/completions", json=chat(), headers={"x-api-key": poor})
        assert over.status_code == 429
        await wait_types(receiver, {
            "server.start": 1, "token.created": 2, "request.completed": 5, "budget.update": 2,
            "rule.warning": 2, "rule.violation": 1, "rate.exceeded": 1, "budget.exceeded": 1,
            "openclaw.agent.request": 4, "openclaw.agent.success": 2, "openclaw.agent.error": 2,
        })  # fmt: skip
        metrics = (await client.get("/metrics")).text
    hash16 = proxy.hash16(token)
    assert all(r.signature_ok for r in receiver.received)
    assert all(r.headers["x-webhook-secret"] == "shared-secret" for r in receiver.received)
    assert len(set(receiver.ids)) == len(receiver.ids)
    everything = b"".join(r.body for r in receiver.received).decode()
    leaks = [
        r.body for r in receiver.received if token.encode() in r.body or poor.encode() in r.body
    ]
    assert leaks == []
    assert "please drop table users" not in everything  # the rule message names its keyword only
    assert proxy.key.hash(token) not in everything  # prefixes only
    violation = of_type(receiver, "rule.violation")[0]
    assert violation == {
        "token_hash": hash16, "model": "gpt-4o", "rule_name": "no-sql", "action": "fail",
        "message": violation["message"], "agent_id": "agent-7", "team": "t",
    }  # fmt: skip
    assert of_type(receiver, "rate.exceeded")[0]["token_hash"] == hash16
    exceeded = of_type(receiver, "budget.exceeded")[0]
    assert exceeded["limit"] == 1 and exceeded["token_hash"] == proxy.hash16(poor)
    completed = of_type(receiver, "request.completed")
    assert {c["status_code"] for c in completed} == {200, 403, 429}
    assert all(set(c) >= {"stream", "input_tokens", "output_tokens", "error"} for c in completed)
    start = of_type(receiver, "server.start")[0]
    assert start["http_port"] == int(proxy.url.rsplit(":", 1)[1]) and start["tls"] is False
    agent = of_type(receiver, "openclaw.agent.request")[0]
    assert agent == {"token_hash": hash16, "model": "gpt-4o", "status": 0,
                     "agent_id": "agent-7", "team": "t"}  # fmt: skip
    assert f'tokenomics_webhook_delivered_total{{webhook="{receiver.url}"}}' in metrics
    assert "tokenomics_webhook_pending{" in metrics
    assert "shared-secret" not in metrics and KEY not in metrics


async def test_token_expired_is_sent_once_per_token(tmp_path: Path) -> None:
    async with (
        webhook_receiver(KEY) as receiver,
        proxy_with_webhook(tmp_path, receiver, ["token.*"]) as proxy,
        proxy.client() as client,
    ):
        token = proxy.token(OPENAI, expires_at="2020-01-01T00:00:00Z")
        for _ in range(5):
            answer = await client.post(
                "/v1/chat/completions", json=chat(), headers={"x-api-key": token}
            )
            assert answer.status_code == 401
        await wait_types(receiver, {"token.created": 1, "token.expired": 1})
        await trio.sleep(1)  # the other four requests' batches are written by now
    kinds = [r.event["type"] for r in receiver.received]
    assert kinds == ["token.created", "token.expired"]
    assert of_type(receiver, "token.expired")[0] == {
        "token_hash": proxy.hash16(token),
        "expired_at": "2020-01-01T00:00:00Z",
    }


async def test_a_filtered_webhook_gets_only_its_types_in_order(tmp_path: Path) -> None:
    async with (
        webhook_receiver(KEY) as receiver,
        proxy_with_webhook(tmp_path, receiver, ["request.completed"]) as proxy,
        httpx2.AsyncClient(base_url=proxy.url, timeout=30) as client,
    ):
        token = proxy.token(OPENAI)
        for n in range(5):
            body = chat(f"message {n}")
            await client.post("/v1/chat/completions", json=body, headers={"x-api-key": token})
        await wait_types(receiver, {"request.completed": 5})
        await trio.sleep(0.5)
    assert {r.event["type"] for r in receiver.received} == {"request.completed"}
    assert len(receiver.received) == 5
