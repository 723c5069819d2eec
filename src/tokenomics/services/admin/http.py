"""The admin API's small HTTP vocabulary: the request as the handlers see it, responses, the
headers every admin response carries, and the error a handler raises to answer with a status."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl

import orjson

from tokenomics.domain.errors import AdminError

Headers = list[tuple[bytes, bytes]]

# No inline script or style can run, nothing is framed, nothing is loaded from elsewhere.
CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; font-src 'self'; object-src 'none'; base-uri 'none'; "
    "form-action 'self'; frame-ancestors 'none'"
)
SECURITY_HEADERS: Headers = [
    (b"content-security-policy", CSP.encode()),
    (b"x-content-type-options", b"nosniff"),
    (b"cache-control", b"no-store"),
    (b"referrer-policy", b"no-referrer"),
    (b"x-frame-options", b"DENY"),
]
JSON_TYPE = (b"content-type", b"application/json")
MAX_BODY = 1024 * 1024


@dataclass(frozen=True, slots=True)
class Request:
    method: str
    path: str  # decoded, as the server parsed it
    query: dict[str, str]
    headers: dict[str, str]  # lower-case names; the last value of a repeated header
    body: bytes = b""

    def json_object(self) -> dict[str, Any]:
        """The body as a JSON object, else 400 `invalid request payload`."""
        try:
            value = orjson.loads(self.body)
        except orjson.JSONDecodeError:
            raise AdminError(400, "invalid request payload") from None
        if not isinstance(value, dict):
            raise AdminError(400, "invalid request payload")
        return value

    def int_param(self, name: str, default: int, maximum: int | None = None) -> int:
        """A non-negative integer query parameter (capped at `maximum`), else 400."""
        text = self.query.get(name, "")
        if text == "":
            return default
        if not text.isascii() or not text.isdigit() or len(text) > 9:
            raise AdminError(400, f"invalid query parameter: {name}")
        value = int(text)
        return min(value, maximum) if maximum is not None else value


def parse_query(raw: bytes) -> dict[str, str]:
    return dict(parse_qsl(raw.decode("latin-1"), keep_blank_values=True))


@dataclass(slots=True)
class Response:
    status: int
    body: bytes
    headers: Headers = field(default_factory=list)


def json_response(status: int, value: Any) -> Response:
    return Response(status, orjson.dumps(value) + b"\n", [JSON_TYPE])


def error_response(status: int, message: str, headers: Headers | None = None) -> Response:
    return Response(status, orjson.dumps({"error": message}) + b"\n", [JSON_TYPE, *(headers or [])])
