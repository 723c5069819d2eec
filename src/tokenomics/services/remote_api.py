"""The central token server's HTTP API (`tokenomics remote`, `core.md` §5.1-5.4, D20).

JSON everywhere. With an API key every route but `/health` needs `Authorization: Bearer
<key>` (compared in constant time): none ⇒ 401, wrong ⇒ 403. The token list carries an
`ETag` (this process's boot id and the store's change counter): a proxy polling an unchanged
fleet gets a bodiless 304. Token writes go through `TokenStore`, so they emit `token.*`
events like any other writer.
"""

from __future__ import annotations

import hmac
import logging
import re
import secrets
from datetime import UTC, datetime
from functools import partial
from typing import TYPE_CHECKING, Any

import orjson
import trio

from tokenomics.domain.durations import format_rfc3339, parse_expires
from tokenomics.domain.errors import ApiError, RegistrationError, TokenomicsError
from tokenomics.domain.tokens import new_token
from tokenomics.pipeline.body import BodyTooLarge, ClientGone, read_small
from tokenomics.services.remote_clients import ClientRegistry

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable, MutableMapping

    from tokenomics.domain.tokens import HashKey
    from tokenomics.services.remote_clients import ClientRegistry
    from tokenomics.store.tokens import TokenRecord, TokenStore

    Scope = MutableMapping[str, Any]
    Receive = Callable[[], Awaitable[MutableMapping[str, Any]]]
    Send = Callable[[MutableMapping[str, Any]], Awaitable[None]]

log = logging.getLogger("tokenomics.remote")
MAX_BODY = 1024 * 1024
BODY_TIMEOUT = 30.0
_HASH = re.compile(r"[0-9a-f]{64}")
_TOKENS, _CLIENTS = "/api/v1/tokens", "/api/v1/clients"


def token_json(record: TokenRecord) -> dict[str, Any]:
    shown = {"token_hash": record.token_hash, "policy": record.policy_raw,
             "created_at": record.created_at}  # fmt: skip
    if record.expires_at:
        shown["expires_at"] = record.expires_at
    return shown


async def _reply(send: Send, status: int, body: Any, extra: list[tuple[bytes, bytes]]) -> None:
    data = b"" if body is None else orjson.dumps(body) + b"\n"
    headers = [(b"content-type", b"application/json"), *extra]
    headers.append((b"content-length", str(len(data)).encode()))
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": data})


async def read_body(receive: Receive, limit: int = MAX_BODY) -> bytes:
    """The whole body; more than `limit` bytes is a 413 (never silently cut), not all there
    within `BODY_TIMEOUT` seconds a 408 (a slow sender holds no task and memory for long)."""
    with trio.move_on_after(BODY_TIMEOUT):
        try:
            return await read_small(receive, limit)
        except BodyTooLarge:
            raise ApiError(413, "request body too large") from None
        except ClientGone:
            raise ApiError(400, "request body incomplete") from None
    raise ApiError(408, "request body not received in time")


async def _json_object(receive: Receive) -> dict[str, Any]:
    try:
        value = orjson.loads(await read_body(receive))
    except orjson.JSONDecodeError:
        raise ApiError(400, "invalid json") from None
    if not isinstance(value, dict):
        raise ApiError(400, "invalid json")
    return value


