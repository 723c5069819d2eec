"""Talking to the central token server (`tokenomics remote`) from a proxy: a small JSON
client. Every reply is untrusted: bounded in size, and errors are safe to log (never the
API key, never a body)."""

from __future__ import annotations

from dataclasses import dataclass
from http import HTTPStatus
from typing import Any

import httpx2
import orjson

from tokenomics.domain.errors import RemoteError

MAX_REPLY = 64 * 1024 * 1024  # a token list of ~100k tokens; anything larger is refused


@dataclass(frozen=True, slots=True)
class RemoteReply:
    status: int
    etag: str
    body: Any  # the decoded JSON, None for 304 and empty bodies


class RemoteHttp:
    """One keep-alive client to `base_url`, with `Authorization: Bearer <api_key>`."""

    def __init__(
        self, base_url: str, api_key: str, *, insecure: bool = False, timeout: float = 30
    ) -> None:
        headers = {"user-agent": "tokenomics-sync/1.0", "accept": "application/json"}
        if api_key:
            headers["authorization"] = f"Bearer {api_key}"
        self._base = base_url.rstrip("/")
        self._client = httpx2.AsyncClient(
            headers=headers, verify=not insecure, timeout=httpx2.Timeout(timeout),
            follow_redirects=False, trust_env=True,
        )  # fmt: skip

    async def call(
        self, method: str, path: str, *, json: Any = None, etag: str = ""
    ) -> RemoteReply:
        headers = {"if-none-match": etag} if etag else {}
        content = orjson.dumps(json) if json is not None else None
        if content is not None:
            headers["content-type"] = "application/json"
        try:
            request = self._client.build_request(
                method, self._base + path, headers=headers, content=content
            )
            response = await self._client.send(request, stream=True)
        except httpx2.InvalidURL:
            raise RemoteError("invalid remote.url") from None
        except httpx2.HTTPError as exc:
            raise RemoteError(f"cannot reach the central server: {type(exc).__name__}") from None
        try:
            body = await _read(response)
        finally:
            await response.aclose()
        return RemoteReply(response.status_code, response.headers.get("etag", ""), body)

    async def aclose(self) -> None:
        await self._client.aclose()


async def _read(response: httpx2.Response) -> Any:
    parts: list[bytes] = []
    size = 0
    try:
        async for chunk in response.aiter_raw():
            size += len(chunk)
            if size > MAX_REPLY:
                raise RemoteError("the central server's reply is too large")
            parts.append(chunk)
    except httpx2.HTTPError as exc:
        raise RemoteError(f"reading the central server's reply: {type(exc).__name__}") from None
    data = b"".join(parts)
    if not data.strip():
        return None
    try:
        return orjson.loads(data)
    except orjson.JSONDecodeError:
        raise RemoteError(
            f"the central server answered {response.status_code} with no JSON"
        ) from None


def status_text(status: int) -> str:
    """`remote server returned 403 Forbidden` (the original's wording)."""
    try:
        return f"remote server returned {status} {HTTPStatus(status).phrase}"
    except ValueError:
        return f"remote server returned {status}"
