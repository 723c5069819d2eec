"""`proxy.md` §7 scenarios 1-10: auth, health, passthrough, through the real server."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from tests.support.mock_upstream import MockUpstream
from tests.support.proxy import Proxy

from tokenomics.domain.durations import format_rfc3339

CHAT = {"model": "gpt-4o", "messages": [{"role": "user", "content": "hello"}]}
OPENAI = {"base_key_env": "OPENAI_KEY"}


async def test_no_credentials_is_401_and_nothing_reaches_upstream(
    proxy: Proxy, mock_upstream_server: MockUpstream
) -> None:
    async with proxy.client() as client:
        response = await client.post("/v1/chat/completions", json=CHAT)
    assert response.status_code == 401
    error = response.json()["error"]
    assert error == {
        "message": "missing or invalid token (use x-api-key header or Authorization bearer token)",
        "type": "tokenomics_error",
        "code": 401,
    }
    assert mock_upstream_server.requests == []


async def test_unknown_token_is_401_invalid_token(proxy: Proxy) -> None:
    async with proxy.client() as client:
        response = await client.post(
            "/v1/chat/completions", json=CHAT, headers={"authorization": "Bearer tkn_nope"}
        )
    assert response.status_code == 401 and response.json()["error"]["message"] == "invalid token"


async def test_x_api_key_is_swapped_for_the_real_key(
    proxy: Proxy, mock_upstream_server: MockUpstream
) -> None:
    token = proxy.token(OPENAI)
    async with proxy.client() as client:
        response = await client.post(
            "/v1/chat/completions", json=CHAT, headers={"x-api-key": token}
        )
    assert response.status_code == 200, response.text
    (seen,) = mock_upstream_server.requests
    assert seen.headers["authorization"] == "Bearer sk-real"
    assert token not in str(seen.headers) and "x-api-key" not in seen.headers


async def test_raw_authorization_and_goog_key_and_query_key_work(
    proxy: Proxy, mock_upstream_server: MockUpstream
) -> None:
    token = proxy.token(OPENAI)
    async with proxy.client() as client:
        raw = await client.post("/v1/chat/completions", json=CHAT, headers={"authorization": token})
        goog = await client.post(
            "/v1/chat/completions", json=CHAT, headers={"x-goog-api-key": token}
        )
        query = await client.post(f"/v1/chat/completions?key={token}&foo=bar", json=CHAT)
    assert [raw.status_code, goog.status_code, query.status_code] == [200, 200, 200]
    last = mock_upstream_server.requests[-1]
    assert token not in last.path and "foo=bar" in last.path and "key=" not in last.path


async def test_x_api_key_wins_over_authorization(proxy: Proxy) -> None:
    token = proxy.token(OPENAI)
    async with proxy.client() as client:
        response = await client.post(
            "/v1/chat/completions",
            json=CHAT,
            headers={"x-api-key": "bogus", "authorization": f"Bearer {token}"},
        )
    assert response.status_code == 401 and response.json()["error"]["message"] == "invalid token"


async def test_expired_token_is_401(proxy: Proxy) -> None:
    past = format_rfc3339(datetime.now(UTC) - timedelta(seconds=1))
    token = proxy.token(OPENAI, expires_at=past)
    async with proxy.client() as client:
        response = await client.post(
            "/v1/chat/completions", json=CHAT, headers={"x-api-key": token}
        )
    assert response.status_code == 401 and response.json()["error"]["message"] == "invalid token"


async def test_health_and_ping(proxy: Proxy) -> None:
    async with proxy.client() as client:
        health = await client.get("/health")
        ping = await client.get("/ping")
    assert health.status_code == 200 and health.json() == {"status": "ok"}
    assert health.headers["content-type"] == "application/json"
    assert ping.status_code == 200 and ping.text == "."


async def test_models_list_is_passed_through(
    proxy: Proxy, mock_upstream_server: MockUpstream
) -> None:
    token = proxy.token(OPENAI)
    async with proxy.client() as client:
        response = await client.get("/v1/models", headers={"authorization": f"Bearer {token}"})
    assert response.status_code == 200
    assert {m["id"] for m in response.json()["data"]} >= {"mock-gpt"}
    (seen,) = mock_upstream_server.requests
    assert (seen.method, seen.path) == ("GET", "/v1/models")
    assert seen.headers["authorization"] == "Bearer sk-real"


async def test_client_query_is_forwarded(proxy: Proxy, mock_upstream_server: MockUpstream) -> None:
    token = proxy.token(OPENAI)
    async with proxy.client() as client:
        await client.post("/v1/chat/completions?foo=bar", json=CHAT, headers={"x-api-key": token})
    assert mock_upstream_server.requests[0].path == "/v1/chat/completions?foo=bar"


async def test_new_tokens_are_seen_without_restart(proxy: Proxy) -> None:
    async with proxy.client() as client:
        token = proxy.token(OPENAI)
        response = await client.post(
            "/v1/chat/completions", json=CHAT, headers={"x-api-key": token}
        )
    assert response.status_code == 200
