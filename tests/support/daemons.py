"""Helpers for tests of `start`/`stop`/`status`: the CLI as a real process, free ports, and
cleanup of any server a test left running."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from tokenomics.cli import pidfile, process
from tokenomics.domain.errors import PidFileError

HASH_KEY = "daemon-test-key"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def is_listening(port: int) -> bool:
    with socket.socket() as sock:
        sock.settimeout(1)
        return sock.connect_ex(("127.0.0.1", port)) == 0


def ping(url: str) -> int:
    with urllib.request.urlopen(url + "/ping", timeout=5) as response:
        status: int = response.status
        return status


@dataclass
class Done:
    code: int
    out: str
    err: str


@dataclass
class Daemons:
    """Runs `python -m tokenomics …` with an isolated HOME; kills leftover servers at the end."""

    home: Path
    cwd: Path
    pid_files: list[Path] = field(default_factory=list)
    records: list[pidfile.PidRecord] = field(default_factory=list)

    def env(self, **extra: str) -> dict[str, str]:
        return {**os.environ, "HOME": str(self.home), "TOKENOMICS_HASH_KEY": HASH_KEY, **extra}

    def popen(self, *args: str, env: dict[str, str] | None = None) -> subprocess.Popen[str]:
        return subprocess.Popen(
            [sys.executable, "-m", "tokenomics", *args], cwd=self.cwd, env=env or self.env(),
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        )  # fmt: skip

    def run(self, *args: str, env: dict[str, str] | None = None, timeout: float = 60) -> Done:
        child = self.popen(*args, env=env)
        out, err = child.communicate(timeout=timeout)
        self._remember(args)
        return Done(child.returncode, out, err)

    def _remember(self, args: tuple[str, ...]) -> None:
        path = self.home / ".tokenomics" / "tokenomics.pid"
        if "--pid-file" in args:
            path = self.cwd / args[args.index("--pid-file") + 1]
        self.pid_files.append(path)
        if (record := _read(path)) is not None:
            self.records.append(record)

    def cleanup(self) -> None:
        records = [*self.records, *filter(None, map(_read, self.pid_files))]
        for record in records:
            if record.start_time and process.identify(record) is process.Identity.OURS:
                os.kill(record.pid, signal.SIGKILL)


def _read(path: Path) -> pidfile.PidRecord | None:
    try:
        return pidfile.read(path)
    except PidFileError:
        return None


def _cmdline(pid: int) -> list[str]:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().decode().split("\0")
    except OSError:
        return []


def serve_processes(cwd: Path) -> list[int]:
    """PIDs of `tokenomics serve` processes running in `cwd` (this test's own only)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            same_dir = os.readlink(entry / "cwd") == str(cwd)
        except OSError:
            continue
        if same_dir and "serve" in _cmdline(int(entry.name)) and process.is_alive(int(entry.name)):
            found.append(int(entry.name))
    return found


@pytest.fixture
def daemons(home: Path, work: Path) -> Iterator[Daemons]:
    runner = Daemons(home, work)
    yield runner
    runner.cleanup()
