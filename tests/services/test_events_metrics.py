"""The webhooks' lines of `/metrics` (`EventServices.metric_lines`) are served from the last
count, made in a worker thread when a scrape asked for it: a scrape never counts a backlog on
the event loop, and the next one shows what changed."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import trio

from tokenomics.config.settings import EventsSettings, Settings, WebhookSettings
from tokenomics.domain import events
from tokenomics.services.delivery_process import WORKER_ENV
from tokenomics.services.events_service import EventServices
from tokenomics.store.db import Database
from tokenomics.store.outbox import Outbox

URL = "http://127.0.0.1:9/hook"


def pending(lines: list[str]) -> int:
    (line,) = [x for x in lines if x.startswith("tokenomics_webhook_pending{")]
    return int(line.rsplit(" ", 1)[1])


def append(db_path: Path, count: int) -> None:
    db = Database.open(db_path)
    try:
        Outbox(db).append([events.event("budget.update", {}) for _ in range(count)])
    finally:
        db.close()


async def test_a_scrape_is_served_from_the_count_it_asked_for_before(tmp_path: Path) -> None:
    db_path = tmp_path / "tokenomics.db"
    settings = replace(Settings(), events=EventsSettings(webhooks=(WebhookSettings(URL),)))
    # A `server.workers` process: no delivery of its own, only the counting for /metrics.
    hooks = EventServices.open(settings, db_path, {WORKER_ENV: "1"})
    try:
        async with trio.open_nursery() as nursery:
            append(db_path, 5)
            await nursery.start(hooks.run)  # counted once at the start
            assert pending(hooks.metric_lines()) == 5
            append(db_path, 7)
            assert pending(hooks.metric_lines()) == 5  # the last count, not a new one
            with trio.fail_after(10):
                while True:  # counted again once a scrape asked
                    if pending(hooks.metric_lines()) == 12:
                        break
                    await trio.sleep(0.1)
            nursery.cancel_scope.cancel()
    finally:
        await hooks.aclose()
