"""`proxy.md` §7 scenarios 35-48 (budgets and rate limits) through the real server.

Budgets reserve our input estimate and the request's output cap at admission and settle with
the provider's input+output afterwards (D13, D14); rate limits follow policy edits at once and
send `Retry-After` (D8, D16).
Scenario 41 (two proxies sharing Redis) needs the Redis backend and is not covered here.
"""

from __future__ import annotations

import json
import re
import socket
from pathlib import Path
from typing import Any

import httpx2
import pytest
import trio
import trio.testing
from tests.support.mock_upstream import MockUpstream
from tests.support.proxy import Proxy, openai_error_message, settled, start_proxy

from tokenomics.domain.budget import format_usd
from tokenomics.store.tokens import TokenStore

OPENAI = {"base_key_env": "OPENAI_KEY"}
BUDGET_RE = re.compile(r"budget exceeded: used (\d+) \+ input (\d+) > limit (\d+)")
# 200 one-token words: estimate E = 206, actual C = 203 in + 15 out = 218. A reservation holds
# R = E + the output cap (`max_tokens: 15`) until it settles at C, so a limit of 9*max(R, C) + E
# admits exactly 10 requests in any interleaving as long as it is below 10*min(R, C) + E.
MANY_WORDS = " ".join(["word"] * 200)


@pytest.fixture
def autojump_clock() -> trio.testing.MockClock:
    return trio.testing.MockClock(autojump_threshold=0)


def chat(model: str = "gpt-4o", content: str = "hello") -> dict[str, Any]:
    return {"model": model, "messages": [{"role": "user", "content": content}]}


async def post(client: httpx2.AsyncClient, token: str, body: dict[str, Any]) -> httpx2.Response:
    return await client.post("/v1/chat/completions", json=body, headers={"x-api-key": token})


async def input_estimate(proxy: Proxy, body: dict[str, Any]) -> int:
    """Our admission estimate E for `body`, read from the 429 of a 1-token budget."""
    async with proxy.client() as client:
        response = await post(client, proxy.token({**OPENAI, "max_tokens": 1}), body)
    found = BUDGET_RE.fullmatch(openai_error_message(response, 429))
    assert found is not None
    return int(found.group(2))


async def actual_usage(proxy: Proxy, body: dict[str, Any]) -> dict[str, int]:
    """The provider's usage for `body`, from one call with an unbudgeted token."""
    async with proxy.client() as client:
        response = await post(client, proxy.token(OPENAI), body)
    assert response.status_code == 200, response.text
    await settled(proxy)
    return dict(response.json()["usage"])


def closed_port_url() -> str:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}"


async def token_stats(proxy: Proxy, token: str) -> dict[str, Any]:
    await settled(proxy)
    async with proxy.client() as client:
        snapshot = (await client.get("/stats")).json()
    [entry] = [t for t in snapshot["by_token"] if t["token_hash"] == proxy.hash16(token)]
    return dict(entry)


# ── budgets ──────────────────────────────────────────────────────────────────────────────────


async def test_budget_smaller_than_one_request_is_429_without_upstream_call(
    proxy: Proxy, mock_upstream_server: MockUpstream
) -> None:
    token = proxy.token({**OPENAI, "max_tokens": 1})
    async with proxy.client() as client:
        response = await post(client, token, chat())
    assert re.fullmatch(
        r"budget exceeded: used 0 \+ input \d+ > limit 1", openai_error_message(response, 429)
    )
    assert mock_upstream_server.requests == []
    await settled(proxy)
    assert proxy.server.deps.budgets.used(proxy.key.hash(token)).tokens == 0
    assert (await token_stats(proxy, token))["error_count"] == 1


async def test_budget_of_one_estimate_admits_exactly_one_of_two_concurrent_requests(
    proxy: Proxy, mock_upstream_server: MockUpstream, autojump_clock: trio.abc.Clock
) -> None:
    body = chat("slow-300-gpt-4o")
    estimate = await input_estimate(proxy, body)
    token = proxy.token({**OPENAI, "max_tokens": estimate})
    statuses: list[int] = []
    async with proxy.client() as client, trio.open_nursery() as nursery:
        for _ in range(2):
            nursery.start_soon(lambda: _collect(client, token, body, statuses))
    assert sorted(statuses) == [200, 429]
    assert len(mock_upstream_server.requests) == 1


async def _collect(
    client: httpx2.AsyncClient, token: str, body: dict[str, Any], into: list[Any]
) -> None:
    response = await post(client, token, body)
    into.append(response.status_code)


