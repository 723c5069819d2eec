"""Routing and providers through the real server: `proxy.md` §7 scenarios 11-24 (rules excluded),
decisions D5, D8 and D10, and provider URL handling (base paths, `{model}`, default query
parameters, auth schemes, provider headers, key-less providers)."""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from tests.support.mock_upstream import MockUpstream, mock_upstream
from tests.support.proxy import REAL_KEYS, Proxy, settled, start_proxy

CHAT = {"model": "gpt-4o", "messages": [{"role": "user", "content": "hello there"}]}
MESSAGES = {
    "model": "claude-3-opus",
    "max_tokens": 64,
    "messages": [{"role": "user", "content": "hello there"}],
}
OPENAI = {"base_key_env": "OPENAI_KEY"}
BUDGET_TEXT = re.compile(r"^budget exceeded: used \d+ \+ input \d+ > limit \d+$")


def chat(model: str, text: str = "hello there") -> dict[str, Any]:
    return {"model": model, "messages": [{"role": "user", "content": text}]}


def auth(token: str) -> dict[str, str]:
    return {"authorization": f"Bearer {token}"}


def provider_config(url: str) -> str:
    """Scenario 15's providers, pointed at the mock (inline entries replace built-ins whole)."""
    return f"""providers:
  openai:
    upstream_url: {url}
    api_key_env: OPENAI_KEY
  anthropic:
    upstream_url: {url}
    api_key_env: ANTHROPIC_KEY
    auth_scheme: header
    auth_header: x-api-key
    headers:
      anthropic-version: "2023-06-01"
    chat_path: /v1/messages
    formats: [anthropic, openai]
  anthropic_native:
    upstream_url: {url}
    api_key_env: ANTHROPIC_KEY
    auth_scheme: header
    auth_header: x-api-key
    formats: [anthropic]
"""


TWO_PROVIDERS = {
    "providers": {
        "openai": [{"model_regex": "^gpt-", "base_key_env": "OPENAI_KEY"}],
        "anthropic": [{"model_regex": "^claude", "base_key_env": "ANTHROPIC_KEY"}],
    }
}


# ── D5: every LLM route is enforced; other paths pass through after auth ─────────────────────


async def test_anthropic_messages_with_exhausted_budget_is_429_and_not_forwarded(
    proxy: Proxy, mock_upstream_server: MockUpstream
) -> None:
    """Scenario 11: /v1/messages gets the same budget enforcement as chat."""
    token = proxy.token({"base_key_env": "ANTHROPIC_KEY", "max_tokens": 1})
    async with proxy.client() as client:
        response = await client.post("/v1/messages", json=MESSAGES, headers={"x-api-key": token})
    assert response.status_code == 429, response.text
    body = response.json()
    assert body["type"] == "error" and body["error"]["type"] == "rate_limit_error"
    assert re.fullmatch(r"budget exceeded: used 0 \+ input \d+ > limit 1", body["error"]["message"])
    assert mock_upstream_server.requests == []


async def test_anthropic_messages_budget_runs_out_after_real_usage(
    proxy: Proxy, mock_upstream_server: MockUpstream
) -> None:
    token = proxy.token({"base_key_env": "ANTHROPIC_KEY", "max_tokens": 40})
    statuses: list[int] = []
    async with proxy.client() as client:
        for _ in range(10):
            response = await client.post(
                "/v1/messages", json=MESSAGES, headers={"x-api-key": token}
            )
            statuses.append(response.status_code)
            if response.status_code == 429:
                break
            await settled(proxy)
    assert statuses[0] == 200 and statuses[-1] == 429, statuses
    message = response.json()["error"]["message"]
    assert BUDGET_TEXT.match(message) and not message.startswith("budget exceeded: used 0 ")
    assert len(mock_upstream_server.requests) == statuses.count(200)


