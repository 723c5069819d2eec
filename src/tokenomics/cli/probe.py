"""A small GET for `run`'s readiness probes (`cli.md` §2.3), on the upstream client.

Ask a proxy `/ping`, `/health` or `/stats`, with TLS verification under the caller's control (a
generated CA, or none for `--insecure`), never through an outbound proxy of the environment:

    status, body = await http_get("http://127.0.0.1:8080/ping", ssl_context=None)

Any failure (refused, timeout, TLS, garbage) raises `ProbeError` with a short reason.
"""

from __future__ import annotations

import ssl
from urllib.parse import urlsplit

from tokenomics.domain.errors import ProbeError, UpstreamError, UpstreamTimeout
from tokenomics.upstream.fetch import fetch_once, os_reason
from tokenomics.upstream.http11 import ProtocolError

MAX_RESPONSE = 1 << 20
TIMEOUT = 5.0  # seconds for one probe, connect to last byte
HEADERS = (("user-agent", "tokenomics-run"), ("accept", "*/*"), ("connection", "close"))


def join_url(base: str, path: str) -> str:
    return base.rstrip("/") + path


async def http_get(url: str, *, ssl_context: ssl.SSLContext | None) -> tuple[int, bytes]:
    """GET `url` (within `TIMEOUT` s); returns (status, body). HTTPS uses `ssl_context`
    (None: verify against the system's CAs)."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ProbeError(f"not an http(s) URL: {url}")
    try:
        fetched = await fetch_once(
            "GET", url, headers=HEADERS, within=TIMEOUT, limit=MAX_RESPONSE,
            ssl_context=ssl_context, trust_env=False,
        )  # fmt: skip
    except UpstreamTimeout:
        raise ProbeError(f"no answer within {TIMEOUT:g}s") from None
    except UpstreamError as exc:
        raise ProbeError(reason(exc)) from None
    return fetched.status, fetched.body


def reason(error: UpstreamError) -> str:
    """The probe's few words for a failed request."""
    if isinstance(error.__context__, ProtocolError):
        return "not an HTTP answer"
    return os_reason(error)
