"""`GET /admin/api/health`."""

from __future__ import annotations

from typing import TYPE_CHECKING

from tokenomics import __version__
from tokenomics.services.admin.http import Request, Response, json_response
from tokenomics.services.admin.router import Route, route

if TYPE_CHECKING:
    import re

    from tokenomics.services.admin.context import AdminContext


def routes(ctx: AdminContext, *, webhooks: bool) -> list[Route]:
    async def health(_request: Request, _match: re.Match[str]) -> Response:
        auth = ctx.settings.admin.auth
        return json_response(
            200,
            {
                "status": "ok",
                "ready": ctx.ready,
                "version": __version__,
                "urls": list(ctx.urls()),
                "tls_enabled": any(u.startswith("https:") for u in ctx.urls()),
                "admin": {"enabled": True, "auth_required": bool(auth.username and auth.password)},
                "session_id": ctx.session_id(),
                "webhooks": webhooks,
            },
        )

    return [route("GET", "/health", health)]
