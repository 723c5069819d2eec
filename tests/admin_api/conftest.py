"""Helpers of the admin API tests: JSON writes as a same-origin browser or script sends them."""

from __future__ import annotations

from typing import Any

import httpx2
import orjson

JSON = {"content-type": "application/json"}


async def write(
    client: httpx2.AsyncClient, method: str, path: str, body: Any = None, **headers: str
) -> httpx2.Response:
    content = b"" if body is None else body if isinstance(body, bytes) else orjson.dumps(body)
    return await client.request(method, path, content=content, headers={**JSON, **headers})
