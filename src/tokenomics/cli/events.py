"""`tokenomics events`: what the outbox holds for each configured webhook (decision D19).

`list` shows the events still to deliver (with their attempts and last error) and the
dead-lettered ones; `retry` sends the dead-lettered events round again (a running server
notices within a second; otherwise the next `serve` delivers them). Webhooks are named by
their URL without credentials or query; secrets are never printed.
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any

from cyclopts import App, Parameter

from tokenomics.cli.context import Context
from tokenomics.cli.ledger_tables import tabwrite
from tokenomics.cli.output import print_json
from tokenomics.domain.errors import CommandError
from tokenomics.domain.events import rfc3339_nano
from tokenomics.services.events_service import webhook_targets
from tokenomics.store.db import Database
from tokenomics.store.outbox import Listing, Outbox, Row

app = App(name="events", help="Webhook events waiting in the outbox, and dead letters.")
Ctx = Annotated[Context, Parameter(parse=False)]
Json = Annotated[bool, Parameter(help="Output as JSON.", negative="")]
Webhook = Annotated[str, Parameter(help="Only this webhook (its name as listed).")]
HEADER = ("WEBHOOK", "STATE", "EVENT", "TYPE", "CREATED", "ATTEMPTS", "ERROR")


def _outbox(ctx: Context) -> Outbox | None:
    path = Path(ctx.settings().storage.db_path)
    return Outbox(Database.open(path)) if path.exists() else None


def _targets(ctx: Context, webhook: str) -> list[tuple[str, tuple[str, ...]]]:
    targets = [(t.name, t.events) for t in webhook_targets(ctx.settings().events.webhooks)]
    if webhook:
        targets = [t for t in targets if t[0] == webhook]
        if not targets:
            raise CommandError(f'no webhook named "{webhook}" (see `tokenomics events list`)')
    return targets


def _when(seconds: float) -> str:
    return rfc3339_nano(datetime.fromtimestamp(int(seconds), UTC))


def _as_dict(row: Row) -> dict[str, Any]:
    return {
        "webhook": row.target, "state": row.state, "id": row.id, "type": row.type,
        "created_at": _when(row.created), "attempts": row.attempts, "error": row.error,
    }  # fmt: skip


@app.command(name="list")
def list_(
    *,
    pending: Annotated[bool, Parameter(help="Only events still to deliver.", negative="")] = False,
    dead: Annotated[bool, Parameter(help="Only dead-lettered events.", negative="")] = False,
    webhook: Webhook = "",
    json: Json = False,
    ctx: Ctx,
) -> None:
    """Events still to deliver and dead-lettered ones, per configured webhook."""
    if pending and dead:
        raise CommandError("--pending and --dead exclude each other")
    listing: Listing = "pending" if pending else "dead" if dead else "all"
    targets = _targets(ctx, webhook)
    outbox = _outbox(ctx)
    rows = [_as_dict(r) for r in outbox.rows(targets, listing)] if outbox and targets else []
    if json:
        print_json(ctx.stdout, rows)
        return
    if not targets:
        ctx.stdout.write("No webhooks configured (events.webhooks).\n")
        return
    if not rows:
        ctx.stdout.write("No events waiting.\n")
        return
    table = [HEADER] + [
        (r["webhook"], r["state"], r["id"], r["type"], r["created_at"], str(r["attempts"]),
         r["error"] or "-")
        for r in rows
    ]  # fmt: skip
    ctx.stdout.write("".join(f"{line}\n" for line in tabwrite(table)))


@app.command
def retry(*, webhook: Webhook = "", ctx: Ctx) -> None:
    """Send dead-lettered events round again (to one webhook, or all)."""
    outbox = _outbox(ctx)
    names = [name for name, _ in _targets(ctx, webhook)] if webhook else [None]
    count = sum(outbox.retry_dead(name) for name in names) if outbox else 0
    ctx.stdout.write(f"{count} dead-lettered event(s) queued for delivery again.\n")