async def test_reservation_is_released_when_the_upstream_is_unreachable(proxy: Proxy) -> None:
    estimate = await input_estimate(proxy, chat())
    token = proxy.token({**OPENAI, "upstream_url": closed_port_url(), "max_tokens": estimate})
    async with proxy.client() as client:
        for _ in range(2):  # the second would not fit if the first's reservation were kept
            response = await post(client, token, chat())
            assert openai_error_message(response, 502).startswith(
                "upstream request failed after 1 "
            )
            await settled(proxy)
            assert proxy.server.deps.budgets.used(proxy.key.hash(token)).tokens == 0
    assert proxy.server.deps.budgets.statistics().reservations == 0


async def test_upstream_400_is_relayed_and_the_input_estimate_stays_charged(
    proxy: Proxy, mock_upstream_server: MockUpstream
) -> None:
    body = chat("fail-400")
    estimate = await input_estimate(proxy, body)
    token = proxy.token({**OPENAI, "max_tokens": 2 * estimate - 1})
    async with proxy.client() as client:
        first = await post(client, token, body)
        assert first.status_code == 400
        assert first.json()["error"]["type"] == "invalid_request_error"  # the mock's own body
        await settled(proxy)
        second = await post(client, token, body)
    found = BUDGET_RE.fullmatch(openai_error_message(second, 429))
    assert found is not None and int(found.group(1)) >= estimate
    assert len(mock_upstream_server.requests) == 1


async def test_output_tokens_are_counted_in_stats_and_budget(proxy: Proxy) -> None:
    token = proxy.token(OPENAI)  # no budget: input and output are still accounted (D13)
    async with proxy.client() as client:
        await post(client, token, chat())
        before = await token_stats(proxy, token)
        response = await post(client, token, chat(content="four words right here"))
    usage = response.json()["usage"]
    after = await token_stats(proxy, token)
    assert usage["completion_tokens"] > 0
    assert after["output_tokens"] - before["output_tokens"] == usage["completion_tokens"]
    assert after["input_tokens"] - before["input_tokens"] == usage["prompt_tokens"]
    assert after["error_count"] == 0
    used = proxy.server.deps.budgets.used(proxy.key.hash(token)).tokens
    assert used == after["total_tokens"]


async def test_fifty_concurrent_requests_never_exceed_a_ten_request_budget_which_survives_restart(
    mock_upstream_server: MockUpstream, tmp_path: Path
) -> None:
    body = {**chat(content=MANY_WORDS), "max_tokens": 15}
    async with start_proxy(tmp_path, mock_upstream_server.url) as proxy:
        estimate = await input_estimate(proxy, body)
        usage = await actual_usage(proxy, body)
        cost, held = usage["total_tokens"], estimate + body["max_tokens"]
        assert usage["completion_tokens"] == body["max_tokens"]
        limit = 9 * max(cost, held) + estimate
        assert limit < 10 * min(cost, held) + estimate  # the 11th never fits
        token = proxy.token({**OPENAI, "max_tokens": limit})
        key = proxy.key.hash(token)
        mock_upstream_server.clear()
        responses: list[httpx2.Response] = []

        async def one(client: httpx2.AsyncClient) -> None:
            responses.append(await post(client, token, body))

        async with proxy.client() as client, trio.open_nursery() as nursery:
            for _ in range(50):
                nursery.start_soon(one, client)
        statuses = [r.status_code for r in responses]
        assert (statuses.count(200), statuses.count(429)) == (10, 40)
        for response in responses:
            if response.status_code == 429:
                found = BUDGET_RE.fullmatch(openai_error_message(response, 429))
                assert found is not None, response.text
                assert (int(found.group(2)), int(found.group(3))) == (estimate, limit)
        assert len(mock_upstream_server.requests) == 10
        await settled(proxy)
        assert proxy.server.deps.budgets.used(key).tokens == 10 * cost
        assert proxy.server.deps.budgets.statistics().reservations == 0

    mock_upstream_server.clear()
    async with start_proxy(tmp_path, mock_upstream_server.url) as restarted:
        assert restarted.server.deps.budgets.used(key).tokens == 10 * cost
        async with restarted.client() as client:
            response = await post(client, token, body)
    message = openai_error_message(response, 429)
    assert message == f"budget exceeded: used {10 * cost} + input {estimate} > limit {limit}"
    assert mock_upstream_server.requests == []


