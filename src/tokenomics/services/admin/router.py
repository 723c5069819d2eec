"""The admin ASGI handler: every `/admin` and `/admin/…` request when admin is enabled.

The access rules (`guard.py`) run first, for the UI and the API alike; then `/admin/api/…` goes
to the route table, the rest to the UI's static files (`ui.serve_ui`). Every response carries
the security headers of `http.SECURITY_HEADERS`.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Awaitable, Callable, MutableMapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import trio

from tokenomics.domain.errors import AdminError, TokenomicsError
from tokenomics.pipeline.body import BodyTooLarge, ClientGone, read_small
from tokenomics.services.admin.http import (
    MAX_BODY,
    SECURITY_HEADERS,
    Request,
    Response,
    error_response,
    parse_query,
)
from tokenomics.services.admin.ui import serve_ui

if TYPE_CHECKING:
    from tokenomics.services.admin.guard import Guard

Scope = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[MutableMapping[str, Any]]]
Send = Callable[[MutableMapping[str, Any]], Awaitable[None]]
Handler = Callable[[Request, "re.Match[str]"], Awaitable[Response]]
API = "/admin/api"
BODY_TIMEOUT = 30.0
log = logging.getLogger("tokenomics.admin")


@dataclass(frozen=True, slots=True)
class Route:
    method: str
    pattern: re.Pattern[str]
    handler: Handler


def route(method: str, pattern: str, handler: Handler) -> Route:
    """`pattern` is a regular expression for the path after `/admin/api`, matched whole."""
    return Route(method, re.compile(pattern, re.DOTALL), handler)


async def read_body(receive: Receive) -> bytes:
    """The request body, at most `MAX_BODY` bytes (413), within `BODY_TIMEOUT` seconds (408)."""
    with trio.move_on_after(BODY_TIMEOUT):
        try:
            return await read_small(receive, MAX_BODY)
        except BodyTooLarge:
            raise AdminError(413, "admin: request body too large") from None
    raise AdminError(408, "admin: request body not received in time")


class AdminApp:
    def __init__(
        self,
        guard: Guard,
        routes: Sequence[Route],
        warm_up: Callable[[], Awaitable[None]] | None = None,
        close: Callable[[], None] = lambda: None,
    ) -> None:
        self.guard = guard
        self.routes = list(routes)
        self._warm_up = warm_up
        self.close = close  # what the handler holds open (the ledger index's connection)

    async def warm_up(self) -> None:
        """Read what the pages show (ledger, tokens) once at start: started by the composition
        root beside the consumers."""
        if self._warm_up is not None:
            await self._warm_up()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            response = await self._respond(scope, receive)
        except ClientGone:
            return
        except AdminError as exc:
            response = error_response(exc.status, exc.message, exc.headers)
        except Exception:  # a bug or an I/O failure: logged, answered without details
            log.exception("admin request %s %s failed", scope["method"], scope["path"])
            response = error_response(500, "internal error")
        headers = [*response.headers, *SECURITY_HEADERS]
        headers.append((b"content-length", str(len(response.body)).encode()))
        if response.status in (408, 413):  # the body was not read to its end
            headers.append((b"connection", b"close"))
        await send({"type": "http.response.start", "status": response.status, "headers": headers})
        body = b"" if scope["method"] == "HEAD" else response.body
        await send({"type": "http.response.body", "body": body})

    async def _respond(self, scope: Scope, receive: Receive) -> Response:
        method, path = scope["method"], scope["path"]
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}
        client, server = scope.get("client"), scope.get("server")
        self.guard.check(client[0] if client else "", server[0] if server else "", method, headers)
        if path != API and not path.startswith(API + "/"):
            if method not in ("GET", "HEAD"):
                raise AdminError(405, "method not allowed", [(b"allow", b"GET, HEAD")])
            found = serve_ui(path)
            if found is None:
                raise AdminError(404, "not found")
            status, ui_headers, ui_body = found
            return Response(status, ui_body, ui_headers)
        body = await read_body(receive) if method in ("POST", "PUT", "PATCH", "DELETE") else b""
        query = parse_query(scope["query_string"])
        request = Request(method, path[len(API) :], query, headers, body)
        return await self._dispatch(request)

    async def _dispatch(self, request: Request) -> Response:
        allowed: list[str] = []
        for candidate in self.routes:
            match = candidate.pattern.fullmatch(request.path)
            if match is None:
                continue
            if candidate.method != request.method:
                allowed.append(candidate.method)
                continue
            try:
                return await candidate.handler(request, match)
            except AdminError:
                raise
            except TokenomicsError as exc:
                return error_response(exc.status, exc.message)
        if allowed:
            raise AdminError(405, "method not allowed", [(b"allow", ", ".join(allowed).encode())])
        raise AdminError(404, "not found")