async def test_unlisted_path_is_passed_through_with_real_key_and_recorded(
    proxy: Proxy, mock_upstream_server: MockUpstream
) -> None:
    """Scenario 12 as decided (D5): `POST /v1/files` is forwarded after auth, and recorded."""
    token = proxy.token(OPENAI)
    async with proxy.client() as client:
        response = await client.post(
            "/v1/files",
            content=b"--x\r\nContent-Disposition: form-data; name=purpose\r\n\r\nbatch\r\n--x--\r\n",
            headers={**auth(token), "content-type": "multipart/form-data; boundary=x"},
        )
    # the mock has no /v1/files route: its own 404 comes back verbatim
    assert response.status_code == 404
    assert "the mock has no route" in response.json()["error"]["message"]
    (seen,) = mock_upstream_server.requests
    assert (seen.method, seen.path) == ("POST", "/v1/files")
    assert seen.headers["authorization"] == "Bearer sk-real"
    assert seen.headers["content-type"] == "multipart/form-data; boundary=x"
    assert seen.body.endswith(b"batch\r\n--x--\r\n")
    assert (await settled(proxy))["request_count"] == 1
    assert proxy.server.stats.snapshot()["by_token"][0]["token_hash"] == proxy.hash16(token)


async def test_unlisted_path_without_token_is_401_and_not_forwarded(
    proxy: Proxy, mock_upstream_server: MockUpstream
) -> None:
    async with proxy.client() as client:
        response = await client.post("/v1/files", content=b"x")
    assert response.status_code == 401
    assert mock_upstream_server.requests == []


async def test_unlisted_path_is_rate_limited(
    proxy: Proxy, mock_upstream_server: MockUpstream
) -> None:
    token = proxy.token({**OPENAI, "rate_limit": {"rules": [{"requests": 1, "window": "1m"}]}})
    async with proxy.client() as client:
        first = await client.get("/v1/models", headers=auth(token))
        second = await client.get("/v1/models", headers=auth(token))
    assert first.status_code == 200
    assert second.status_code == 429 and "retry-after" in second.headers
    assert second.json()["error"]["message"].startswith("rate limit exceeded: 1 requests in 1m")
    assert len(mock_upstream_server.requests) == 1


# ── Scenarios 13-14: the model check ────────────────────────────────────────────────────────


async def test_model_not_matching_policy_regex_is_403_without_upstream_call(
    proxy: Proxy, mock_upstream_server: MockUpstream
) -> None:
    token = proxy.token({**OPENAI, "model_regex": "^gpt-3"})
    async with proxy.client() as client:
        response = await client.post("/v1/chat/completions", json=CHAT, headers=auth(token))
    assert response.status_code == 403
    assert response.json()["error"] == {
        "message": 'model "gpt-4o" does not match policy regex "^gpt-3"',
        "type": "tokenomics_error",
        "code": 403,
    }
    assert mock_upstream_server.requests == []


async def test_model_other_than_policy_model_is_403(
    proxy: Proxy, mock_upstream_server: MockUpstream
) -> None:
    token = proxy.token({**OPENAI, "model": "gpt-4o-mini"})
    async with proxy.client() as client:
        response = await client.post("/v1/chat/completions", json=CHAT, headers=auth(token))
    assert response.status_code == 403
    assert response.json()["error"]["message"] == (
        'model "gpt-4o" not allowed; policy requires "gpt-4o-mini"'
    )
    assert mock_upstream_server.requests == []


async def test_model_check_applies_to_anthropic_messages_with_anthropic_error_shape(
    proxy: Proxy, mock_upstream_server: MockUpstream
) -> None:
    token = proxy.token({"base_key_env": "ANTHROPIC_KEY", "model_regex": "^claude-3-5"})
    async with proxy.client() as client:
        response = await client.post("/v1/messages", json=MESSAGES, headers={"x-api-key": token})
    assert response.status_code == 403
    assert response.json() == {
        "type": "error",
        "error": {
            "type": "permission_error",
            "message": 'model "claude-3-opus" does not match policy regex "^claude-3-5"',
        },
    }
    assert mock_upstream_server.requests == []