async def test_cost_budget_refuses_the_request_that_would_pass_it_and_survives_restart(
    mock_upstream_server: MockUpstream, tmp_path: Path
) -> None:
    body = chat("gpt-4o", "hello")  # priced: $2.50 in, $10 out per million tokens
    async with start_proxy(tmp_path, mock_upstream_server.url) as proxy:
        usage = await actual_usage(proxy, body)
        cost = usage["prompt_tokens"] * 2.5e-6 + usage["completion_tokens"] * 10e-6
        limit = round(cost * 1.2, 9)  # room for one request, not for a second
        token = proxy.token({**OPENAI, "max_cost_usd": limit})
        key = proxy.key.hash(token)
        mock_upstream_server.clear()
        async with proxy.client() as client:
            first = await post(client, token, body)
            assert first.status_code == 200, first.text
            await settled(proxy)
            second = await post(client, token, body)
        assert openai_error_message(second, 429).startswith(
            f"cost budget exceeded: used ${format_usd(cost)} + "
        )
        assert len(mock_upstream_server.requests) == 1
        assert proxy.server.deps.budgets.used(key).cost_usd == pytest.approx(cost)
    async with start_proxy(tmp_path, mock_upstream_server.url) as restarted:
        assert restarted.server.deps.budgets.used(key).cost_usd == pytest.approx(cost)
        async with restarted.client() as client:
            again = await post(client, token, body)
    assert openai_error_message(again, 429).startswith("cost budget exceeded")
    assert len(mock_upstream_server.requests) == 1


# ── rate limits ──────────────────────────────────────────────────────────────────────────────


def rate_limited(response: httpx2.Response) -> str:
    """The 429 message of a rate limit, after checking its `Retry-After` (D8)."""
    message = openai_error_message(response, 429)
    assert int(response.headers["retry-after"]) >= 1
    return message


async def test_third_request_over_a_two_per_minute_limit_is_429(
    proxy: Proxy, mock_upstream_server: MockUpstream
) -> None:
    token = proxy.token({**OPENAI, "rate_limit": {"rules": [{"requests": 2, "window": "1m"}]}})
    async with proxy.client() as client:
        responses = [await post(client, token, chat()) for _ in range(3)]
    assert [r.status_code for r in responses[:2]] == [200, 200]
    assert rate_limited(responses[2]) == "rate limit exceeded: 2 requests in 1m window (max 2)"
    assert 1 <= int(responses[2].headers["retry-after"]) <= 60
    assert len(mock_upstream_server.requests) == 2


async def test_fixed_window_refuses_within_the_second_and_admits_after_it(
    proxy: Proxy, autojump_clock: trio.abc.Clock
) -> None:
    rule = {"requests": 1, "window": "1s", "strategy": "fixed"}
    token = proxy.token({**OPENAI, "rate_limit": {"rules": [rule]}})
    async with proxy.client() as client:
        assert (await post(client, token, chat())).status_code == 200
        second = await post(client, token, chat())
        await trio.sleep(1.1)
        third = await post(client, token, chat())
    assert rate_limited(second) == "rate limit exceeded: 1 requests in 1s window (max 1)"
    assert second.headers["retry-after"] == "1"
    assert third.status_code == 200, third.text


async def test_token_window_refuses_once_actual_usage_reached_it(proxy: Proxy) -> None:
    token = proxy.token({**OPENAI, "rate_limit": {"rules": [{"tokens": 10, "window": "1m"}]}})
    async with proxy.client() as client:
        first = await post(client, token, chat(content="a few words that cost tokens"))
        assert first.status_code == 200
        used = first.json()["usage"]["total_tokens"]
        assert used >= 10
        await settled(proxy)
        second = await post(client, token, chat())
    assert rate_limited(second) == f"rate limit exceeded: {used} tokens in 1m window (max 10)"


async def test_max_parallel_one_refuses_the_second_concurrent_request(
    proxy: Proxy, autojump_clock: trio.abc.Clock
) -> None:
    token = proxy.token({**OPENAI, "rate_limit": {"max_parallel": 1}})
    responses: list[httpx2.Response] = []

    async def one(client: httpx2.AsyncClient) -> None:
        responses.append(await post(client, token, chat("slow-1000")))

    async with proxy.client() as client, trio.open_nursery() as nursery:
        nursery.start_soon(one, client)
        nursery.start_soon(one, client)
    [refused] = [r for r in responses if r.status_code != 200]
    assert [r.status_code for r in responses].count(200) == 1
    assert rate_limited(refused) == "rate limit exceeded: 1 concurrent requests (max 1)"


