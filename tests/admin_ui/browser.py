"""Headless Debian chromium driven by Playwright's sync API, for the admin UI tests.

Playwright's sync API runs its own event loop and must stay on the thread that started it, so
a test runs a whole browser scenario in one worker thread (`in_browser`), while the real server
keeps serving on the test's Trio loop. No browser is downloaded: `executable_path` is Debian's
`/usr/bin/chromium` (`.ci/run` installs it when missing).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import pytest
import trio

CHROMIUM = Path(os.environ.get("TOKENOMICS_TEST_CHROMIUM", "/usr/bin/chromium"))
ARGS = [
    "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
]  # fmt: skip
ARTIFACTS = Path(__file__).resolve().parent / "artifacts"
VIEWPORT = {"width": 1366, "height": 860}  # a laptop screen
T = TypeVar("T")

needs_chromium = pytest.mark.skipif(
    not CHROMIUM.exists(), reason=f"{CHROMIUM} is absent (apt-get install chromium)"
)


@dataclass
class Watch:
    """What the page said behind our back: console errors, uncaught exceptions, dialogs
    (alert/confirm/prompt: an XSS payload's usual first move), failed requests."""

    console_errors: list[str] = field(default_factory=list)
    page_errors: list[str] = field(default_factory=list)
    dialogs: list[str] = field(default_factory=list)

    def attach(self, page: Any) -> None:
        page.on("console", self._console)
        page.on("pageerror", lambda exc: self.page_errors.append(str(exc)))
        page.on("dialog", self._dialog)

    def _console(self, message: Any) -> None:
        if message.type == "error":
            self.console_errors.append(f"{message.text} @ {message.location}")

    def _dialog(self, dialog: Any) -> None:
        self.dialogs.append(f"{dialog.type}: {dialog.message}")
        dialog.dismiss()

    def assert_clean(self, *, allow: tuple[str, ...] = ()) -> None:
        errors = [e for e in self.console_errors if not any(a in e for a in allow)]
        assert errors == [], errors
        assert self.page_errors == [], self.page_errors
        assert self.dialogs == [], self.dialogs


@contextmanager
def browser_page(**context_options: Any) -> Iterator[tuple[Any, Watch]]:
    """A fresh browser, context and page (laptop-sized); closed on exit."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), args=ARGS)
        try:
            context = browser.new_context(viewport=VIEWPORT, **context_options)
            page = context.new_page()
            page.set_default_timeout(15_000)
            watch = Watch()
            watch.attach(page)
            yield page, watch
        finally:
            browser.close()


STRAY = """() => {
  const walker = document.createTreeWalker(document.body, NodeFilter.SHOW_TEXT);
  const found = [];
  while (walker.nextNode()) {
    const text = walker.currentNode.data.trim();
    if (text === "null" || text === "undefined" || text === "NaN" || text === "[object Object]") found.push(text);
  }
  return found;
}"""


def stray_text(page: Any) -> list[str]:
    """Text nodes that are a JavaScript value printed by mistake (`null`, `undefined`, …)."""
    found: list[str] = page.evaluate(STRAY)
    return found


async def in_browser(scenario: Callable[[], T]) -> T:
    """Run a synchronous browser scenario in a worker thread; the server keeps serving."""
    return await trio.to_thread.run_sync(scenario)


def screenshot(page: Any, name: str, *, full_page: bool = True) -> Path:
    """Write a screenshot under `tests/admin_ui/artifacts/` and print its path."""
    ARTIFACTS.mkdir(exist_ok=True)
    path = ARTIFACTS / f"{name}.png"
    page.screenshot(path=str(path), full_page=full_page)
    print(f"screenshot: {path}")
    return path