# ── Scenarios 15-18, 22: which provider, key and upstream ────────────────────────────────────


async def test_claude_model_goes_to_anthropic_provider_with_its_path_auth_and_headers(
    mock_upstream_server: MockUpstream, tmp_path: Path
) -> None:
    """Scenario 15, with a configured provider that declares it accepts OpenAI format."""
    async with start_proxy(
        tmp_path, mock_upstream_server.url, config=provider_config(mock_upstream_server.url)
    ) as proxy:
        token = proxy.token(TWO_PROVIDERS)
        async with proxy.client() as client:
            response = await client.post(
                "/v1/chat/completions", json=chat("claude-3-opus"), headers=auth(token)
            )
    assert response.status_code == 200, response.text
    (seen,) = mock_upstream_server.requests
    assert seen.path == "/v1/messages"
    assert seen.headers["x-api-key"] == REAL_KEYS["ANTHROPIC_KEY"]
    assert seen.headers["anthropic-version"] == "2023-06-01"
    assert "authorization" not in seen.headers


async def test_gpt_model_goes_to_openai_provider_with_bearer_key(
    mock_upstream_server: MockUpstream, tmp_path: Path
) -> None:
    """Scenario 16."""
    async with start_proxy(
        tmp_path, mock_upstream_server.url, config=provider_config(mock_upstream_server.url)
    ) as proxy:
        token = proxy.token(TWO_PROVIDERS)
        async with proxy.client() as client:
            response = await client.post("/v1/chat/completions", json=CHAT, headers=auth(token))
    assert response.status_code == 200, response.text
    (seen,) = mock_upstream_server.requests
    assert seen.path == "/v1/chat/completions"
    assert seen.headers["authorization"] == "Bearer sk-real"
    assert "x-api-key" not in seen.headers and "anthropic-version" not in seen.headers


async def test_openai_format_to_provider_without_openai_format_is_400_without_upstream_call(
    mock_upstream_server: MockUpstream, tmp_path: Path
) -> None:
    """D8: cross-format routing that is not supported is a clear 400, never a silent mis-send."""
    policy = {"providers": {"anthropic_native": [{"base_key_env": "ANTHROPIC_KEY"}]}}
    async with start_proxy(
        tmp_path, mock_upstream_server.url, config=provider_config(mock_upstream_server.url)
    ) as proxy:
        token = proxy.token(policy)
        async with proxy.client() as client:
            rejected = await client.post(
                "/v1/chat/completions", json=chat("claude-3-opus"), headers=auth(token)
            )
            native = await client.post("/v1/messages", json=MESSAGES, headers={"x-api-key": token})
    assert rejected.status_code == 400
    error = rejected.json()["error"]
    assert error["type"] == "tokenomics_error" and error["code"] == 400
    assert 'provider "anthropic_native" does not accept openai-format' in error["message"]
    assert native.status_code == 200, native.text
    (seen,) = mock_upstream_server.requests
    assert seen.path == "/v1/messages" and seen.headers["x-api-key"] == "sk-ant-real"


async def test_model_outside_provider_policies_uses_global_key(
    mock_upstream_server: MockUpstream, tmp_path: Path
) -> None:
    """Scenario 17."""
    policy = {
        "base_key_env": "GLOBAL_KEY",
        "providers": {"openai": [{"model": "gpt-4o", "base_key_env": "OPENAI_KEY"}]},
    }
    env = {"GLOBAL_KEY": "sk-global"}
    url = mock_upstream_server.url
    config = f"providers:\n  openai:\n    upstream_url: {url}\n    api_key_env: OPENAI_KEY\n"
    async with start_proxy(tmp_path, url, env=env, config=config) as proxy:
        token = proxy.token(policy)
        async with proxy.client() as client:
            other = await client.post(
                "/v1/chat/completions", json=chat("other-model"), headers=auth(token)
            )
            own = await client.post("/v1/chat/completions", json=CHAT, headers=auth(token))
    assert [other.status_code, own.status_code] == [200, 200], other.text
    first, second = mock_upstream_server.requests
    assert first.headers["authorization"] == "Bearer sk-global"
    assert second.headers["authorization"] == "Bearer sk-real"


