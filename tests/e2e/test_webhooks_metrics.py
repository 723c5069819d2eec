"""`/metrics` of the serving process counts what the delivery process (a child, issue 15) did:
the counters are stored with each webhook's cursor, so a failure retried, a 4xx dead-lettered
and the deliveries all show, exactly, in the proxy's own `/metrics`."""

from __future__ import annotations

import json
import re
from pathlib import Path

import trio
from tests.e2e.test_webhooks import KEY, OPENAI, chat, wait_types
from tests.support.proxy import start_proxy
from tests.support.webhook_receiver import Answer, Received, webhook_receiver


def script(number: int, request: Received) -> Answer:
    """The first attempt fails (500: retried); `token.created` is refused (400: dead)."""
    if number == 1:
        return 500, [], 0.0
    if request.event["type"] == "token.created":
        return 400, [], 0.0
    return 200, [], 0.0


def metric(text: str, name: str, webhook: str) -> int:
    found = re.search(rf'^{name}{{webhook="{re.escape(webhook)}"}} (\d+)$', text, re.MULTILINE)
    assert found, (name, text)
    return int(found.group(1))


async def test_metrics_of_the_proxy_count_the_delivery_process_s_work(tmp_path: Path) -> None:
    async with webhook_receiver(KEY, script) as receiver:
        env = {
            "TOKENOMICS_EVENTS_WEBHOOKS": json.dumps([{"url": receiver.url, "signing_key": KEY}])
        }
        async with start_proxy(tmp_path, env=env) as proxy, proxy.client() as client:
            token = proxy.token(OPENAI)  # token.created: dead-lettered
            for _ in range(3):
                answer = await client.post(
                    "/v1/chat/completions", json=chat(), headers={"x-api-key": token}
                )
                assert answer.status_code == 200
            await wait_types(receiver, {"server.start": 1, "request.completed": 3})
            with trio.fail_after(20):  # the counters are stored once the page is done
                while True:
                    text = (await client.get("/metrics")).text
                    delivered = "tokenomics_webhook_delivered_total"
                    if metric(text, delivered, receiver.url) == len(receiver.received):
                        break
                    await trio.sleep(0.1)
    url = receiver.url
    assert len(receiver.received) == 1 + 3 + 3  # start, completed and budget.update per request
    assert metric(text, "tokenomics_webhook_failed_total", url) == 2
    assert metric(text, "tokenomics_webhook_retried_total", url) == 1
    assert metric(text, "tokenomics_webhook_dead_lettered_total", url) == 1
    assert metric(text, "tokenomics_webhook_pending", url) == 0
