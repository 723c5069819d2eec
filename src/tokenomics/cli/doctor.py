"""`tokenomics doctor`: check the setup and say how to fix what is wrong (`cli.md` §5.1, D23).

One line per check: `[ok]  `, `[!!]  ` or `[FAIL]`, the name padded to 18, the detail and, for
problems, `; fix: …`. Then a blank line and the summary. Exit status 1 when any check failed.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

from cyclopts import Parameter

from tokenomics.cli import checks, counters_info, remote_checks, webhook_checks
from tokenomics.cli.checks import Check
from tokenomics.cli.context import Context
from tokenomics.cli.output import print_json
from tokenomics.config.loader import find_config_file
from tokenomics.config.providers import load_providers
from tokenomics.domain.errors import TokenomicsError

if TYPE_CHECKING:
    from collections.abc import Iterator

    from tokenomics.config.settings import Settings

MARKERS = {"ok": "[ok]  ", "warn": "[!!]  ", "fail": "[FAIL]"}


def format_check(check: Check) -> str:
    line = f"{MARKERS[check.level]} {check.name:<18} {check.detail}"
    return f"{line}; fix: {check.fix}" if check.fix and check.level != "ok" else line


def summary(results: list[Check]) -> str:
    failed = sum(c.level == "fail" for c in results)
    warned = sum(c.level == "warn" for c in results)
    if failed:
        return f"{failed} check(s) failed, {warned} warning(s)"
    return f"All checks passed with {warned} warning(s)" if warned else "All checks passed"


def doctor(
    *,
    json: Annotated[bool, Parameter(help="Print JSON.", negative="")] = False,
    ctx: Annotated[Context, Parameter(parse=False)],
) -> int:
    """Check configuration, data directory, database, keys, providers, prices, TLS, Redis and
    the background proxy; exit 1 when a check fails."""
    results: list[Check] = []
    for check in run_checks(ctx):
        results.append(check)
        if not json:
            ctx.stdout.write(format_check(check) + "\n")
    failed = any(c.level == "fail" for c in results)
    if json:
        checks_json = [
            {"level": c.level, "name": c.name, "detail": c.detail, "fix": c.fix} for c in results
        ]
        print_json(
            ctx.stdout, {"ok": not failed, "summary": summary(results), "checks": checks_json}
        )
    else:
        ctx.stdout.write("\n" + summary(results) + "\n")
    return 1 if failed else 0


def _config_file(ctx: Context) -> Check:
    if ctx.config:
        if Path(ctx.config).expanduser().is_file():
            return Check("ok", "config file", f"found {ctx.config}")
        return Check("fail", "config file", f"{ctx.config} not found",
                     "correct the --config path, or drop it to use the default search")  # fmt: skip
    data_dir = ctx.dir or ctx.environ.get("TOKENOMICS_DIR", "")
    found = find_config_file(ctx.cwd, ctx.home, data_dir)
    if found is None:
        return Check("warn", "config file", "no config.yaml found, using defaults")
    return Check("ok", "config file", f"found {found}")


def run_checks(ctx: Context) -> Iterator[Check]:
    first = _config_file(ctx)
    yield first
    if first.level == "fail":
        return
    try:
        settings = ctx.settings()
    except TokenomicsError as exc:
        yield Check("fail", "config parse", f"could not parse config: {exc}",
                    "correct the key or value it names")  # fmt: skip
        return
    yield Check("ok", "config parse", "config loaded successfully")
    yield checks.data_dir(settings)
    yield from checks.database(ctx, settings)
    yield checks.hash_key(ctx, settings)
    yield checks.encryption_key(ctx, settings)
    yield from _provider_checks(ctx, settings)
    yield checks.tls(settings)
    if settings.session.backend == "redis":
        yield checks.redis(settings)
    yield counters_info.check(settings)
    yield checks.proxy_status(settings)
    yield checks.python_runtime()
    if settings.remote.url:
        yield from remote_checks.remote(settings)
    yield from webhook_checks.webhooks(settings)


def _provider_checks(ctx: Context, settings: Settings) -> Iterator[Check]:
    try:
        providers = load_providers(
            cwd=ctx.cwd, home=ctx.home, data_dir=Path(settings.dir), inline=settings.providers
        )
    except TokenomicsError as exc:
        yield Check("fail", "providers", f"could not load providers: {exc}",
                    "correct the providers.yaml entry it names")  # fmt: skip
        return
    yield from checks.provider_keys(ctx, providers)
    yield checks.prices(providers)