async def test_max_parallel_holds_under_a_burst_of_twenty(
    proxy: Proxy, mock_upstream_server: MockUpstream, autojump_clock: trio.abc.Clock
) -> None:
    token = proxy.token({**OPENAI, "rate_limit": {"max_parallel": 2}})
    statuses: list[int] = []
    async with proxy.client() as client, trio.open_nursery() as nursery:
        for _ in range(20):
            nursery.start_soon(lambda: _collect(client, token, chat("slow-500"), statuses))
    assert mock_upstream_server.max_in_flight <= 2
    assert statuses.count(200) == len(mock_upstream_server.requests) >= 2
    assert statuses.count(200) + statuses.count(429) == 20


async def test_request_windows_are_per_token(proxy: Proxy) -> None:
    policy = {**OPENAI, "rate_limit": {"rules": [{"requests": 1, "window": "1m"}]}}
    token_a, token_b = proxy.token(policy), proxy.token(policy)
    async with proxy.client() as client:
        assert (await post(client, token_a, chat())).status_code == 200
        b_first = await post(client, token_b, chat())
        a_second = await post(client, token_a, chat())
    assert b_first.status_code == 200
    assert rate_limited(a_second) == "rate limit exceeded: 1 requests in 1m window (max 1)"


async def test_raised_request_limit_applies_at_once(proxy: Proxy) -> None:
    def policy(requests: int) -> dict[str, Any]:
        return {**OPENAI, "rate_limit": {"rules": [{"requests": requests, "window": "1m"}]}}

    token = proxy.token(policy(1))
    async with proxy.client() as client:
        assert (await post(client, token, chat())).status_code == 200
        assert rate_limited(await post(client, token, chat())).endswith("(max 1)")
        store = TokenStore.open(Path(proxy.settings.storage.db_path))
        try:
            store.update(proxy.key.hash(token), json.dumps(policy(5)), None)
        finally:
            store.close()
        proxy.reload_tokens()
        more = [await post(client, token, chat()) for _ in range(5)]
    assert [r.status_code for r in more[:4]] == [200] * 4
    assert rate_limited(more[4]) == "rate limit exceeded: 5 requests in 1m window (max 5)"


async def test_an_edited_model_restriction_applies_at_once(proxy: Proxy) -> None:
    """The resolved policy is remembered per policy and model: an edit is a new policy."""
    token = proxy.token({**OPENAI, "model": "gpt-4o"})
    async with proxy.client() as client:
        assert (await post(client, token, chat("gpt-4o"))).status_code == 200
        assert (await post(client, token, chat("gpt-4o-mini"))).status_code == 403
        store = TokenStore.open(Path(proxy.settings.storage.db_path))
        try:
            edited = {**OPENAI, "model_regex": "^gpt-4o-", "max_tokens": 1}
            store.update(proxy.key.hash(token), json.dumps(edited), None)
        finally:
            store.close()
        proxy.reload_tokens()
        now_allowed = await post(client, token, chat("gpt-4o-mini", "x"))
        now_refused = await post(client, token, chat("gpt-4o"))
    assert "budget exceeded" in openai_error_message(now_allowed, 429)
    assert "does not match policy regex" in openai_error_message(now_refused, 403)


async def test_cost_budget_refuses_a_model_without_a_price_instead_of_ignoring_it(
    proxy: Proxy, mock_upstream_server: MockUpstream
) -> None:
    token = proxy.token({"base_key_env": "OPENAI_KEY", "max_cost_usd": 1.0})
    async with proxy.client() as client:
        response = await client.post(
            "/v1/chat/completions", json=chat("my-unpriced-model"), headers={"x-api-key": token}
        )
    assert "has no known price, so its cost budget cannot be enforced" in openai_error_message(
        response, 403
    )
    assert mock_upstream_server.requests == []


async def test_prices_from_providers_yaml_price_a_custom_model(
    mock_upstream_server: MockUpstream, tmp_path: Path
) -> None:
    config = (
        "providers:\n  custom:\n    upstream_url: " + mock_upstream_server.url + "\n"
        "    api_key_env: OPENAI_KEY\n    prices:\n      my-model: {input: 1000000, output: 1000000}\n"
    )
    async with start_proxy(tmp_path, mock_upstream_server.url, config=config) as proxy:
        token = proxy.token(
            {"providers": {"custom": [{"base_key_env": "OPENAI_KEY"}]}, "max_cost_usd": 1000}
        )
        async with proxy.client() as client:
            response = await client.post(
                "/v1/chat/completions", json=chat("my-model"), headers={"x-api-key": token}
            )
        assert response.status_code == 200
        await trio.testing.wait_all_tasks_blocked()
        snapshot = proxy.server.stats.snapshot()
        tokens = snapshot["totals"]["total_tokens"]
        assert tokens > 0 and snapshot["totals"]["cost_usd"] == pytest.approx(tokens * 1.0)