async def test_provider_policy_upstream_url_sends_only_to_that_upstream(
    proxy: Proxy, mock_upstream_server: MockUpstream
) -> None:
    """Scenario 18."""
    async with mock_upstream() as second:
        policy = {
            "providers": {
                "special": [
                    {
                        "model": "special-model",
                        "base_key_env": "GROQ_KEY",
                        "upstream_url": second.url,
                    }
                ],
                "default": [{"base_key_env": "OPENAI_KEY"}],
            }
        }
        token = proxy.token(policy)
        async with proxy.client() as client:
            response = await client.post(
                "/v1/chat/completions", json=chat("special-model"), headers=auth(token)
            )
        assert response.status_code == 200, response.text
        assert mock_upstream_server.requests == []
        (seen,) = second.requests
        assert seen.path == "/v1/chat/completions"
        assert seen.headers["authorization"] == "Bearer gsk-real"


async def test_first_listed_matching_provider_always_wins(
    proxy: Proxy, mock_upstream_server: MockUpstream
) -> None:
    """Scenario 22: a catch-all listed first beats a later exact match, every time."""
    policy = {
        "providers": {
            "catchall": [{"base_key_env": "OPENAI_KEY"}],
            "specific": [{"model": "gpt-4o", "base_key_env": "GROQ_KEY"}],
        }
    }
    token = proxy.token(policy)
    async with proxy.client() as client:
        for _ in range(20):
            response = await client.post("/v1/chat/completions", json=CHAT, headers=auth(token))
            assert response.status_code == 200
    keys = {r.headers["authorization"] for r in mock_upstream_server.requests}
    assert len(mock_upstream_server.requests) == 20 and keys == {"Bearer sk-real"}


# ── Scenario 21: a missing key is a 500 that leaves the budget untouched ─────────────────────


async def test_missing_key_env_is_500_and_releases_nothing_reserved(
    proxy: Proxy, mock_upstream_server: MockUpstream
) -> None:
    providers = {
        "a": [{"model_regex": "^model-a", "base_key_env": "MISSING_KEY"}],
        "b": [{"model_regex": "^model-b", "base_key_env": "OPENAI_KEY"}],
    }
    async with proxy.client() as client:
        # learn the input estimate E of one model-b request from a budget of 1
        probe = proxy.token({"providers": providers, "max_tokens": 1})
        refused = await client.post(
            "/v1/chat/completions", json=chat("model-b"), headers=auth(probe)
        )
        estimate = int(re.findall(r"input (\d+)", refused.json()["error"]["message"])[0])
        token = proxy.token({"providers": providers, "max_tokens": estimate})
        missing = await client.post(
            "/v1/chat/completions", json=chat("model-a"), headers=auth(token)
        )
        fits = await client.post("/v1/chat/completions", json=chat("model-b"), headers=auth(token))
    assert missing.status_code == 500
    assert missing.json()["error"]["message"] == 'base key env "MISSING_KEY" is not set'
    assert fits.status_code == 200, fits.text
    (seen,) = mock_upstream_server.requests
    assert seen.json["model"] == "model-b"


# ── D10: fallbacks are re-resolved like a primary ────────────────────────────────────────────


