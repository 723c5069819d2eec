"""The events of finished requests into the outbox, in batches, off the request path.

The recorder hands each `Finished` over a bounded channel (a `send_nowait`, no wait unless the
channel is full); `run` gathers them for up to `BATCH_SECONDS`, builds their events on the
event loop (small dicts; the envelopes are encoded in the thread) and appends the batch to
the outbox in one worker-thread transaction, then wakes the dispatcher. Only the types some
webhook wants are kept (`wants`); `token.expired` is appended once per token and expiry.
On shutdown the rest of the channel is written, shielded and time-bounded.
"""

from __future__ import annotations

import logging
import threading
from typing import TYPE_CHECKING

import trio

from tokenomics.domain import events
from tokenomics.domain.errors import StoreError
from tokenomics.services.recorder import drain, gather

if TYPE_CHECKING:
    from collections.abc import Callable, Sequence

    from tokenomics.domain.events import Event
    from tokenomics.services.finished import Finished
    from tokenomics.store.outbox import Outbox

log = logging.getLogger("tokenomics.webhooks")
QUEUE = 1024
BATCH_SECONDS = 0.2
BATCH_LIMIT = 512
FINAL_SECONDS = 5.0
OPENCLAW_HEADER = "x-openclaw-"


def _openclaw(f: Finished) -> dict[str, str] | None:
    """The OpenClaw metadata when the client sent any `X-OpenClaw-*` header, else None."""
    if not any(name.startswith(OPENCLAW_HEADER) for name, _ in f.request_headers):
        return None
    return {k: v for k, v in f.metadata.items() if k in events.OPENCLAW_KEYS and v}


def events_of(f: Finished) -> list[Event]:
    """Every event one finished request produced, in the order they happened."""
    at, model = f.recorded_at, f.model
    openclaw = _openclaw(f)
    out: list[Event] = []
    if openclaw is not None:
        out.append(events.openclaw_agent(events.OPENCLAW_REQUEST, f.token_hash, model, 0,
                                         openclaw, at=at))  # fmt: skip
    for kind, data in f.events:
        if kind == events.RULE_VIOLATION and openclaw:
            data = {**openclaw, **data}
        out.append(events.event(kind, data, at=at))
    if f.forwarded:
        usage = f.usage
        out.append(events.budget_update(f.token_hash, model, usage.input_tokens, at=at))
    if f.authenticated:
        done = events.Completed(f.token_hash, model, f.stream, f.status,
                                f.usage.input_tokens, f.usage.output_tokens)  # fmt: skip
        out.append(events.request_completed(done, at=at))
    if openclaw is not None:
        ok = 200 <= f.status < 300
        kind = events.OPENCLAW_SUCCESS if ok else events.OPENCLAW_ERROR
        error = "" if ok else (f.error or f"HTTP {f.status}")
        out.append(events.openclaw_agent(kind, f.token_hash, model, f.status, openclaw, error,
                                         at=at))  # fmt: skip
    return out


class EventWriter:
    def __init__(
        self, outbox: Outbox, wants: Callable[[str], bool], wake: Callable[[], None]
    ) -> None:
        self._outbox = outbox
        self._wants = wants
        self._wake = wake
        self.written = 0
        self.errors = 0
        self._lock = threading.Lock()  # one connection: one thread at a time

    def build(self, batch: Sequence[Finished]) -> tuple[list[Event], list[tuple[str, Event]]]:
        """The wanted events of `batch`, and the `token.expired` ones (with their full hash)."""
        plain: list[Event] = []
        expired: list[tuple[str, Event]] = []
        for f in batch:
            for e in events_of(f):
                if not self._wants(e.type):
                    continue
                if e.type == events.TOKEN_EXPIRED:
                    expired.append((f.token_hash, e))
                else:
                    plain.append(e)
        return plain, expired

    def _append(self, plain: list[Event], expired: list[tuple[str, Event]]) -> int:
        with self._lock:
            return self._append_locked(plain, expired)

    def _append_locked(self, plain: list[Event], expired: list[tuple[str, Event]]) -> int:
        self._outbox.append(plain)
        count = len(plain)
        for token_hash, e in expired:
            count += self._outbox.append_expired(token_hash, str(e.data["expired_at"]), e)
        return count

    async def write(self, batch: Sequence[Finished]) -> None:
        plain, expired = self.build(batch)
        await self._store(plain, expired)

    async def write_events(self, batch: list[Event]) -> None:
        """Events not of a request (`server.start`)."""
        await self._store([e for e in batch if self._wants(e.type)], [])

    async def _store(self, plain: list[Event], expired: list[tuple[str, Event]]) -> None:
        if not plain and not expired:
            return
        try:
            self.written += await trio.to_thread.run_sync(self._append, plain, expired)
        except StoreError as exc:
            self.errors += 1
            log.error("event outbox: %d event(s) not written: %s", len(plain) + len(expired), exc)
            return
        self._wake()


async def run(
    writer: EventWriter,
    receive: trio.MemoryReceiveChannel[Finished],
    *,
    batch_seconds: float = BATCH_SECONDS,
    task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Append what arrives, in batches, until the channel closes or the task is cancelled."""
    task_status.started()
    gathering: list[Finished] = []
    try:
        while await gather(receive, gathering, seconds=batch_seconds, limit=BATCH_LIMIT):
            batch, gathering = gathering, []
            await writer.write(batch)
    finally:
        with trio.move_on_after(FINAL_SECONDS, shield=True):
            await writer.write([*gathering, *drain(receive)])
        receive.close()
