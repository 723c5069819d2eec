"""Key writes through the admin API emit their `token.*` events (through `TokenStore`), and the
webhook routes show the outbox's deliveries and send dead-lettered ones round again."""

from __future__ import annotations

import json
from pathlib import Path

import httpx2
import trio
from tests.admin_api.conftest import write
from tests.support.proxy import start_proxy
from tests.support.webhook_receiver import Answer, Received, webhook_receiver

KEY = "admin-signing-key"
POLICY = {"policy": {"base_key_env": "OPENAI_KEY"}}


def hook_env(url: str) -> dict[str, str]:
    return {"TOKENOMICS_EVENTS_WEBHOOKS": json.dumps([{"url": url, "signing_key": KEY}])}


async def test_key_writes_reach_the_webhook_as_token_events(tmp_path: Path) -> None:
    async with webhook_receiver(KEY) as receiver, start_proxy(
        tmp_path, env=hook_env(receiver.url)
    ) as proxy, proxy.client() as client:  # fmt: skip
        created = await write(client, "POST", "/admin/api/keys", POLICY)
        token_hash = created.json()["hash"]
        path = f"/admin/api/keys/{token_hash}"
        assert (await write(client, "PUT", path, {"expires": "1d"})).status_code == 200
        assert (await write(client, "DELETE", path)).status_code == 200
        with trio.fail_after(10):
            await receiver.wait_for(4)  # server.start and the three writes
    events = [r.event for r in receiver.received]
    kinds = [e["type"] for e in events if e["type"].startswith("token.")]
    assert kinds == ["token.created", "token.updated", "token.deleted"]
    assert all(token_hash.startswith(e["data"]["token_hash"]) for e in events[1:])
    assert all(r.signature_ok for r in receiver.received)


async def test_dead_letters_are_listed_and_sent_round_again(tmp_path: Path) -> None:
    answers = {"status": 400}

    def script(_number: int, _request: Received) -> Answer:
        return answers["status"], [], 0.0

    async with webhook_receiver(KEY, script) as receiver, start_proxy(
        tmp_path, env=hook_env(receiver.url)
    ) as proxy, proxy.client() as client:  # fmt: skip
        await write(client, "POST", "/admin/api/keys", POLICY)
        await until_dead(client, 2)  # server.start and token.created, refused for good
        dead = (await client.get("/admin/api/webhooks/deliveries?state=dead")).json()
        assert dead["count"] == 2
        row = dead["deliveries"][-1]
        assert (row["webhook"], row["type"], row["state"]) == (
            receiver.url,
            "token.created",
            "dead",
        )
        assert row["id"].startswith("evt_") and "400" in row["error"]
        answers["status"] = 200
        retried = await write(
            client, "POST", "/admin/api/webhooks/retry", {"webhook": receiver.url}
        )
        assert retried.json() == {"status": "queued", "count": 2}
        assert (await client.get("/admin/api/webhooks")).json()["webhooks"][0]["dead"] == 0
        with trio.fail_after(10):
            await receiver.wait_for(2)  # (only deliveries answered 2xx are recorded)
        assert [r.event["type"] for r in receiver.received][-2:] == [
            "server.start",
            "token.created",
        ]
        everything = await write(client, "POST", "/admin/api/webhooks/retry")
        assert everything.json() == {"status": "queued", "count": 0}


async def until_dead(client: httpx2.AsyncClient, count: int) -> None:
    with trio.fail_after(10):
        while True:
            hooks = (await client.get("/admin/api/webhooks")).json()["webhooks"]
            if hooks[0]["dead"] >= count:
                return
            await trio.sleep(0.05)


async def test_webhook_route_errors(tmp_path: Path) -> None:
    env = hook_env("http://127.0.0.1:9/hook")
    async with start_proxy(tmp_path, env=env) as proxy, proxy.client() as client:
        listed = (await client.get("/admin/api/webhooks")).json()
        assert [h["name"] for h in listed["webhooks"]] == ["http://127.0.0.1:9/hook"]
        bad_state = await client.get("/admin/api/webhooks/deliveries?state=lost")
        assert bad_state.status_code == 400
        unknown = await client.get("/admin/api/webhooks/deliveries?webhook=nope")
        assert (unknown.status_code, unknown.json()) == (
            404,
            {"error": 'no webhook named "nope"'},
        )
        bad_body = await write(client, "POST", "/admin/api/webhooks/retry", {"webhook": 5})
        assert bad_body.status_code == 400
        pending = (await client.get("/admin/api/webhooks/deliveries?state=pending")).json()
        assert pending["deliveries"][0]["type"] == "server.start"
