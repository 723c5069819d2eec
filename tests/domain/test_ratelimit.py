"""`proxy.md` §2.7, §6 W-C1/W-C2/W-C4, §7 scenarios 42-48 at the limiter level (D16)."""

from __future__ import annotations

import json
from typing import Any

import pytest
import trio
import trio.testing

from tokenomics.domain.errors import RateLimited
from tokenomics.domain.policy import RateLimit, parse_policy
from tokenomics.domain.ratelimit import PARALLEL_RETRY_AFTER, Permit, RateLimiter

A, B = "a" * 64, "b" * 64


class FakeClock:
    def __init__(self, now: float = 1000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now

    def at(self, offset: float) -> FakeClock:
        self.now = 1000.0 + offset
        return self


def limit(**rate_limit: Any) -> RateLimit:
    policy = parse_policy(json.dumps({"base_key_env": "K", "rate_limit": rate_limit}))
    assert policy.rate_limit is not None
    return policy.rate_limit


def refused(limiter: RateLimiter, key: str, rl: RateLimit | None) -> RateLimited:
    with pytest.raises(RateLimited) as info:
        limiter.acquire(key, rl)
    return info.value


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def limiter(clock: FakeClock) -> RateLimiter:
    return RateLimiter(clock)


# ── request windows ──────────────────────────────────────────────────────────────────────────


def test_third_request_in_a_sliding_minute_is_refused_with_the_original_message(
    clock: FakeClock, limiter: RateLimiter
) -> None:
    rl = limit(rules=[{"requests": 2, "window": "1m"}])
    limiter.acquire(A, rl).release()
    clock.at(10)
    limiter.acquire(A, rl).release()
    clock.at(20)
    err = refused(limiter, A, rl)
    assert err.status == 429
    assert err.message == "rate limit exceeded: 2 requests in 1m window (max 2)"
    assert err.retry_after == pytest.approx(40.0)  # the request at t=0 leaves at t=60


def test_sliding_window_admits_again_once_the_oldest_request_leaves(
    clock: FakeClock, limiter: RateLimiter
) -> None:
    rl = limit(rules=[{"requests": 2, "window": "1m"}])
    limiter.acquire(A, rl)
    clock.at(30)
    limiter.acquire(A, rl)
    clock.at(60)  # (now - window, now]: the request at exactly t=0 is out
    limiter.acquire(A, rl)
    clock.at(61)
    assert refused(limiter, A, rl).retry_after == pytest.approx(29.0)


def test_refused_requests_are_not_counted(clock: FakeClock, limiter: RateLimiter) -> None:
    rl = limit(rules=[{"requests": 2, "window": "1m"}])
    limiter.acquire(A, rl)
    clock.at(30)
    limiter.acquire(A, rl)
    for second in (40, 45, 50, 55):
        clock.at(second)
        refused(limiter, A, rl)
    clock.at(60.5)
    limiter.acquire(A, rl)  # only t=30 is still in the window
    clock.at(61)
    assert refused(limiter, A, rl).message.startswith("rate limit exceeded: 2 requests")


def test_retry_after_counts_down_to_when_enough_old_requests_leave(
    clock: FakeClock, limiter: RateLimiter
) -> None:
    rl3 = limit(rules=[{"requests": 3, "window": "1m"}])
    for second in (0, 10, 20):
        clock.at(second)
        limiter.acquire(A, rl3)
    clock.at(30)
    assert refused(limiter, A, rl3).retry_after == pytest.approx(30.0)
    # The limit is lowered to 1: two of the three requests must leave first.
    rl1 = limit(rules=[{"requests": 1, "window": "1m"}])
    err = refused(limiter, A, rl1)
    assert err.message == "rate limit exceeded: 3 requests in 1m window (max 1)"
    assert err.retry_after == pytest.approx(50.0)


def test_fixed_window_refuses_within_the_window_and_resets_after_it(
    clock: FakeClock, limiter: RateLimiter
) -> None:
    rl = limit(rules=[{"requests": 1, "window": "1s", "strategy": "fixed"}])
    clock.at(0.3)
    limiter.acquire(A, rl)
    clock.at(0.8)
    err = refused(limiter, A, rl)
    assert err.message == "rate limit exceeded: 1 requests in 1s window (max 1)"
    assert err.retry_after == pytest.approx(0.5)  # window_start + window - now
    clock.at(1.4)  # 1.1 s after the first check: a new window starts now (not clock-aligned)
    limiter.acquire(A, rl)
    clock.at(2.3)
    assert refused(limiter, A, rl).retry_after == pytest.approx(0.1)


def test_empty_window_string_is_one_minute_and_printed_as_written(limiter: RateLimiter) -> None:
    rl = limit(rules=[{"requests": 1, "window": ""}])
    limiter.acquire(A, rl)
    err = refused(limiter, A, rl)
    assert err.message == "rate limit exceeded: 1 requests in  window (max 1)"
    assert err.retry_after == pytest.approx(60.0)


def test_rules_sharing_a_window_count_each_request_once(limiter: RateLimiter) -> None:
    rl = limit(rules=[{"requests": 5, "window": "1m"}, {"requests": 2, "window": "60s"}])
    limiter.acquire(A, rl)
    limiter.acquire(A, rl)
    assert refused(limiter, A, rl).message == (
        "rate limit exceeded: 2 requests in 60s window (max 2)"
    )


def test_rules_are_checked_in_order(limiter: RateLimiter) -> None:
    rl = limit(rules=[{"requests": 1, "window": "1h"}, {"requests": 1, "window": "1s"}])
    limiter.acquire(A, rl)
    assert "in 1h window" in refused(limiter, A, rl).message


# ── token windows (D16: actual usage) ────────────────────────────────────────────────────────


def test_token_window_counts_recorded_usage_and_refuses_once_reached(
    clock: FakeClock, limiter: RateLimiter
) -> None:
    rl = limit(rules=[{"tokens": 10, "window": "1m"}])
    limiter.acquire(A, rl).release()
    clock.at(2)
    limiter.record_tokens(A, rl, 12)  # one request may overshoot: the check is "already >="
    clock.at(5)
    err = refused(limiter, A, rl)
    assert err.message == "rate limit exceeded: 12 tokens in 1m window (max 10)"
    assert err.retry_after == pytest.approx(57.0)
    clock.at(62)
    limiter.acquire(A, rl)


def test_token_window_below_the_limit_admits(limiter: RateLimiter) -> None:
    rl = limit(rules=[{"tokens": 10, "window": "1m"}])
    limiter.acquire(A, rl)
    limiter.record_tokens(A, rl, 9)
    limiter.acquire(A, rl)
    limiter.record_tokens(A, rl, 1)
    assert refused(limiter, A, rl).message.startswith("rate limit exceeded: 10 tokens")


def test_token_retry_after_waits_until_the_sum_drops_below_the_limit(
    clock: FakeClock, limiter: RateLimiter
) -> None:
    rl = limit(rules=[{"tokens": 10, "window": "1m"}])
    for second in (0, 10, 20):
        clock.at(second)
        limiter.record_tokens(A, rl, 5)
    clock.at(30)
    # 15 tokens; 6 must leave: the first two entries (t=0 and t=10) -> at t=70.
    assert refused(limiter, A, rl).retry_after == pytest.approx(40.0)


def test_fixed_token_window_resets(clock: FakeClock, limiter: RateLimiter) -> None:
    rl = limit(rules=[{"tokens": 10, "window": "1s", "strategy": "fixed"}])
    limiter.acquire(A, rl)
    limiter.record_tokens(A, rl, 10)
    clock.at(0.5)
    assert refused(limiter, A, rl).retry_after == pytest.approx(0.5)
    clock.at(1.0)
    limiter.acquire(A, rl)


def test_recording_tokens_without_limit_or_rules_is_a_no_op(limiter: RateLimiter) -> None:
    limiter.record_tokens(A, None, 100)
    limiter.record_tokens(A, limit(max_parallel=1), 100)
    limiter.record_tokens(A, limit(rules=[{"tokens": 1}]), 0)
    assert limiter.statistics().keys == 0


# ── max_parallel (W-C1) ──────────────────────────────────────────────────────────────────────


def test_second_concurrent_request_is_refused_until_the_first_releases(
    limiter: RateLimiter,
) -> None:
    rl = limit(max_parallel=1)
    permit = limiter.acquire(A, rl)
    err = refused(limiter, A, rl)
    assert err.message == "rate limit exceeded: 1 concurrent requests (max 1)"
    assert err.retry_after == PARALLEL_RETRY_AFTER == 1.0
    permit.release()
    permit.release()  # idempotent: must not free a slot it does not hold
    with limiter.acquire(A, rl):
        refused(limiter, A, rl)
    limiter.acquire(A, rl)


def test_a_request_refused_by_a_window_does_not_hold_a_parallel_slot(
    limiter: RateLimiter,
) -> None:
    rl = limit(max_parallel=1, rules=[{"requests": 1, "window": "1m"}])
    limiter.acquire(A, rl).release()
    refused(limiter, A, rl)
    assert limiter.statistics().in_flight == 0


def test_twenty_acquires_with_max_parallel_two_admit_two(limiter: RateLimiter) -> None:
    rl = limit(max_parallel=2)
    permits = [limiter.acquire(A, rl), limiter.acquire(A, rl)]
    for _ in range(18):
        assert refused(limiter, A, rl).message == (
            "rate limit exceeded: 2 concurrent requests (max 2)"
        )
    assert limiter.statistics().in_flight == 2
    for permit in permits:
        permit.release()
    assert limiter.statistics().in_flight == 0


async def test_twenty_concurrent_tasks_never_exceed_max_parallel_two(
    autojump_clock: trio.testing.MockClock,
) -> None:
    limiter = RateLimiter(trio.current_time)
    rl = limit(max_parallel=2)
    in_flight = peak = done = 0

    async def request() -> None:
        nonlocal in_flight, peak, done
        while True:
            try:
                permit = limiter.acquire(A, rl)
            except RateLimited as exc:
                await trio.sleep(exc.retry_after)
                continue
            with permit:
                in_flight += 1
                peak = max(peak, in_flight)
                await trio.sleep(0.5)  # the upstream call of a `slow-500` model
                in_flight -= 1
            done += 1
            return

    async with trio.open_nursery() as nursery:
        for _ in range(20):
            nursery.start_soon(request)
    assert (peak, done, limiter.statistics().in_flight) == (2, 20, 0)


# ── isolation and policy edits (W-C2) ────────────────────────────────────────────────────────


def test_each_token_has_its_own_state(limiter: RateLimiter) -> None:
    rl = limit(rules=[{"requests": 1, "window": "1m"}], max_parallel=1)
    limiter.acquire(A, rl)
    limiter.acquire(B, rl)
    refused(limiter, A, rl)
    assert limiter.statistics().keys == 2


def test_raising_the_request_limit_applies_at_once(limiter: RateLimiter) -> None:
    one = limit(rules=[{"requests": 1, "window": "1m"}])
    five = limit(rules=[{"requests": 5, "window": "1m"}])
    limiter.acquire(A, one)
    refused(limiter, A, one)
    for _ in range(4):
        limiter.acquire(A, five)
    assert refused(limiter, A, five).message == (
        "rate limit exceeded: 5 requests in 1m window (max 5)"
    )
    assert refused(limiter, A, one).message.startswith("rate limit exceeded: 5 requests")


def test_raising_max_parallel_applies_to_requests_already_in_flight(
    limiter: RateLimiter,
) -> None:
    limiter.acquire(A, None)  # in flight before any limit was set: still counted
    refused(limiter, A, limit(max_parallel=1))
    limiter.acquire(A, limit(max_parallel=2))
    refused(limiter, A, limit(max_parallel=2))


def test_removing_the_limit_admits_everything(limiter: RateLimiter) -> None:
    rl = limit(rules=[{"requests": 1, "window": "1m"}], max_parallel=1)
    limiter.acquire(A, rl)
    for _ in range(10):
        limiter.acquire(A, None)
        limiter.acquire(A, limit())
    assert limiter.statistics().in_flight == 21


# ── memory bounds (W-C4, W-C5) ───────────────────────────────────────────────────────────────


def test_sliding_window_keeps_a_bounded_number_of_buckets(
    clock: FakeClock, limiter: RateLimiter
) -> None:
    rl = limit(rules=[{"requests": 1_000_000, "tokens": 10**9, "window": "1m"}])
    for i in range(100_000):
        clock.at(i * 0.0012)  # 100k requests over two minutes
        limiter.acquire(A, rl).release()
        limiter.record_tokens(A, rl, 3)
    assert limiter.statistics().buckets <= 66


def test_coalesced_buckets_only_ever_make_the_limit_stricter(
    clock: FakeClock, limiter: RateLimiter
) -> None:
    rl = limit(rules=[{"requests": 100, "window": "1m"}])
    for i in range(100):
        clock.at(i * 0.1)
        limiter.acquire(A, rl)
    clock.at(10)
    exact = 60 - 10  # the request at t=0 leaves at t=60
    retry = refused(limiter, A, rl).retry_after
    assert exact <= retry <= exact + 60 / 64
    clock.at(10 + retry)
    limiter.acquire(A, rl)


def test_collect_forgets_idle_keys_only(clock: FakeClock, limiter: RateLimiter) -> None:
    rl = limit(rules=[{"requests": 1, "window": "1h"}])
    limiter.acquire(A, rl).release()
    held = limiter.acquire(B, None)
    limiter.acquire("c", None).release()
    clock.at(1000)
    assert limiter.collect(600) == 1  # "c"; A's window still holds its request, B is in flight
    refused(limiter, A, rl)
    clock.at(4000)
    assert limiter.collect(600) == 1  # A
    held.release()
    assert limiter.collect(600) == 0  # B was just touched
    clock.at(5000)
    assert limiter.collect(600) == 1
    assert limiter.statistics().keys == 0


def test_acquire_collects_idle_keys_periodically(clock: FakeClock) -> None:
    limiter = RateLimiter(clock, idle_seconds=10, collect_every=60)
    for n in range(100):
        limiter.acquire(f"key-{n}", None).release()
    clock.at(61)
    limiter.acquire(A, None)
    assert limiter.statistics().keys == 1


def test_permit_is_a_context_manager(limiter: RateLimiter) -> None:
    with limiter.acquire(A, limit(max_parallel=1)) as permit:
        assert isinstance(permit, Permit)
        assert limiter.statistics().in_flight == 1
    assert limiter.statistics().in_flight == 0


@pytest.fixture
def autojump_clock() -> trio.testing.MockClock:
    return trio.testing.MockClock(autojump_threshold=0)


def test_finish_records_the_tokens_and_releases_the_slot_at_one_reading_of_the_clock() -> None:
    readings: list[float] = []

    def clock() -> float:
        readings.append(100.0 + len(readings))
        return readings[-1]

    limiter = RateLimiter(clock)
    rate = limit(max_parallel=1, rules=[{"tokens": 10, "window": "1m"}])
    permit = limiter.acquire("k", rate)
    before = len(readings)
    limiter.finish("k", rate, 10, permit)
    assert len(readings) == before + 1
    with pytest.raises(RateLimited, match="10 tokens"):  # the tokens count, the slot is free
        limiter.acquire("k", rate)
    limiter.finish("k", rate, 0, permit)  # released once only
    assert limiter.statistics().in_flight == 0