class RemoteApi:
    def __init__(
        self, store: TokenStore, registry: ClientRegistry, hash_key: HashKey, api_key: str
    ) -> None:
        self.store, self.registry, self.hash_key = store, registry, hash_key
        self._key = api_key.encode()
        self._boot = secrets.token_hex(4)
        self._lock = trio.Lock()  # one SQLite connection: one call at a time
        self._listing: tuple[str, bytes] = ("", b"")
        self.wrote: Callable[[], None] = lambda: None  # wakes the dispatcher

    async def _db(self, fn: Callable[..., Any], *args: Any) -> Any:
        async with self._lock:
            return await trio.to_thread.run_sync(partial(fn, *args))

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return
        extra: list[tuple[bytes, bytes]] = []
        try:
            status, body = await self._route(scope, receive, extra)
        except ApiError as exc:
            status, body = exc.status, {"error": exc.message}
        except TokenomicsError as exc:
            status, body = (exc.status if exc.status < 500 else 500), {"error": str(exc)}
        await _reply(send, status, body, extra)

    def _authorise(self, scope: Scope) -> None:
        if not self._key:
            return
        given = dict(scope["headers"]).get(b"authorization", b"")
        if not given.startswith(b"Bearer "):
            raise ApiError(401, "missing authorization")
        if not hmac.compare_digest(given[7:], self._key):
            raise ApiError(403, "invalid api key")

    async def _route(
        self, scope: Scope, receive: Receive, extra: list[tuple[bytes, bytes]]
    ) -> tuple[int, Any]:
        method, path = scope["method"], scope["path"].rstrip("/")
        if path == "/health":
            return 200, {"status": "ok"}
        if path == _TOKENS or path.startswith(_TOKENS + "/"):
            allowed = ("GET", "POST") if path == _TOKENS else ("GET", "PUT", "PATCH", "DELETE")
            if method not in allowed:
                raise ApiError(405, "method not allowed")  # before auth (`core.md` §5.3)
            self._authorise(scope)
            if path == _TOKENS:
                return await self._tokens(scope, method, receive, extra)
            return await self._token(method, path[len(_TOKENS) + 1 :], receive)
        if path == _CLIENTS or path.startswith(_CLIENTS + "/"):
            self._authorise(scope)
            if path == _CLIENTS:
                return await self._clients(method, receive)
            return self._client(method, path[len(_CLIENTS) + 1 :])
        self._authorise(scope)
        raise ApiError(404, "not found")

    async def _tokens(
        self, scope: Scope, method: str, receive: Receive, extra: list[tuple[bytes, bytes]]
    ) -> tuple[int, Any]:
        if method == "POST":
            return 201, await self._create(await _json_object(receive))
        etag, listing = await self._db(self._listing_now)
        extra.append((b"etag", etag.encode()))
        wanted = dict(scope["headers"]).get(b"if-none-match", b"").decode("latin-1")
        if etag in (tag.strip() for tag in wanted.split(",")):
            return 304, None
        return 200, orjson.Fragment(listing)

    def _listing_now(self) -> tuple[str, bytes]:
        """The token list and its ETag, rebuilt only when the store changed."""
        etag = f'"{self._boot}.{self.store.generation()}"'
        if self._listing[0] != etag:
            records = [r for r in self.store.list() if not r.error]
            self._listing = (etag, orjson.dumps([token_json(r) for r in records]))
        return self._listing

    async def _create(self, payload: dict[str, Any]) -> dict[str, Any]:
        text = _policy_text(payload.get("policy"))
        if not text:
            raise ApiError(400, "policy is required")
        now = datetime.now(UTC)
        expires = _expires(payload, now)
        if expires == "clear":
            raise ApiError(400, 'invalid expires_at: "clear" only removes an expiry on update')
        given = payload.get("token_hash")
        token = "" if given else new_token()
        token_hash = given if isinstance(given, str) else self.hash_key.hash(token)
        if not _HASH.fullmatch(token_hash):
            raise ApiError(400, "token_hash must be 64 lowercase hex characters")
        record = await self._db(self.store.create, token_hash, text, expires, format_rfc3339(now))
        self.wrote()
        log.info("token %s… created through the remote API", token_hash[:8])
        return ({"token": token} if token else {}) | token_json(record)

    async def _token(self, method: str, token_hash: str, receive: Receive) -> tuple[int, Any]:
        if not token_hash:
            raise ApiError(400, "missing token hash")
        if method == "GET":
            return 200, token_json(await self._db(self.store.get, token_hash))
        if method == "DELETE":
            await self._db(self.store.delete, token_hash)
            self.wrote()
            log.info("token %s… deleted through the remote API", token_hash[:8])
            return 200, {"status": "deleted"}
        payload = await _json_object(receive)
        text = _policy_text(payload.get("policy")) or None
        expires = _expires(payload, datetime.now(UTC))
        if text is None and expires is None:
            raise ApiError(400, "policy and/or expires required")
        record = await self._db(self.store.update, token_hash, text, expires)
        self.wrote()
        log.info("token %s… updated through the remote API", token_hash[:8])
        return 200, token_json(record)

    async def _clients(self, method: str, receive: Receive) -> tuple[int, Any]:
        if method == "GET":
            return 200, [r.public() for r in self.registry.all()]
        if method != "POST":
            raise ApiError(405, "method not allowed")
        try:
            reg = self.registry.register(await _json_object(receive))
        except RegistrationError as exc:
            raise ApiError(400, str(exc)) from None
        log.info("client %s registered for %s", reg.id, reg.url)
        return 201, reg.public() | {"ttl": self.registry.ttl}

    def _client(self, method: str, client_id: str) -> tuple[int, Any]:
        if not client_id:
            raise ApiError(400, "missing client id")
        if method == "DELETE":
            if not self.registry.delete(client_id):
                raise ApiError(404, "delete registration: client not found")
            log.info("client %s deregistered", client_id)
            return 200, {"status": "deleted"}
        if method not in ("GET", "PUT"):
            raise ApiError(405, "method not allowed")
        reg = self.registry.get(client_id) if method == "GET" else self.registry.renew(client_id)
        if reg is None:
            raise ApiError(404, "not found")
        return 200, reg.public() | {"ttl": self.registry.ttl}


def _policy_text(value: object) -> str:
    """The policy as submitted: a JSON string, or an object (serialised)."""
    if value is None or value == "":
        return ""
    if isinstance(value, dict):
        return orjson.dumps(value).decode()
    if isinstance(value, str):
        return value
    raise ApiError(400, "policy must be a JSON object or a string holding one")


def _expires(payload: dict[str, Any], now: datetime) -> str | None:
    value = payload.get("expires", payload.get("expires_at"))
    if value is None:
        return None
    if not isinstance(value, str):
        raise ApiError(400, "expires must be a string (7d, 24h, an RFC 3339 time, or clear)")
    return parse_expires(value, now)
