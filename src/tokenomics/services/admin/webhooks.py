"""`/admin/api/webhooks…`: the configured webhooks with their pending and dead-lettered event
counts, the deliveries themselves (like `tokenomics events list`), and sending dead-lettered
events round again (like `tokenomics events retry`). Read from the event outbox
(`store/outbox.py`) through the admin API's own connection."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from tokenomics.domain.errors import AdminError
from tokenomics.services.admin.http import Request, Response, json_response
from tokenomics.services.admin.router import Route, route
from tokenomics.services.events_service import webhook_targets
from tokenomics.store.outbox import Outbox, Row

if TYPE_CHECKING:
    import re

    from tokenomics.services.admin.context import AdminContext

STATES = ("all", "pending", "dead")


def _when(seconds: float) -> str:
    return datetime.fromtimestamp(int(seconds), UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def delivery(row: Row) -> dict[str, Any]:
    return {
        "webhook": row.target, "state": row.state, "id": row.id, "type": row.type,
        "created_at": _when(row.created), "attempts": row.attempts, "error": row.error,
    }  # fmt: skip


class Webhooks:
    def __init__(self, ctx: AdminContext) -> None:
        self.ctx = ctx
        self.targets = webhook_targets(ctx.settings.events.webhooks)
        self.outbox = Outbox(ctx.store.db)

    def _chosen(self, name: str) -> list[tuple[str, tuple[str, ...]]]:
        chosen = [(t.name, t.events) for t in self.targets if not name or t.name == name]
        if name and not chosen:
            raise AdminError(404, f'no webhook named "{name}"')
        return chosen

    def _summary(self) -> list[dict[str, Any]]:
        return [
            {"name": t.name, "events": list(t.events),
             "pending": self.outbox.pending_count(t.name, t.events),
             "dead": self.outbox.dead_count(t.name)}
            for t in self.targets
        ]  # fmt: skip

    async def list(self, _request: Request, _match: re.Match[str]) -> Response:
        return json_response(200, {"webhooks": await self.ctx.in_store(self._summary)})

    async def deliveries(self, request: Request, _match: re.Match[str]) -> Response:
        state = request.query.get("state", "all") or "all"
        if state not in STATES:
            raise AdminError(400, "invalid query parameter: state")
        limit = request.int_param("limit", 100, maximum=1000)
        chosen = self._chosen(request.query.get("webhook", ""))

        def rows() -> list[dict[str, Any]]:
            return [delivery(r) for r in self.outbox.rows(chosen, state, limit)]  # type: ignore[arg-type]

        found = await self.ctx.in_store(rows)
        return json_response(200, {"count": len(found), "deliveries": found})

    async def retry(self, request: Request, _match: re.Match[str]) -> Response:
        body = request.json_object() if request.body.strip() else {}
        name = body.get("webhook", "")
        if not isinstance(name, str):
            raise AdminError(400, "invalid request payload")
        names = [n for n, _ in self._chosen(name)]
        now = self.ctx.now()

        def retry_all() -> int:
            return sum(self.outbox.retry_dead(n, now) for n in names)

        count = await self.ctx.in_store(retry_all)
        self.ctx.wake_webhooks()
        return json_response(200, {"status": "queued", "count": count})


def routes(ctx: AdminContext) -> list[Route]:
    hooks = Webhooks(ctx)
    return [
        route("GET", "/webhooks", hooks.list),
        route("GET", "/webhooks/deliveries", hooks.deliveries),
        route("POST", "/webhooks/retry", hooks.retry),
    ]