async def test_fallback_model_is_sent_with_its_own_provider_key_and_upstream(
    proxy: Proxy, mock_upstream_server: MockUpstream
) -> None:
    async with mock_upstream() as second:
        policy = {
            "providers": {
                "primary": [{"model_regex": "^fail-", "base_key_env": "OPENAI_KEY"}],
                "backup": [
                    {
                        "model": "backup-model",
                        "base_key_env": "GROQ_KEY",
                        "upstream_url": second.url,
                    }
                ],
            },
            "retry": {"max_retries": 0, "fallbacks": ["backup-model"], "retry_on": [429]},
        }
        token = proxy.token(policy)
        async with proxy.client() as client:
            response = await client.post(
                "/v1/chat/completions", json=chat("fail-429"), headers=auth(token)
            )
        assert response.status_code == 200, response.text
        assert response.json()["model"] == "backup-model"
        (primary,) = mock_upstream_server.requests
        (backup,) = second.requests
    assert primary.json["model"] == "fail-429"
    assert primary.headers["authorization"] == "Bearer sk-real"
    assert backup.json["model"] == "backup-model"
    assert backup.headers["authorization"] == "Bearer gsk-real"
    assert primary.headers["x-client-request-id"] == backup.headers["x-client-request-id"]


async def test_fallback_refused_by_model_check_is_not_sent(
    proxy: Proxy, mock_upstream_server: MockUpstream
) -> None:
    policy = {
        **OPENAI,
        "model_regex": "^fail-",
        "retry": {"max_retries": 0, "fallbacks": ["gpt-4o-mini"], "retry_on": [429]},
    }
    token = proxy.token(policy)
    async with proxy.client() as client:
        response = await client.post(
            "/v1/chat/completions", json=chat("fail-429"), headers=auth(token)
        )
    assert response.status_code == 429
    assert [r.json["model"] for r in mock_upstream_server.requests] == ["fail-429"]


# ── Provider URL handling ────────────────────────────────────────────────────────────────────


def url_config(url: str) -> str:
    return f"""providers:
  groqish:
    upstream_url: {url}/openai
    api_key_env: GROQ_KEY
  deployment:
    upstream_url: {url}
    api_key_env: OPENAI_KEY
    chat_path: /deployments/{{model}}/chat/completions
  azureish:
    upstream_url: {url}
    api_key_env: AZURE_KEY
    auth_scheme: header
    auth_header: api-key
    query:
      api-version: "2024-10-21"
  querykey:
    upstream_url: {url}
    api_key_env: GOOGLE_KEY
    auth_scheme: query
  teamed:
    upstream_url: {url}
    api_key_env: OPENAI_KEY
    headers:
      X-Team-Id: team-123
      OpenAI-Beta: assistants=v2
  local:
    upstream_url: {url}
    api_key_env: ""
    auth_scheme: none
"""


URL_ENV = {"AZURE_KEY": "az-real", "GOOGLE_KEY": "g-real"}


async def _routed(
    tmp_path: Path,
    mock: MockUpstream,
    provider: str,
    *,
    model: str = "some-model",
    path: str = "/v1/chat/completions",
    headers: dict[str, str] | None = None,
    body: dict[str, Any] | None = None,
    key_env: str = "OPENAI_KEY",
) -> Any:
    """One request routed to `provider` (from `url_config`); returns (response, the mock's view)."""
    policy = {"providers": {provider: [{"base_key_env": key_env}]}}
    async with start_proxy(tmp_path, mock.url, env=URL_ENV, config=url_config(mock.url)) as proxy:
        token = proxy.token(policy)
        async with proxy.client() as client:
            response = await client.post(
                path, json=body or chat(model), headers={**auth(token), **(headers or {})}
            )
    assert response.status_code == 200, response.text
    (seen,) = mock.requests
    return response, seen


async def test_upstream_base_path_is_kept_before_the_request_path(
    mock_upstream_server: MockUpstream, tmp_path: Path
) -> None:
    _, seen = await _routed(tmp_path, mock_upstream_server, "groqish", key_env="GROQ_KEY")
    assert seen.path == "/openai/v1/chat/completions"
    assert seen.headers["authorization"] == "Bearer gsk-real"


async def test_chat_path_model_placeholder_is_substituted(
    mock_upstream_server: MockUpstream, tmp_path: Path
) -> None:
    """Scenario 23."""
    _, seen = await _routed(tmp_path, mock_upstream_server, "deployment", model="gemini-pro")
    assert seen.path == "/deployments/gemini-pro/chat/completions"


