"""The run budget (`tokenomics run --max-*`, issue 20 part 1) through the real server: fifty
concurrent requests against a run's cost or token cap spend at most the cap plus one request's
output; past `--max-duration` every request is refused (autojump clock); a token's policy
budget still applies inside the run's; without a run budget nothing changes.

The mock upstream's `echo` model answers with the request's text (N words in, N out);
`slow-200` keeps every request in flight while the others are admitted.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx2
import pytest
import trio
import trio.testing
from tests.support.mock_upstream import MockUpstream
from tests.support.proxy import openai_error_message, settled, start_proxy

from tokenomics.domain.run_budget import RunLimits

OUTPUT = 220
MODEL = "slow-200-echo-priced"
PRICE_PER_TOKEN = 1e-6
CONFIG = """providers:
  custom:
    upstream_url: {url}
    api_key_env: OPENAI_KEY
    formats: [openai, anthropic]
    prices:
      {model}: {{input: 1, output: 1}}
"""
POLICY: dict[str, Any] = {"providers": {"custom": [{"base_key_env": "OPENAI_KEY"}]}}


@pytest.fixture
def autojump_clock() -> trio.testing.MockClock:
    return trio.testing.MockClock(autojump_threshold=0)


def body(words: int = OUTPUT, model: str = MODEL) -> dict[str, Any]:
    text = " ".join(["word"] * words)
    return {"model": model, "messages": [{"role": "user", "content": text}], "max_tokens": words}


@pytest.mark.parametrize("kind", ["tokens", "cost"])
async def test_fifty_concurrent_requests_overspend_the_run_by_at_most_one_output(
    mock_upstream_server: MockUpstream, tmp_path: Path, autojump_clock: trio.abc.Clock, kind: str
) -> None:
    cap_tokens = 2000
    limits = (
        RunLimits(max_tokens=cap_tokens)
        if kind == "tokens"
        else RunLimits(max_cost_usd=cap_tokens * PRICE_PER_TOKEN)
    )
    config = CONFIG.format(url=mock_upstream_server.url, model=MODEL)
    async with start_proxy(
        tmp_path, mock_upstream_server.url, config=config, run_limits=limits
    ) as proxy:
        token = proxy.token(POLICY)
        statuses: list[int] = []
        messages: list[str] = []

        async def one(client: httpx2.AsyncClient) -> None:
            response = await client.post(
                "/v1/chat/completions", json=body(), headers={"x-api-key": token}
            )
            statuses.append(response.status_code)
            if response.status_code == 429:
                messages.append(openai_error_message(response, 429))
                assert response.headers["x-should-retry"] == "false"

        async with proxy.client() as client, trio.open_nursery() as nursery:
            for _ in range(50):
                nursery.start_soon(one, client)
        await settled(proxy)
        run = proxy.server.deps.run_budget
        assert run is not None
        spent_tokens, spent_cost, requests = run.tokens, run.cost_usd, run.requests
        stats = proxy.server.stats.snapshot()["totals"]
    admitted = statuses.count(200)
    assert admitted >= 1 and admitted + statuses.count(429) == 50
    assert len(mock_upstream_server.requests) == admitted == requests
    assert spent_tokens == stats["total_tokens"] == admitted * 2 * OUTPUT + admitted * 3
    assert spent_tokens <= cap_tokens + OUTPUT  # the overshoot rule
    assert spent_cost <= (cap_tokens + OUTPUT) * PRICE_PER_TOKEN + 1e-9
    limit_text = "2,000 max tokens" if kind == "tokens" else "$0.00200 max cost"
    assert all(m.startswith(f"run budget exceeded: {limit_text} for this run (") for m in messages)
    assert run.capped == limit_text and run.refused == 50 - admitted


async def test_after_max_duration_every_request_is_refused(
    mock_upstream_server: MockUpstream, tmp_path: Path, autojump_clock: trio.abc.Clock
) -> None:
    config = CONFIG.format(url=mock_upstream_server.url, model=MODEL)
    limits = RunLimits(max_duration=30 * 60)
    async with start_proxy(
        tmp_path, mock_upstream_server.url, config=config, run_limits=limits
    ) as proxy:
        token = proxy.token(POLICY)
        headers = {"x-api-key": token}
        assert proxy.server.deps.run_budget is not None
        proxy.server.deps.run_budget.start()  # as `run` does when it starts the child
        async with proxy.client() as client:
            ok = await client.post("/v1/chat/completions", json=body(5), headers=headers)
            assert ok.status_code == 200
            await trio.sleep(29 * 60)
            ok = await client.post("/v1/chat/completions", json=body(5), headers=headers)
            assert ok.status_code == 200
            await trio.sleep(60)
            refused = await client.post("/v1/chat/completions", json=body(5), headers=headers)
            # a request that spends nothing (the model list) is refused all the same
            listed = await client.get("/v1/models", headers=headers)
            anthropic = await client.post(
                "/v1/messages", headers=headers,
                json={"model": MODEL, "max_tokens": 5, "messages": [{"role": "user", "content": "hi"}]},
            )  # fmt: skip
        await settled(proxy)
        run = proxy.server.deps.run_budget
        assert run is not None and run.summary() == (
            ", capped by the run budget (30m max duration; 3 requests refused)"
        )
    message = (
        "run budget exceeded: 30m max duration for this run (no more requests after that time)"
    )
    assert openai_error_message(refused, 429) == message
    assert openai_error_message(listed, 429) == message
    assert anthropic.status_code == 429
    assert anthropic.json() == {
        "type": "error", "error": {"type": "rate_limit_error", "message": message}
    }  # fmt: skip
    assert len(mock_upstream_server.requests) == 2


async def test_the_token_policy_still_applies_inside_the_run(
    mock_upstream_server: MockUpstream, tmp_path: Path
) -> None:
    config = CONFIG.format(url=mock_upstream_server.url, model=MODEL)
    limits = RunLimits(max_tokens=100_000)
    async with start_proxy(
        tmp_path, mock_upstream_server.url, config=config, run_limits=limits
    ) as proxy:
        token = proxy.token({**POLICY, "max_tokens": 30})
        async with proxy.client() as client:
            response = await client.post(
                "/v1/chat/completions", json=body(40, "echo"), headers={"x-api-key": token}
            )
        await settled(proxy)
        run = proxy.server.deps.run_budget
        assert run is not None and (run.tokens, run.requests, run.capped) == (0, 0, "")
    message = openai_error_message(response, 429)
    assert message.startswith("budget exceeded: used 0 + input ")  # the policy's own message
    assert response.headers["x-should-retry"] == "false"


async def test_serve_has_no_run_budget(proxy: Any) -> None:
    assert proxy.server.deps.run_budget is None
