"""Admission of a policy with a rate limit and a budget through a real proxy on real Redis: one
round trip (one EVALSHA) before the upstream call, and the same answers as the in-process
backend when the model check, the rules or the budget refuse a request (issue 18)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from tests.e2e.test_redis_fleet import body, fleet, quiet, share_token, until
from tests.store.test_redis_admit import stat
from tests.support.mock_upstream import MockUpstream
from tests.support.proxy import start_proxy
from tests.support.redis_server import RedisServer, redis_server  # noqa: F401

PROVIDERS = {"providers": {"custom": [{"base_key_env": "OPENAI_KEY"}]}}
MEMORY_CONFIG = """providers:
  custom:
    upstream_url: {url}
    api_key_env: OPENAI_KEY
"""


async def test_admission_is_one_round_trip(
    mock_upstream_server: MockUpstream,
    tmp_path: Path,
    redis_server: RedisServer,  # noqa: F811
) -> None:
    policy = {**PROVIDERS, "max_tokens": 100_000,
              "rate_limit": {"rules": [{"requests": 100, "window": "1m"}], "max_parallel": 4}}  # fmt: skip
    async with fleet(tmp_path, mock_upstream_server, redis_server, size=1) as proxies:
        token = share_token(proxies, policy)
        async with proxies[0].client() as client:
            warm = await client.post("/v1/chat/completions", json=body("echo", 3),
                                     headers={"x-api-key": token})  # fmt: skip
            await quiet(proxies)
            # The token's creation is announced (one EVAL, sent whole: rare) within 0.1 s; on
            # a slow machine that could fall after the reset.
            await until(lambda: stat(redis_server, "eval") == 1)
            redis_server.command("CONFIG", "RESETSTAT")
            response = await client.post("/v1/chat/completions", json=body("echo", 3),
                                         headers={"x-api-key": token})  # fmt: skip
            await quiet(proxies)
    assert warm.status_code == response.status_code == 200
    assert stat(redis_server, "evalsha") == 2  # admission (rate + budget) and settle
    assert stat(redis_server, "eval") == 0


async def statuses(
    backend: str, root: Path, upstream: MockUpstream, redis: RedisServer, policy: dict[str, Any],
    requests: list[dict[str, Any]], matches: list[int],
) -> list[tuple[int, str]]:  # fmt: skip
    """The status and error message of each request, in order, through one proxy; `matches`
    gets how many rule matches the ledger recorded for each."""
    answers = []
    async with _proxy(backend, root, upstream, redis) as proxies:
        token = share_token(proxies, policy)
        async with proxies[0].client() as client:
            for request in requests:
                reply = await client.post(
                    "/v1/chat/completions", json=request, headers={"x-api-key": token}
                )
                message = reply.json().get("error", {}).get("message", "")
                answers.append((reply.status_code, message.split(":")[0]))
                await quiet(proxies)
        ledger = proxies[0].server.ledger
        assert ledger is not None
        journal = proxies[0].settings.sessions_dir / f"{ledger.base.name}.journal"
        lines = [json.loads(line) for line in journal.read_text().splitlines()]
    records = [line["request"] for line in lines if "request" in line]
    assert [r["status_code"] for r in records] == [status for status, _ in answers]
    matches.extend(len(r.get("rule_matches", ())) for r in records)
    return answers


def _proxy(backend: str, root: Path, upstream: MockUpstream, redis: RedisServer) -> Any:
    """One proxy, as a list of one, on the in-process counters or on Redis."""
    if backend == "redis":
        return fleet(root, upstream, redis, size=1)
    (root / "p0").mkdir()
    config = MEMORY_CONFIG.format(url=upstream.url)
    return _one(start_proxy(root / "p0", upstream.url, config=config))


@pytest.mark.parametrize("stream", [False, True])
@pytest.mark.parametrize("backend", ["memory", "redis"])
async def test_a_client_in_turn_always_finds_its_parallel_slot_free_on_both_backends(
    backend: str,
    stream: bool,
    mock_upstream_server: MockUpstream,
    tmp_path: Path,
    redis_server: RedisServer,  # noqa: F811
) -> None:
    """A request's slot is let go before its reply's last byte, whatever the backend (the
    record comes after it, `pipeline/run.py`): a client sending its requests one after the
    other, with no pause between, is never refused by `max_parallel: 1`."""
    policy = {**PROVIDERS, "rate_limit": {"max_parallel": 1}}
    async with _proxy(backend, tmp_path, mock_upstream_server, redis_server) as proxies:
        token = share_token(proxies, policy)
        async with proxies[0].client() as client:
            statuses = []
            for _ in range(20):
                reply = await client.post(
                    "/v1/chat/completions",
                    json={**body("echo", 3), "stream": stream},
                    headers={"x-api-key": token},
                )
                statuses.append(reply.status_code)
    assert statuses == [200] * 20


class _one:
    """A single proxy's context as a list of one, like `fleet`."""

    def __init__(self, context: Any) -> None:
        self.context = context

    async def __aenter__(self) -> list[Any]:
        return [await self.context.__aenter__()]

    async def __aexit__(self, *exc: object) -> None:
        await self.context.__aexit__(*exc)


