"""The counters backend chosen by `session.backend`, and the Redis keeper task: it replays the
settles queued while Redis was away and probes a Redis that is down (with the client's
backoff), so the proxy recovers by itself even when no request comes; and, while it runs,
settles leave the request's path (`store.redis_settles`): its flusher sends the queued ones
that no admission carried within `LINGER`, and what is left when it stops."""

from __future__ import annotations

import contextlib
import logging
from typing import TYPE_CHECKING

import trio

from tokenomics.domain.errors import RedisUnavailable, StoreError
from tokenomics.store.db import Database
from tokenomics.store.local_counters import LocalCounters
from tokenomics.store.redis_counters import RedisCounters
from tokenomics.store.redis_pending import PendingSettles
from tokenomics.store.redis_settles import LINGER, PATIENCE
from tokenomics.store.resp import LATENCY_BUCKETS, RedisAddress, RedisClient

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable
    from pathlib import Path

    from tokenomics.config.settings import Settings
    from tokenomics.domain.budget import Budgets, Spend
    from tokenomics.domain.counters import Counters
    from tokenomics.domain.ratelimit import RateLimiter

log = logging.getLogger("tokenomics.redis")
INTERVAL = 0.25


def redis_client(settings: Settings) -> RedisClient:
    options = settings.session.redis
    address = RedisAddress.parse(options.addr, options.password, options.db)
    return RedisClient(address, timeout=max(options.timeout_ms, 1) / 1000)


def build_counters(
    settings: Settings, db_path: Path, budgets: Budgets, limiter: RateLimiter
) -> Counters:
    if settings.session.backend != "redis":
        return LocalCounters(budgets, limiter)
    pending = PendingSettles(Database.open(db_path))
    counters = RedisCounters(
        redis_client(settings),
        pending,
        rate_limit_fail_open=settings.session.redis.rate_limit_fail_open,
    )
    counters.pending_count = pending.count()
    return counters


def restorer(
    counters: Counters | None, local: Callable[[dict[str, Spend]], Awaitable[bool]]
) -> Callable[[dict[str, Spend]], Awaitable[bool]]:
    """With the Redis backend, what crashed journals prove reaches Redis too (`raise_to`), not
    only the local counters. False when Redis could not take it: the journals then stay, and
    the next start tries again (raising is idempotent)."""
    if not isinstance(counters, RedisCounters):
        return local

    async def restore(spends: dict[str, Spend]) -> bool:
        saved = await local(spends)
        try:
            # Settles kept during an outage first: raising is a maximum, so applied after
            # them it counts nothing twice (the other way round, the kept ones added on top).
            await counters.replay()
            raised = await counters.raise_to(spends)
        except RedisUnavailable as exc:
            log.warning("crashed sessions' spend not brought to Redis yet: %s", exc.message)
            return False
        log.info("raised %d token(s)' spend in Redis to what crashed sessions prove", raised)
        return saved

    return restore


def metrics(counters: RedisCounters) -> list[str]:
    """Prometheus lines: Redis calls, errors, latency histogram, queued and dropped settles."""
    health = counters.client.health
    lines = [
        "# HELP tokenomics_redis_up Whether the last Redis call succeeded.",
        "# TYPE tokenomics_redis_up gauge",
        f"tokenomics_redis_up {int(health.up)}",
        "# HELP tokenomics_redis_errors_total Redis calls that failed or timed out.",
        "# TYPE tokenomics_redis_errors_total counter",
        f"tokenomics_redis_errors_total {health.errors}",
        "# HELP tokenomics_redis_pending_settles Settles waiting in SQLite for Redis.",
        "# TYPE tokenomics_redis_pending_settles gauge",
        f"tokenomics_redis_pending_settles {counters.pending_count}",
        "# HELP tokenomics_redis_dropped_settles_total Settles lost (queue full or disk error).",
        "# TYPE tokenomics_redis_dropped_settles_total counter",
        f"tokenomics_redis_dropped_settles_total {counters.dropped}",
        "# HELP tokenomics_redis_call_seconds Time of one Redis call (pipeline).",
        "# TYPE tokenomics_redis_call_seconds histogram",
    ]
    total = 0
    for bound, count in zip(LATENCY_BUCKETS, health.buckets, strict=True):
        total += count
        le = "+Inf" if bound == float("inf") else f"{bound:g}"
        lines.append(f'tokenomics_redis_call_seconds_bucket{{le="{le}"}} {total}')
    lines.append(f"tokenomics_redis_call_seconds_sum {health.latency_seconds:.6f}")
    lines.append(f"tokenomics_redis_call_seconds_count {health.calls}")
    return lines


async def flush_settles(counters: RedisCounters, *, linger: float = LINGER) -> None:
    """Until cancelled, then once more (shielded, bounded by the client's timeout): send the
    settles no admission carried. What Redis does not take is kept by `flush` for `replay`.

    A queued settle may wait `linger` for an admission to carry it; while admissions keep
    carrying them (steady traffic), that patience doubles, up to `PATIENCE` lingers: each
    wake-up of this task is a timer expiry (~0.1 ms of CPU on a small VM), one a `linger`
    was a tenth of a request's CPU at concurrency 1, and the settles went with admissions
    anyway. The first flush that finds them waiting brings the patience back to `linger`."""
    settles = counters.settles
    settles.deferred = True
    patience = linger
    try:
        while True:
            await settles.wait()
            while settles.queue:  # no wake-up per settle while they come
                due = settles.since + patience
                if trio.current_time() < due:  # only what waited that long: the rest is
                    carried = settles.taken  # likely carried by the next admission
                    await trio.sleep_until(due)
                    if settles.taken != carried:
                        patience = min(patience * 2, linger * PATIENCE)
                    continue
                patience = linger
                with contextlib.suppress(RedisUnavailable):
                    await counters.flush()
    finally:
        settles.deferred = False
        with trio.CancelScope(shield=True), contextlib.suppress(RedisUnavailable):
            if settles.queue:
                await counters.flush()


async def keep(
    counters: RedisCounters,
    *,
    interval: float = INTERVAL,
    task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Until cancelled: flush deferred settles, bound the calls' time (`RedisClient.watch`),
    probe Redis while it is down, replay queued settles once it is up."""
    try:
        async with trio.open_nursery() as nursery:
            nursery.start_soon(flush_settles, counters)
            nursery.start_soon(counters.client.watch)  # the calls' timeout, without scopes
            task_status.started()
            await _probe(counters, interval)
    finally:
        await counters.client.aclose()
        if counters.pending is not None:
            counters.pending.close()


async def _probe(counters: RedisCounters, interval: float) -> None:
    while True:
        await trio.sleep(interval)
        health = counters.client.health
        if not health.up and trio.current_time() < health.down_until:
            continue
        if not health.up and not await counters.ping():
            continue
        if counters.pending_count:
            try:
                replayed = await counters.replay()
            except (RedisUnavailable, StoreError) as exc:
                log.warning("queued settles not replayed yet: %s", exc.message)
            else:
                log.info("replayed %d settle(s) queued while Redis was away", replayed)
