"""The webhooks page lists a webhook whose receiver refused every delivery, shows the failed
deliveries with their error, and its Retry button sends them round again: the receiver, now
accepting, gets the events."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import trio
from tests.admin_api.test_webhooks import until_dead
from tests.admin_ui.browser import browser_page, in_browser, needs_chromium, screenshot
from tests.admin_ui.conftest import MOCK_POLICY
from tests.support.proxy import start_proxy
from tests.support.webhook_receiver import Answer, Received, webhook_receiver

pytestmark = [pytest.mark.slow, needs_chromium]
KEY = "ui-signing-key"


async def test_failed_deliveries_are_shown_and_retried_from_the_page(tmp_path: Path) -> None:
    answer = {"status": 400}

    def script(_number: int, _request: Received) -> Answer:
        return answer["status"], [], 0.0

    async with webhook_receiver(KEY, script) as receiver:
        env = {
            "TOKENOMICS_EVENTS_WEBHOOKS": json.dumps([{"url": receiver.url, "signing_key": KEY}])
        }
        async with start_proxy(tmp_path, env=env) as proxy, proxy.client() as client:
            proxy.token(MOCK_POLICY)  # token.created, after server.start
            await until_dead(client, 2)
            url = proxy.url

            def scenario() -> None:
                with browser_page() as (page, watch):
                    page.goto(f"{url}/admin/#/webhooks")
                    page.wait_for_selector("main .page[aria-busy=false]")
                    hooks = page.locator(
                        "section", has=page.get_by_role("heading", name="Configured webhooks")
                    )
                    cells = hooks.locator("tbody tr").first.locator("td").all_inner_texts()
                    assert cells[0] == receiver.url and cells[3] == "2", cells
                    deliveries = page.locator(
                        "section", has=page.get_by_role("heading", name="Deliveries")
                    )
                    deliveries.locator("tbody tr").first.wait_for()
                    text = deliveries.inner_text()
                    assert "token.created" in text and "server.start" in text and "failed" in text
                    assert "400" in text
                    page.get_by_role("button", name="Pending", exact=True).click()
                    page.get_by_text("Nothing waiting.").wait_for()
                    page.get_by_role("button", name="Failed", exact=True).click()
                    deliveries.locator("tbody tr").nth(1).wait_for()
                    states = deliveries.locator("tbody td:nth-child(5)").all_inner_texts()
                    assert states == ["failed", "failed"], states
                    screenshot(page, "webhooks")
                    answer["status"] = 200
                    page.get_by_role(
                        "button", name=f"Retry failed deliveries of {receiver.url}"
                    ).click()
                    page.get_by_text("2 failed deliveries queued again.").wait_for()
                    cells = (
                        page.locator(
                            "section", has=page.get_by_role("heading", name="Configured webhooks")
                        )
                        .locator("tbody tr")
                        .first.locator("td")
                        .all_inner_texts()
                    )
                    assert cells[3] == "0", cells
                    watch.assert_clean()

            await in_browser(scenario)
            with trio.fail_after(10):
                await receiver.wait_for(2)
    assert [r.event["type"] for r in receiver.received][-2:] == ["server.start", "token.created"]
