"""Forwarding fidelity and header hygiene through the real server: `proxy.md` §7 scenarios 40 and
64-70, §2.12 FIX (W-S9), D6 and D8 (413 in the client's API family)."""

from __future__ import annotations

import dataclasses
import logging
import re
from pathlib import Path
from typing import Any

import pytest
from tests.support.mock_upstream import MockUpstream, mock_upstream
from tests.support.proxy import Proxy, settled, start_proxy

from tokenomics.services.logs import REQUEST_LOGGER
from tokenomics.upstream.mock import MockProvider, MockReply

OPENAI = {"base_key_env": "OPENAI_KEY"}
REQUEST_ID = re.compile(r"^req_[0-9a-f]{32}$")


def chat(model: str = "gpt-4o", text: str = "hello there", **extra: Any) -> dict[str, Any]:
    return {"model": model, "messages": [{"role": "user", "content": text}], **extra}


def auth(token: str) -> dict[str, str]:
    return {"authorization": f"Bearer {token}"}


# ── Header hygiene ───────────────────────────────────────────────────────────────────────────

HOSTILE_HEADERS = {
    "Connection": "x-secret",
    "X-Secret": "listed-in-connection",
    "Keep-Alive": "timeout=5",
    "Cookie": "a=b",
    "Proxy-Authorization": "Basic c2VjcmV0",
    "Proxy-Connection": "keep-alive",
    "X-Forwarded-For": "203.0.113.9",
    "X-Forwarded-Host": "evil.example",
    "X-Forwarded-Proto": "https",
    "Forwarded": "for=203.0.113.9",
    "X-Real-IP": "203.0.113.9",
    "OpenAI-Organization": "org-attacker",
    "OpenAI-Project": "proj-attacker",
    "Api-Key": "sk-client-guess",
    "Content-Encoding": "identity",
    "Expect": "100-continue",
    "X-Keep-Me": "yes",
}
NEVER_FORWARDED = (
    "x-secret", "keep-alive", "cookie", "proxy-authorization", "proxy-connection",
    "x-forwarded-for", "x-forwarded-host", "x-forwarded-proto", "forwarded", "x-real-ip",
    "openai-organization", "openai-project", "api-key", "content-encoding", "expect",
)  # fmt: skip


@pytest.mark.parametrize(
    ("method", "path", "body"),
    [("POST", "/v1/chat/completions", chat()), ("GET", "/v1/models", None)],
    ids=["chat", "passthrough"],
)
async def test_hop_by_hop_credentials_and_steering_headers_never_reach_upstream(
    proxy: Proxy,
    mock_upstream_server: MockUpstream,
    method: str,
    path: str,
    body: dict[str, Any] | None,
) -> None:
    """Scenario 69, and W-S9: only end-to-end, non-credential headers are forwarded."""
    token = proxy.token(OPENAI)
    async with proxy.client() as client:
        response = await client.request(
            method, path, json=body, headers={**HOSTILE_HEADERS, **auth(token)}
        )
    assert response.status_code == 200, response.text
    (seen,) = mock_upstream_server.requests
    leaked = [name for name in NEVER_FORWARDED if name in seen.headers]
    assert leaked == []
    assert "x-secret" not in seen.headers.get("connection", "")
    assert seen.headers["x-keep-me"] == "yes"
    assert seen.headers["authorization"] == "Bearer sk-real"
    assert seen.headers["accept-encoding"] == "identity"
    assert REQUEST_ID.match(seen.headers["x-client-request-id"])


async def test_client_request_id_is_the_same_across_retries(
    proxy: Proxy, mock_upstream_server: MockUpstream
) -> None:
    token = proxy.token({**OPENAI, "retry": {"max_retries": 1, "retry_on": [500]}})
    async with proxy.client() as client:
        response = await client.post(
            "/v1/chat/completions", json=chat("flaky-500"), headers=auth(token)
        )
        again = await client.post("/v1/chat/completions", json=chat(), headers=auth(token))
    assert response.status_code == 200 and again.status_code == 200
    first, second, third = (r.headers["x-client-request-id"] for r in mock_upstream_server.requests)
    assert REQUEST_ID.match(first) and first == second
    assert third != first and REQUEST_ID.match(third)