@pytest.mark.parametrize("backend", ["memory", "redis"])
async def test_refusals_come_in_the_same_order_on_both_backends(
    backend: str,
    mock_upstream_server: MockUpstream,
    tmp_path: Path,
    redis_server: RedisServer,  # noqa: F811
) -> None:
    """The model check and the rules refuse first; the requests they refuse count in the rate
    window; once it is full the rate limit wins over them and over the budget."""
    policy = {**PROVIDERS, "model_regex": "^echo$", "max_tokens": 100_000,
              "rate_limit": {"rules": [{"requests": 3, "window": "1m"}], "max_parallel": 2},
              "rules": [{"type": "keyword", "keywords": ["forbidden"], "action": "fail"}]}  # fmt: skip
    blocked = {"model": "echo", "messages": [{"role": "user", "content": "forbidden"}]}
    requests = [body("other", 3), blocked, body("echo", 3), body("other", 3), blocked,
                body("echo", 3)]  # fmt: skip
    matches: list[int] = []
    answers = await statuses(
        backend, tmp_path, mock_upstream_server, redis_server, policy, requests, matches
    )
    assert [status for status, _ in answers] == [403, 403, 200, 429, 429, 429]
    assert matches == [0, 1, 0, 0, 0, 0]  # the rate-limited blocked request ran no rule
    assert answers[0][1].startswith('model "other" does not match')
    assert answers[1] == (403, "request blocked by rule 0")
    assert all(message == "rate limit exceeded" for _, message in answers[3:])
    assert len(mock_upstream_server.requests) == 1


@pytest.mark.parametrize("backend", ["memory", "redis"])
async def test_budget_refusals_count_in_the_rate_window_on_both_backends(
    backend: str,
    mock_upstream_server: MockUpstream,
    tmp_path: Path,
    redis_server: RedisServer,  # noqa: F811
) -> None:
    policy = {**PROVIDERS, "max_tokens": 10,
              "rate_limit": {"rules": [{"requests": 2, "window": "1m"}]}}  # fmt: skip
    answers = await statuses(
        backend, tmp_path, mock_upstream_server, redis_server, policy, [body("echo", 30)] * 3, []
    )
    assert answers == [(429, "budget exceeded"), (429, "budget exceeded"),
                       (429, "rate limit exceeded")]  # fmt: skip
    assert mock_upstream_server.requests == []


@pytest.mark.parametrize("backend", ["memory", "redis"])
async def test_a_request_near_its_budget_is_counted_once_on_both_backends(
    backend: str,
    mock_upstream_server: MockUpstream,
    tmp_path: Path,
    redis_server: RedisServer,  # noqa: F811
) -> None:
    """The input's bound (its UTF-8 size, ~150) is over the budget, its estimate (~35) is not:
    admitted after the second ask, and counted once in the rate window (with Redis the first
    ask, refused at the bound, takes nothing), so the second such request is admitted too."""
    policy = {**PROVIDERS, "max_tokens": 140,
              "rate_limit": {"rules": [{"requests": 2, "window": "1m"}]}}  # fmt: skip
    answers = await statuses(
        backend, tmp_path, mock_upstream_server, redis_server, policy, [body("echo", 30)] * 3, []
    )
    assert answers == [(200, ""), (200, ""), (429, "rate limit exceeded")]
    assert len(mock_upstream_server.requests) == 2
