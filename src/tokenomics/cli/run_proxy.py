"""Which proxy `tokenomics run` points its child at (`cli.md` §2.3, §2.8, D22).

* remote mode (`--proxy-url` / `$TOKENOMICS_PROXY_URL`): that URL, once `<url>/ping` answers;
* `--port P` where a Tokenomics proxy already answers: that proxy, left running afterwards;
* otherwise our own proxy, in this process, on `--port` (0: a free port), stopped with `run`.
"""

from __future__ import annotations

import ssl
from collections.abc import Mapping
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

import orjson
import trio

from tokenomics.cli.probe import http_get, join_url
from tokenomics.domain.errors import ProbeError, ProxyUnreachable, TokenomicsError
from tokenomics.domain.money import describe_cost
from tokenomics.services.tls import resolve_tls
from tokenomics.upstream.fetch import unverified_context

if TYPE_CHECKING:
    from tokenomics.config.settings import Settings

REMOTE_ATTEMPTS = 30  # ~3 s, 100 ms apart, like the original's readiness wait
LOOPBACK = "127.0.0.1"


def url_host(host: str) -> str:
    """The host to put in URLs: loopback as 127.0.0.1 (Node resolves `localhost` to ::1 first)."""
    host = host.strip() or LOOPBACK
    if host in ("localhost", "0.0.0.0"):
        return LOOPBACK
    if host == "::":
        return "[::1]"
    return f"[{host}]" if ":" in host and not host.startswith("[") else host


def local_url(host: str, port: int, tls: bool) -> str:
    return f"{'https' if tls else 'http'}://{url_host(host)}:{port}"


async def check_remote(url: str, *, insecure: bool) -> None:
    """Wait (about 3 s at most) for `<url>/ping` to answer 200; else `ProxyUnreachable`."""
    context = unverified_context() if insecure else None
    reason = ""
    for attempt in range(REMOTE_ATTEMPTS):
        if attempt:
            await trio.sleep(0.1)
        try:
            status, _ = await http_get(join_url(url, "/ping"), ssl_context=context)
        except ProbeError as exc:
            reason = str(exc)
            if reason.startswith("TLS error"):
                break  # retrying will not fix a certificate
            continue
        if status == 200:
            return
        reason = f"HTTP {status}"
    hint = " (--insecure skips verification)" if reason.startswith("TLS error") else ""
    raise ProxyUnreachable(
        f"proxy failed to start: {url} does not answer /ping: {reason}{hint}; "
        "check --proxy-url or $TOKENOMICS_PROXY_URL"
    )


async def is_tokenomics(base: str) -> bool:
    """Whether a Tokenomics proxy answers at `base`: `/ping` says `.` and `/health` is ok."""
    context = unverified_context()  # our own loopback proxy, maybe with a self-signed cert
    try:
        ping = await http_get(join_url(base, "/ping"), ssl_context=context)
        if ping != (200, b"."):
            return False
        status, body = await http_get(join_url(base, "/health"), ssl_context=context)
    except ProbeError:
        return False
    try:
        health: Any = orjson.loads(body)
    except orjson.JSONDecodeError:
        return False
    return status == 200 and isinstance(health, dict) and health.get("status") == "ok"


def proxy_settings(
    settings: Settings, *, host: str, port: int, tls: bool, admin: bool, provider: str
) -> Settings:
    """The settings of our own proxy: its listener, admin only with `--admin`, and the
    detected provider as the default when the configuration names none."""
    server = settings.server
    server = replace(
        server,
        host=LOOPBACK if host.strip() in ("", "localhost") else host.strip(),
        http_port=0 if tls else port,
        https_port=port if tls else server.https_port,
        tls=replace(server.tls, enabled=tls),
    )
    return replace(
        settings,
        server=server,
        admin=replace(settings.admin, enabled=admin and settings.admin.enabled),
        default_provider=settings.default_provider or provider,
    )


def ca_file(settings: Settings) -> Path | None:
    """The generated CA that signs our HTTPS listener (created if needed), else None."""
    tls = settings.server.tls
    if not tls.enabled:
        return None
    paths = resolve_tls(
        enabled=True, auto_gen=tls.auto_gen, cert_dir=Path(tls.cert_dir),
        cert_file=tls.cert_file, key_file=tls.key_file,
        hosts=(settings.server.host, *tls.hosts), now=datetime.now(UTC),
    )  # fmt: skip
    return paths.ca_cert if paths is not None else None


def bound_url(urls: list[str], host: str, tls: bool) -> str:
    """Our listener's URL for the child, from the addresses the server bound."""
    scheme = "https" if tls else "http"
    for url in urls:
        parts = urlsplit(url)
        if parts.scheme == scheme and parts.port:
            return local_url(host, parts.port, tls)
    raise TokenomicsError(f"the proxy started without an {scheme} listener ({', '.join(urls)})")


SUMMED = ("request_count", "total_tokens", "cost_usd", "unpriced_count")


async def totals(base: str, *, insecure: bool) -> dict[str, float] | None:
    """The `totals` of a running proxy's `/stats`, or None when it does not show them to us."""
    context = unverified_context() if insecure else None
    try:
        status, body = await http_get(join_url(base, "/stats"), ssl_context=context)
        found = orjson.loads(body)["totals"] if status == 200 else None
    except (ProbeError, orjson.JSONDecodeError, KeyError, TypeError):
        return None
    if not isinstance(found, dict):
        return None
    numbers = {k: found.get(k) for k in SUMMED}
    if not all(isinstance(v, int | float) for k, v in numbers.items() if k != "unpriced_count"):
        return None
    return {k: float(v) if isinstance(v, int | float) else 0.0 for k, v in numbers.items()}


def summary(counts: dict[str, Any]) -> str:
    """`tokenomics: 3 requests, 1,234 tokens, $0.00123`; the cost as `ledger` shows it
    (`domain.money`), with how many requests had no price."""
    count = int(counts["request_count"])
    tokens = int(counts["total_tokens"])
    return (
        f"tokenomics: {count:,} request{'' if count == 1 else 's'}, {tokens:,} tokens, "
        f"{describe_cost(counts)}"
    )


def trust_store(environ: Mapping[str, str]) -> Path | None:
    """The CA file the child would trust without us: its own `SSL_CERT_FILE` or
    `REQUESTS_CA_BUNDLE`, else OpenSSL's default file; None when there is none."""
    paths = ssl.get_default_verify_paths()
    candidates = (
        environ.get("SSL_CERT_FILE"), environ.get("REQUESTS_CA_BUNDLE"),
        paths.cafile, paths.openssl_cafile,
    )  # fmt: skip
    return next((Path(c) for c in candidates if c and Path(c).is_file()), None)


def ca_bundle(ca: Path, environ: Mapping[str, str], scratch: Path) -> Path:
    """A CA file with the system's (or the child's own) trust store and our CA, in `scratch`:
    the child still reaches every other HTTPS host (pip, git, web pages) as before."""
    system = trust_store(environ)
    base = system.read_bytes() if system is not None else b""
    bundle = scratch / "ca-bundle.pem"
    bundle.write_bytes(base.rstrip(b"\n") + b"\n" + ca.read_bytes() if base else ca.read_bytes())
    return bundle
