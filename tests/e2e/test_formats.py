"""API families through the real server (D5, D8, D11, D13): Anthropic Messages and count_tokens,
OpenAI Responses, completions and embeddings, Gemini native (plain, streamed, JSON-array
streamed) and Gemini's OpenAI-compatible chat. Scenario 25 is here."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import orjson
import pytest
from tests.support.mock_upstream import MockUpstream
from tests.support.providers import family_config
from tests.support.proxy import Proxy, start_proxy
from tests.support.proxy import settled as finished

ENV = {"GOOGLE_KEY": "g-real"}
PROMPTS = [{"role": "system", "content": "Global rule."}]
PROVIDER_PROMPTS = [{"role": "system", "content": "Provider rule."}]
GEMINI_BODY = {"contents": [{"role": "user", "parts": [{"text": "hello there"}]}]}
MESSAGES = {
    "model": "claude-sonnet-4-5",
    "max_tokens": 64,
    "messages": [{"role": "user", "content": "hello there"}],
}


def policy(**extra: Any) -> dict[str, Any]:
    """Claude to anthropic, Gemini to gemini, anything else to openai."""
    return {
        "providers": {
            "anthropic": [{"model_regex": "^claude", "base_key_env": "ANTHROPIC_KEY"}],
            "gemini": [{"model_regex": "^gemini", "base_key_env": "GOOGLE_KEY"}],
            "openai": [{"base_key_env": "OPENAI_KEY"}],
        },
        **extra,
    }


@pytest.fixture
async def families(mock_upstream_server: MockUpstream, tmp_path: Path) -> AsyncIterator[Proxy]:
    config = family_config(mock_upstream_server.url)
    async with start_proxy(tmp_path, mock_upstream_server.url, env=ENV, config=config) as proxy:
        yield proxy


async def settled(proxy: Proxy, count: int) -> dict[str, Any]:
    """`/stats` totals once the server finished the requests whose replies we have: `count`."""
    totals = await finished(proxy)
    assert totals["request_count"] == count
    return totals


# ── D5: every LLM route is enforced ─────────────────────────────────────────────────────────

CHAT_BODY = {"model": "gpt-4o", "messages": [{"role": "user", "content": "hello there"}]}
ROUTES = [
    ("/v1/chat/completions", CHAT_BODY, "openai"),
    ("/v1/completions", {"model": "gpt-4o", "prompt": "hello there"}, "openai"),
    ("/v1/responses", {"model": "gpt-4o", "input": "hello there"}, "openai"),
    ("/v1/embeddings", {"model": "text-embedding-3-small", "input": "hello there"}, "openai"),
    ("/v1/messages", MESSAGES, "anthropic"),
    ("/v1beta/models/gemini-2.5-flash:generateContent", GEMINI_BODY, "gemini"),
    ("/v1beta/models/gemini-2.5-flash:streamGenerateContent?alt=sse", GEMINI_BODY, "gemini"),
    ("/v1beta/openai/chat/completions", {**CHAT_BODY, "model": "gemini-2.5-flash"}, "openai"),
]


@pytest.mark.parametrize(
    ("path", "body", "family"), ROUTES, ids=[r[0].rsplit("/", 1)[-1] for r in ROUTES]
)
async def test_every_llm_route_refuses_an_exhausted_budget_without_upstream_call(
    families: Proxy, mock_upstream_server: MockUpstream, path: str, body: Any, family: str
) -> None:
    token = families.token(policy(max_tokens=1))
    async with families.client() as client:
        response = await client.post(
            path, json=body, headers={"x-api-key": token, "x-goog-api-key": token}
        )
    assert response.status_code == 429, response.text
    error = response.json()
    if family == "anthropic":
        assert error["type"] == "error" and error["error"]["type"] == "rate_limit_error"
    elif family == "gemini":
        assert error["error"]["status"] == "RESOURCE_EXHAUSTED"
    else:
        assert error["error"]["type"] == "tokenomics_error"
    message = error["error"]["message"]
    assert re.fullmatch(r"budget exceeded: used 0 \+ input \d+ > limit 1", message)
    assert mock_upstream_server.requests == []


# ── Anthropic Messages ───────────────────────────────────────────────────────────────────────


async def test_anthropic_messages_are_forwarded_with_anthropic_auth_and_usage_counted(
    families: Proxy, mock_upstream_server: MockUpstream
) -> None:
    token = families.token(policy())
    async with families.client() as client:
        response = await client.post(
            "/v1/messages",
            json=MESSAGES,
            headers={"x-api-key": token, "anthropic-version": "2023-06-01"},
        )
    assert response.status_code == 200, response.text
    usage = response.json()["usage"]
    (seen,) = mock_upstream_server.requests
    assert seen.path == "/v1/messages" and seen.json == MESSAGES
    assert seen.headers["x-api-key"] == "sk-ant-real" and "authorization" not in seen.headers
    totals = await settled(families, 1)
    assert totals["input_tokens"] == usage["input_tokens"]
    assert totals["output_tokens"] == usage["output_tokens"]


@pytest.mark.parametrize(
    ("system", "expected"),
    [
        (None, "Provider rule.\n\nGlobal rule."),
        ("Be brief.", "Provider rule.\n\nGlobal rule.\n\nBe brief."),
        (
            [{"type": "text", "text": "Be brief.", "cache_control": {"type": "ephemeral"}}],
            [
                {"type": "text", "text": "Provider rule."},
                {"type": "text", "text": "Global rule."},
                {"type": "text", "text": "Be brief.", "cache_control": {"type": "ephemeral"}},
            ],
        ),
    ],
    ids=["no-system", "string-system", "block-system"],
)
async def test_prompts_on_anthropic_messages_go_to_the_start_of_top_level_system(
    families: Proxy, mock_upstream_server: MockUpstream, system: Any, expected: Any
) -> None:
    """Scenario 25 (D11): no system-role message is added to `messages`."""
    providers = policy()["providers"]
    providers["anthropic"][0]["prompts"] = PROVIDER_PROMPTS
    token = families.token({"providers": providers, "prompts": PROMPTS})
    body = MESSAGES if system is None else {**MESSAGES, "system": system}
    async with families.client() as client:
        response = await client.post("/v1/messages", json=body, headers={"x-api-key": token})
    assert response.status_code == 200, response.text
    (seen,) = mock_upstream_server.requests
    assert seen.json["system"] == expected
    assert seen.json["messages"] == MESSAGES["messages"]


async def test_anthropic_route_errors_are_anthropic_shaped(
    families: Proxy, mock_upstream_server: MockUpstream
) -> None:
    token = families.token(policy())
    async with families.client() as client:
        missing = await client.post("/v1/messages", json=MESSAGES)
        invalid = await client.post(
            "/v1/messages",
            content=b"not json",
            headers={"x-api-key": token, "content-type": "application/json"},
        )
    assert missing.status_code == 401
    assert missing.json()["type"] == "error"
    assert missing.json()["error"]["type"] == "authentication_error"
    assert invalid.status_code == 400
    assert invalid.json() == {
        "type": "error",
        "error": {"type": "invalid_request_error", "message": "invalid JSON body"},
    }
    assert mock_upstream_server.requests == []


async def test_anthropic_upstream_error_is_relayed_verbatim(
    families: Proxy, mock_upstream_server: MockUpstream
) -> None:
    token = families.token({"providers": {"anthropic": [{"base_key_env": "ANTHROPIC_KEY"}]}})
    async with families.client() as client:
        failed = await client.post(
            "/v1/messages", json={**MESSAGES, "model": "fail-529"}, headers={"x-api-key": token}
        )
    assert failed.status_code == 529
    assert failed.json() == {
        "type": "error",
        "error": {"type": "overloaded_error", "message": "mock failure 529 for model fail-529"},
    }
    assert len(mock_upstream_server.requests) == 1


async def test_anthropic_count_tokens_works_when_budget_is_exhausted(
    families: Proxy, mock_upstream_server: MockUpstream
) -> None:
    """D5: count_tokens is authenticated and rate-limited but never charged to the budget."""
    token = families.token(policy(max_tokens=1))
    body = {k: v for k, v in MESSAGES.items() if k != "max_tokens"}
    async with families.client() as client:
        refused = await client.post("/v1/messages", json=MESSAGES, headers={"x-api-key": token})
        counted = await client.post(
            "/v1/messages/count_tokens", json=body, headers={"x-api-key": token}
        )
        anonymous = await client.post("/v1/messages/count_tokens", json=body)
    assert refused.status_code == 429
    assert counted.status_code == 200, counted.text
    assert counted.json()["input_tokens"] > 0
    assert anonymous.status_code == 401 and anonymous.json()["type"] == "error"
    (seen,) = mock_upstream_server.requests
    assert seen.path == "/v1/messages/count_tokens"
    assert seen.headers["x-api-key"] == "sk-ant-real"


async def test_count_tokens_calls_consume_no_budget_and_count_no_usage(
    families: Proxy, mock_upstream_server: MockUpstream
) -> None:
    """Counting is free upstream: it must not eat into the budget nor show up as input tokens."""
    body = {k: v for k, v in MESSAGES.items() if k != "max_tokens"}
    async with families.client() as client:
        probe = families.token(policy(max_tokens=1))
        refused = await client.post("/v1/messages", json=MESSAGES, headers={"x-api-key": probe})
        estimate = int(re.findall(r"input (\d+)", refused.json()["error"]["message"])[0])
        token = families.token(policy(max_tokens=estimate))
        for _ in range(3):
            counted = await client.post(
                "/v1/messages/count_tokens", json=body, headers={"x-api-key": token}
            )
            assert counted.status_code == 200
            gemini = await client.post(
                "/v1beta/models/gemini-2.5-flash:countTokens",
                json=GEMINI_BODY,
                headers={"x-goog-api-key": token},
            )
            assert gemini.status_code == 200
        await settled(families, 7)
        assert families.server.stats.snapshot()["totals"]["input_tokens"] == 0
        admitted = await client.post("/v1/messages", json=MESSAGES, headers={"x-api-key": token})
    assert admitted.status_code == 200, admitted.text


async def test_anthropic_count_tokens_is_rate_limited(
    families: Proxy, mock_upstream_server: MockUpstream
) -> None:
    token = families.token(policy(rate_limit={"rules": [{"requests": 1, "window": "1m"}]}))
    body = {k: v for k, v in MESSAGES.items() if k != "max_tokens"}
    async with families.client() as client:
        first = await client.post(
            "/v1/messages/count_tokens", json=body, headers={"x-api-key": token}
        )
        second = await client.post(
            "/v1/messages/count_tokens", json=body, headers={"x-api-key": token}
        )
    assert first.status_code == 200
    assert second.status_code == 429 and "retry-after" in second.headers
    assert second.json()["error"]["type"] == "rate_limit_error"
    assert len(mock_upstream_server.requests) == 1


# ── OpenAI chat ──────────────────────────────────────────────────────────────────────────────


async def test_chat_prompts_are_prepended_provider_first_with_their_roles(
    families: Proxy, mock_upstream_server: MockUpstream
) -> None:
    """Scenario 24."""
    providers = policy()["providers"]
    providers["openai"][0]["prompts"] = [{"role": "developer", "content": "Provider instruction"}]
    token = families.token(
        {"providers": providers, "prompts": [{"role": "system", "content": "You are helpful."}]}
    )
    body = {"model": "gpt-4o", "messages": [{"role": "user", "content": "hi"}]}
    async with families.client() as client:
        response = await client.post(
            "/v1/chat/completions", json=body, headers={"authorization": f"Bearer {token}"}
        )
    assert response.status_code == 200, response.text
    (seen,) = mock_upstream_server.requests
    assert seen.json["messages"] == [
        {"role": "developer", "content": "Provider instruction"},
        {"role": "system", "content": "You are helpful."},
        {"role": "user", "content": "hi"},
    ]


# ── OpenAI Responses, completions, embeddings ────────────────────────────────────────────────


async def test_responses_prompts_go_into_instructions_before_the_clients(
    families: Proxy, mock_upstream_server: MockUpstream
) -> None:
    token = families.token(policy(prompts=PROMPTS))
    body = {"model": "gpt-4.1", "input": "hello there", "instructions": "Be brief."}
    async with families.client() as client:
        response = await client.post(
            "/v1/responses", json=body, headers={"authorization": f"Bearer {token}"}
        )
    assert response.status_code == 200, response.text
    (seen,) = mock_upstream_server.requests
    assert seen.path == "/v1/responses"
    assert seen.json == {**body, "instructions": "Global rule.\n\nBe brief."}
    usage = response.json()["usage"]
    totals = await settled(families, 1)
    assert (totals["input_tokens"], totals["output_tokens"]) == (
        usage["input_tokens"],
        usage["output_tokens"],
    )


async def test_responses_are_model_checked_and_budgeted(
    families: Proxy, mock_upstream_server: MockUpstream
) -> None:
    body = {"model": "gpt-4.1", "input": "hello there"}
    regex = families.token(policy(model_regex="^o3"))
    budget = families.token(policy(max_tokens=1))
    async with families.client() as client:
        refused = await client.post(
            "/v1/responses", json=body, headers={"authorization": f"Bearer {regex}"}
        )
        broke = await client.post(
            "/v1/responses", json=body, headers={"authorization": f"Bearer {budget}"}
        )
    assert refused.status_code == 403 and broke.status_code == 429
    assert refused.json()["error"]["type"] == "tokenomics_error"
    assert broke.json()["error"]["message"].startswith("budget exceeded: used 0 + input ")
    assert mock_upstream_server.requests == []


async def test_completions_prompt_gets_policy_prompts_as_prefix(
    families: Proxy, mock_upstream_server: MockUpstream
) -> None:
    token = families.token(policy(prompts=PROMPTS))
    body = {"model": "gpt-3.5-turbo-instruct", "prompt": "Say hello", "max_tokens": 5}
    async with families.client() as client:
        response = await client.post(
            "/v1/completions", json=body, headers={"authorization": f"Bearer {token}"}
        )
    assert response.status_code == 200, response.text
    (seen,) = mock_upstream_server.requests
    assert seen.path == "/v1/completions"
    assert seen.json == {**body, "prompt": "Global rule.\n\nSay hello"}
    totals = await settled(families, 1)
    assert totals["output_tokens"] == response.json()["usage"]["completion_tokens"]


async def test_embeddings_get_no_prompts_but_are_enforced_and_counted(
    families: Proxy, mock_upstream_server: MockUpstream
) -> None:
    token = families.token(policy(prompts=PROMPTS))
    refused = families.token(policy(model="text-embedding-3-large"))
    body = {"model": "text-embedding-3-small", "input": ["hello there", "general kenobi"]}
    async with families.client() as client:
        response = await client.post(
            "/v1/embeddings", json=body, headers={"authorization": f"Bearer {token}"}
        )
        forbidden = await client.post(
            "/v1/embeddings", json=body, headers={"authorization": f"Bearer {refused}"}
        )
    assert response.status_code == 200, response.text
    assert len(response.json()["data"]) == 2
    assert forbidden.status_code == 403
    (seen,) = mock_upstream_server.requests
    assert seen.path == "/v1/embeddings" and seen.json == body
    totals = await settled(families, 2)
    assert totals["input_tokens"] == response.json()["usage"]["prompt_tokens"]


# ── Gemini native ────────────────────────────────────────────────────────────────────────────


GEMINI_PATH = "/v1beta/models/gemini-2.5-flash:generateContent"


async def test_gemini_native_goes_to_gemini_provider_and_counts_usage_metadata(
    families: Proxy, mock_upstream_server: MockUpstream
) -> None:
    token = families.token(policy())
    async with families.client() as client:
        response = await client.post(
            GEMINI_PATH, json=GEMINI_BODY, headers={"x-goog-api-key": token}
        )
    assert response.status_code == 200, response.text
    (seen,) = mock_upstream_server.requests
    assert seen.path == GEMINI_PATH and seen.json == GEMINI_BODY
    assert seen.headers["x-goog-api-key"] == "g-real" and "authorization" not in seen.headers
    usage = response.json()["usageMetadata"]
    totals = await settled(families, 1)
    assert totals["input_tokens"] == usage["promptTokenCount"]
    assert totals["output_tokens"] == usage["candidatesTokenCount"]
    by_model = families.server.stats.snapshot()["by_model_and_key"]
    assert [m["model"] for m in by_model] == ["gemini-2.5-flash"]


async def test_gemini_wrapper_token_in_query_key_is_swapped_for_the_real_key(
    families: Proxy, mock_upstream_server: MockUpstream
) -> None:
    token = families.token(policy())
    async with families.client() as client:
        response = await client.post(f"{GEMINI_PATH}?key={token}", json=GEMINI_BODY)
    assert response.status_code == 200, response.text
    (seen,) = mock_upstream_server.requests
    assert seen.path == GEMINI_PATH  # the wrapper `key=` is gone
    assert seen.headers["x-goog-api-key"] == "g-real" and token not in str(seen.headers)


async def test_gemini_model_from_path_is_model_checked_with_google_error_shape(
    families: Proxy, mock_upstream_server: MockUpstream
) -> None:
    # a provider policy's own model_regex would replace the global one: use the global view
    token = families.token(
        {"base_key_env": "GOOGLE_KEY", "default_provider": "gemini", "model_regex": "pro$"}
    )
    async with families.client() as client:
        response = await client.post(
            GEMINI_PATH, json=GEMINI_BODY, headers={"x-goog-api-key": token}
        )
        missing = await client.post(GEMINI_PATH, json=GEMINI_BODY)
        invalid = await client.post(
            GEMINI_PATH, content=b"[1,2]", headers={"x-goog-api-key": token}
        )
    assert response.status_code == 403
    assert response.json() == {
        "error": {
            "code": 403,
            "message": 'model "gemini-2.5-flash" does not match policy regex "pro$"',
            "status": "PERMISSION_DENIED",
        }
    }
    assert missing.status_code == 401 and missing.json()["error"]["status"] == "UNAUTHENTICATED"
    assert invalid.status_code == 400
    assert invalid.json()["error"] == {
        "code": 400,
        "message": "invalid JSON body",
        "status": "INVALID_ARGUMENT",
    }
    assert mock_upstream_server.requests == []


async def test_gemini_budget_exceeded_is_resource_exhausted(
    families: Proxy, mock_upstream_server: MockUpstream
) -> None:
    token = families.token(policy(max_tokens=1))
    async with families.client() as client:
        response = await client.post(
            GEMINI_PATH, json=GEMINI_BODY, headers={"x-goog-api-key": token}
        )
    assert response.status_code == 429
    error = response.json()["error"]
    assert error["status"] == "RESOURCE_EXHAUSTED" and error["code"] == 429
    assert error["message"].startswith("budget exceeded: used 0 + input ")
    assert mock_upstream_server.requests == []


@pytest.mark.parametrize("key", ["systemInstruction", "system_instruction"])
async def test_gemini_prompts_go_to_the_start_of_system_instruction_parts(
    families: Proxy, mock_upstream_server: MockUpstream, key: str
) -> None:
    token = families.token(policy(prompts=PROMPTS))
    body = {**GEMINI_BODY, key: {"parts": [{"text": "Be brief."}]}}
    async with families.client() as client:
        response = await client.post(GEMINI_PATH, json=body, headers={"x-goog-api-key": token})
    assert response.status_code == 200, response.text
    (seen,) = mock_upstream_server.requests
    assert seen.json[key] == {"parts": [{"text": "Global rule."}, {"text": "Be brief."}]}
    assert seen.json["contents"] == GEMINI_BODY["contents"]


async def test_gemini_prompts_create_system_instruction_when_absent(
    families: Proxy, mock_upstream_server: MockUpstream
) -> None:
    token = families.token(policy(prompts=PROMPTS))
    async with families.client() as client:
        await client.post(GEMINI_PATH, json=GEMINI_BODY, headers={"x-goog-api-key": token})
    (seen,) = mock_upstream_server.requests
    assert seen.json == {**GEMINI_BODY, "systemInstruction": {"parts": [{"text": "Global rule."}]}}


async def test_gemini_fallback_model_is_written_into_the_path(
    families: Proxy, mock_upstream_server: MockUpstream
) -> None:
    token = families.token(
        {
            "base_key_env": "GOOGLE_KEY",
            "default_provider": "gemini",
            "retry": {"max_retries": 0, "fallbacks": ["gemini-2.0-flash"], "retry_on": [503]},
        }
    )
    async with families.client() as client:
        response = await client.post(
            "/v1beta/models/fail-503:generateContent",
            json=GEMINI_BODY,
            headers={"x-goog-api-key": token},
        )
    assert response.status_code == 200, response.text
    assert response.json()["modelVersion"] == "gemini-2.0-flash"
    first, second = mock_upstream_server.requests
    assert first.path == "/v1beta/models/fail-503:generateContent"
    assert second.path == "/v1beta/models/gemini-2.0-flash:generateContent"
    assert second.json == GEMINI_BODY


def _sse_payloads(text: str) -> list[dict[str, Any]]:
    return [orjson.loads(line[5:]) for line in text.splitlines() if line.startswith("data:")]


async def test_gemini_stream_with_alt_sse_is_relayed_and_usage_counted(
    families: Proxy, mock_upstream_server: MockUpstream
) -> None:
    token = families.token(policy())
    path = "/v1beta/models/gemini-2.5-flash:streamGenerateContent?alt=sse"
    async with families.client() as client:
        response = await client.post(path, json=GEMINI_BODY, headers={"x-goog-api-key": token})
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/event-stream")
    chunks = _sse_payloads(response.text)
    text = "".join(c["candidates"][0]["content"]["parts"][0]["text"] for c in chunks)
    assert text == "Mock reply to: hello there"
    (seen,) = mock_upstream_server.requests
    assert seen.path == path
    final = chunks[-1]["usageMetadata"]
    totals = await settled(families, 1)
    assert totals["input_tokens"] == final["promptTokenCount"]
    assert totals["output_tokens"] == final["candidatesTokenCount"]


async def test_gemini_stream_without_alt_sse_relays_the_json_array_and_counts_usage(
    families: Proxy, mock_upstream_server: MockUpstream
) -> None:
    token = families.token(policy())
    path = "/v1beta/models/gemini-2.5-flash:streamGenerateContent"
    async with families.client() as client:
        response = await client.post(path, json=GEMINI_BODY, headers={"x-goog-api-key": token})
    assert response.status_code == 200, response.text
    chunks = response.json()
    assert isinstance(chunks, list) and len(chunks) > 1
    totals = await settled(families, 1)
    assert totals["output_tokens"] == chunks[-1]["usageMetadata"]["candidatesTokenCount"]


async def test_gemini_count_tokens_is_not_budgeted(
    families: Proxy, mock_upstream_server: MockUpstream
) -> None:
    token = families.token(policy(max_tokens=1))
    async with families.client() as client:
        response = await client.post(
            "/v1beta/models/gemini-2.5-flash:countTokens",
            json=GEMINI_BODY,
            headers={"x-goog-api-key": token},
        )
    assert response.status_code == 200, response.text
    assert response.json()["totalTokens"] > 0


# ── Gemini's OpenAI-compatible API ───────────────────────────────────────────────────────────


async def test_gemini_openai_compatible_chat_goes_to_gemini_with_openai_shapes(
    families: Proxy, mock_upstream_server: MockUpstream
) -> None:
    token = families.token(policy(prompts=PROMPTS))
    refused = families.token(policy(model="gemini-2.5-pro"))
    body = {"model": "gemini-2.5-flash", "messages": [{"role": "user", "content": "hello there"}]}
    path = "/v1beta/openai/chat/completions"
    async with families.client() as client:
        response = await client.post(path, json=body, headers={"authorization": f"Bearer {token}"})
        forbidden = await client.post(
            path, json=body, headers={"authorization": f"Bearer {refused}"}
        )
        via_v1 = await client.post(
            "/v1/chat/completions", json=body, headers={"authorization": f"Bearer {token}"}
        )
    assert response.status_code == 200, response.text
    assert response.json()["object"] == "chat.completion"
    assert forbidden.status_code == 403
    assert forbidden.json()["error"]["type"] == "tokenomics_error"
    first, v1 = mock_upstream_server.requests
    assert first.path == v1.path == path  # the provider's chat_path
    assert first.headers["x-goog-api-key"] == "g-real" and "authorization" not in first.headers
    assert first.json["messages"][0] == {"role": "system", "content": "Global rule."}
    assert via_v1.status_code == 200


async def test_gemini_native_to_provider_without_gemini_format_is_400(
    families: Proxy, mock_upstream_server: MockUpstream
) -> None:
    token = families.token({"providers": {"anthropic": [{"base_key_env": "ANTHROPIC_KEY"}]}})
    async with families.client() as client:
        response = await client.post(
            GEMINI_PATH, json=GEMINI_BODY, headers={"x-goog-api-key": token}
        )
    assert response.status_code == 400
    error = response.json()["error"]
    assert error["status"] == "INVALID_ARGUMENT"
    assert re.search(r'provider "anthropic" does not accept gemini-format', error["message"])
    assert mock_upstream_server.requests == []
