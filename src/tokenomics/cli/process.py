"""Processes seen from the CLI: start time, liveness, identity of our server, and stopping it.

Only one process is ever looked at, by PID: no scans of the process table. A process counts as
our server when it is alive and either its start time equals the one recorded when `start`
spawned it, or the proxy URL's `/health` answers with its PID (`x-tokenomics-pid`).
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import time
from dataclasses import dataclass
from enum import Enum
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

from tokenomics.domain.errors import UpstreamError
from tokenomics.upstream.fetch import fetch_blocking, unverified_context

if TYPE_CHECKING:
    from tokenomics.cli.pidfile import PidRecord

PID_HEADER = "x-tokenomics-pid"
POLL = 0.1


class Identity(Enum):
    OURS = "ours"  # our server: safe to signal
    GONE = "gone"  # the recorded process exited
    REUSED = "reused"  # the PID now belongs to another program
    FOREIGN = "foreign"  # alive, but nothing confirms it is our server


@dataclass(frozen=True, slots=True)
class ProcInfo:
    state: str  # one letter, `Z` for a zombie
    start_time: str


def _proc_info(pid: int) -> ProcInfo | None:
    """State and start time from /proc (Linux), else from `ps` for this one PID."""
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii", errors="replace") as file:
            text = file.read()
    except FileNotFoundError:
        if os.path.isdir("/proc/self"):
            return None
        return _ps_info(pid)
    except OSError:
        return None
    fields = text[text.rfind(")") + 2 :].split()
    if len(fields) < 20:
        return None
    return ProcInfo(fields[0], f"proc:{fields[19]}")


def _ps_info(pid: int) -> ProcInfo | None:
    try:
        result = subprocess.run(
            ["ps", "-o", "stat=", "-o", "lstart=", "-p", str(pid)],
            capture_output=True, text=True, timeout=5, check=False,
        )  # fmt: skip
    except (OSError, subprocess.SubprocessError):
        return None
    parts = result.stdout.split(None, 1)
    if result.returncode != 0 or len(parts) != 2:
        return None
    return ProcInfo(parts[0][:1], "ps:" + " ".join(parts[1].split()))


def start_time(pid: int) -> str:
    """The process start time as an opaque text ("" when it cannot be read)."""
    info = _proc_info(pid)
    return info.start_time if info else ""


def is_alive(pid: int) -> bool:
    """Running (a zombie waiting to be reaped counts as gone)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass  # exists, owned by someone else
    info = _proc_info(pid)
    return info is None or info.state != "Z"


def probe_host(host: str) -> str:
    """Where to connect for a listener bound to `host` (wildcards mean this machine)."""
    host = host.strip("[]")
    if host in ("", "0.0.0.0", "localhost"):
        return "127.0.0.1"
    return "::1" if host == "::" else host


def health_pid(url: str, timeout: float = 1.0) -> int | None:
    """The PID a Tokenomics `/health` at `url` reports; None when no Tokenomics answers."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname or not parts.port:
        return None
    host = probe_host(parts.hostname)
    host = f"[{host}]" if ":" in host else host
    context = unverified_context()  # our own proxy, maybe with a self-signed certificate
    try:
        fetched = fetch_blocking(
            "GET", f"{parts.scheme}://{host}:{parts.port}/health", within=timeout,
            ssl_context=context, trust_env=False,
        )  # fmt: skip
    except UpstreamError:
        return None
    value = fetched.header(PID_HEADER.lower()) if fetched.status == 200 else ""
    return int(value) if value.isdigit() else None


def identify(record: PidRecord, url: str = "") -> Identity:
    """Whether the PID file's process is our server (`url` is used when the file has none)."""
    if not is_alive(record.pid):
        return Identity.GONE
    if record.start_time:
        if start_time(record.pid) == record.start_time:
            return Identity.OURS
        return Identity.REUSED
    probe_url = record.url or url
    if probe_url and health_pid(probe_url) == record.pid:
        return Identity.OURS
    return Identity.FOREIGN


def describe(identity: Identity, pid: int) -> str:
    """Why a PID file is stale, for messages."""
    return {
        Identity.OURS: f"PID {pid} is our server",
        Identity.GONE: f"PID {pid} is not running",
        Identity.REUSED: f"PID {pid} now belongs to another program",
        Identity.FOREIGN: f"PID {pid} is not a Tokenomics server",
    }[identity]


def wait_gone(pid: int, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while is_alive(pid):
        if time.monotonic() >= deadline:
            return False
        time.sleep(POLL)
    return True


def terminate(pid: int, grace: float, kill_wait: float = 5.0) -> bool:
    """SIGTERM, wait up to `grace` seconds, then SIGKILL. True if it ended on SIGTERM."""
    try:
        os.kill(pid, signal.SIGTERM)
    except ProcessLookupError:
        return True
    if wait_gone(pid, grace):
        return True
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGKILL)
    wait_gone(pid, kill_wait)
    return False
