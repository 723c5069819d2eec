"""Hostile values stay inert: markup in a policy (metadata, a rule name, a provider policy's
model), in a model name sent through the proxy, in a git branch name and in a conversation
(memory file) is shown as text on every page; nothing runs, no element is injected."""

from __future__ import annotations

import subprocess
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from tests.admin_ui.browser import (
    browser_page,
    in_browser,
    needs_chromium,
    screenshot,
    stray_text,
)
from tests.admin_ui.conftest import admin_get, chat
from tests.support.proxy import Proxy, start_proxy

pytestmark = [pytest.mark.slow, needs_chromium]
SCRIPT = "<script>window.__xss='script';alert('script')</script>"
IMG = "\"><img src=x onerror=\"window.__xss='img';alert('img')\">"
# git refuses spaces in branch names, not markup
BRANCH = "\"><img/src=x/onerror=window.__xss='branch';alert('branch')>"
POLICY: dict[str, Any] = {
    "providers": {
        "mock": [
            {"base_key_env": "ANY", "model_regex": ".*"},
            {"base_key_env": "ANY", "model": IMG},
        ]
    },
    "metadata": {"team": SCRIPT, "note": IMG},
    "rules": [{"name": IMG, "type": "keyword", "keywords": ["hello"], "action": "warn"}],
}


def git(cwd: Path, *args: str) -> None:
    subprocess.run(
        ["git", "-c", "user.name=t", "-c", "user.email=t@example.com", *args],
        cwd=cwd,
        check=True,
        capture_output=True,
    )


@pytest.fixture
async def hostile_proxy(tmp_path: Path) -> AsyncIterator[Proxy]:
    work = tmp_path / "work"
    work.mkdir(exist_ok=True)
    git(work, "init", "-q", "-b", BRANCH)
    git(work, "commit", "-q", "--allow-empty", "-m", "x")
    async with start_proxy(tmp_path) as proxy:
        yield proxy


def assert_inert(page: Any, watch: Any, *texts: str) -> None:
    assert page.evaluate("typeof window.__xss") == "undefined"
    assert page.locator("img").count() == 0
    assert page.evaluate("document.scripts.length") == 1  # app.js, nothing else
    assert stray_text(page) == []
    for text in texts:
        assert page.get_by_text(text, exact=False).count() >= 1, text
    watch.assert_clean()


async def test_markup_from_policies_models_branches_and_memory_stays_text(
    hostile_proxy: Proxy,
) -> None:
    url = hostile_proxy.url
    token = hostile_proxy.token(POLICY)
    key_hash = hostile_proxy.key.hash(token)

    def scenario() -> None:
        assert chat(url, token, model=IMG, content=f"hello {SCRIPT}").status_code == 200
        session = admin_get(url, "/health")["session_id"]
        assert admin_get(url, f"/sessions/{session}")["git"]["branch"] == BRANCH
        with browser_page() as (page, watch):
            for fragment, texts in (
                ("#/analytics", (IMG, BRANCH)),
                ("#/keys", (IMG, SCRIPT)),
                (f"#/keys/{key_hash}", ()),
                ("#/sessions", (BRANCH,)),
                (f"#/sessions/{session}", (IMG, BRANCH)),
            ):
                page.goto(f"{url}/admin/{fragment}")
                page.wait_for_selector("main .page[aria-busy=false]")
                assert_inert(page, watch, *texts)
            # the editor holds the stored policy text verbatim
            page.goto(f"{url}/admin/#/keys/{key_hash}")
            page.wait_for_selector("main .page[aria-busy=false]")
            assert SCRIPT in page.input_value("#policy-json")
            assert_inert(page, watch)
            page.goto(f"{url}/admin/#/memory")
            page.wait_for_selector("main .page[aria-busy=false]")
            page.locator(".file-list button").first.click()
            page.locator("pre.file").wait_for()
            assert SCRIPT in page.inner_text("pre.file")
            screenshot(page, "xss-memory")
            assert_inert(page, watch)

    await in_browser(scenario)
