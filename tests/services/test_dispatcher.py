"""The webhook dispatcher against a real in-process HTTP receiver (signatures checked with
`hmac`): at-least-once with one id per event, backoff (autojump clock), Retry-After, no retry
on 4xx, dead letters after the maximum age, ordering, a slow receiver beside a fast one,
filters, the shutdown grace."""

from __future__ import annotations

import logging
import time
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager
from pathlib import Path

import pytest
import trio
import trio.testing
from tests.support.webhook_receiver import Answer, Received, Receiver, webhook_receiver

from tokenomics.domain import events
from tokenomics.domain.events import Event
from tokenomics.services.dispatcher import Dispatcher, WebhookTarget
from tokenomics.services.webhook_send import Backoff, HttpSender
from tokenomics.store.db import Database
from tokenomics.store.outbox import Counters, Outbox

T0 = time.time()
KEY = "signing-key"
H = "c" * 64


@pytest.fixture
def autojump_clock() -> trio.testing.MockClock:
    return trio.testing.MockClock(autojump_threshold=0)


@pytest.fixture
def db_path(tmp_path: Path) -> Path:
    return tmp_path / "tokenomics.db"


def target(receiver: Receiver, name: str = "hook", **kw: object) -> WebhookTarget:
    values: dict[str, object] = {"secret": "shared", "signing_secret": KEY, "timeout": 5.0}
    values.update(kw)
    return WebhookTarget(name, receiver.url, **values)  # type: ignore[arg-type]


def some_events(count: int, kind: str = "budget.update") -> list[Event]:
    return [events.event(kind, {"token_hash": H[:16], "n": i}) for i in range(count)]


def now() -> float:
    return T0 + trio.current_time()


@asynccontextmanager
async def dispatching(
    db_path: Path, targets: Callable[[], Sequence[WebhookTarget]], **kw: object
) -> AsyncIterator[Dispatcher]:
    sender = HttpSender()
    dispatcher = Dispatcher(
        Outbox(Database.open(db_path)),
        targets,
        sender,
        now=now,
        rng=lambda: 0.0,
        **kw,  # type: ignore[arg-type]
    )
    async with trio.open_nursery() as nursery:
        await nursery.start(dispatcher.run)
        yield dispatcher
        nursery.cancel_scope.cancel()
    await sender.aclose()


def append(db_path: Path, batch: Sequence[Event]) -> None:
    Outbox(Database.open(db_path)).append(batch)


def stored(db_path: Path, name: str) -> Counters:
    """The target's counters as the dispatcher stored them in the outbox (what /metrics reads)."""
    db = Database.open(db_path)
    try:
        return Outbox(db).counters([(name, ())])[0]
    finally:
        db.close()


def scripted(statuses: Sequence[int], headers: list[tuple[str, str]] | None = None):  # type: ignore[no-untyped-def]
    def script(number: int, request: Received) -> Answer:
        status = statuses[number - 1] if number <= len(statuses) else 200
        return status, headers or [], 0.0

    return script


async def test_events_arrive_in_order_signed_with_their_id_and_type(
    db_path: Path, autojump_clock: trio.abc.Clock
) -> None:
    batch = some_events(3)
    append(db_path, batch)
    async with (
        webhook_receiver(KEY) as receiver,
        dispatching(db_path, lambda: [target(receiver)]),
    ):
        await receiver.wait_for(3)
    assert receiver.ids == [e.id for e in batch]
    for got, sent in zip(receiver.received, batch, strict=True):
        assert got.signature_ok and got.body == sent.envelope()
        assert got.headers["x-event-type"] == "budget.update"
        assert got.headers["x-webhook-secret"] == "shared"
        assert got.headers["user-agent"] == "Tokenomics-Webhook/1.0"
        assert got.headers["content-type"] == "application/json"
        assert got.event["id"] == got.headers["x-event-id"]


async def test_500_then_200_retries_with_backoff_and_the_same_id(
    db_path: Path, autojump_clock: trio.abc.Clock
) -> None:
    batch = some_events(2)
    append(db_path, batch)
    async with (
        webhook_receiver(KEY, scripted([500, 503])) as receiver,
        dispatching(db_path, lambda: [target(receiver)]),
    ):
        await receiver.wait_for(2)
        await trio.sleep(1)  # the last answer is read and stored
    stats = stored(db_path, "hook")
    assert receiver.ids == [batch[0].id, batch[1].id]  # order kept, once each
    assert receiver.attempts == 4
    # rng 0: jitter halves the schedule (2 s, 4 s) -> at least 1 s, then 2 s between tries
    first, second, third = receiver.attempt_times[:3]
    assert second - first >= 1.0 and third - second >= 2.0
    assert (stats.delivered, stats.failed, stats.retried, stats.dead_lettered) == (2, 2, 2, 0)


