"""One whole request on the upstream client, for everything that is not the proxy's hot path:
the CLI's probes (`run`'s readiness checks, `start`/`status`/`stop` asking `/health`, `doctor`
asking the central server) and the central-server client (`remote_http.py`).

They all go through `Upstreams` (pooled keep-alive connections, our HTTP/1.1 reader, httpx2
only when the environment names an outbound proxy), so there is one HTTP client to fix, test
and harden, not one per caller:

    fetched = await fetch_once("GET", "http://127.0.0.1:8080/ping", within=5, trust_env=False)

`fetch_once`'s `within` bounds the whole exchange, connect to last byte; a body over `limit`
is refused, never cut. Errors are `UpstreamError`/`UpstreamTimeout` with a safe reason;
`os_reason` digs out the socket or TLS error behind one for an operator's message
("connection refused").
"""

from __future__ import annotations

import os
import ssl
from dataclasses import dataclass
from functools import partial
from typing import TYPE_CHECKING

import trio

from tokenomics.domain.errors import UpstreamError, UpstreamTimeout
from tokenomics.upstream.client import UpstreamRequest, Upstreams, read_all

if TYPE_CHECKING:
    from collections.abc import Sequence

MAX_BODY = 1 << 20


@dataclass(frozen=True, slots=True)
class Fetched:
    status: int
    headers: list[tuple[str, str]]  # names lower-cased
    body: bytes

    def header(self, name: str) -> str:
        """The last value of header `name` (lower-case), "" when absent."""
        found = [value for key, value in self.headers if key == name]
        return found[-1] if found else ""


async def fetch(
    upstreams: Upstreams,
    method: str,
    url: str,
    *,
    headers: Sequence[tuple[str, str]] = (),
    body: bytes = b"",
    within: float,
    limit: int = MAX_BODY,
) -> Fetched:
    """`method url` on `upstreams`: the response's headers within `within` seconds, then each
    read of its body within `within` seconds (no cap on the whole; `fetch_once` has one)."""
    request = UpstreamRequest(method, url, [(k.lower(), v) for k, v in headers], body)
    response = await upstreams.open(request, headers_timeout=within)
    try:
        data = await read_all(response, limit, idle_timeout=within)
    finally:
        await response.aclose()
    return Fetched(response.status, list(response.headers), data)


async def fetch_once(
    method: str,
    url: str,
    *,
    headers: Sequence[tuple[str, str]] = (),
    body: bytes = b"",
    within: float,
    limit: int = MAX_BODY,
    ssl_context: ssl.SSLContext | None = None,
    trust_env: bool = True,
) -> Fetched:
    """`fetch` on a client of its own, closed afterwards. `ssl_context` None: the CAs the
    upstream client trusts (so `doctor` checks what the syncer will see);
    `trust_env=False`: never through an outbound proxy (a probe of our own loopback proxy)."""
    upstreams = Upstreams(max_connections=1, ssl_context=ssl_context, trust_env=trust_env)
    try:
        with trio.move_on_after(within) as deadline:
            return await fetch(
                upstreams, method, url, headers=headers, body=body, within=within, limit=limit
            )
        assert deadline.cancelled_caught
        raise UpstreamTimeout(f"no answer within {within:g}s")
    finally:
        with trio.CancelScope(shield=True):
            await upstreams.aclose()


def unverified_context() -> ssl.SSLContext:
    """TLS without certificate checks: `--insecure`, or asking our own loopback proxy (with
    its self-signed certificate) whether it is there, never sending it a secret."""
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    return context


def fetch_blocking(
    method: str,
    url: str,
    *,
    headers: Sequence[tuple[str, str]] = (),
    within: float,
    limit: int = MAX_BODY,
    ssl_context: ssl.SSLContext | None = None,
    trust_env: bool = True,
) -> Fetched:
    """`fetch_once` for synchronous code (outside a running Trio loop)."""
    get = partial(fetch_once, within=within, limit=limit, ssl_context=ssl_context)
    return trio.run(partial(get, method, url, headers=headers, trust_env=trust_env))


def os_reason(error: UpstreamError) -> str:
    """A few words from the innermost socket or TLS error behind `error` ("connection
    refused", "TLS error: CERTIFICATE_VERIFY_FAILED"), else its own safe reason."""
    found = error.reason
    cause: BaseException | None = error.__context__
    while cause is not None:
        if isinstance(cause, ssl.SSLError):
            return f"TLS error: {cause.reason or cause}"
        if isinstance(cause, OSError) and cause.strerror:
            code = cause.errno or 0  # < 0: a resolver error, whose strerror says it best
            found = (os.strerror(code) if code > 0 else cause.strerror).lower()
        if isinstance(cause, BaseExceptionGroup):
            cause = cause.exceptions[0]
        else:
            cause = cause.__cause__ or cause.__context__
    return found
