"""Spawning `tokenomics serve` detached, and waiting until it answers as our server.

The child is this same program (`python -m tokenomics`, or the zipapp that is running), in its
own session, with stdin from /dev/null and stdout/stderr appended to the log file. Its listener
comes from `TOKENOMICS_SERVER_*` variables, so it needs no flags beyond the global ones.
"""

from __future__ import annotations

import os
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import tokenomics
from tokenomics.cli import process
from tokenomics.config.private_files import open_private, private_dir
from tokenomics.domain.errors import StartError

if TYPE_CHECKING:
    from tokenomics.config.settings import Settings

READY_TIMEOUT = 30.0  # seconds for a new server to answer /health


@dataclass(frozen=True, slots=True)
class Listener:
    host: str
    port: int
    tls: bool

    @property
    def url(self) -> str:
        host = process.probe_host(self.host)
        host = f"[{host}]" if ":" in host else host
        return f"{'https' if self.tls else 'http'}://{host}:{self.port}"

    def environ(self) -> dict[str, str]:
        """The server settings of this listener; TLS mode opens no plain HTTP port."""
        port = str(self.port)
        return {
            "TOKENOMICS_SERVER_HOST": self.host,
            "TOKENOMICS_SERVER_TLS_ENABLED": "true" if self.tls else "false",
            "TOKENOMICS_SERVER_HTTP_PORT": "0" if self.tls else port,
            **({"TOKENOMICS_SERVER_HTTPS_PORT": port} if self.tls else {}),
        }


def program() -> list[str]:
    """How to run this program again: `python -m tokenomics` from an installed package or a
    checkout, else the zipapp file this interpreter is running."""
    package = Path(tokenomics.__file__).parent
    if (package / "__main__.py").is_file():
        return [sys.executable, "-m", "tokenomics"]
    return [sys.executable, os.path.abspath(sys.argv[0])]


def spawn(argv: list[str], environ: dict[str, str], log_path: Path) -> tuple[int, int]:
    """Start `argv` detached with output appended to `log_path`; (pid, log size before)."""
    try:
        private_dir(log_path.parent)
        log_fd = open_private(log_path, os.O_WRONLY | os.O_APPEND)
    except OSError as exc:
        raise StartError(f"open log file {log_path}: {exc.strerror or exc}") from None
    try:
        offset = os.fstat(log_fd).st_size
        actions = [
            (os.POSIX_SPAWN_OPEN, 0, os.devnull, os.O_RDONLY, 0),
            (os.POSIX_SPAWN_DUP2, log_fd, 1),
            (os.POSIX_SPAWN_DUP2, log_fd, 2),
        ]
        pid = os.posix_spawn(argv[0], argv, environ, file_actions=actions, setsid=True)
    except OSError as exc:
        raise StartError(f"start proxy: {exc.strerror or exc}") from None
    finally:
        os.close(log_fd)
    return pid, offset


def exit_status(pid: int) -> int | None:
    """The exit code of our child `pid` once it ended (reaping it), else None."""
    try:
        done, status = os.waitpid(pid, os.WNOHANG)
    except ChildProcessError:
        return -1
    return os.waitstatus_to_exitcode(status) if done else None


def child_error(log_path: Path, offset: int) -> str:
    """The child's `Error: …` line from what it wrote to the log (else its last line)."""
    try:
        with log_path.open("rb") as file:
            file.seek(offset)
            text = file.read(64 * 1024).decode("utf-8", errors="replace")
    except OSError:
        return ""
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    errors = [line.removeprefix("Error:").strip() for line in lines if line.startswith("Error:")]
    return errors[-1] if errors else (lines[-1] if lines else "")


def wait_ready(pid: int, url: str, log_path: Path, offset: int, timeout: float) -> None:
    """Until `url` answers as server `pid`; StartError (child stopped) when it exits or hangs."""
    deadline = time.monotonic() + timeout
    while True:
        code = exit_status(pid)
        if code is not None:
            reason = child_error(log_path, offset) or f"it exited with status {code}"
            raise StartError(f"proxy failed to start: {reason} (log: {log_path})")
        if process.health_pid(url, timeout=0.5) == pid:
            return
        if time.monotonic() >= deadline:
            process.terminate(pid, grace=5)
            exit_status(pid)
            raise StartError(
                f"proxy failed to start within {timeout:g} seconds: {url} did not answer "
                f"(log: {log_path})"
            )
        time.sleep(process.POLL)


def choose_listener(settings: Settings, host: str, port: int | None, tls: bool | None) -> Listener:
    """The flags over the configuration. Plain HTTP on `server.http_port` unless --tls (or the
    HTTP port is disabled and TLS is on), as `init` and `run` assume; HTTPS uses
    `server.https_port`."""
    server = settings.server
    if tls is None:
        tls = server.http_port == 0 and server.tls.enabled
    port = port if port is not None else server.https_port if tls else server.http_port
    if not 0 < port < 65536:
        raise StartError(f"invalid port {port}: use --port with a value from 1 to 65535")
    return Listener(host or server.host, port, tls)


def user_path(value: str, cwd: Path, default: Path) -> Path:
    """A path flag (relative to the working directory), else `default`."""
    return cwd / Path(value).expanduser() if value else default
