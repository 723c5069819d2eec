"""Events in a running server: the configured webhooks as targets, the outbox connections, the
event writer and where delivery runs, built once by `app.py`, plus `server.start` and `/metrics`.

With webhooks configured, delivery runs in a child process at the lowest CPU priority
(`delivery_process.py`), and on a `server.workers` process not at all (the supervisor runs the
one delivery process of the machine); without any, the in-process dispatcher only prunes the
outbox of the CLI's events. `/metrics` reads each webhook's counters from the outbox, where the
delivering process stores them.

Webhook targets are named by their URL without credentials or query (so two processes, and
`tokenomics events`, agree on each webhook's place in the outbox, and no secret is shown);
a URL listed twice gets `#2`, `#3`.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass, field
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

import trio

from tokenomics.domain import events
from tokenomics.domain.errors import StoreError
from tokenomics.services import event_writer
from tokenomics.services.delivery_child import ChildConfig
from tokenomics.services.delivery_process import WORKER_ENV, DeliveryProcess
from tokenomics.services.dispatcher import Dispatcher
from tokenomics.services.event_pipe import EventPipe
from tokenomics.services.finished import Finished
from tokenomics.services.logs import LEVELS
from tokenomics.services.webhook_send import HttpSender, WebhookTarget
from tokenomics.store.db import Database
from tokenomics.store.outbox import Counters, Outbox
from tokenomics.upstream.urls import redact

if TYPE_CHECKING:
    from collections.abc import Mapping, Sequence
    from pathlib import Path

    from tokenomics.config.settings import Settings, WebhookSettings


log = logging.getLogger("tokenomics.webhooks")
COUNT_EVERY = 1.0  # seconds between two counts of the backlogs for /metrics, at least


def webhook_targets(webhooks: Sequence[WebhookSettings]) -> list[WebhookTarget]:
    targets: list[WebhookTarget] = []
    seen: dict[str, int] = {}
    for hook in webhooks:
        if not hook.url:
            continue
        base = redact(hook.url)
        seen[base] = seen.get(base, 0) + 1
        name = base if seen[base] == 1 else f"{base}#{seen[base]}"
        target = WebhookTarget(
            name, hook.url, hook.secret, hook.signing_key, tuple(hook.events),
            float(hook.timeout or 10), hook.insecure,
        )  # fmt: skip
        targets.append(target)
    return targets


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


_METRICS = (
    ("delivered", "counter", "Events delivered (2xx)."),
    ("failed", "counter", "Delivery attempts that failed."),
    ("retried", "counter", "Failed attempts scheduled again."),
    ("dead_lettered", "counter", "Events given up on (kept for `events retry`)."),
    ("pending", "gauge", "Events waiting for delivery."),
)


def metric_lines(stats: Mapping[str, Counters]) -> list[str]:
    """`tokenomics_webhook_<name>{webhook="…"}` per webhook, in Prometheus text format."""
    lines: list[str] = []
    for name, kind, text in _METRICS:
        metric = f"tokenomics_webhook_{name}" + ("_total" if kind == "counter" else "")
        lines += [f"# HELP {metric} {text}", f"# TYPE {metric} {kind}"]
        for target, values in sorted(stats.items()):
            lines.append(f'{metric}{{webhook="{_escape(target)}"}} {getattr(values, name)}')
    return lines


def server_start_event(urls: Sequence[str], upstream: str) -> events.Event:
    ports = {urlsplit(url).scheme: urlsplit(url).port or 0 for url in urls}
    return events.server_start(
        ports.get("http", 0), ports.get("https", 0), "https" in ports, redact(upstream)
    )


def _nobody() -> None:
    """A `server.workers` process: the supervisor's delivery process polls the outbox."""


def delivery_config(
    settings: Settings, db_path: Path, targets: Sequence[WebhookTarget]
) -> ChildConfig:
    return ChildConfig(
        str(db_path), tuple(targets), float(settings.events.max_age),
        float(settings.server.shutdown_grace), log_level=LEVELS[settings.logging.level],
        log_json=settings.logging.format == "json",
    )  # fmt: skip


