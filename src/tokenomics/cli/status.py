"""`tokenomics status`: proxy state, client environment and token count (`cli.md` §5.2).

Always exits 0. Secrets are never printed: wrapper tokens show `tkn_...` and their last four
characters, provider keys only whether they are set, URLs lose credentials and query strings.
"""

from __future__ import annotations

import re
import time
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import urlsplit, urlunsplit

from cyclopts import Parameter

from tokenomics.cli import counters_info, pidfile, process
from tokenomics.cli.context import Context
from tokenomics.cli.output import print_json
from tokenomics.cli.process import Identity
from tokenomics.config.providers import ProviderConfig, load_providers
from tokenomics.config.settings import Settings
from tokenomics.domain.errors import PidFileError, TokenomicsError
from tokenomics.services.remote_fleet import describe_state, read_state


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


def proxy_state(path: Path) -> dict[str, Any]:
    """The background proxy recorded in the PID file at `path`: `state` (running, stopped or
    unknown), `detail` (the status line), `pid` and `url` (when running)."""
    try:
        record = pidfile.read(path)
    except PidFileError as exc:
        return {"state": "unknown", "detail": f"unknown ({exc})", "pid": None, "url": ""}
    if record is None:
        return {"state": "stopped", "detail": "stopped", "pid": None, "url": ""}
    identity = process.identify(record)
    if identity is Identity.OURS:
        detail = f"running (PID {record.pid})"
        return {"state": "running", "detail": detail, "pid": record.pid, "url": record.url}
    reason = process.describe(identity, record.pid)
    detail = f"stopped (stale PID file {path}: {reason})"
    return {"state": "stopped", "detail": detail, "pid": None, "url": ""}


def status(
    *,
    all: Annotated[
        bool, Parameter(help="Also list the providers whose variables are not set.", negative="")
    ] = False,
    json: Annotated[bool, Parameter(help="Print JSON (every provider).", negative="")] = False,
    ctx: Annotated[Context, Parameter(parse=False)],
) -> None:
    """Show the background proxy, the providers' environment variables that are set (--all:
    every provider's) and the token count."""
    try:
        settings = ctx.settings()
        providers = load_providers(
            cwd=ctx.cwd, home=ctx.home, data_dir=Path(settings.dir), inline=settings.providers
        )
    except TokenomicsError as exc:
        if json:
            print_json(ctx.stdout, {"config_error": str(exc)})
        else:
            ctx.stdout.write(f"Config: error loading ({exc})\n")
        return
    report = {
        "proxy": {
            **proxy_state(settings.pid_file),
            "remote": safe_url(ctx.environ.get("TOKENOMICS_PROXY_URL", "")),
            "token": mask_token(token) if (token := ctx.environ.get("TOKENOMICS_KEY")) else "",
        },
        "providers": [provider_variables(providers[name], ctx) for name in sorted(providers)],
        **token_count(ctx),
        "counters": counters_info.report(settings),
    }
    if settings.remote.url:
        report["remote_sync"] = sync_report(settings)
    if json:
        print_json(ctx.stdout, report)
    else:
        ctx.stdout.write("".join(_text(report, every=all)))


def provider_variables(entry: ProviderConfig, ctx: Context) -> dict[str, Any]:
    """A provider's key and base-URL variables and what they hold (secrets never shown)."""
    key = ctx.environ.get(entry.api_key_env, "") if entry.api_key_env else ""
    label = re.sub(r"[^A-Za-z0-9_]", "_", entry.name.upper())
    url_var = entry.base_url_env or f"{label}_BASE_URL"
    url = ctx.environ.get(url_var, "")
    return {
        "name": entry.name,
        "api_key_env": entry.api_key_env,
        "key": ("proxy token" if key.startswith("tkn_") else "set") if key else "not set",
        "base_url_env": url_var,
        "base_url": safe_url(url) if url else "",
        "configured": bool(key or url),
    }


def _text(report: dict[str, Any], *, every: bool) -> list[str]:
    proxy = report["proxy"]
    lines = ["Proxy\n", f"  Status:  {proxy['detail']}\n"]
    lines += [f"  URL:     {proxy['url']}\n"] if proxy["url"] else []
    lines += [f"  Remote:  {proxy['remote']}\n"] if proxy["remote"] else []
    lines += [f"  Token:   {proxy['token']}\n"] if proxy["token"] else []
    lines += [counters_info.line(report["counters"])] if "counters" in report else []
    lines.append("\nEnvironment Variables\n")
    providers = report["providers"]
    shown = [p for p in providers if every or p["configured"]]
    if not providers:
        lines.append("  Providers: none configured\n")
    for entry in shown:
        lines += _provider_lines(entry)
    if hidden := len(providers) - len(shown):
        what = "providers have" if hidden > 1 else "provider has"
        lines.append(f"  ({hidden} {what} no variable set; --all lists them)\n")
    lines.append(f"\nTokens\n  {tokens_text(report)}\n")
    if sync := report.get("remote_sync"):
        lines += [
            "\nRemote sync\n",
            f"  Central: {sync['url']}\n",
            f"  State:   {sync['detail']}\n",
        ]
    return lines


def sync_report(settings: Settings) -> dict[str, Any]:
    """How stale this host's synced tokens are (from the running proxy's state file)."""
    state = read_state(settings.data_dir)
    level, detail = describe_state(state, time.time())
    last = state.get("last_success") if state else None
    return {"url": safe_url(settings.remote.url), "ok": level == "ok", "detail": detail,
            "last_success": last}  # fmt: skip


def tokens_text(report: dict[str, Any]) -> str:
    if error := report.get("tokens_error"):
        return f"({error})"
    note = "" if report["database_exists"] else " (none created yet)"
    return f"{report['tokens']} token(s) in database{note}"


def _provider_lines(entry: dict[str, Any]) -> list[str]:
    lines = [f"  {entry['name']:<16}\n"]
    if entry["api_key_env"]:
        shown = "set (direct key)" if entry["key"] == "set" else entry["key"]
        lines.append(f"    {entry['api_key_env']:<28} {shown}\n")
    url = entry["base_url"] or "not set (will use provider default)"
    lines.append(f"    {entry['base_url_env']:<28} {url}\n")
    return lines


def token_count(ctx: Context) -> dict[str, Any]:
    """`tokens`: the count (None when unreadable, with `tokens_error`), and whether the
    database exists yet (read-only commands never create it)."""
    try:
        store = ctx.open_existing_store()
    except TokenomicsError as exc:
        error = f"could not open database: {exc}"
        return {"tokens": None, "database_exists": True, "tokens_error": error}
    if store is None:
        return {"tokens": 0, "database_exists": False}
    try:
        return {"tokens": store.count(), "database_exists": True}
    except TokenomicsError:
        return {"tokens": None, "database_exists": True, "tokens_error": "could not list tokens"}
    finally:
        store.close()
