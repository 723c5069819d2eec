"""`tokenomics stop`: stop the background proxy of a PID file (`cli.md` §3.2 with §3.4, D23).

Only a process confirmed to be our server is signalled (same start time as recorded, or its
`/health` reports that PID): SIGTERM, then SIGKILL after `--timeout` seconds. A PID file whose
process exited or now belongs to another program is removed without signalling anything. There
is no process-table scan.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated

from cyclopts import Parameter

from tokenomics.cli import daemon, pidfile, process
from tokenomics.cli.context import Context
from tokenomics.cli.process import Identity
from tokenomics.domain.errors import ConfigError, StartError

if TYPE_CHECKING:
    from pathlib import Path

STOP_TIMEOUT = 15.0  # longer than the server's default shutdown grace (10 s)


def stop(
    *,
    pid_file: Annotated[
        str, Parameter(help="PID file (default: {dir}/tokenomics.pid).", show_default=False)
    ] = "",
    timeout: Annotated[
        float, Parameter(help="Seconds to wait after SIGTERM before SIGKILL.")
    ] = STOP_TIMEOUT,
    ctx: Annotated[Context, Parameter(parse=False)],
) -> None:
    """Stop the proxy started by `tokenomics start` (graceful, then forced after --timeout)."""
    path = pid_path(ctx, pid_file)
    with pidfile.locked(path):
        record = pidfile.read(path)
        if record is None:
            ctx.stderr.write(f"Proxy not running (no PID file at {path})\n")
            return
        identity = process.identify(record, _default_url(ctx))
        if identity is not Identity.OURS:
            pidfile.remove(path)
            reason = process.describe(identity, record.pid)
            ctx.stderr.write(f"Proxy not running (removed stale PID file {path}: {reason})\n")
            return
        graceful = process.terminate(record.pid, grace=max(timeout, 0.0))
        pidfile.remove(path)
    verb = "stopped" if graceful else "killed"
    ctx.stderr.write(f"Proxy {verb} (PID {record.pid})\n")


def _default_url(ctx: Context) -> str:
    """Where `start` with default flags listens: the probe for an old-style PID file."""
    try:
        return daemon.choose_listener(ctx.settings(), "", None, None).url
    except (ConfigError, StartError):
        return ""


def pid_path(ctx: Context, pid_file: str = "") -> Path:
    """`--pid-file`, else `{dir}/tokenomics.pid` (settings are loaded only then)."""
    if pid_file:
        return daemon.user_path(pid_file, ctx.cwd, ctx.cwd)
    return ctx.settings().pid_file
