"""Events in a running server: the configured webhooks as targets, the outbox connections, the
event writer and the dispatcher, built once by `app.py`, plus `server.start` and `/metrics`.

Webhook targets are named by their URL without credentials or query (so two processes, and
`tokenomics events`, agree on each webhook's place in the outbox, and no secret is shown);
a URL listed twice gets `#2`, `#3`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

import trio

from tokenomics.domain import events
from tokenomics.services import event_writer
from tokenomics.services.dispatcher import Dispatcher, WebhookStatistics
from tokenomics.services.finished import Finished
from tokenomics.services.webhook_send import HttpSender, WebhookTarget
from tokenomics.store.db import Database
from tokenomics.store.outbox import Outbox
from tokenomics.upstream.urls import redact

if TYPE_CHECKING:
    from collections.abc import Mapping, Sequence
    from pathlib import Path

    from tokenomics.config.settings import Settings, WebhookSettings


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


def metric_lines(stats: Mapping[str, WebhookStatistics]) -> list[str]:
    """`tokenomics_webhook_<name>{webhook="…"}` per webhook, in Prometheus text format."""
    lines: list[str] = []
    for field, kind, text in _METRICS:
        metric = f"tokenomics_webhook_{field}" + ("_total" if kind == "counter" else "")
        lines += [f"# HELP {metric} {text}", f"# TYPE {metric} {kind}"]
        for name, values in sorted(stats.items()):
            lines.append(f'{metric}{{webhook="{_escape(name)}"}} {getattr(values, field)}')
    return lines


def server_start_event(urls: Sequence[str], upstream: str) -> events.Event:
    ports = {urlsplit(url).scheme: urlsplit(url).port or 0 for url in urls}
    return events.server_start(
        ports.get("http", 0), ports.get("https", 0), "https" in ports, redact(upstream)
    )


@dataclass
class EventServices:
    targets: list[WebhookTarget]
    writer: event_writer.EventWriter
    dispatcher: Dispatcher
    sender: HttpSender
    send: trio.MemorySendChannel[Finished]
    receive: trio.MemoryReceiveChannel[Finished]
    _databases: tuple[Database, Database]

    @classmethod
    def open(cls, settings: Settings, db_path: Path) -> EventServices:
        """Two connections of their own: the writer's and the dispatcher's threads."""
        targets = webhook_targets(settings.events.webhooks)
        filters = [t.events for t in targets]
        written, read = Database.open(db_path), Database.open(db_path)
        sender = HttpSender()
        dispatcher = Dispatcher(
            Outbox(read), lambda: targets, sender, max_age=float(settings.events.max_age)
        )
        writer = event_writer.EventWriter(
            Outbox(written), lambda kind: events.any_matches(filters, kind), dispatcher.wake
        )
        send, receive = trio.open_memory_channel[Finished](event_writer.QUEUE)
        return cls(targets, writer, dispatcher, sender, send, receive, (written, read))

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
        return metric_lines(self.dispatcher.statistics())

    async def aclose(self) -> None:
        with trio.CancelScope(shield=True):
            await self.sender.aclose()
        for db in self._databases:
            db.close()
