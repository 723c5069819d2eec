"""The ASGI application: routing only. `/ping`, `/health`, `/stats`, `/metrics` and `/admin…`
(when `admin.enabled`), the inbound webhook of remote sync, and the proxy for the rest, over
HTTP/1.x only. A proxied request's whole life is `pipeline/run.py` (`Requests.serve`).
"""

from __future__ import annotations

import base64
import hmac
import ipaddress
import os
from collections.abc import Awaitable, Callable, MutableMapping
from typing import TYPE_CHECKING, Any

import orjson

from tokenomics.formats.classify import classify
from tokenomics.formats.errors import error_body
from tokenomics.pipeline.run import Requests

if TYPE_CHECKING:
    from tokenomics.pipeline.deps import Deps
    from tokenomics.services.stats import Stats

Scope = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[MutableMapping[str, Any]]]
Send = Callable[[MutableMapping[str, Any]], Awaitable[None]]
App = Callable[[Scope, Receive, Send], Awaitable[None]]
JSON = [(b"content-type", b"application/json")]
HTTP1 = ("1.0", "1.1")


def _is_loopback(scope: Scope) -> bool:
    client = scope.get("client")
    if not client:
        return False
    try:
        address = ipaddress.ip_address(client[0])
    except ValueError:
        return False
    # a dual-stack listener (`server.host: "::"`) sees IPv4 peers as ::ffff:a.b.c.d
    mapped = address.ipv4_mapped if isinstance(address, ipaddress.IPv6Address) else None
    return (mapped or address).is_loopback


def _asks_h2c(scope: Scope) -> bool:
    """An `Upgrade` header naming h2c (a loop: `any()` over a generator cost twice as much,
    once a request)."""
    for name, value in scope["headers"]:  # noqa: SIM110 (any() over a generator: twice the cost)
        if name == b"upgrade" and b"h2c" in value.lower():
            return True
    return False


async def _send(send: Send, status: int, headers: list[tuple[bytes, bytes]], body: bytes) -> None:
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


class ProxyApp:
    def __init__(
        self,
        deps: Deps,
        stats: Stats,
        clock: Callable[[], float],
        *,
        admin: App | None = None,
        webhook: App | None = None,
    ) -> None:
        """`admin`: the admin UI and API (services/admin); `webhook`: the inbound webhook of
        remote sync (`remote_webhook.py`), at `remote.webhook.path`."""
        self.stats = stats
        self.requests = Requests(deps, clock)
        auth = deps.settings.admin.auth
        self._admin_auth = (
            (auth.username, auth.password) if auth.username and auth.password else None
        )
        # `start`/`stop` confirm that a port is served by this very process (D23).
        self._health_headers = [*JSON, (b"x-tokenomics-pid", str(os.getpid()).encode())]
        self._admin_enabled = deps.settings.admin.enabled
        self._webhook = webhook
        self._webhook_path = deps.settings.remote.webhook.path
        self._admin_app = admin

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":  # our server (`http_server.py`) sends no lifespan events
            return
        method, path = scope["method"], scope["path"]
        if scope.get("http_version") not in HTTP1 or _asks_h2c(scope):
            await self._refuse_version(scope, send)
        elif path == "/ping" and method in ("GET", "HEAD"):
            await _send(send, 200, [(b"content-type", b"text/plain")], b".")
        elif path == "/health" and method == "GET":
            await _send(send, 200, self._health_headers, b'{"status":"ok"}')
        elif path in ("/stats", "/metrics") and method == "GET" and self._admin_enabled:
            await self._admin(scope, send, path)
        elif self._webhook is not None and path == self._webhook_path:
            await self._webhook(scope, receive, send)
        elif self._admin_app is not None and (path == "/admin" or path.startswith("/admin/")):
            await self._admin_app(scope, receive, send)
        else:  # with admin off, its paths are the proxy's (`cli.md` §8.1)
            await self._proxy(scope, receive, send)

    @staticmethod
    async def _refuse_version(scope: Scope, send: Send) -> None:
        """HTTP/2 is not served (only HTTP/1.1 is documented): a request asking to upgrade
        to it (`Upgrade: h2c`), or one a server upgraded itself, is refused here."""
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}
        family = classify(scope["method"], scope["path"], headers).family
        message = "HTTP/2 is not served; use HTTP/1.1"
        await _send(send, 505, JSON, error_body(family, 505, message))

    def _admin_denied(self, scope: Scope) -> tuple[int, list[tuple[bytes, bytes]], bytes] | None:
        """D21: the real peer must be loopback, and basic auth must match when configured."""
        if not _is_loopback(scope):
            return 403, JSON, b'{"error":"admin UI/API is local-only"}'
        if self._admin_auth is None:
            return None
        headers = dict(scope["headers"])
        given = headers.get(b"authorization", b"").decode("latin-1")
        expected = "Basic " + base64.b64encode(":".join(self._admin_auth).encode()).decode()
        if hmac.compare_digest(given.encode(), expected.encode()):
            return None
        challenge = (b"www-authenticate", b'Basic realm="tokenomics-admin"')
        return 401, [*JSON, challenge], b'{"error":"unauthorized"}'

    async def _admin(self, scope: Scope, send: Send, path: str) -> None:
        denied = self._admin_denied(scope)
        if denied is not None:
            await _send(send, *denied)
        elif path == "/stats":
            await _send(
                send, 200, JSON, orjson.dumps(self.stats.snapshot(), option=orjson.OPT_INDENT_2)
            )
        else:
            text = (b"content-type", b"text/plain; version=0.0.4; charset=utf-8")
            await _send(send, 200, [text], self.stats.prometheus().encode())

    async def _proxy(self, scope: Scope, receive: Receive, send: Send) -> None:
        self.stats.in_flight += 1
        try:
            await self.requests.serve(scope, receive, send)
        finally:
            self.stats.in_flight -= 1
