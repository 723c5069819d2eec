"""The webhook dispatcher (decision D19): the only sender of the outbox's events.

A sibling task of the consumers nursery (`app.py`; on `remote`, to registered proxies: the
targets come from a callable, read again every poll). One worker per target delivers that
target's events in order, one at a time (per-webhook ordering, bounded concurrency), so a slow
or failing receiver delays only itself. Each event is tried until a 2xx (at least once, the
same id and bytes every time) with exponential backoff and jitter, honouring `Retry-After`;
a 4xx other than 408/429 is not retried; an event older than `max_age` is dead-lettered
(counted, logged once, kept for `events list --dead` and `events retry`). The outbox is read
in pages; new rows written by another process (the CLI) are noticed by polling its newest
number every `poll_interval` seconds, and `wake()` is the in-process shortcut. On shutdown
(`stop(grace)`, then cancellation) an attempt in flight gets the grace period; the rest stays
in the outbox for the next start.
"""

from __future__ import annotations

import logging
import random
import threading
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import trio
import trio.lowlevel

from tokenomics.domain.errors import StoreError
from tokenomics.services.webhook_send import Attempt, Backoff, Sender, WebhookTarget
from tokenomics.upstream.urls import redact

if TYPE_CHECKING:
    from collections.abc import Callable, Sequence

    from tokenomics.store.outbox import Outbox, Pending

log = logging.getLogger("tokenomics.webhooks")
PAGE = 64
PRUNE_EVERY = 60.0
DEFAULT_MAX_AGE = 86400.0

__all__ = ["Dispatcher", "WebhookStatistics", "WebhookTarget"]


@dataclass(slots=True)
class WebhookStatistics:
    """Counters of one webhook since this process started (pending and dead from the store)."""

    delivered: int = 0
    failed: int = 0  # attempts that did not deliver
    retried: int = 0  # attempts scheduled again after a failure
    dead_lettered: int = 0
    pending: int = 0
    failing: bool = False


@dataclass(slots=True)
class _Progress:
    """Events of the current page delivered but not yet stored as done."""

    seq: int = 0
    count: int = 0


@dataclass(slots=True)
class _Worker:
    target: WebhookTarget
    scope: trio.CancelScope
    wakeup: trio.Event


