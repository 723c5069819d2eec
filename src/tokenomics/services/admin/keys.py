"""`/admin/api/keys…`: list, get, create, update, delete wrapper tokens through `TokenStore`,
with the CLI's checks and messages (`services/token_ops.py`)."""

from __future__ import annotations

from datetime import UTC, datetime
from functools import partial
from typing import TYPE_CHECKING, Any

import orjson

from tokenomics.domain.errors import AdminError, NotFoundError
from tokenomics.domain.tokens import HASH_RE
from tokenomics.services import token_ops
from tokenomics.services.admin.http import JSON_TYPE, Request, Response, json_response
from tokenomics.services.admin.router import Route, route
from tokenomics.services.admin.summaries import SummaryCache, detail, live, live_json, summary

if TYPE_CHECKING:
    import re

    from tokenomics.services.admin.context import AdminContext
    from tokenomics.store.tokens import TokenRecord

HASH = r"/keys/(?P<hash>[^/]*)"
ONCE = "store this token securely, it is only returned once"


def _hash(match: re.Match[str], missing: str) -> str:
    value = match["hash"]
    if not HASH_RE.fullmatch(value):
        raise NotFoundError(missing)
    return value


def _policy_text(body: dict[str, Any], *, required: bool) -> str | None:
    """The `policy` member: JSON text, or an object (encoded here); None when absent/empty."""
    value = body.get("policy")
    if isinstance(value, dict):
        return orjson.dumps(value).decode()
    if value is None or value == "":
        if required:
            raise AdminError(400, "policy is required")
        return None
    if not isinstance(value, str):
        raise AdminError(400, "invalid request payload")
    return value


def _expires(body: dict[str, Any]) -> str:
    value = body.get("expires", "")
    if value is None:
        return ""
    if not isinstance(value, str):
        raise AdminError(400, "invalid request payload")
    return value


class Keys:
    def __init__(self, ctx: AdminContext) -> None:
        self.ctx = ctx
        self.cache = SummaryCache()

    async def warm_up(self) -> None:
        """Read and summarise every token once, before the first page asks."""
        await self.ctx.in_store(self.cache.items, self.ctx.store)

    def _now(self) -> datetime:
        return datetime.fromtimestamp(self.ctx.now(), UTC)

    async def _written(self, record: TokenRecord) -> dict[str, Any]:
        """After a write: the proxy sees it at once; the summary of the record."""
        await self.ctx.in_store(self.ctx.refresh_tokens)
        return live(summary(record), self.ctx.spend, self._now())

    async def list(self, request: Request, _match: re.Match[str]) -> Response:
        offset = request.int_param("offset", 0)
        limit = request.int_param("limit", 1 << 30)
        items = await self.ctx.in_store(self.cache.items, self.ctx.store)
        now, spend = self._now(), self.ctx.spend
        page = b",".join(live_json(item, spend, now) for item in items[offset : offset + limit])
        body = b'{"count":%d,"tokens":[%b]}\n' % (len(items), page)
        return Response(200, body, [JSON_TYPE])

    async def get(self, _request: Request, match: re.Match[str]) -> Response:
        token_hash = _hash(match, "token not found")
        record = await self.ctx.in_store(self.ctx.store.get, token_hash)
        return json_response(200, detail(record, self.ctx.spend))

    async def create(self, request: Request, _match: re.Match[str]) -> Response:
        body = request.json_object()
        text = token_ops.validated_policy(_policy_text(body, required=True) or "")
        now = self._now()
        expires_at = token_ops.create_expiry(_expires(body), now)
        mint = partial(token_ops.mint, self.ctx.store, self.ctx.hash_key)
        token, record = await self.ctx.in_store(mint, text, expires_at, now)
        return json_response(
            201,
            {
                "token": token,
                "hash": record.token_hash,
                "expires": expires_at or "",
                "message": ONCE,
                "key": await self._written(record),
            },
        )

    async def update(self, request: Request, match: re.Match[str]) -> Response:
        token_hash = _hash(match, "update token: token not found")
        body = request.json_object()
        text, expires = _policy_text(body, required=False), _expires(body)
        if text is None and not expires:
            raise AdminError(400, "policy and/or expires required")
        policy = token_ops.validated_policy(text) if text is not None else None
        new_expiry = token_ops.update_expiry(expires, self._now())
        record = await self.ctx.in_store(self.ctx.store.update, token_hash, policy, new_expiry)
        return json_response(200, {"status": "updated", "key": await self._written(record)})

    async def delete(self, _request: Request, match: re.Match[str]) -> Response:
        token_hash = _hash(match, "delete token: token not found")
        try:
            await self.ctx.in_store(self.ctx.store.delete, token_hash)
        except NotFoundError:
            raise NotFoundError("delete token: token not found") from None
        await self.ctx.in_store(self.ctx.refresh_tokens)
        return json_response(200, {"status": "deleted", "token_hash": token_hash})


def routes(keys: Keys) -> list[Route]:
    return [
        route("GET", "/keys", keys.list),
        route("POST", "/keys", keys.create),
        route("GET", HASH, keys.get),
        route("PUT", HASH, keys.update),
        route("DELETE", HASH, keys.delete),
    ]
