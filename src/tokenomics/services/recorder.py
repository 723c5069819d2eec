"""Where a finished exchange goes: statistics, the request log, the session journal (`journal`,
written at once on the request's task) and the record consumers (ledger batches, memory)
through `sink`, which hands a `Finished` over a bounded channel.

`record()` never raises into the request: it is called from `finish`. It waits only while the
channel is full (back-pressure: a slow disk slows the requests down instead of dropping
records or growing memory without bound), shielded, so a cancelled request still hands its
record over.
"""

from __future__ import annotations

import logging
from collections import deque
from typing import TYPE_CHECKING, Any

import trio

from tokenomics.services.finished import Finished, from_exchange, sent_body
from tokenomics.services.logs import REQUEST_LOGGER
from tokenomics.upstream.urls import redact

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable

    from tokenomics.config.settings import LoggingSettings
    from tokenomics.pipeline.exchange import Exchange
    from tokenomics.services.stats import Stats

log = logging.getLogger(REQUEST_LOGGER)
BODY_SAMPLE = 64 * 1024
RECENT_EVENTS = 256
# Records waiting for the consumers; each holds at most 2 x `BODY_LIMIT` of bodies.
RECORD_QUEUE = 256
STOPPED = "request finished after the record consumers stopped; not recorded"


def request_log(ex: Exchange, duration_ms: int, settings: LoggingSettings) -> dict[str, Any]:
    """The request-log keys of the original, empty ones omitted, plus provider and cost."""
    settled, request = ex.settled, ex.request
    usage = settled.usage
    target = ex.target
    entry: dict[str, Any] = {
        "timestamp": request.started_at,
        "method": request.method,
        "path": ex.path,
        "token_hash": "****" if settings.hide_token_hash else ex.hash16,
        "model": ex.model,
        "provider": target.provider_name if target else "",
        "base_key_env": target.key_env if target else "",
        "upstream_url": redact(target.base_url) if target else "",
        "status_code": ex.status,
        "duration_ms": duration_ms,
        "input_tokens": usage.input_tokens,
        "output_tokens": usage.output_tokens,
        "cost_usd": settled.cost_usd,
        "stream": ex.stream,
        "error": ex.error,
        "remote_addr": request.peer,
        "user_agent": request.headers.get("user-agent", ""),
        "retry_count": ex.retry_count,
        "fallback_model": ex.fallback_model,
        "metadata": ex.metadata,
        "rule_matches": ex.rule_matches,
        "upstream_request_id": ex.meta.upstream_request_id if ex.meta else "",
        "upstream_id": ex.meta.upstream_id if ex.meta else "",
        "client_request_id": request.client_request_id,
    }
    if settings.request_body:
        entry["request_body"] = sent_body(ex)[:BODY_SAMPLE].decode("utf-8", "replace")
    if settings.response_body and ex.reply is not None and ex.reply.stream is None:
        entry["response_body"] = ex.reply.body[:BODY_SAMPLE].decode("utf-8", "replace")
    keep = {"status_code", "token_hash", "timestamp", "method", "path"}
    return {k: v for k, v in entry.items() if k in keep or v not in ("", 0, None, {}, [], False)}


class Recorder:
    """`journal`: the session ledger's `record` (a line in the journal now); `sink`: the record
    consumers' channel (of `RECORD_QUEUE` records); `events`: the event writer's channel
    (`services/event_writer.py`), when webhooks are set; `spans`: the OpenTelemetry exporter's
    `offer` (never waits; drops when its queue is full). Each None when that consumer is off."""

    def __init__(
        self,
        stats: Stats,
        settings: LoggingSettings,
        clock: Callable[[], float],
        *,
        journal: Callable[[Finished], None] | None = None,
        sink: trio.MemorySendChannel[Finished] | None = None,
        events: trio.MemorySendChannel[Finished] | None = None,
        spans: Callable[[Finished], None] | None = None,
    ) -> None:
        self._stats = stats
        self._settings = settings
        self._clock = clock
        # The latest exchanges' events (`rule.*`, …), newest last, until the event channel
        # delivers them; read by `status` and tests.
        self.recent_events: deque[tuple[str, dict[str, Any]]] = deque(maxlen=RECENT_EVENTS)
        self.journal = journal
        self.sink = sink
        self.events = events
        self.spans = spans

    async def record(self, ex: Exchange) -> None:
        rest = self.record_now(ex)
        if rest is not None:
            await rest

    def record_now(self, ex: Exchange) -> Awaitable[None] | None:
        """Record `ex` without a checkpoint: None when every consumer took it, else the hand
        over that waits for room in a full channel (to await, shielded)."""
        seconds = max(0.0, self._clock() - ex.request.started)
        self.recent_events.extend(ex.events)
        self._stats.record(ex, seconds)
        if not self._settings.disable_request:
            entry = request_log(ex, int(seconds * 1000), self._settings)
            log.info("request", extra={"fields": entry})
        if (
            self.journal is None
            and self.sink is None
            and self.events is None
            and self.spans is None
        ):
            return None
        finished = from_exchange(ex, int(seconds * 1000))
        if self.journal is not None:
            self.journal(finished)
        if self.spans is not None:
            self.spans(finished)
        # Written out, not a comprehension (a function call of its own in Python 3.11).
        full: list[trio.MemorySendChannel[Finished]] = []
        if (sink := self.sink) is not None and not _handed_now(sink, finished):
            full.append(sink)
        if (events := self.events) is not None and not _handed_now(events, finished):
            full.append(events)
        return _hand_over(full, finished) if full else None


