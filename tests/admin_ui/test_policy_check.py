"""`POST /admin/api/policy/validate` (the editor's check as you type): the same verdicts and
messages as creating a key, and nothing is written."""

from __future__ import annotations

import json

from tests.support.proxy import Proxy

JSON = {"content-type": "application/json"}


async def post(proxy: Proxy, body: bytes) -> tuple[int, dict[str, object]]:
    async with proxy.client() as client:
        response = await client.post("/admin/api/policy/validate", content=body, headers=JSON)
    assert response.headers["content-type"] == "application/json"
    return response.status_code, response.json()


async def test_a_valid_policy_text_or_object_is_accepted(proxy: Proxy) -> None:
    policy = {"base_key_env": "OPENAI_KEY", "max_tokens": 10}
    assert await post(proxy, json.dumps({"policy": json.dumps(policy)}).encode()) == (
        200,
        {"valid": True},
    )
    assert await post(proxy, json.dumps({"policy": policy}).encode()) == (200, {"valid": True})


async def test_an_invalid_policy_gets_the_create_message(proxy: Proxy) -> None:
    status, body = await post(proxy, json.dumps({"policy": '{"max_tokens": 5}'}).encode())
    assert (status, body) == (
        400,
        {"error": "invalid policy: base_key_env is required (or at least one provider)"},
    )
    status, body = await post(
        proxy, json.dumps({"policy": '{"max_tokens": "5", "base_key_env": "X"}'}).encode()
    )
    assert status == 400 and str(body["error"]).startswith("invalid policy: ")
    status, body = await post(proxy, json.dumps({"policy": "{nope"}).encode())
    assert status == 400 and str(body["error"]).startswith("invalid policy: invalid policy JSON")


async def test_a_missing_policy_or_a_bad_payload_is_refused(proxy: Proxy) -> None:
    assert await post(proxy, b'{"policy": ""}') == (400, {"error": "policy is required"})
    assert await post(proxy, b"{}") == (400, {"error": "policy is required"})
    assert await post(proxy, b"[1]") == (400, {"error": "invalid request payload"})
    async with proxy.client() as client:
        plain = await client.post(
            "/admin/api/policy/validate", content=b"{}", headers={"content-type": "text/plain"}
        )
    assert plain.status_code == 415
