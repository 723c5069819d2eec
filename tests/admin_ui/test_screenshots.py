"""The analytics page with two weeks of (seeded) history plus requests made through the proxy
now: every day is a column, the top lists and budgets are filled. Writes
`tests/admin_ui/artifacts/analytics-demo.png`; with `UPDATE_ADMIN_SCREENSHOT=1` it also
refreshes the README's `docs/admin-analytics.png`."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest
from tests.admin_ui.browser import browser_page, in_browser, needs_chromium, screenshot
from tests.admin_ui.conftest import MOCK_POLICY, chat
from tests.admin_ui.demo import seed_history
from tests.support.proxy import Proxy

pytestmark = [pytest.mark.slow, needs_chromium]
DOCS_SHOT = Path(__file__).resolve().parents[2] / "docs" / "admin-analytics.png"
DAYS = 14


async def test_analytics_with_history_draws_a_column_per_day(admin_proxy: Proxy) -> None:
    url = admin_proxy.url
    tokens = [
        admin_proxy.token({**MOCK_POLICY, "max_tokens": 400_000, "metadata": {"team": "search"}}),
        admin_proxy.token({**MOCK_POLICY, "max_cost_usd": 25, "metadata": {"team": "agents"}}),
        admin_proxy.token({**MOCK_POLICY, "max_tokens": 150_000}),
        admin_proxy.token(MOCK_POLICY),
    ]
    hashes = [admin_proxy.key.hash(t) for t in tokens]
    seed_history(Path(admin_proxy.settings.dir), hashes, days=DAYS)

    def scenario() -> None:
        for i, model in enumerate(("gpt-4o", "gpt-4o-mini", "claude-sonnet-4-5", "gpt-4o-mini")):
            assert chat(url, tokens[i % len(tokens)], model=model).status_code == 200
        with browser_page() as (page, watch):
            page.goto(f"{url}/admin/")
            page.wait_for_selector("main .page[aria-busy=false]")
            chart = page.locator("svg.chart")
            assert chart.locator("rect.bar").count() >= DAYS
            rows = page.locator("details.chart-data tbody tr")
            assert rows.count() == DAYS + 1  # the seeded days and today
            assert page.locator(".budget").count() >= 3
            screenshot(page, "analytics-demo")
            page.set_viewport_size({"width": 1366, "height": 1180})
            path = screenshot(page, "analytics-demo-top", full_page=False)
            page.get_by_role("button", name="By provider").click()
            assert page.locator(".legend li", has_text="anthropic").count() == 1
            screenshot(page, "analytics-demo-by-provider")
            page.get_by_role("button", name="By branch").click()
            legend = page.locator(".legend li").all_inner_texts()
            assert {"main", "feat/streaming-budgets", "fix/retry-fallback"} <= set(legend)
            page.get_by_role("button", name="By key").click()
            legend = page.locator(".legend li").all_inner_texts()
            assert sorted(legend) == sorted(f"{h[:12]}…" for h in hashes)
            screenshot(page, "analytics-demo-by-key")
            watch.assert_clean()
        if os.environ.get("UPDATE_ADMIN_SCREENSHOT") == "1":
            shutil.copyfile(path, DOCS_SHOT)

    await in_browser(scenario)