def drain(receive: trio.MemoryReceiveChannel[Finished]) -> list[Finished]:
    """What a consumer's channel holds now, without waiting (the batch loops of the ledger and
    the event writer)."""
    batch: list[Finished] = []
    while True:
        try:
            batch.append(receive.receive_nowait())
        except (trio.WouldBlock, trio.EndOfChannel, trio.ClosedResourceError):
            return batch


DRAIN_SECONDS = 0.02  # the shortest wait between two drains of a consumer's channel
# A batch's first drain comes before half the channel could fill at this rate (above what one
# process serves, ~1,800 a second), so a burst after a quiet spell finds room up to twice it:
# 256 records, 64 ms; the next ones follow the rate measured since.
PEAK_RATE = 2000


async def gather(
    receive: trio.MemoryReceiveChannel[Finished],
    batch: list[Finished],
    *,
    seconds: float,
    limit: int,
) -> bool:
    """Fill `batch` with the next records: the first one waited for, then what arrives within
    `seconds` (at most `limit`); False at the channel's end. The bounded channel is emptied
    meanwhile before it can fill (`drain_interval`), so finishing requests never wait on a
    gathering batch (one sleep for the batch capped the proxy's throughput; a wake-up per
    record cost ~25% more CPU per request; a drain every 20 ms woke the loop 10 times a batch
    however few records came). What was taken stays in `batch` when the caller is cancelled."""
    try:
        batch.append(await receive.receive())
    except (trio.EndOfChannel, trio.ClosedResourceError):
        return False
    batch += drain(receive)  # what came while the last batch was written
    start = now = trio.current_time()
    deadline = start + seconds
    size = receive.statistics().max_buffer_size
    while len(batch) < limit and now < deadline:
        await trio.sleep(min(deadline - now, drain_interval(len(batch), now - start, size)))
        batch += drain(receive)
        now = trio.current_time()
    return True


def drain_interval(taken: int, elapsed: float, size: float) -> float:
    """Seconds until the channel of `size` would be half full at the rate records came in the
    batch so far (`taken` in `elapsed`), never under `DRAIN_SECONDS`. The batch's first wait
    (`elapsed` 0: no rate known yet) assumes `PEAK_RATE`."""
    rate = taken / max(elapsed, DRAIN_SECONDS)
    if elapsed == 0:
        rate = max(rate, PEAK_RATE)
    return max(DRAIN_SECONDS, size / 2 / rate)


def _handed_now(sink: trio.MemorySendChannel[Finished], finished: Finished) -> bool:
    """Into the channel at once when there is room (no checkpoint: the common case costs no
    trip through the scheduler); False when it is full."""
    try:
        sink.send_nowait(finished)
    except trio.WouldBlock:
        return False
    except (trio.ClosedResourceError, trio.BrokenResourceError):
        log.warning(STOPPED)
    return True


async def _hand_over(full: list[trio.MemorySendChannel[Finished]], finished: Finished) -> None:
    """Wait for room in each full channel, shielded."""
    with trio.CancelScope(shield=True):
        for sink in full:
            try:
                await sink.send(finished)
            except (trio.ClosedResourceError, trio.BrokenResourceError):
                log.warning(STOPPED)
