"""Talking to the central token server (`tokenomics remote`) from a proxy: a small JSON
client. Every reply is untrusted: bounded in size, and errors are safe to log (never the
API key, never a body)."""

from __future__ import annotations

from dataclasses import dataclass
from http import HTTPStatus
from typing import Any

import orjson

from tokenomics.domain.errors import RemoteError, UpstreamError, UpstreamTooLarge
from tokenomics.upstream.client import INVALID_URL, Upstreams
from tokenomics.upstream.fetch import Fetched, fetch, os_reason, unverified_context

MAX_REPLY = 64 * 1024 * 1024  # a token list of ~100k tokens; anything larger is refused


@dataclass(frozen=True, slots=True)
class RemoteReply:
    status: int
    etag: str
    body: Any  # the decoded JSON, None for 304 and empty bodies


class RemoteHttp:
    """One keep-alive client to `base_url`, with `Authorization: Bearer <api_key>`, on the
    upstream client (an outbound proxy of the environment honoured)."""

    def __init__(
        self, base_url: str, api_key: str, *, insecure: bool = False, timeout: float = 30
    ) -> None:
        self._headers = [("user-agent", "tokenomics-sync/1.0"), ("accept", "application/json")]
        if api_key:
            self._headers.append(("authorization", f"Bearer {api_key}"))
        self._base = base_url.rstrip("/")
        self._timeout = timeout
        context = unverified_context() if insecure else None
        self._upstreams = Upstreams(max_connections=4, ssl_context=context)

    async def call(
        self, method: str, path: str, *, json: Any = None, etag: str = ""
    ) -> RemoteReply:
        headers = [*self._headers, *([("if-none-match", etag)] if etag else [])]
        content = orjson.dumps(json) if json is not None else b""
        if json is not None:
            headers.append(("content-type", "application/json"))
        try:
            fetched = await fetch(
                self._upstreams, method, self._base + path, headers=headers, body=content,
                within=self._timeout, limit=MAX_REPLY,
            )  # fmt: skip
        except UpstreamTooLarge:
            raise RemoteError("the central server's reply is too large") from None
        except UpstreamError as exc:
            if exc.reason == INVALID_URL:
                raise RemoteError("invalid remote.url") from None
            raise RemoteError(f"cannot reach the central server: {os_reason(exc)}") from None
        return RemoteReply(fetched.status, fetched.header("etag"), _decode(fetched))

    async def aclose(self) -> None:
        await self._upstreams.aclose()


def _decode(fetched: Fetched) -> Any:
    if not fetched.body.strip():
        return None
    try:
        return orjson.loads(fetched.body)
    except orjson.JSONDecodeError:
        raise RemoteError(f"the central server answered {fetched.status} with no JSON") from None


def status_text(status: int) -> str:
    """`remote server returned 403 Forbidden` (the original's wording)."""
    try:
        return f"remote server returned {status} {HTTPStatus(status).phrase}"
    except ValueError:
        return f"remote server returned {status}"
