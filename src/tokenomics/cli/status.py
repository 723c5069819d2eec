"""`tokenomics status`: proxy state, client environment and token count (`cli.md` §5.2).

Always exits 0. Secrets are never printed: wrapper tokens show `tkn_...` and their last four
characters, provider keys only whether they are set, URLs lose credentials and query strings.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Annotated
from urllib.parse import urlsplit, urlunsplit

from cyclopts import Parameter

from tokenomics.cli import pidfile, process
from tokenomics.cli.context import Context
from tokenomics.cli.process import Identity
from tokenomics.config.providers import ProviderConfig, load_providers
from tokenomics.domain.errors import TokenomicsError


def mask_token(value: str) -> str:
    """`tkn_...3456` for a long wrapper token, `...3456` for another long secret, else `****`."""
    if len(value) < 12:
        return "****"
    return f"{'tkn_' if value.startswith('tkn_') else ''}...{value[-4:]}"


def safe_url(value: str) -> str:
    """A URL without user:password and query string (they may hold secrets)."""
    try:
        parts = urlsplit(value)
    except ValueError:
        return "(invalid URL)"
    if not parts.scheme or not parts.netloc:
        return value
    netloc = parts.netloc.rsplit("@", 1)[-1]
    return urlunsplit((parts.scheme, netloc, parts.path, "", ""))


def proxy_state(path: Path) -> tuple[str, str]:
    """(status text, URL) of the background proxy recorded in the PID file at `path`."""
    try:
        record = pidfile.read(path)
    except pidfile.PidFileError as exc:
        return f"unknown ({exc})", ""
    if record is None:
        return "stopped", ""
    identity = process.identify(record)
    if identity is Identity.OURS:
        return f"running (PID {record.pid})", record.url
    return f"stopped (stale PID file {path}: {process.describe(identity, record.pid)})", ""


def status(*, ctx: Annotated[Context, Parameter(parse=False)]) -> None:
    """Show the background proxy, the providers' environment variables and the token count."""
    out = ctx.stdout
    try:
        settings = ctx.settings()
        providers = load_providers(
            cwd=ctx.cwd, home=ctx.home, data_dir=Path(settings.dir), inline=settings.providers
        )
    except TokenomicsError as exc:
        out.write(f"Config: error loading ({exc})\n")
        return
    state, url = proxy_state(settings.pid_file)
    out.write(f"Proxy\n  Status:  {state}\n")
    if url:
        out.write(f"  URL:     {url}\n")
    if remote := ctx.environ.get("TOKENOMICS_PROXY_URL", ""):
        out.write(f"  Remote:  {safe_url(remote)}\n")
    if token := ctx.environ.get("TOKENOMICS_KEY", ""):
        out.write(f"  Token:   {mask_token(token)}\n")
    out.write("\nEnvironment Variables\n")
    if not providers:
        out.write("  Providers: none configured\n")
    for name in sorted(providers):
        out.write("".join(_provider_lines(providers[name], ctx)))
    out.write("\nTokens\n" + _token_line(ctx) + "\n")


def _provider_lines(entry: ProviderConfig, ctx: Context) -> list[str]:
    lines = [f"  {entry.name:<16}\n"]
    if entry.api_key_env:
        key = ctx.environ.get(entry.api_key_env, "")
        shown = "set (direct key)" if key else "not set"
        shown = "proxy token" if key.startswith("tkn_") else shown
        lines.append(f"    {entry.api_key_env:<28} {shown}\n")
    label = re.sub(r"[^A-Za-z0-9_]", "_", entry.name.upper())
    url_var = entry.base_url_env or f"{label}_BASE_URL"
    value = ctx.environ.get(url_var, "")
    shown = safe_url(value) if value else "not set (will use provider default)"
    lines.append(f"    {url_var:<28} {shown}\n")
    return lines


def _token_line(ctx: Context) -> str:
    try:
        store = ctx.open_existing_store()
    except TokenomicsError as exc:
        return f"  (could not open database: {exc})"
    if store is None:
        return "  0 token(s) in database (none created yet)"
    try:
        return f"  {store.count()} token(s) in database"
    except TokenomicsError:
        return "  (could not list tokens)"
    finally:
        store.close()
