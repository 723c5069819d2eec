"""The events of finished requests into the outbox, in batches, off the request path.

The recorder hands each `Finished` over a bounded channel (a `send_nowait`, no wait unless the
channel is full); `run` gathers them for up to `BATCH_SECONDS` and takes from each the few
values its events are built from (`Source`). With a delivery process (`serve`), the batch goes
to it as one line on its pipe (`services/event_pipe.py`): the child builds the events, appends
them in one transaction and answers, so the serving process does no SQLite work for events.
Otherwise (no child running, the child behind, a `server.workers` process, shutdown) the batch
is built here and appended in one worker-thread transaction, then the dispatcher is woken. Only
the types some webhook wants are kept (`wants`); `token.expired` is appended once per token and
expiry. A batch's event ids derive from its random key (`event_id`): written twice, it repeats
them. On shutdown the rest of the channel is written here, shielded and time-bounded.
"""

from __future__ import annotations

import hashlib
import logging
import secrets
import threading
from datetime import datetime
from typing import TYPE_CHECKING, Any, NamedTuple

import orjson
import trio

from tokenomics.domain import events
from tokenomics.domain.errors import StoreError
from tokenomics.services.recorder import drain, gather

if TYPE_CHECKING:
    from collections.abc import Callable, Sequence

    from tokenomics.domain.events import Event
    from tokenomics.services.event_pipe import EventPipe
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


class Source(NamedTuple):
    """What a finished request's events are built from: a few plain values, so a batch of
    them crosses the delivery process's pipe as one line of JSON (`encode`)."""

    at: datetime
    token_hash: str
    model: str
    stream: bool
    status: int
    error: str
    input_tokens: int
    output_tokens: int
    forwarded: bool
    authenticated: bool
    events: Sequence[tuple[str, dict[str, Any]]]
    openclaw: dict[str, str] | None


def source_of(f: Finished) -> Source:
    usage = f.usage
    return Source(
        f.recorded_at, f.token_hash, f.model, f.stream, f.status, f.error, usage.input_tokens,
        usage.output_tokens, f.forwarded, f.authenticated, f.events, _openclaw(f),
    )  # fmt: skip


def encode(key: str, sources: Sequence[Source]) -> bytes:
    """A batch as one line (orjson writes no raw line end): its key, then its sources."""
    return orjson.dumps([key, [tuple(source) for source in sources]])


def decode(payload: bytes) -> tuple[str, list[Source]]:
    key, rows = orjson.loads(payload)
    sources = []
    for row in rows:
        at, token, model, stream, status, error, used_in, used_out, sent, known = row[:10]
        happened = [(str(kind), dict(data)) for kind, data in row[10]]
        sources.append(Source(datetime.fromisoformat(at), token, model, stream, status, error,
                              used_in, used_out, sent, known, happened, row[11]))  # fmt: skip
    return str(key), sources


def new_key() -> str:
    """A batch's key: its events' ids derive from it (`event_id`), so a batch written twice
    (the delivery process killed between its commit and its answer) repeats the same ids."""
    return secrets.token_hex(16)


def event_id(key: str, request: int, index: int) -> str:
    """`evt_` + 16 bytes in hex: a keyed hash of the event's place in its batch."""
    digest = hashlib.blake2b(f"{request}.{index}".encode(), digest_size=16, key=key.encode())
    return "evt_" + digest.hexdigest()


def events_of(f: Source, key: str, n: int) -> list[Event]:
    """Every event one finished request (the `n`th of the batch `key`) produced, in the order
    they happened."""
    at, model, openclaw, token = f.at, f.model, f.openclaw, f.token_hash
    out: list[Event] = []

    def eid() -> str:
        return event_id(key, n, len(out))

    if openclaw is not None:
        out.append(events.openclaw_agent(events.OPENCLAW_REQUEST, token, model, 0, openclaw,
                                         at=at, event_id=eid()))  # fmt: skip
    for kind, data in f.events:
        if kind == events.RULE_VIOLATION and openclaw:
            data = {**openclaw, **data}
        out.append(events.event(kind, data, at=at, event_id=eid()))
    if f.forwarded:
        out.append(events.budget_update(token, model, f.input_tokens, at=at, event_id=eid()))
    if f.authenticated:
        done = events.Completed(token, model, f.stream, f.status, f.input_tokens,
                                f.output_tokens)  # fmt: skip
        out.append(events.request_completed(done, at=at, event_id=eid()))
    if openclaw is not None:
        ok = 200 <= f.status < 300
        kind = events.OPENCLAW_SUCCESS if ok else events.OPENCLAW_ERROR
        error = "" if ok else (f.error or f"HTTP {f.status}")
        out.append(events.openclaw_agent(kind, token, model, f.status, openclaw, error,
                                         at=at, event_id=eid()))  # fmt: skip
    return out


class EventWriter:
    """Builds and appends events (the serving process's fallback, and the delivery process's
    work); `pipe`, when set, is the cheap way: the batch goes to the delivery process."""

    def __init__(
        self, outbox: Outbox, wants: Callable[[str], bool], wake: Callable[[], None],
        pipe: EventPipe | None = None,
    ) -> None:  # fmt: skip
        self._outbox = outbox
        self._wants = wants
        self._wake = wake
        self._pipe = pipe
        self.written = 0
        self.errors = 0
        self._lock = threading.Lock()  # one connection: one thread at a time

    def build(
        self, key: str, batch: Sequence[Source]
    ) -> tuple[list[Event], list[tuple[str, Event]]]:
        """The wanted events of `batch`, and the `token.expired` ones (with their full hash)."""
        plain: list[Event] = []
        expired: list[tuple[str, Event]] = []
        for n, f in enumerate(batch):
            for e in events_of(f, key, n):
                if not self._wants(e.type):
                    continue
                if e.type == events.TOKEN_EXPIRED:
                    expired.append((f.token_hash, e))
                else:
                    plain.append(e)
        return plain, expired

    def _append(self, plain: list[Event], expired: list[tuple[str, Event]]) -> int:
        with self._lock:
            self._outbox.append(plain)
            count = len(plain)
            for token_hash, e in expired:
                count += self._outbox.append_expired(token_hash, str(e.data["expired_at"]), e)
            return count

    def commit(self, payload: bytes) -> int:
        """Build and append one batch that came as `encode`d (in a worker thread)."""
        key, sources = decode(payload)
        return self._append(*self.build(key, sources))

    async def write(self, batch: Sequence[Finished], *, direct: bool = False) -> None:
        """Hand the batch to the delivery process, or (no pipe, it is down or behind, or
        `direct`) build and append it here."""
        if not batch:
            return
        sources = [source_of(f) for f in batch]
        key = new_key()
        if self._pipe is not None and not direct and self._pipe.offer(encode(key, sources)):
            return
        await self._store(*self.build(key, sources))

    async def spill(self, payloads: Sequence[bytes]) -> None:
        """Batches handed over that the delivery process did not confirm: appended here."""
        for payload in payloads:
            try:
                key, sources = decode(payload)
            except (ValueError, TypeError) as exc:  # never: this process encoded it
                self.errors += 1
                log.error("event outbox: a batch of events not readable: %s", exc)
                continue
            await self._store(*self.build(key, sources))

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
        with trio.move_on_after(FINAL_SECONDS, shield=True):  # here: delivery is stopping
            await writer.write([*gathering, *drain(receive)], direct=True)
        receive.close()
