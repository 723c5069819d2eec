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

__all__ = ["Dispatcher", "WebhookTarget"]


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
    failing: bool = False  # logged once until it delivers again


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
        self._in_flight: set[trio.CancelScope] = set()
        self._stop_deadline: float | None = None
        self._mark: tuple[int, int] = (-1, -1)

    # ── for the composition root ─────────────────────────────────────────────────────────

    def wake(self) -> None:
        """New events are in the outbox (written by this process)."""
        for worker in self._workers.values():
            worker.wakeup.set()

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
        for the page (a crash then sends the page's delivered events again: same ids). The
        counters (`/metrics`) are the outbox's (`Outbox.counters`), stored as it goes."""
        target = worker.target
        page: list[Pending] = await self._io(
            self._outbox.page, target.name, target.events, self._page
        )
        if not page:
            await worker.wakeup.wait()
            worker.wakeup = trio.Event()
            return
        progress = _Progress()
        try:
            for item in page:
                await self._deliver(worker, item, progress)
        finally:
            with trio.CancelScope(shield=True):
                await self._flush(target, progress)

    async def _flush(self, target: WebhookTarget, progress: _Progress) -> None:
        if progress.count:
            await self._io(self._outbox.advance, target.name, progress.seq, progress.count)
            progress.count = 0

    async def _deliver(self, worker: _Worker, item: Pending, progress: _Progress) -> None:
        """Try `item` until it is delivered or dead-lettered."""
        target = worker.target
        attempts, next_at = item.attempts, item.next_attempt_at
        while True:
            wait = next_at - self._now()
            if wait > 0:
                await trio.sleep(wait)
            result = await self._attempt(target, item)
            attempts += 1
            if result.delivered:
                await self._delivered(target, item, progress)
                self._recovered(worker)
                return
            self._failing(worker, result)
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

    async def _delivered(self, target: WebhookTarget, item: Pending, progress: _Progress) -> None:
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
        why = "not retried" if result.permanent else f"older than {self._max_age:g}s"
        log.error(
            "webhook %s: event %s (%s) dead-lettered after %d attempt(s), %s: %s; "
            "see `tokenomics events list --dead`",
            target.name, item.id, item.type, attempts, why, result.error or "failed",
        )  # fmt: skip

    def _failing(self, worker: _Worker, result: Attempt) -> None:
        if not worker.failing:
            worker.failing = True
            target = worker.target
            log.warning(
                "webhook %s (%s) is failing: %s; retrying with backoff",
                target.name, redact(target.url), result.error or "failed",
            )  # fmt: skip

    def _recovered(self, worker: _Worker) -> None:
        if worker.failing:
            worker.failing = False
            log.warning("webhook %s is delivering again", worker.target.name)