class Dispatcher:
    def __init__(
        self, outbox: Outbox, targets: Callable[[], Sequence[WebhookTarget]], sender: Sender, *,
        now: Callable[[], float] = time.time, max_age: float = DEFAULT_MAX_AGE,
        backoff: Backoff | None = None, poll_interval: float = 0.5, page: int = PAGE,
        rng: Callable[[], float] = random.random,
    ) -> None:  # fmt: skip
        """`outbox` is the dispatcher's own (its own connection: it is used from worker
        threads, one call at a time); `now` is the wall clock of `next_attempt_at` and ages."""
        self._outbox = outbox
        self._targets = targets
        self._sender = sender
        self._now = now
        self._max_age = max_age
        self._backoff = backoff or Backoff()
        self._poll = poll_interval
        self._page = page
        self._rng = rng
        self._lock = threading.Lock()
        self._workers: dict[str, _Worker] = {}
        self._stats: dict[str, WebhookStatistics] = {}
        self._in_flight: set[trio.CancelScope] = set()
        self._stop_deadline: float | None = None
        self._mark: tuple[int, int] = (-1, -1)
        self._counted: dict[str, float] = {}  # when each target's backlog was last counted

    # ── for the composition root, metrics and tests ──────────────────────────────────────

    def wake(self) -> None:
        """New events are in the outbox (written by this process)."""
        for worker in self._workers.values():
            worker.wakeup.set()

    def statistics(self) -> dict[str, WebhookStatistics]:
        return {name: WebhookStatistics(**_fields(s)) for name, s in self._stats.items()}

    def stop(self, grace: float) -> None:
        """Shutdown begins: an attempt in flight gets at most `grace` more seconds (the task is
        cancelled next; what is not delivered stays in the outbox)."""
        deadline = self._stop_deadline = trio.current_time() + grace
        for scope in self._in_flight:
            scope.deadline = min(scope.deadline, deadline)

    async def _io(self, fn: Callable[..., Any], *args: Any) -> Any:
        def locked() -> Any:
            with self._lock:
                return fn(*args)

        return await trio.to_thread.run_sync(locked)

    # ── the service ──────────────────────────────────────────────────────────────────────

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Deliver until cancelled."""
        async with trio.open_nursery() as nursery:
            task_status.started()
            last_prune = -PRUNE_EVERY
            while True:
                self._reconcile(nursery)
                try:
                    mark = await self._io(self._outbox.change_mark)
                    if mark != self._mark:
                        self._mark = mark
                        self.wake()
                    if trio.current_time() - last_prune >= PRUNE_EVERY:
                        last_prune = trio.current_time()
                        names = [w.target.name for w in self._workers.values()]
                        cutoff = self._now() - self._max_age
                        await self._io(self._outbox.prune, names, cutoff)
                except StoreError as exc:
                    log.warning("event outbox: %s", exc)
                await trio.sleep(self._poll)

    def _reconcile(self, nursery: trio.Nursery) -> None:
        """Start a worker per new target; restart one whose settings changed; stop the gone."""
        wanted = {target.name: target for target in self._targets()}
        for name, worker in list(self._workers.items()):
            if wanted.get(name) != worker.target:
                worker.scope.cancel()
                del self._workers[name]
        for name, target in wanted.items():
            if name not in self._workers:
                worker = self._workers[name] = _Worker(target, trio.CancelScope(), trio.Event())
                self._stats.setdefault(name, WebhookStatistics())
                nursery.start_soon(self._work, worker)

    async def _work(self, worker: _Worker) -> None:
        with worker.scope:
            while True:
                try:
                    await self._round(worker)
                except StoreError as exc:  # busy or failing disk: try again, never crash
                    log.warning("event outbox: %s", exc)
                    await trio.sleep(self._poll)

    async def _round(self, worker: _Worker) -> None:
        """One page of the target's events, delivered in order; the progress is stored once
        for the page (a crash then sends the page's delivered events again: same ids)."""
        target = worker.target
        page: list[Pending] = await self._io(
            self._outbox.page, target.name, target.events, self._page
        )
        await self._count_pending(target, page)
        if not page:
            await worker.wakeup.wait()
            worker.wakeup = trio.Event()
            return
        progress = _Progress()
        try:
            for item in page:
                await self._deliver(target, item, progress)
        finally:
            with trio.CancelScope(shield=True):
                await self._flush(target, progress)

    async def _count_pending(self, target: WebhookTarget, page: list[Pending]) -> None:
        """A short page is everything pending; behind a full one, counting is a scan of the
        backlog: done at most once a second (the gauge of a burst need not be exact)."""
        stats = self._stats[target.name]
        if len(page) < self._page:
            stats.pending = len(page)
        elif trio.current_time() - self._counted.get(target.name, -PRUNE_EVERY) >= 1.0:
            self._counted[target.name] = trio.current_time()
            stats.pending = await self._io(self._outbox.pending_count, target.name, target.events)

    async def _flush(self, target: WebhookTarget, progress: _Progress) -> None:
        if progress.count:
            await self._io(self._outbox.advance, target.name, progress.seq, progress.count)
            progress.count = 0

    async def _deliver(self, target: WebhookTarget, item: Pending, progress: _Progress) -> None:
        """Try `item` until it is delivered or dead-lettered."""
        stats = self._stats[target.name]
        attempts, next_at = item.attempts, item.next_attempt_at
        while True:
            wait = next_at - self._now()
            if wait > 0:
                await trio.sleep(wait)
            result = await self._attempt(target, item)
            attempts += 1
            if result.delivered:
                await self._delivered(target, item, progress)
                self._recovered(target, stats)
                return
            stats.failed += 1
            self._failing(target, stats, result)
            with trio.CancelScope(shield=True):  # what was sent is stored, even now
                await self._flush(target, progress)
            if result.permanent or self._now() - item.since >= self._max_age:
                await self._dead_letter(target, item, attempts, result)
                return
            next_at = self._now() + self._backoff.delay(attempts, result.retry_after, self._rng)
            with trio.CancelScope(shield=True):
                await self._io(
                    self._outbox.failed, target.name, item, attempts, next_at, result.error
                )
            stats.retried += 1

    async def _delivered(self, target: WebhookTarget, item: Pending, progress: _Progress) -> None:
        stats = self._stats[target.name]
        stats.delivered += 1
        stats.pending = max(0, stats.pending - 1)
        if item.retry:  # from the dead letters: off that list now
            with trio.CancelScope(shield=True):
                await self._io(self._outbox.delivered, target.name, item)
        else:
            progress.seq, progress.count = item.seq, progress.count + 1

    async def _attempt(self, target: WebhookTarget, item: Pending) -> Attempt:
        """One POST; shielded, so that a shutdown lets it finish within the grace period."""
        if self._stop_deadline is not None:
            await trio.sleep_forever()  # shutting down: no new attempt (cancelled next)
        await trio.lowlevel.checkpoint()
        # The sender bounds the head and the body by `timeout` each: this only backs it up.
        deadline = trio.current_time() + 2 * target.timeout + 5.0
        with trio.CancelScope(shield=True, deadline=deadline) as scope:
            self._in_flight.add(scope)
            try:
                return await self._sender.post(target, item.id, item.type, item.body)
            finally:
                self._in_flight.discard(scope)
        if self._stop_deadline is not None:
            return Attempt(0, "webhook delivery cut short by the shutdown")
        return Attempt(0, "webhook delivery timed out")

    async def _dead_letter(
        self, target: WebhookTarget, item: Pending, attempts: int, result: Attempt
    ) -> None:
        with trio.CancelScope(shield=True):
            await self._io(
                self._outbox.dead_letter, target.name, item, attempts, result.error, self._now()
            )
        stats = self._stats[target.name]
        stats.dead_lettered += 1
        stats.pending = max(0, stats.pending - 1)
        why = "not retried" if result.permanent else f"older than {self._max_age:g}s"
        log.error(
            "webhook %s: event %s (%s) dead-lettered after %d attempt(s), %s: %s; "
            "see `tokenomics events list --dead`",
            target.name, item.id, item.type, attempts, why, result.error or "failed",
        )  # fmt: skip

    def _failing(self, target: WebhookTarget, stats: WebhookStatistics, result: Attempt) -> None:
        if not stats.failing:
            stats.failing = True
            log.warning(
                "webhook %s (%s) is failing: %s; retrying with backoff",
                target.name, redact(target.url), result.error or "failed",
            )  # fmt: skip

    def _recovered(self, target: WebhookTarget, stats: WebhookStatistics) -> None:
        if stats.failing:
            stats.failing = False
            log.warning("webhook %s is delivering again", target.name)


def _fields(stats: WebhookStatistics) -> dict[str, Any]:
    return {name: getattr(stats, name) for name in WebhookStatistics.__slots__}
