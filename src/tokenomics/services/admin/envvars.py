"""`GET /admin/api/env-vars`: the names of the key variables a policy may use — the
`api_key_env` of every configured provider — never values, never the rest of the environment
(`proxy.md` W-S4)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from tokenomics.services.admin.http import Request, Response, json_response
from tokenomics.services.admin.router import Route, route

if TYPE_CHECKING:
    import re

    from tokenomics.services.admin.context import AdminContext


def allowed_names(ctx: AdminContext) -> dict[str, list[str]]:
    """Each allowed variable name with the providers that use it."""
    names: dict[str, list[str]] = {}
    for name, provider in sorted(ctx.providers.items()):
        if provider.api_key_env:
            names.setdefault(provider.api_key_env, []).append(name)
    return names


def routes(ctx: AdminContext) -> list[Route]:
    async def env_vars(_request: Request, _match: re.Match[str]) -> Response:
        names = allowed_names(ctx)
        details = [
            {"name": n, "providers": names[n], "set": bool(ctx.environ.get(n))}
            for n in sorted(names)
        ]
        return json_response(200, {"env_vars": sorted(names), "details": details})

    return [route("GET", "/env-vars", env_vars)]
