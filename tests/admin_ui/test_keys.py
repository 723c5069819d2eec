"""A key made in the UI's form is a real key: the proxy serves it, an edit made in the form
changes what it may do, and deleting it (after a confirmation) stops it at once. The policy
editor checks the JSON as it is typed and shows the server's validation message inline."""

from __future__ import annotations

import json
import re
from typing import Any

import pytest
from tests.admin_ui.browser import browser_page, in_browser, needs_chromium, screenshot
from tests.admin_ui.conftest import MOCK_POLICY, admin_get, chat
from tests.support.proxy import Proxy

pytestmark = [pytest.mark.slow, needs_chromium]
TOKEN = re.compile(r"tkn_[0-9a-f-]{36}")


def wait_ready(page: Any) -> None:
    page.wait_for_selector("main .page[aria-busy=false]")


def create_in_form(page: Any, url: str, policy: dict[str, Any]) -> str:
    page.goto(f"{url}/admin/#/keys/new")
    wait_ready(page)
    page.fill("#policy-json", json.dumps(policy, indent=2))
    page.fill("#key-expires", "30d")
    page.get_by_role("button", name="Create key").click()
    dialog = page.get_by_role("dialog", name="Key created")
    dialog.wait_for()
    raw = page.input_value("#new-token")
    assert TOKEN.fullmatch(raw), raw
    dialog.get_by_role("button", name="Copy").click()
    page.get_by_text("Copied to the clipboard.").wait_for()
    assert page.evaluate("navigator.clipboard.readText()") == raw
    screenshot(page, "key-created")
    dialog.get_by_role("button", name="Close").click()
    return raw


async def test_a_key_created_in_the_form_serves_then_edits_and_deletes(admin_proxy: Proxy) -> None:
    url = admin_proxy.url

    def scenario() -> None:
        with browser_page(permissions=["clipboard-read", "clipboard-write"]) as (page, watch):
            raw = create_in_form(page, url, MOCK_POLICY)
            assert chat(url, raw).status_code == 200
            key_hash = admin_proxy.key.hash(raw)
            page.wait_for_url(f"**/admin/#/keys/{key_hash}")
            wait_ready(page)
            assert page.get_by_text(key_hash).is_visible()
            # the expiry given in the form was stored
            assert admin_get(url, f"/keys/{key_hash}")["expires_at"]

            # edit: only gpt-4o-mini from now on (through the quick field), and no expiry
            page.fill("#quick-model", "gpt-4o-mini")
            page.fill("#key-expires", "clear")
            assert json.loads(page.input_value("#policy-json"))["model"] == "gpt-4o-mini"
            page.get_by_text("Valid policy.").wait_for()
            page.get_by_role("button", name="Save changes").click()
            page.locator("#save-status", has_text="Saved.").wait_for()
            assert page.inner_text("#key-expires-at") == "never"
            assert admin_get(url, f"/keys/{key_hash}")["expires_at"] is None
            assert chat(url, raw, model="gpt-4o").status_code == 403
            assert chat(url, raw, model="gpt-4o-mini").status_code == 200

            # delete from the list, after a confirmation (Cancel first keeps it)
            page.goto(f"{url}/admin/#/keys")
            wait_ready(page)
            delete = page.get_by_role("button", name=f"Delete key {key_hash[:12]}")
            delete.click()
            page.get_by_role("dialog", name="Delete this key?").get_by_role(
                "button", name="Cancel"
            ).click()
            assert chat(url, raw, model="gpt-4o-mini").status_code == 200
            delete.click()
            screenshot(page, "key-delete-confirm")
            page.get_by_role("dialog", name="Delete this key?").get_by_role(
                "button", name="Delete"
            ).click()
            page.get_by_text("Key deleted.").wait_for()
            assert page.locator(f"a[title='{key_hash}']").count() == 0
            assert chat(url, raw, model="gpt-4o-mini").status_code == 401
            watch.assert_clean()

    await in_browser(scenario)


async def test_the_policy_editor_reports_errors_inline_as_you_type(admin_proxy: Proxy) -> None:
    url = admin_proxy.url

    def scenario() -> None:
        with browser_page() as (page, watch):
            page.goto(f"{url}/admin/#/keys/new")
            wait_ready(page)
            editor, status = page.locator("#policy-json"), page.locator("#policy-status")
            editor.fill('{"max_tokens": 5,')
            assert "JSON syntax error at line 1" in status.inner_text()
            assert editor.get_attribute("aria-invalid") == "true"
            editor.fill("[1, 2]")
            assert status.inner_text() == "The policy must be a JSON object ({ … })."
            # well-formed but not a valid policy: the server's own message, before any save
            editor.fill('{"max_tokens": 5}')
            expected = "invalid policy: base_key_env is required (or at least one provider)"
            page.locator("#policy-status", has_text=expected).wait_for()
            page.get_by_role("button", name="Create key").click()
            page.locator("#save-status", has_text=expected).wait_for()
            screenshot(page, "key-invalid-policy")
            assert admin_get(url, "/keys")["count"] == 0
            # unmodelled fields survive the quick inputs (the original dropped `memory`)
            editor.fill(json.dumps({**MOCK_POLICY, "memory": {"enabled": True}}))
            page.fill("#quick-max_tokens", "1000")
            assert json.loads(editor.input_value()) == {
                **MOCK_POLICY,
                "memory": {"enabled": True},
                "max_tokens": 1000,
            }
            watch.assert_clean(allow=("status of 400",))

    await in_browser(scenario)
