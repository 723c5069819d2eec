"""The daemon's PID file: what `start` writes and `stop`, `status` and `doctor` read (D23).

Format: the PID on the first line (so `kill $(head -1 tokenomics.pid)` keeps working), then
`key=value` lines: `start=` the process start time (to tell PID reuse apart) and `url=` the
proxy URL. A file holding only a number (the original's format) is read too. Writes are atomic
(temporary file + rename) and happen under an exclusive `flock` on `<pid file>.lock`, which
also serialises concurrent `start` and `stop` runs.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from tokenomics.config.private_files import open_private, private_dir, write_atomic
from tokenomics.domain.errors import PidFileError

if TYPE_CHECKING:
    from collections.abc import Iterator

LOCK_TIMEOUT = 60.0  # seconds; a `start` holds the lock while its server comes up


@dataclass(frozen=True, slots=True)
class PidRecord:
    pid: int
    start_time: str = ""  # "" when unknown (an old-style file)
    url: str = ""


def parse(text: str, path: Path) -> PidRecord:
    lines = text.strip().splitlines()
    first = lines[0].strip() if lines else ""
    if not first.isdigit() or int(first) <= 0:
        raise PidFileError(
            f"read PID file {path}: {first[:40]!r} is not a process id "
            f"(remove the file if no proxy is running: rm {path})"
        )
    fields = dict(line.split("=", 1) for line in lines[1:] if "=" in line)
    return PidRecord(int(first), fields.get("start", "").strip(), fields.get("url", "").strip())


def format_record(record: PidRecord) -> str:
    extra = [f"start={record.start_time}"] if record.start_time else []
    extra += [f"url={record.url}"] if record.url else []
    return "\n".join([str(record.pid), *extra]) + "\n"


def read(path: Path) -> PidRecord | None:
    """The record in `path`, None when there is no file; PidFileError when it is unreadable."""
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise PidFileError(f"read PID file {path}: {exc.strerror or exc}") from None
    return parse(text, path)


def write(path: Path, record: PidRecord) -> None:
    """Atomically replace `path` (0600) with `record`."""
    try:
        private_dir(path.parent)
        write_atomic(path, format_record(record).encode())
    except OSError as exc:
        raise PidFileError(f"write PID file {path}: {exc.strerror or exc}") from None


def remove(path: Path) -> None:
    try:
        path.unlink(missing_ok=True)
    except OSError as exc:
        raise PidFileError(f"remove PID file {path}: {exc.strerror or exc}") from None


@contextlib.contextmanager
def locked(path: Path, timeout: float = LOCK_TIMEOUT) -> Iterator[None]:
    """Hold the exclusive lock that guards `path` (waiting up to `timeout` seconds)."""
    lock_path = path.with_name(path.name + ".lock")
    try:
        private_dir(path.parent)
        fd = open_private(lock_path, os.O_RDWR)
    except OSError as exc:
        raise PidFileError(f"open lock file {lock_path}: {exc.strerror or exc}") from None
    try:
        deadline = time.monotonic() + timeout
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    raise PidFileError(
                        f"another tokenomics start/stop holds {lock_path}; try again when it ends"
                    ) from None
                time.sleep(0.1)
        yield
    finally:
        os.close(fd)  # closing releases the lock