async def test_429_waits_for_retry_after(db_path: Path, autojump_clock: trio.abc.Clock) -> None:
    append(db_path, some_events(1))
    async with (
        webhook_receiver(KEY, scripted([429], [("retry-after", "30")])) as receiver,
        dispatching(db_path, lambda: [target(receiver)]),
    ):
        await receiver.wait_for(1)
    assert receiver.attempts == 2
    assert receiver.received[0].time >= 30.0


async def test_400_is_not_retried_and_is_dead_lettered(
    db_path: Path, autojump_clock: trio.abc.Clock, caplog: pytest.LogCaptureFixture
) -> None:
    batch = some_events(2)
    append(db_path, batch)
    async with (
        webhook_receiver(KEY, scripted([400])) as receiver,
        dispatching(db_path, lambda: [target(receiver)]),
    ):
        await receiver.wait_for(1)
    stats = stored(db_path, "hook")
    assert receiver.attempts == 2 and receiver.ids == [batch[1].id]
    assert stats.dead_lettered == 1 and stats.retried == 0
    outbox = Outbox(Database.open(db_path))
    (dead,) = outbox.rows([("hook", ())], "dead")
    assert (dead.id, dead.error) == (batch[0].id, "HTTP 400")
    assert sum("dead-lettered" in r.getMessage() for r in caplog.records) == 1


async def test_a_receiver_down_then_up_gets_everything_once(
    db_path: Path, autojump_clock: trio.abc.Clock
) -> None:
    batch = some_events(5)
    async with webhook_receiver(KEY) as receiver:
        await receiver.down()
        append(db_path, batch)
        async with dispatching(db_path, lambda: [target(receiver)]):
            while True:  # several minutes of connection refused
                if stored(db_path, "hook").failed >= 5:
                    break
                await trio.sleep(1)
            assert receiver.received == [] and trio.current_time() >= 15  # 1+2+4+8 s of backoff
            async with trio.open_nursery() as nursery:
                await receiver.up(nursery)
                await receiver.wait_for(5)
                await receiver.down()
    assert receiver.ids == [e.id for e in batch]


async def test_past_the_maximum_age_an_event_is_dead_lettered_and_logged_once(
    db_path: Path, autojump_clock: trio.abc.Clock, caplog: pytest.LogCaptureFixture
) -> None:
    append(db_path, [events.event("budget.update", {}, at=None)])
    async with (
        webhook_receiver(KEY, scripted([500] * 1000)) as receiver,
        dispatching(db_path, lambda: [target(receiver)], max_age=120.0),
    ):
        while True:
            if stored(db_path, "hook").dead_lettered:
                break
            await trio.sleep(10)
        attempts = receiver.attempts
        await trio.sleep(600)
    assert receiver.attempts == attempts  # given up: no more tries
    logged = [r for r in caplog.records if "dead-lettered" in r.getMessage()]
    assert len(logged) == 1 and logged[0].levelno == logging.ERROR
    assert sum("is failing" in r.getMessage() for r in caplog.records) == 1


async def test_a_slow_receiver_does_not_delay_a_fast_one(db_path: Path) -> None:
    """Real time: the autojump clock would jump over the slow receiver's sleep whenever the
    fast worker waits on its store thread."""
    batch = some_events(10)
    append(db_path, batch)

    def slow(number: int, request: Received) -> Answer:
        return 200, [], 0.3

    async with webhook_receiver(KEY, slow) as tortoise, webhook_receiver(KEY) as hare:
        targets = [target(tortoise, "slow"), target(hare, "fast")]
        async with dispatching(db_path, lambda: targets):
            await hare.wait_for(10)
            slow_done_meanwhile = len(tortoise.received)
            await tortoise.wait_for(10)
    assert slow_done_meanwhile <= 1
    assert tortoise.ids == hare.ids == [e.id for e in batch]
    assert tortoise.max_in_flight == 1  # one delivery at a time per receiver (ordering)