async def test_chat_path_applies_only_to_chat_requests(
    mock_upstream_server: MockUpstream, tmp_path: Path
) -> None:
    body = {"model": "emb", "input": "hello"}
    _, seen = await _routed(
        tmp_path, mock_upstream_server, "deployment", path="/v1/embeddings", body=body
    )
    assert seen.path == "/v1/embeddings"


async def test_default_query_parameter_is_added_when_client_sent_none(
    mock_upstream_server: MockUpstream, tmp_path: Path
) -> None:
    _, seen = await _routed(tmp_path, mock_upstream_server, "azureish", key_env="AZURE_KEY")
    assert seen.path == "/v1/chat/completions?api-version=2024-10-21"
    assert seen.headers["api-key"] == "az-real" and "authorization" not in seen.headers


async def test_client_query_parameter_wins_over_provider_default(
    mock_upstream_server: MockUpstream, tmp_path: Path
) -> None:
    _, seen = await _routed(
        tmp_path, mock_upstream_server, "azureish", key_env="AZURE_KEY",
        path="/v1/chat/completions?api-version=2025-01-01&foo=bar",
    )  # fmt: skip
    assert seen.path == "/v1/chat/completions?api-version=2025-01-01&foo=bar"


async def test_query_auth_puts_real_key_in_key_param_and_no_auth_header(
    mock_upstream_server: MockUpstream, tmp_path: Path
) -> None:
    """Scenario 19; a client `key=` (here the wrapper token) never reaches the upstream."""
    policy = {"providers": {"querykey": [{"base_key_env": "GOOGLE_KEY"}]}}
    async with start_proxy(
        tmp_path, mock_upstream_server.url, env=URL_ENV, config=url_config(mock_upstream_server.url)
    ) as proxy:
        token = proxy.token(policy)
        async with proxy.client() as client:
            response = await client.post(f"/v1/chat/completions?key={token}&x=1", json=CHAT)
    assert response.status_code == 200, response.text
    (seen,) = mock_upstream_server.requests
    assert seen.path == "/v1/chat/completions?x=1&key=g-real"
    assert "authorization" not in seen.headers and token not in str(seen.headers)


async def test_provider_headers_override_client_values(
    mock_upstream_server: MockUpstream, tmp_path: Path
) -> None:
    """Scenario 20."""
    _, seen = await _routed(
        tmp_path, mock_upstream_server, "teamed",
        headers={"X-Team-Id": "client-team", "OpenAI-Beta": "client"},
    )  # fmt: skip
    assert seen.headers["x-team-id"] == "team-123"
    assert seen.headers["openai-beta"] == "assistants=v2"


async def test_provider_without_key_sends_no_auth_and_needs_no_key_env(
    mock_upstream_server: MockUpstream, tmp_path: Path
) -> None:
    """An ollama-like provider (`api_key_env: ""`, `auth_scheme: none`), named in a policy whose
    `base_key_env` is not set in the environment."""
    _, seen = await _routed(tmp_path, mock_upstream_server, "local", key_env="UNSET_LOCAL_KEY")
    assert seen.path == "/v1/chat/completions"
    assert "authorization" not in seen.headers and "x-api-key" not in seen.headers