@dataclass
class EventServices:
    targets: list[WebhookTarget]
    writer: event_writer.EventWriter
    dispatcher: Dispatcher | None  # in this process: pruning only (no webhook configured)
    delivery: DeliveryProcess | None  # the child process that delivers
    sender: HttpSender
    send: trio.MemorySendChannel[Finished]
    receive: trio.MemoryReceiveChannel[Finished]
    _outbox: Outbox  # counted for /metrics (in a worker thread: a connection of its own)
    _databases: tuple[Database, Database]
    _counted: list[str] = field(default_factory=list)  # /metrics lines of the last count
    _count_wanted: trio.Event = field(default_factory=trio.Event)

    @classmethod
    def open(
        cls, settings: Settings, db_path: Path, environ: Mapping[str, str] | None = None
    ) -> EventServices:
        """Two connections of their own: the writer's thread's, and the dispatcher's (or
        `/metrics`'s, when delivery runs in the child)."""
        environ = {} if environ is None else environ
        targets = webhook_targets(settings.events.webhooks)
        filters = [t.events for t in targets]
        written, read = Database.open(db_path), Database.open(db_path)
        sender = HttpSender()
        dispatcher, delivery, pipe = None, None, None
        if not targets:
            dispatcher = Dispatcher(
                Outbox(read), lambda: targets, sender, max_age=float(settings.events.max_age)
            )
        elif not environ.get(WORKER_ENV):
            pipe = EventPipe()
        wake = pipe.wake if pipe else dispatcher.wake if dispatcher else _nobody
        writer = event_writer.EventWriter(
            Outbox(written), lambda kind: events.any_matches(filters, kind), wake, pipe
        )
        if pipe is not None:
            config = delivery_config(settings, db_path, targets)
            delivery = DeliveryProcess(  # the process's environment, like the sender's
                config, os.environ, pipe=pipe, spill=writer.spill
            )
        send, receive = trio.open_memory_channel[Finished](event_writer.QUEUE)
        return cls(
            targets, writer, dispatcher, delivery, sender, send, receive, Outbox(read),
            (written, read),
        )  # fmt: skip

    def wake(self) -> None:
        """Events were appended by this process."""
        if self.delivery is not None:
            self.delivery.wake()
        elif self.dispatcher is not None:
            self.dispatcher.wake()

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """The delivery process, or the in-process dispatcher, or (a worker) nothing; and,
        with webhooks, the counting behind `/metrics`."""
        async with trio.open_nursery() as nursery:
            if self.targets:
                await self._count()
                nursery.start_soon(self._keep_counting)
            if self.delivery is not None:
                await nursery.start(self.delivery.run)
            elif self.dispatcher is not None:
                await nursery.start(self.dispatcher.run)
            task_status.started()

    async def _keep_counting(self) -> None:
        """Count again when `/metrics` was scraped, at most every `COUNT_EVERY` seconds: a
        backlog is counted off the event loop, and only when someone looks."""
        while True:
            await self._count_wanted.wait()
            self._count_wanted = trio.Event()
            await self._count()
            await trio.sleep(COUNT_EVERY)

    async def _count(self) -> None:
        targets = [(t.name, t.events) for t in self.targets]
        try:
            counters = await trio.to_thread.run_sync(self._outbox.counters, targets)
        except StoreError as exc:
            log.warning("event outbox: webhook counters not read: %s", exc)
            return
        self._counted = metric_lines({c.target: c for c in counters})

    def stop(self, grace: float) -> None:
        """Shutdown begins (the delivery process gets SIGTERM and `grace` when cancelled)."""
        if self.dispatcher is not None:
            self.dispatcher.stop(grace)

    @property
    def active(self) -> bool:
        """Whether any webhook is configured (else requests hand nothing over)."""
        return bool(self.targets)

    def wants(self, kind: str) -> bool:
        return events.any_matches([t.events for t in self.targets], kind)

    async def server_started(self, urls: Sequence[str], upstream: str) -> None:
        if self.wants(events.SERVER_START):
            event = server_start_event(urls, upstream)
            await self.writer.write_events([event])

    def metric_lines(self) -> list[str]:
        """Each webhook's counters as stored by the delivering process (whichever it is), as
        last counted (at the start, then after each scrape: a scrape shows the count the one
        before it asked for, so a scrape never waits on a backlog being counted)."""
        self._count_wanted.set()
        return self._counted

    async def aclose(self) -> None:
        with trio.CancelScope(shield=True):
            await self.sender.aclose()
        for db in self._databases:
            db.close()
