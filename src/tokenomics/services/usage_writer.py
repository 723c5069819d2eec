"""The usage writer: budget counters written through to the store (decision D14).

Every `interval` seconds the totals changed since the last save are taken from `Budgets` and
saved in a worker thread. A failed save (disk full, database busy) is logged and the totals are
put back, so the next tick saves their newest values; the service never stops on it. On
cancellation it does one final save, shielded and bounded in time.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

import trio

from tokenomics.domain.errors import StoreError

if TYPE_CHECKING:
    from collections.abc import Callable

    from tokenomics.domain.budget import Budgets
    from tokenomics.store.usage import UsageStore

FINAL_FLUSH_SECONDS = 5.0

logger = logging.getLogger("tokenomics.usage")


async def flush(budgets: Budgets, store: UsageStore, clock_now: Callable[[], str]) -> bool:
    """Save the dirty totals once; on a store error put them back and return False."""
    totals = budgets.take_dirty()
    if not totals:
        return True
    try:
        # Not abandoned on cancel: a save in progress finishes (bounded by SQLite's busy
        # timeout), so the totals it carries are never lost track of.
        await trio.to_thread.run_sync(store.save, totals, clock_now())
    except StoreError as exc:
        budgets.mark_dirty(totals)
        logger.warning("could not save the usage of %d token(s), will retry: %s", len(totals), exc)
        return False
    return True


async def run(
    budgets: Budgets,
    store: UsageStore,
    *,
    interval: float = 0.5,
    clock_now: Callable[[], str],
    task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Save changed totals every `interval` seconds until cancelled, then flush once more."""
    task_status.started()
    try:
        while True:
            await trio.sleep(interval)
            await flush(budgets, store, clock_now)
    finally:
        with trio.move_on_after(FINAL_FLUSH_SECONDS, shield=True):
            if not await flush(budgets, store, clock_now):
                logger.error("usage totals were not saved at shutdown")