async def test_builtin_mock_provider_answers_with_no_api_key_at_all(tmp_path: Path) -> None:
    """D25: a policy naming the built-in mock works with no key env set and no network."""
    async with start_proxy(tmp_path, "http://127.0.0.1:9") as proxy:
        token = proxy.token({"providers": {"mock": [{"base_key_env": "ANY"}]}})
        async with proxy.client() as client:
            openai = await client.post("/v1/chat/completions", json=CHAT, headers=auth(token))
            anthropic = await client.post(
                "/v1/messages", json=MESSAGES, headers={"x-api-key": token}
            )
            gemini = await client.post(
                "/v1beta/models/mock-gemini:generateContent",
                json={"contents": [{"role": "user", "parts": [{"text": "hello there"}]}]},
                headers={"x-goog-api-key": token},
            )
        assert "ANY" not in proxy.environ
        totals = await settled(proxy)
    assert [openai.status_code, anthropic.status_code, gemini.status_code] == [200, 200, 200]
    assert openai.json()["choices"][0]["message"]["content"] == "Mock reply to: hello there"
    assert anthropic.json()["content"][0]["text"] == "Mock reply to: hello there"
    assert gemini.json()["candidates"][0]["content"]["parts"][0]["text"].startswith("Mock reply")
    assert totals["error_count"] == 0 and totals["output_tokens"] > 0


@pytest.mark.parametrize(
    "policy",
    [{"providers": {"mock": [{}]}}, {"default_provider": "mock"}],
    ids=["mock-entry", "default-provider"],
)
async def test_a_policy_for_the_builtin_mock_needs_no_base_key_env(
    tmp_path: Path, policy: dict[str, Any]
) -> None:
    async with start_proxy(tmp_path, "http://127.0.0.1:9") as proxy:
        token = proxy.token(policy)
        async with proxy.client() as client:
            reply = await client.post("/v1/chat/completions", json=CHAT, headers=auth(token))
    assert reply.status_code == 200, reply.text
    assert reply.json()["choices"][0]["message"]["content"] == "Mock reply to: hello there"


async def test_default_provider_of_policy_routes_unmatched_models(
    mock_upstream_server: MockUpstream, tmp_path: Path
) -> None:
    policy = {"base_key_env": "GROQ_KEY", "default_provider": "groqish"}
    async with start_proxy(
        tmp_path, mock_upstream_server.url, config=url_config(mock_upstream_server.url)
    ) as proxy:
        token = proxy.token(policy)
        async with proxy.client() as client:
            response = await client.post("/v1/chat/completions", json=CHAT, headers=auth(token))
    assert response.status_code == 200, response.text
    (seen,) = mock_upstream_server.requests
    assert seen.path == "/openai/v1/chat/completions"
    assert seen.headers["authorization"] == "Bearer gsk-real"


# ── Passthrough routing and path edge cases ──────────────────────────────────────────────────


async def test_trailing_slash_does_not_bypass_chat_enforcement(
    proxy: Proxy, mock_upstream_server: MockUpstream
) -> None:
    """W-S6: `/v1/chat/completions/` is still a chat request (budget, model check)."""
    token = proxy.token({**OPENAI, "model_regex": "^gpt-3"})
    async with proxy.client() as client:
        response = await client.post("/v1/chat/completions/", json=CHAT, headers=auth(token))
    assert response.status_code == 403
    assert mock_upstream_server.requests == []


async def test_query_key_is_stripped_even_when_a_header_carries_the_token(
    proxy: Proxy, mock_upstream_server: MockUpstream
) -> None:
    """D6: every client credential is stripped, not only the one that was used."""
    token = proxy.token(OPENAI)
    async with proxy.client() as client:
        response = await client.post(
            f"/v1/chat/completions?key={token}&foo=bar", json=CHAT, headers=auth(token)
        )
    assert response.status_code == 200, response.text
    (seen,) = mock_upstream_server.requests
    assert seen.path == "/v1/chat/completions?foo=bar"


async def test_passthrough_with_provider_only_policy_uses_a_provider_policy(
    tmp_path: Path,
) -> None:
    """A policy that names only provider policies still lists models (D25: the mock, no key)."""
    async with start_proxy(tmp_path, "http://127.0.0.1:9") as proxy:
        token = proxy.token({"providers": {"mock": [{"base_key_env": "ANY"}]}})
        async with proxy.client() as client:
            response = await client.get("/v1/models", headers=auth(token))
    assert response.status_code == 200, response.text
    assert "mock-gpt" in {m["id"] for m in response.json()["data"]}


