"""Header hygiene in both directions (`proxy.md` §2.12 FIX, W-S9)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from tokenomics.domain.memo import remember

if TYPE_CHECKING:
    from tokenomics.pipeline.exchange import Headers
    from tokenomics.pipeline.target import Target

# `expect`: the proxy has read the whole body already, so a 100-continue is settled here.
HOP_BY_HOP = frozenset(
    {"connection", "keep-alive", "proxy-connection", "te", "trailer", "transfer-encoding",
     "upgrade", "host", "content-length", "expect"}
)  # fmt: skip
CREDENTIALS = frozenset(
    {"authorization", "x-api-key", "api-key", "x-goog-api-key", "proxy-authorization", "cookie"}
)
# Headers a client must not use to steer the operator's account or spoof its origin.
DROPPED = frozenset(
    {"accept-encoding", "content-encoding", "forwarded", "x-real-ip", "true-client-ip",
     "openai-organization", "openai-project"}
)  # fmt: skip
# `date`: the server adds its own, and two Date headers are invalid (RFC 9110 §6.6.1).
# `content-encoding` is relayed: the client names only the codings we could not undo.
RESPONSE_DROPPED = frozenset({"set-cookie", "content-length", "date"})
_NOT_FORWARDED = HOP_BY_HOP | CREDENTIALS | DROPPED
_NOT_RELAYED = HOP_BY_HOP | RESPONSE_DROPPED


def _connection_listed(headers: Headers) -> set[str]:
    listed: set[str] = set()
    for name, value in headers:
        if name == "connection":
            listed |= {token.strip().lower() for token in value.split(",")}
    return listed


def _auth(target: Target) -> tuple[str, str] | None:
    """The auth header for the target's scheme (query auth and `none` add no header)."""
    if not target.key:
        return None
    scheme = target.provider.auth_scheme if target.provider else "bearer"
    if scheme == "bearer":
        return ("authorization", f"Bearer {target.key}")
    if scheme == "header" and target.provider is not None:
        return (target.provider.auth_header.lower(), target.key)
    return None


# A client header name -> whether it may go upstream (unless `Connection` lists it): names
# repeat from request to request, and a lookup costs less than the sets and the prefix test.
_FORWARDED: dict[str, bool] = {}
NAMES_LIMIT = 1024


def _forwarded(name: str) -> bool:
    ok = name not in _NOT_FORWARDED and not name.startswith(("x-forwarded-", "proxy-"))
    return remember(_FORWARDED, name, ok, NAMES_LIMIT)


def upstream_headers(
    client: Headers, target: Target, client_request_id: str, content_type: str | None = None
) -> Headers:
    """Client headers minus hop-by-hop, credentials and steering; then auth and provider
    headers. With a `content_type` (a body goes up), every content-type is dropped and that
    one added last. One pass over the client's headers (`tests/pipeline/
    test_headers_reference.py` pins it to the comprehensions it replaced)."""
    provider = target.provider
    fixed = {k.lower(): v for k, v in provider.headers.items()} if provider is not None else {}
    auth = _auth(target)
    extra = _connection_listed(client)
    if fixed:
        extra.update(fixed)
    if auth is not None:
        extra.add(auth[0])
    if content_type is not None:
        extra.add("content-type")
    out = []
    for pair in client:
        name = pair[0]
        ok = _FORWARDED.get(name)
        if ok is None:
            ok = _forwarded(name)
        if ok and name not in extra:
            out.append(pair)
    if auth is not None:
        out.append(auth)
    if fixed:
        out += fixed.items()
    out.append(("accept-encoding", "identity"))
    out.append(("x-client-request-id", client_request_id))
    if content_type is None:
        return out
    if "content-type" in fixed or (auth is not None and auth[0] == "content-type"):
        out = [h for h in out if h[0] != "content-type"]
    out.append(("content-type", content_type))
    return out


def client_headers(upstream: Headers) -> Headers:
    """Upstream response headers safe to relay (the server sets its own framing)."""
    listed = _connection_listed(upstream)
    return [
        (name, value) for name, value in upstream if name not in _NOT_RELAYED and name not in listed
    ]