async def test_filters_and_wildcards_choose_what_each_webhook_gets(
    db_path: Path, autojump_clock: trio.abc.Clock
) -> None:
    kinds = ["token.created", "rule.violation", "rule.mask", "request.completed"]
    append(db_path, [events.event(kind, {}) for kind in kinds])
    async with (
        webhook_receiver(KEY) as tokens,
        webhook_receiver(KEY) as rules,
        webhook_receiver(KEY) as exact,
        webhook_receiver(KEY) as everything,
    ):
        targets = [
            target(tokens, "tokens", events=("token.*",)),
            target(rules, "rules", events=("rule*",)),
            target(exact, "exact", events=("rule.violation", "request.completed")),
            target(everything, "all", events=("*",)),
        ]
        async with dispatching(db_path, lambda: targets):
            await everything.wait_for(4)
            await exact.wait_for(2)
            await rules.wait_for(2)
            await tokens.wait_for(1)
            await trio.sleep(5)

    def got(receiver: Receiver) -> list[str]:
        return [r.headers["x-event-type"] for r in receiver.received]

    assert got(tokens) == ["token.created"]
    assert got(rules) == ["rule.violation", "rule.mask"]
    assert got(exact) == ["rule.violation", "request.completed"]
    assert got(everything) == kinds


async def test_shutdown_gives_an_attempt_in_flight_the_grace_period(
    db_path: Path, autojump_clock: trio.abc.Clock
) -> None:
    batch = some_events(3)
    append(db_path, batch)

    def slowish(number: int, request: Received) -> Answer:
        return 200, [], 3.0

    async with (
        webhook_receiver(KEY, slowish) as receiver,
        dispatching(db_path, lambda: [target(receiver)]) as dispatcher,
    ):
        while True:
            if receiver.in_flight:
                break
            await trio.sleep(0.1)
        dispatcher.stop(grace=10.0)
        # the task is cancelled at the end of this block: the attempt in flight finishes
    assert receiver.ids == [batch[0].id]
    left = Outbox(Database.open(db_path)).page("hook", (), 10)
    assert [item.id for item in left] == [e.id for e in batch[1:]]  # kept for the next start


async def test_new_rows_from_another_connection_are_noticed_by_polling(
    db_path: Path, autojump_clock: trio.abc.Clock
) -> None:
    Outbox(Database.open(db_path))  # schema
    async with (
        webhook_receiver(KEY) as receiver,
        dispatching(db_path, lambda: [target(receiver)]),
    ):
        await trio.sleep(5)
        late = some_events(1)
        append(db_path, late)  # e.g. the CLI, in another process
        await receiver.wait_for(1)
    assert receiver.ids == [late[0].id]


def test_backoff_doubles_is_capped_jittered_and_honours_retry_after() -> None:
    backoff = Backoff(base=2.0, cap=60.0)
    assert [backoff.delay(n, None, lambda: 0.999999) for n in (1, 2, 3)] == pytest.approx(
        [2.0, 4.0, 8.0], rel=1e-3
    )
    assert backoff.delay(10, None, lambda: 0.0) == 30.0
    assert backoff.delay(1, 45.0, lambda: 0.0) == 45.0


def test_retry_after_reads_seconds_and_http_dates_and_caps_them() -> None:
    from datetime import UTC, datetime

    from tokenomics.services.webhook_send import retry_after

    now = datetime(2026, 1, 1, 12, 0, 0, tzinfo=UTC)
    assert retry_after("30") == 30.0
    assert retry_after("Thu, 01 Jan 2026 12:01:00 GMT", now) == 60.0
    assert retry_after("Thu, 01 Jan 2026 11:00:00 GMT", now) == 0.0
    assert retry_after("999999") == 3600.0
    assert retry_after("") is None and retry_after("soon") is None


async def test_a_url_that_cannot_be_used_is_dead_lettered_at_once(
    db_path: Path, autojump_clock: trio.abc.Clock
) -> None:
    append(db_path, some_events(1))
    bad = WebhookTarget("bad", "ftp://example.invalid/hook")
    async with dispatching(db_path, lambda: [bad]):
        while True:
            if stored(db_path, "bad").dead_lettered:
                break
            await trio.sleep(1)
        assert stored(db_path, "bad").failed == 1
