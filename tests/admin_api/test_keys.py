"""`/admin/api/keys…`: create → the raw token once and it works through the proxy; list newest
first with provider models; get with the raw policy; update; delete; the CLI's error texts;
404 for an unknown hash; hostile policy values come back as JSON data."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx2
from tests.admin_api.conftest import write
from tests.support.proxy import Proxy, settled

from tokenomics.domain.tokens import HASH_RE, TOKEN_RE
from tokenomics.services.token_ops import CLEAR_ON_CREATE
from tokenomics.store.tokens import TokenStore

CHAT = {"model": "gpt-4o", "messages": [{"role": "user", "content": "hi"}]}
POLICY = {"base_key_env": "OPENAI_KEY"}


async def chat(client: httpx2.AsyncClient, token: str) -> int:
    response = await client.post("/v1/chat/completions", json=CHAT, headers={"x-api-key": token})
    return response.status_code


async def test_a_key_created_through_the_api_works_through_the_proxy(proxy: Proxy) -> None:
    async with proxy.client() as client:
        created = await write(
            client, "POST", "/admin/api/keys", {"policy": json.dumps(POLICY), "expires": "7d"}
        )
        assert created.status_code == 201, created.text
        body = created.json()
        assert TOKEN_RE.fullmatch(body["token"])
        assert body["hash"] == proxy.key.hash(body["token"])
        assert body["message"] == "store this token securely, it is only returned once"
        expires = datetime.fromisoformat(body["expires"])
        assert timedelta(days=6) < expires - datetime.now(UTC) <= timedelta(days=7)
        assert body["key"]["policy"]["base_key_env"] == "OPENAI_KEY"
        assert await chat(client, body["token"]) == 200
        await settled(proxy)
        listed = (await client.get("/admin/api/keys")).json()
        # the raw token is never shown again
        assert body["token"] not in json.dumps(listed)
        assert [t["token_hash"] for t in listed["tokens"]] == [body["hash"]]
        assert listed["tokens"][0]["budget"]["used_tokens"] > 0


async def test_a_policy_may_be_sent_as_an_object(proxy: Proxy) -> None:
    async with proxy.client() as client:
        created = await write(client, "POST", "/admin/api/keys", {"policy": POLICY})
        assert created.status_code == 201, created.text
        assert created.json()["expires"] == ""
        got = (await client.get(f"/admin/api/keys/{created.json()['hash']}")).json()
    assert json.loads(got["policy_raw"]) == POLICY
    assert got["policy_json"] == POLICY
    assert got["expires_at"] is None and got["expired"] is False


async def test_create_refuses_what_the_cli_refuses_with_its_words(proxy: Proxy) -> None:
    cases = [
        ({}, "policy is required"),
        ({"policy": ""}, "policy is required"),
        (b"not json", "invalid request payload"),
        ([1, 2], "invalid request payload"),
        ({"policy": 5}, "invalid request payload"),
        ({"policy": "{}"}, "invalid policy: base_key_env is required (or at least one provider)"),
        ({"policy": "{nope"}, "invalid policy: invalid policy JSON"),
        ({"policy": POLICY, "expires": "clear"}, CLEAR_ON_CREATE),
        ({"policy": POLICY, "expires": "soon"}, 'invalid expiration "soon"'),
        ({"policy": POLICY, "expires": 7}, "invalid request payload"),
    ]
    async with proxy.client() as client:
        for body, message in cases:
            response = await write(client, "POST", "/admin/api/keys", body)
            assert response.status_code == 400, (body, response.text)
            assert response.json()["error"].startswith(message), body
        assert (await client.get("/admin/api/keys")).json() == {"count": 0, "tokens": []}


def _stored(proxy: Proxy, token_hash: str, policy: object, created_at: str) -> None:
    store = TokenStore.open(Path(proxy.settings.storage.db_path))
    try:
        store.create(token_hash, json.dumps(policy), None, created_at)
    finally:
        store.close()


async def test_the_list_is_newest_first_with_the_models_of_each_provider(proxy: Proxy) -> None:
    providers = {
        "providers": {
            "openai": [
                {"base_key_env": "OPENAI_KEY", "model": "gpt-4o"},
                {"base_key_env": "OPENAI_KEY", "model_regex": "^o3"},
            ],
            "anthropic": [{"base_key_env": "ANTHROPIC_KEY", "model": "claude-x"}],
        },
        "base_key_env": "OPENAI_KEY",
    }
    _stored(proxy, "a" * 64, POLICY, "2026-01-01T00:00:00Z")
    _stored(proxy, "b" * 64, providers, "2026-03-01T00:00:00Z")
    _stored(proxy, "c" * 64, POLICY, "2026-02-01T00:00:00Z")
    async with proxy.client() as client:
        listed = (await client.get("/admin/api/keys")).json()
        page = (await client.get("/admin/api/keys?limit=1&offset=1")).json()
        bad = await client.get("/admin/api/keys?limit=-1")
    assert listed["count"] == 3
    assert [t["token_hash"][0] for t in listed["tokens"]] == ["b", "c", "a"]
    assert listed["tokens"][0]["providers"] == [
        {"name": "anthropic", "policy_count": 1, "models": ["claude-x"]},
        {"name": "openai", "policy_count": 2, "models": ["gpt-4o", "regex:^o3"]},
    ]
    assert page["count"] == 3 and [t["token_hash"][0] for t in page["tokens"]] == ["c"]
    assert bad.status_code == 400 and bad.json() == {"error": "invalid query parameter: limit"}


async def test_update_changes_policy_and_expiry_and_says_what_is_missing(proxy: Proxy) -> None:
    raw = proxy.token(POLICY, expires_at="2030-01-01T00:00:00Z")
    token_hash = proxy.key.hash(raw)
    path = f"/admin/api/keys/{token_hash}"
    async with proxy.client() as client:
        empty = await write(client, "PUT", path, {})
        assert (empty.status_code, empty.json()) == (
            400, {"error": "policy and/or expires required"},
        )  # fmt: skip
        bad = await write(client, "PUT", path, {"policy": "{}"})
        assert bad.status_code == 400 and bad.json()["error"].startswith("invalid policy: ")
        cleared = await write(client, "PUT", path, {"expires": "clear"})
        assert cleared.status_code == 200, cleared.text
        assert cleared.json()["status"] == "updated"
        assert cleared.json()["key"]["expires_at"] is None
        new_policy = {**POLICY, "max_tokens": 5, "metadata": {"team": "a"}}
        changed = await write(client, "PUT", path, {"policy": json.dumps(new_policy)})
        assert changed.status_code == 200
        got = (await client.get(path)).json()
        assert got["policy_json"] == new_policy and got["expires_at"] is None
        assert got["budget"]["max_tokens"] == 5
        # the proxy applies the new policy at once: a 5-token budget refuses the request
        assert await chat(client, raw) == 429


async def test_unknown_hashes_are_404_with_the_cli_words(proxy: Proxy) -> None:
    unknown = "f" * 64
    async with proxy.client() as client:
        for method, path, body, message in [
            ("GET", f"/admin/api/keys/{unknown}", None, "token not found"),
            ("GET", "/admin/api/keys/not-a-hash", None, "token not found"),
            (
                "PUT",
                f"/admin/api/keys/{unknown}",
                {"expires": "1d"},
                "update token: token not found",
            ),
            ("PUT", "/admin/api/keys/xyz", {"expires": "1d"}, "update token: token not found"),
            ("DELETE", f"/admin/api/keys/{unknown}", None, "delete token: token not found"),
        ]:
            response = await write(client, method, path, body)
            assert (response.status_code, response.json()) == (404, {"error": message}), path


async def test_delete_removes_the_key_and_the_proxy_refuses_it_at_once(proxy: Proxy) -> None:
    raw = proxy.token(POLICY)
    token_hash = proxy.key.hash(raw)
    async with proxy.client() as client:
        assert await chat(client, raw) == 200
        deleted = await write(client, "DELETE", f"/admin/api/keys/{token_hash}")
        assert deleted.status_code == 200
        assert deleted.json() == {"status": "deleted", "token_hash": token_hash}
        assert await chat(client, raw) == 401
        assert (await client.get("/admin/api/keys")).json()["count"] == 0


async def test_hostile_policy_values_come_back_as_json_strings(proxy: Proxy) -> None:
    payloads = ["<script>alert(1)</script>", '"><img src=x onerror=alert(1)>']
    policy = {**POLICY, "model": payloads[1], "metadata": {"note": payloads[0]}}
    async with proxy.client() as client:
        created = await write(client, "POST", "/admin/api/keys", {"policy": policy})
        assert created.status_code == 201, created.text
        token_hash = created.json()["hash"]
        for path in ("/admin/api/keys", f"/admin/api/keys/{token_hash}"):
            response = await client.get(path)
            assert response.headers["content-type"] == "application/json"
            assert response.headers["x-content-type-options"] == "nosniff"
            assert payloads[0] in json.dumps(response.json())
        got = (await client.get(f"/admin/api/keys/{token_hash}")).json()
    assert got["policy"]["model"] == payloads[1]
    assert got["policy"]["metadata"] == {"note": payloads[0]}
    assert HASH_RE.fullmatch(token_hash)
