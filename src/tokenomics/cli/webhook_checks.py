"""`doctor` lines for the webhooks: one per webhook (reachable? signed?), with its backlog.

Reachable means a TCP connection to its host and port opens (no event is sent). A receiver that
is down is a warning, not a failure: its events wait in the outbox. Secrets are never shown.
"""

from __future__ import annotations

import socket
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

from tokenomics.cli.checks import Check
from tokenomics.domain.errors import StoreError
from tokenomics.services.events_service import webhook_targets
from tokenomics.store.db import Database
from tokenomics.store.outbox import Outbox

if TYPE_CHECKING:
    from collections.abc import Iterator

    from tokenomics.config.settings import Settings
    from tokenomics.services.webhook_send import WebhookTarget


def _reachable(url: str, timeout: float) -> str:
    """ "" when a TCP connection opens, else why not."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        return "its URL is not http(s)://host/…"
    try:
        port = parts.port or (443 if parts.scheme == "https" else 80)
        with socket.create_connection((parts.hostname, port), timeout=timeout):
            return ""
    except (OSError, ValueError) as exc:
        return f"cannot connect: {getattr(exc, 'strerror', None) or exc}"


def _backlog(outbox: Outbox | None, target: WebhookTarget) -> str:
    if outbox is None:
        return ""
    try:
        pending = outbox.pending_count(target.name, target.events)
        dead = outbox.dead_count(target.name)
    except StoreError:
        return ""
    return f", {pending} pending, {dead} dead-lettered"


def webhooks(settings: Settings, timeout: float = 2.0) -> Iterator[Check]:
    targets = webhook_targets(settings.events.webhooks)
    path = Path(settings.storage.db_path)
    outbox = Outbox(Database.open(path)) if targets and path.exists() else None
    for target in targets:
        signed = "signed" if target.signing_secret else "unsigned"
        backlog = _backlog(outbox, target)
        problem = _reachable(target.url, timeout)
        if problem:
            fix = "start the receiver or correct its url; events wait in the outbox"
            yield Check("warn", "webhook", f"{target.name}: {problem} ({signed}{backlog})", fix)
        elif not target.signing_secret:
            yield Check("warn", "webhook", f"{target.name}: reachable, unsigned{backlog}",
                        "set signing_key so receivers can verify X-Webhook-Signature")  # fmt: skip
        else:
            yield Check("ok", "webhook", f"{target.name}: reachable, signed{backlog}")
