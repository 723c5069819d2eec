"""The UI stays quick with a large deployment: 10,000 keys and 100,000 ledger requests (issue
17): every page renders whole, with the right counts, paging and the by-key chart. Each page
is timed from navigation to rendered (API answer, JSON parse and DOM build, in the real
browser) and the numbers are printed (`-s`), not asserted: timings belong to the benchmarks
(`bench/admin_api.py` measures the API's < 200 ms), never to a test on a shared machine."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from tests.admin_ui.browser import browser_page, in_browser, needs_chromium, screenshot
from tests.support.ledger_data import insert_tokens, token_hashes, write_sessions
from tests.support.proxy import Proxy, start_proxy

pytestmark = [pytest.mark.slow, needs_chromium]
TOKENS, REQUESTS, SESSIONS = 10_000, 100_000, 20


@pytest.fixture
async def big_proxy(tmp_path: Path) -> AsyncIterator[Proxy]:
    hashes = token_hashes(TOKENS)
    data = tmp_path / "data"
    write_sessions(data / "sessions", sessions=SESSIONS, requests=REQUESTS, tokens=hashes)
    (data / "tokenomics.db").parent.mkdir(parents=True, exist_ok=True)
    async with start_proxy(tmp_path) as proxy:
        insert_tokens(Path(proxy.settings.storage.db_path), hashes)
        yield proxy


async def test_pages_render_whole_with_10k_keys_and_100k_requests(big_proxy: Proxy) -> None:
    url = big_proxy.url

    def scenario() -> dict[str, float]:
        timings: dict[str, float] = {}
        with browser_page() as (page, watch):
            for name, fragment in (
                ("analytics", "#/analytics"),
                ("keys", "#/keys"),
                ("sessions", "#/sessions"),
                ("analytics (again)", "#/analytics"),
            ):
                page.goto("about:blank")
                started = time.perf_counter()
                page.goto(f"{url}/admin/{fragment}")
                page.wait_for_selector("main .page[aria-busy=false]")
                timings[name] = time.perf_counter() - started
            for name in ("Keys", "Sessions", "Analytics"):  # in-app: no page load
                started = time.perf_counter()
                page.get_by_role("link", name=name, exact=True).click()
                page.wait_for_selector(f"main .page[data-page={name.lower()}][aria-busy=false]")
                timings[f"{name.lower()} (nav)"] = time.perf_counter() - started
            requests = page.locator(".counter", has=page.get_by_text("Requests", exact=True))
            assert requests.locator("dd").inner_text().startswith("100,000")
            screenshot(page, "analytics-large")
            # by key: the 7 costliest keys and the other 9,993 together (the API sends the
            # top 20 keys per day and the rest of each day summed)
            page.get_by_role("button", name="By key").click()
            legend = page.locator(".legend li").all_inner_texts()
            assert len(legend) == 8 and legend[-1] == "other", legend
            page.goto(f"{url}/admin/#/keys")
            page.wait_for_selector("main .page[aria-busy=false]")
            assert page.get_by_text("1–100 of 10,000").is_visible()
            page.get_by_role("link", name="Next").click()
            page.get_by_text("101–200 of 10,000").wait_for()
            watch.assert_clean()
        return timings

    timings = await in_browser(scenario)
    assert set(timings) >= {"analytics", "keys", "sessions", "analytics (again)"}
    print({name: f"{seconds * 1000:.0f} ms" for name, seconds in timings.items()})
