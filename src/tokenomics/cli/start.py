"""`tokenomics start`: run the proxy in the background (`cli.md` §3.1 with the §3.4 fixes, D23).

Under the PID file's lock: an existing server is reported (not started twice), a stale PID file
is replaced, and a new `serve` is spawned detached and waited for until its `/health` answers
with its own PID. A child that fails (busy port, missing key, bad config) is reported with its
own error line, and nothing is left behind: no process, no PID file.
"""

from __future__ import annotations

import contextlib
from pathlib import Path
from typing import Annotated, Any

from cyclopts import Parameter

from tokenomics.cli import daemon, pidfile, process
from tokenomics.cli.context import Context
from tokenomics.cli.pidfile import PidRecord
from tokenomics.cli.process import Identity
from tokenomics.config.private_files import private_dir
from tokenomics.domain.errors import PidFileError


def _opt(text: str, **more: Any) -> Parameter:
    return Parameter(help=text, show_default=False, **more)


def start(
    *,
    host: Annotated[str, _opt("Address to listen on (default: server.host, 127.0.0.1).")] = "",
    port: Annotated[
        int | None, _opt("Port (default: server.http_port 8080, with --tls server.https_port).")
    ] = None,
    tls: Annotated[bool | None, _opt("Serve HTTPS only (default: plain HTTP).")] = None,
    insecure: Annotated[
        bool, _opt("Accepted for compatibility: readiness probes never verify TLS.", negative="")
    ] = False,
    pid_file: Annotated[str, _opt("PID file (default: {dir}/tokenomics.pid).")] = "",
    log_file: Annotated[str, _opt("Log file for the server (default: {dir}/tokenomics.log).")] = "",
    ctx: Annotated[Context, Parameter(parse=False)],
) -> None:
    """Start the proxy in the background and print its URL on stdout.

    Use: export TOKENOMICS_PROXY_URL=$(tokenomics start). If a proxy started this way is
    already running, its URL is printed again. Stop it with `tokenomics stop`.
    """
    del insecure
    ctx.hash_key()  # D7: refuse before spawning anything
    settings = ctx.settings()
    listener = daemon.choose_listener(settings, host, port, tls)
    pid_path = daemon.user_path(pid_file, ctx.cwd, settings.pid_file)
    log_path = daemon.user_path(log_file, ctx.cwd, Path(settings.logging.file.path))
    with pidfile.locked(pid_path):
        running = _running_url(ctx, pid_path, listener.url)
        if running:
            ctx.stderr.write(
                f"Proxy already running: {running}. Use 'tokenomics stop' to stop it.\n"
            )
            ctx.stdout.write(running + "\n")
            return
        if not log_file:
            private_dir(Path(settings.dir), owned=True)
        _launch(ctx, listener, pid_path, log_path)
    ctx.stderr.write(f"Proxy started: {listener.url}\n")
    ctx.stdout.write(listener.url + "\n")


def _running_url(ctx: Context, pid_path: Path, url: str) -> str:
    """The URL of a server already running for this PID file (or on `url`), else ""."""
    try:
        record = pidfile.read(pid_path)
    except PidFileError as exc:
        ctx.stderr.write(f"Replacing unreadable PID file: {exc}\n")
        record = None
    if record is not None:
        identity = process.identify(record, url)
        if identity is Identity.OURS:
            return record.url or url
        pidfile.remove(pid_path)
        reason = process.describe(identity, record.pid)
        ctx.stderr.write(f"Removed stale PID file {pid_path} ({reason})\n")
    return url if process.health_pid(url) is not None else ""


def _global_flags(ctx: Context) -> list[str]:
    flags = [("--config", ctx.config), ("--db", ctx.db), ("--dir", ctx.dir)]
    return [part for flag, value in flags if value for part in (flag, value)]


def _launch(ctx: Context, listener: daemon.Listener, pid_path: Path, log_path: Path) -> None:
    argv = [*daemon.program(), *_global_flags(ctx), "serve"]
    environ = {**ctx.environ, **listener.environ()}
    pid, offset = daemon.spawn(argv, environ, log_path)
    try:
        pidfile.write(pid_path, PidRecord(pid, process.start_time(pid), listener.url))
        daemon.wait_ready(pid, listener.url, log_path, offset, daemon.READY_TIMEOUT)
    except BaseException:
        with contextlib.suppress(OSError):
            if daemon.exit_status(pid) is None:
                process.terminate(pid, grace=5)
                daemon.exit_status(pid)
        with contextlib.suppress(PidFileError):
            pidfile.remove(pid_path)
        raise
