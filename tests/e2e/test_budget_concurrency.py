"""Issue 12 item 5 through the real server: a budget holds each request's output cap, so fifty
concurrent requests spend at most the limit plus one request's output, in tokens and in cost.

The mock upstream's `echo` model answers with the request's text, so a prompt of N words makes
N output tokens; `slow-200` keeps every request in flight while the others are admitted.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx2
import pytest
import trio
import trio.testing
from tests.support.mock_upstream import MockUpstream
from tests.support.proxy import settled, start_proxy

OUTPUT = 220  # the output of every request, and the cap it sends
MODEL = "slow-200-echo-priced"
PRICE_PER_TOKEN = 1e-6  # $1 per million, in and out: the cost budget mirrors the token one
CONFIG = """providers:
  custom:
    upstream_url: {url}
    api_key_env: OPENAI_KEY
    prices:
      {model}: {{input: 1, output: 1}}
"""


@pytest.fixture
def autojump_clock() -> trio.testing.MockClock:
    return trio.testing.MockClock(autojump_threshold=0)


def body(stream: bool) -> dict[str, Any]:
    words = " ".join(["word"] * OUTPUT)
    return {
        "model": MODEL, "messages": [{"role": "user", "content": words}],
        "max_tokens": OUTPUT, "stream": stream,
    }  # fmt: skip


@pytest.mark.parametrize("stream", [False, True], ids=["buffered", "streamed"])
@pytest.mark.parametrize("limit_key", ["max_tokens", "max_cost_usd"])
async def test_fifty_concurrent_requests_overspend_by_at_most_one_output(
    mock_upstream_server: MockUpstream,
    tmp_path: Path,
    autojump_clock: trio.abc.Clock,
    stream: bool,
    limit_key: str,
) -> None:
    limit_tokens = 2000
    limit = limit_tokens if limit_key == "max_tokens" else limit_tokens * PRICE_PER_TOKEN
    config = CONFIG.format(url=mock_upstream_server.url, model=MODEL)
    async with start_proxy(tmp_path, mock_upstream_server.url, config=config) as proxy:
        policy = {"providers": {"custom": [{"base_key_env": "OPENAI_KEY"}]}, limit_key: limit}
        token = proxy.token(policy)
        statuses: list[int] = []
        outputs: list[int] = []

        async def one(client: httpx2.AsyncClient) -> None:
            response = await client.post(
                "/v1/chat/completions", json=body(stream), headers={"x-api-key": token}
            )
            statuses.append(response.status_code)
            if response.status_code == 200 and not stream:
                outputs.append(response.json()["usage"]["completion_tokens"])

        async with proxy.client() as client, trio.open_nursery() as nursery:
            for _ in range(50):
                nursery.start_soon(one, client)
        await settled(proxy)
        spent = proxy.server.deps.budgets.used(proxy.key.hash(token))
    assert statuses.count(200) >= 1 and statuses.count(200) + statuses.count(429) == 50
    assert all(output == OUTPUT for output in outputs)  # the echo made the full output
    assert spent.tokens <= limit_tokens + OUTPUT
    assert spent.cost_usd <= (limit_tokens + OUTPUT) * PRICE_PER_TOKEN + 1e-9
    assert len(mock_upstream_server.requests) == statuses.count(200)
