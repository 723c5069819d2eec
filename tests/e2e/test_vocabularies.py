"""Vocabularies through the real server (issue 14): a budgeted request far from its limit is
admitted on the vocabulary-free bound and settled with the provider's usage, so nothing is
loaded; a count is made (loading the model's own encoding only) when the bound is refused or
the provider reports no usage, and its numbers are tiktoken's."""

from __future__ import annotations

import re

import orjson
from tests.support.mock_upstream import MockUpstream
from tests.support.proxy import Proxy, openai_error_message, settled

from tokenomics.formats.estimate import CL100K, O200K, bound_texts

OPENAI = {"base_key_env": "OPENAI_KEY"}
BUDGET_RE = re.compile(r"budget exceeded: used (\d+) \+ input (\d+) > limit (\d+)")
TEXT = "Vocabularies are loaded when a count needs them, and not before."


def chat(model: str, *, stream: bool = False) -> dict[str, object]:
    body = {"model": model, "messages": [{"role": "user", "content": TEXT}], "stream": stream}
    return {**body, "stream_options": {"include_usage": True}} if stream else body


def last_usage(body: bytes) -> dict[str, int]:
    """The usage of an SSE stream (its last event that has one)."""
    events = [line[6:] for line in body.split(b"\n") if line.startswith(b"data: {")]
    return dict(next(u for e in reversed(events) if (u := orjson.loads(e).get("usage"))))


async def test_usage_reported_far_from_the_limit_loads_no_vocabulary(proxy: Proxy) -> None:
    estimator = proxy.server.deps.estimator
    token = proxy.token({**OPENAI, "max_tokens": 10**9})
    totals = 0
    async with proxy.client() as client:
        for stream in (False, True):
            response = await client.post(
                "/v1/chat/completions", json=chat("gpt-4o", stream=stream),
                headers={"x-api-key": token},
            )  # fmt: skip
            assert response.status_code == 200, response.text
            usage = last_usage(response.content) if stream else response.json()["usage"]
            totals += usage["prompt_tokens"] + usage["completion_tokens"]
    await settled(proxy)
    assert estimator.loaded == ()
    # the reservations made at the bound were settled with the provider's own figures
    assert proxy.server.deps.budgets.used(proxy.key.hash(token)).tokens == totals


async def test_a_refused_bound_is_counted_with_the_models_vocabulary_only(proxy: Proxy) -> None:
    estimator = proxy.server.deps.estimator
    token = proxy.token({**OPENAI, "max_tokens": 5})
    async with proxy.client() as client:
        response = await client.post(
            "/v1/chat/completions", json=chat("gpt-4o"), headers={"x-api-key": token}
        )
    found = BUDGET_RE.fullmatch(openai_error_message(response, 429))
    assert found is not None
    assert estimator.loaded == (O200K,)
    # the refusal names our tiktoken estimate, not the (4x larger) bound it first tried
    estimate = 3 + estimator.count_texts("gpt-4o", [TEXT])
    assert int(found.group(2)) == estimate < 3 + bound_texts([TEXT])


async def test_no_usage_reported_counts_input_and_output_with_tiktoken(
    proxy: Proxy, mock_upstream_server: MockUpstream
) -> None:
    estimator = proxy.server.deps.estimator
    token = proxy.token({**OPENAI, "max_tokens": 10**9})
    async with proxy.client() as client:
        for stream in (False, True):
            response = await client.post(
                "/v1/chat/completions", json=chat("nousage-gpt", stream=stream),
                headers={"x-api-key": token},
            )  # fmt: skip
            assert response.status_code == 200, response.text
            assert b'"usage"' not in response.content
    await settled(proxy)
    assert estimator.loaded == (CL100K,)  # an unknown model counts with cl100k_base
    async with proxy.client() as client:
        snapshot = (await client.get("/stats")).json()
    [entry] = [t for t in snapshot["by_token"] if t["token_hash"] == proxy.hash16(token)]
    assert entry["input_tokens"] == 2 * (3 + estimator.count_texts("nousage-gpt", [TEXT]))
    assert entry["output_tokens"] > 0  # the streamed text, counted