async def test_passthrough_picks_the_provider_policy_for_the_requests_family(
    mock_upstream_server: MockUpstream, tmp_path: Path
) -> None:
    url = mock_upstream_server.url
    async with start_proxy(tmp_path, url, config=provider_config(url)) as proxy:
        token = proxy.token(TWO_PROVIDERS)
        async with proxy.client() as client:
            openai = await client.get("/v1/models", headers=auth(token))
            anthropic = await client.get(
                "/v1/models", headers={"x-api-key": token, "anthropic-version": "2023-06-01"}
            )
    assert openai.status_code == 200 and anthropic.status_code == 200, anthropic.text
    first, second = mock_upstream_server.requests
    assert first.headers["authorization"] == "Bearer sk-real"
    assert second.headers["x-api-key"] == "sk-ant-real" and "authorization" not in second.headers


@pytest.mark.parametrize(
    ("headers", "path", "check"),
    [
        ({"anthropic-version": "2023-06-01"}, "/v1/models", lambda b: b["type"] == "error"),
        ({}, "/v1beta/models", lambda b: b["error"]["status"] == "UNAUTHENTICATED"),
        ({}, "/v1/models", lambda b: b["error"]["type"] == "tokenomics_error"),
    ],
    ids=["anthropic", "gemini", "openai"],
)
async def test_passthrough_auth_errors_use_the_clients_family(
    proxy: Proxy, headers: dict[str, str], path: str, check: Callable[[Any], bool]
) -> None:
    async with proxy.client() as client:
        response = await client.get(path, headers=headers)
    assert response.status_code == 401 and check(response.json())


# ── Built-in provider entries (their upstream replaced by the policy's) ──────────────────────

BUILTIN = [
    # provider, key env, model, client path, upstream path, headers the upstream must see
    ("anthropic", "ANTHROPIC_KEY", "claude-sonnet-4-5", "/v1/chat/completions",
     "/v1/chat/completions", {"x-api-key": "sk-ant-real", "anthropic-version": "2023-06-01"}),
    ("anthropic", "ANTHROPIC_KEY", "claude-sonnet-4-5", "/v1/messages",
     "/v1/messages", {"x-api-key": "sk-ant-real", "anthropic-version": "2023-06-01"}),
    ("gemini", "GROQ_KEY", "gemini-2.5-flash", "/v1/chat/completions",
     "/v1beta/openai/chat/completions", {"x-goog-api-key": "gsk-real"}),
    ("azure", "OPENAI_KEY", "gpt-4o", "/v1/chat/completions",
     "/v1/chat/completions?api-version=2024-10-21", {"api-key": "sk-real"}),
    ("groq", "GROQ_KEY", "llama-3.3-70b-versatile", "/v1/chat/completions",
     "/v1/chat/completions", {"authorization": "Bearer gsk-real"}),
]  # fmt: skip


@pytest.mark.parametrize(
    ("provider", "key_env", "model", "path", "upstream_path", "headers"),
    BUILTIN,
    ids=[f"{b[0]}{b[3].replace('/', '-')}" for b in BUILTIN],
)
async def test_builtin_provider_entries_apply_their_path_auth_headers_and_query(
    proxy: Proxy,
    mock_upstream_server: MockUpstream,
    provider: str,
    key_env: str,
    model: str,
    path: str,
    upstream_path: str,
    headers: dict[str, str],
) -> None:
    url = mock_upstream_server.url
    token = proxy.token({"providers": {provider: [{"base_key_env": key_env, "upstream_url": url}]}})
    body = {**MESSAGES, "model": model} if path == "/v1/messages" else chat(model)
    async with proxy.client() as client:
        response = await client.post(path, json=body, headers={"x-api-key": token})
    assert response.status_code == 200, response.text
    (seen,) = mock_upstream_server.requests
    assert seen.path == upstream_path
    assert {name: seen.headers.get(name) for name in headers} == headers
    if "authorization" not in headers:
        assert "authorization" not in seen.headers