class CookieProvider(MockProvider):
    """The mock, plus a `set-cookie` and a `connection`-listed header on every reply."""

    def respond(self, *args: Any, **kwargs: Any) -> MockReply:
        reply = super().respond(*args, **kwargs)
        extra = (("set-cookie", "session=upstream"), ("x-upstream-note", "kept"))
        return dataclasses.replace(reply, headers=(*reply.headers, *extra))


async def test_upstream_set_cookie_is_not_relayed(tmp_path: Path) -> None:
    async with mock_upstream(CookieProvider()) as mock, start_proxy(tmp_path, mock.url) as proxy:
        token = proxy.token(OPENAI)
        async with proxy.client() as client:
            response = await client.post("/v1/chat/completions", json=chat(), headers=auth(token))
            listed = await client.get("/v1/models", headers=auth(token))
    assert response.status_code == 200 and listed.status_code == 200
    for reply in (response, listed):
        assert "set-cookie" not in reply.headers
        assert reply.headers["x-upstream-note"] == "kept"
    assert not client.cookies


async def test_upstream_request_id_is_relayed_and_logged(
    mock_upstream_server: MockUpstream, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """Scenario 70: the client sees `x-request-id`, and the request record carries it."""
    caplog.set_level(logging.INFO, logger=REQUEST_LOGGER)
    config = "logging:\n  disable_request: false\n"
    async with start_proxy(tmp_path, mock_upstream_server.url, config=config) as proxy:
        token = proxy.token(OPENAI)
        async with proxy.client() as client:
            response = await client.post("/v1/chat/completions", json=chat(), headers=auth(token))
        assert response.status_code == 200
        await settled(proxy)
    request_id = response.headers["x-request-id"]
    assert re.fullmatch(r"req_mock_\d+", request_id)
    (entry,) = [r.fields for r in caplog.records if r.name == REQUEST_LOGGER]  # type: ignore[attr-defined]
    assert entry["upstream_request_id"] == request_id
    assert entry["upstream_id"] == response.json()["id"]
    assert REQUEST_ID.match(entry["client_request_id"])
    assert (
        entry["client_request_id"]
        == mock_upstream_server.requests[0].headers["x-client-request-id"]
    )


# ── Compression ──────────────────────────────────────────────────────────────────────────────


async def test_gzip_encoded_upstream_reply_is_decoded_and_usage_counted(
    proxy: Proxy, mock_upstream_server: MockUpstream
) -> None:
    """Scenario 40: the client asked for gzip; the proxy asked for identity, still got gzip,
    decoded it, counted usage and relayed a consistent plain body."""
    token = proxy.token(OPENAI)
    async with proxy.client() as client:
        response = await client.post(
            "/v1/chat/completions",
            json=chat("gzip-model"),
            headers={**auth(token), "accept-encoding": "gzip"},
        )
    assert response.status_code == 200, response.text
    assert "content-encoding" not in response.headers
    assert int(response.headers["content-length"]) == len(response.content)
    usage = response.json()["usage"]
    (seen,) = mock_upstream_server.requests
    assert seen.headers["accept-encoding"] == "identity"
    totals = await settled(proxy)
    assert totals["output_tokens"] == usage["completion_tokens"] > 0
    assert totals["input_tokens"] == usage["prompt_tokens"]


async def test_large_request_body_is_sent_uncompressed(
    proxy: Proxy, mock_upstream_server: MockUpstream
) -> None:
    """Scenario 64."""
    token = proxy.token(OPENAI)
    body = chat(text="lorem ipsum dolor " * 500)
    async with proxy.client() as client:
        response = await client.post("/v1/chat/completions", json=body, headers=auth(token))
    assert response.status_code == 200
    (seen,) = mock_upstream_server.requests
    assert len(seen.body) > 1024
    assert "content-encoding" not in seen.headers
    assert seen.json == body
    assert seen.headers["content-type"] == "application/json"


# ── Body fidelity ────────────────────────────────────────────────────────────────────────────

EXTRAS = {
    "temperature": 0.2,
    "top_p": 1,
    "tools": [
        {
            "type": "function",
            "function": {
                "name": "lookup",
                "parameters": {"type": "object", "properties": {"q": {"type": "string"}}},
            },
        }
    ],
    "response_format": {"type": "json_object"},
    "seed": 2**53 + 1,
    "user": "ünïcødé ✓ <tag> & \u2028",
    "logit_bias": {"50256": -100},
}


@pytest.mark.parametrize("prompts", [False, True], ids=["as-sent", "with-prompts"])
async def test_extra_fields_and_big_integers_reach_upstream_exactly(
    proxy: Proxy, mock_upstream_server: MockUpstream, prompts: bool
) -> None:
    """Scenarios 65-66, with and without the body being rewritten for policy prompts."""
    injected = [{"role": "system", "content": "Be nice."}] if prompts else []
    token = proxy.token({**OPENAI, "prompts": injected} if prompts else OPENAI)
    body = chat(**EXTRAS)
    async with proxy.client() as client:
        response = await client.post("/v1/chat/completions", json=body, headers=auth(token))
    assert response.status_code == 200, response.text
    (seen,) = mock_upstream_server.requests
    assert seen.json == {**body, "messages": injected + body["messages"]}
    assert list(seen.json) == list(body)  # the client's key order is kept
    assert b"9007199254740993" in seen.body


@pytest.mark.parametrize(
    ("path", "content", "family"),
    [
        ("/v1/chat/completions", b"this is not json", "openai"),
        ("/v1/chat/completions", b'[{"model": "gpt-4o"}]', "openai"),
        ("/v1/chat/completions", b"", "openai"),
        ("/v1/messages", b"{broken", "anthropic"),
        ("/v1/embeddings", b"42", "openai"),
        ("/v1beta/models/gemini-2.5-flash:generateContent", b"nope", "gemini"),
    ],
    ids=["text", "array", "empty", "anthropic", "scalar", "gemini"],
)
async def test_body_that_is_not_a_json_object_is_400_without_upstream_call(
    proxy: Proxy, mock_upstream_server: MockUpstream, path: str, content: bytes, family: str
) -> None:
    """Scenario 67, on every LLM route, in the route's error shape."""
    token = proxy.token(OPENAI)
    async with proxy.client() as client:
        response = await client.post(
            path, content=content, headers={**auth(token), "content-type": "application/json"}
        )
    assert response.status_code == 400
    assert error_message(response.json(), family) == "invalid JSON body"
    assert mock_upstream_server.requests == []


def error_message(body: dict[str, Any], family: str) -> str:
    """The message of a proxy error, checking the family's shape (D8)."""
    if family == "anthropic":
        assert body["type"] == "error" and set(body["error"]) == {"type", "message"}
        return str(body["error"]["message"])
    if family == "gemini":
        assert set(body["error"]) == {"code", "message", "status"}
        return str(body["error"]["message"])
    assert body["error"]["type"] == "tokenomics_error"
    return str(body["error"]["message"])


@pytest.mark.parametrize(
    ("path", "family"),
    [
        ("/v1/chat/completions", "openai"),
        ("/v1/messages", "anthropic"),
        ("/v1beta/models/gemini-2.5-flash:generateContent", "gemini"),
    ],
)
async def test_body_over_the_size_limit_is_413_in_the_routes_family(
    proxy: Proxy, mock_upstream_server: MockUpstream, path: str, family: str
) -> None:
    """Scenario 68: a 12 MiB body is refused (10 MiB limit), not truncated into a 400."""
    token = proxy.token(OPENAI)
    filler = "x" * (12 * 1024 * 1024)
    content = b'{"model": "gpt-4o", "messages": [{"role": "user", "content": "%s"}]}' % (
        filler.encode()
    )
    async with proxy.client() as client:
        response = await client.post(
            path, content=content, headers={**auth(token), "content-type": "application/json"}
        )
    assert response.status_code == 413
    assert error_message(response.json(), family) == "request body larger than 10 MiB"
    assert mock_upstream_server.requests == []
