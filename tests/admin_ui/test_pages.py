"""Every page of the admin UI loads against a real server with traffic in its ledger, without
a console error, a script error or a CSP violation, is reachable by keyboard alone, and is
screenshotted (tests/admin_ui/artifacts/<page>.png); the analytics page shows a request made
through the proxy a moment before."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import Error as PlaywrightError
from tests.admin_ui.browser import (
    browser_page,
    in_browser,
    needs_chromium,
    screenshot,
    stray_text,
)
from tests.admin_ui.conftest import MOCK_POLICY, admin_get, chat
from tests.support.proxy import Proxy, start_proxy

pytestmark = [pytest.mark.slow, needs_chromium]


def wait_ready(page: Any) -> None:
    page.wait_for_selector("main .page[aria-busy=false]")


def visit(page: Any, url: str, fragment: str, name: str) -> None:
    page.goto(f"{url}/admin/{fragment}")
    wait_ready(page)
    assert page.locator("main .error").count() == 0, page.locator("main .error").all_inner_texts()
    assert stray_text(page) == []
    screenshot(page, name)


async def test_every_page_loads_clean_and_is_screenshotted(admin_proxy: Proxy) -> None:
    url = admin_proxy.url
    token = admin_proxy.token({**MOCK_POLICY, "max_tokens": 5000})

    def scenario() -> None:
        for model in ("gpt-4o", "gpt-4o-mini", "claude-sonnet-4-5", "gpt-4o"):
            assert chat(url, token, model=model).status_code == 200
        key_hash = admin_proxy.key.hash(token)
        session = admin_get(url, "/health")["session_id"]
        with browser_page() as (page, watch):
            visit(page, url, "", "analytics")
            assert page.title() == "Analytics · Tokenomics admin"
            visit(page, url, "#/keys", "keys")
            visit(page, url, f"#/keys/{key_hash}", "key-edit")
            visit(page, url, "#/keys/new", "key-new")
            visit(page, url, "#/sessions", "sessions")
            visit(page, url, f"#/sessions/{session}", "session")
            assert page.locator("main tbody tr").count() >= 4
            visit(page, url, "#/memory", "memory")
            page.locator(".file-list button").first.click()
            page.locator("pre.file").wait_for()
            assert "hello there" in page.inner_text("pre.file")
            assert stray_text(page) == []
            screenshot(page, "memory-file")
            visit(page, url, "#/webhooks", "webhooks")
            watch.assert_clean()

    await in_browser(scenario)


async def test_analytics_shows_the_request_made_a_moment_before(admin_proxy: Proxy) -> None:
    url = admin_proxy.url
    token = admin_proxy.token({**MOCK_POLICY, "max_tokens": 100_000})

    def scenario() -> None:
        with browser_page() as (page, watch):
            visit(page, url, "#/analytics", "analytics-empty")
            assert page.get_by_text("No requests in the ledger yet.").is_visible()
            assert chat(url, token, model="gpt-4o-mini").status_code == 200
            page.get_by_role("button", name="Refresh").click()
            page.get_by_role("heading", name="Recent requests").wait_for()
            wait_ready(page)
            recent = page.locator(
                "section", has=page.get_by_role("heading", name="Recent requests")
            )
            row = recent.locator("tbody tr").first
            assert row.locator(f"a[title='{admin_proxy.key.hash(token)}']").count() == 1
            cells = row.locator("td").all_inner_texts()
            assert cells[2:5] == ["gpt-4o-mini", "mock", "200"], cells
            assert int(cells[5]) > 0 and int(cells[6]) > 0
            # the chart and the top lists name the model; the budget shows what is left
            assert page.locator(".legend li", has_text="gpt-4o-mini").count() == 1
            assert page.locator("svg.chart rect.bar").count() >= 1
            budget = page.locator(".budget").first
            assert "left of 100,000" in budget.inner_text()
            screenshot(page, "analytics-after-request")
            # spend over time by key: the key used through the proxy is a series of its own
            page.get_by_role("button", name="By key").click()
            name = f"{admin_proxy.key.hash(token)[:12]}…"
            assert page.locator(".legend li").all_inner_texts() == [name]
            chart = page.get_by_role("img", name="per day by key")
            page.get_by_role("button", name="Tokens").click()
            (bar,) = [rect.text_content() for rect in chart.locator("rect.bar title").all()]
            (today,) = admin_get(url, "/analytics/summary")["by_day"]
            used = today["by_token"][admin_proxy.key.hash(token)]["total_tokens"]
            assert used > 0 and bar == f"{today['key']} · {name}: {used:,}"
            screenshot(page, "analytics-by-key")
            watch.assert_clean()

    await in_browser(scenario)


async def test_the_ui_is_usable_with_the_keyboard_alone(admin_proxy: Proxy) -> None:
    url = admin_proxy.url

    def scenario() -> None:
        with browser_page() as (page, watch):
            page.goto(f"{url}/admin/")
            wait_ready(page)
            focused = []
            for _ in range(4):
                page.keyboard.press("Tab")
                focused.append(page.evaluate("document.activeElement.textContent.trim()"))
            assert focused == ["Skip to content", "Analytics", "Keys", "Sessions"]
            page.keyboard.press("Shift+Tab")
            page.keyboard.press("Enter")  # on "Keys"
            page.wait_for_url("**/admin/#/keys")
            wait_ready(page)
            assert page.evaluate("document.activeElement.id") == "main"
            assert page.get_attribute("nav a[data-page=keys]", "aria-current") == "page"
            # New key -> the form; its fields are reachable with Tab and have labels
            page.keyboard.press("Tab")
            assert page.evaluate("document.activeElement.textContent") == "New key"
            page.keyboard.press("Enter")
            page.wait_for_url("**/admin/#/keys/new")
            wait_ready(page)
            for label in ("Expires", "API key env var", "Token budget", "Policy JSON"):
                assert page.get_by_label(label, exact=False).first.is_editable()
            # a focused control shows a visible outline
            page.get_by_label("Expires", exact=False).focus()
            outline = page.evaluate("getComputedStyle(document.activeElement).outlineStyle")
            assert outline != "none"
            watch.assert_clean()

    await in_browser(scenario)


async def test_behind_basic_auth_the_ui_works_with_credentials_only(tmp_path: Path) -> None:
    env = {"TOKENOMICS_ADMIN_AUTH_USERNAME": "ops", "TOKENOMICS_ADMIN_AUTH_PASSWORD": "s3cret"}
    async with start_proxy(tmp_path, env=env) as proxy:
        url = proxy.url

        def scenario() -> None:
            with browser_page() as (page, _watch):
                # headless chromium refuses the navigation rather than asking for a password
                with pytest.raises(PlaywrightError, match="ERR_INVALID_AUTH_CREDENTIALS"):
                    page.goto(f"{url}/admin/")
                assert page.request.get(f"{url}/admin/").status == 401
            credentials = {"username": "ops", "password": "s3cret"}
            with browser_page(http_credentials=credentials) as (page, watch):
                visit(page, url, "#/analytics", "analytics-auth")
                assert page.inner_text("#health") == "OK · HTTP"
                visit(page, url, "#/keys/new", "key-new-auth")
                page.fill("#policy-json", json.dumps(MOCK_POLICY))
                page.get_by_text("Valid policy.").wait_for()  # an authenticated POST
                watch.assert_clean()

        await in_browser(scenario)
