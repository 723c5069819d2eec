"""Where memory entries go on disk: file names from patterns, private modes, rotation.

Blocking file I/O, run on a worker thread by the ledger flusher. Files are created 0600 and
the directories this module creates 0700 (D18); directories that already exist are left as
they are (they may be the user's own).
"""

from __future__ import annotations

import gzip
import os
import shutil
from pathlib import Path
from typing import TYPE_CHECKING

from tokenomics.config.private_files import open_private, private_dir

if TYPE_CHECKING:
    from datetime import datetime

MIB = 1024 * 1024
DEFAULT_LIMIT_MB = 100
DEFAULT_PATTERN = "{token_hash}.md"
DEFAULT_DIR = "~/.tokenomics/memory"


class BadMemoryPath(ValueError):
    """A `file_name` pattern that would leave `file_path` (`..`, an absolute path)."""


def expand_home(path: str, home: Path) -> Path:
    """`~` and `~/…` against `home`; other paths as given."""
    if path == "~" or path.startswith("~/"):
        return home / path[2:]
    return Path(path)


def pattern_path(base: Path, pattern: str, hash16: str, moment: datetime) -> Path:
    """`base` joined with `pattern` after substitution; never outside `base`."""
    name = (
        pattern.replace("{token_hash}", hash16)
        .replace("{session_id}", hash16)
        .replace("{date}", moment.strftime("%Y-%m-%d"))
    )
    parts = name.replace("\\", "/").split("/")
    if name.startswith("/") or any(part in ("", ".", "..") for part in parts):
        raise BadMemoryPath(f"memory file_name {pattern!r} must name a file inside file_path")
    return base.joinpath(*parts)


def append(path: Path, data: bytes) -> None:
    """Append `data` to `path`, creating it 0600 (and its directories 0700) when missing."""
    private_dir(path.parent)
    fd = open_private(path, os.O_WRONLY | os.O_APPEND)
    try:
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view) :]
    finally:
        os.close(fd)


def size_of(path: Path) -> int:
    try:
        return path.stat().st_size
    except (FileNotFoundError, NotADirectoryError):
        return 0  # not there yet (the append reports a path that cannot be created)


def archive_name(path: Path, moment: datetime, compress: bool) -> Path:
    """`<base>.<YYYYMMDD-HHMMSS>.<ext>` (UTC), with `-2`, `-3`, … after the stamp when an
    archive of that second exists already (the original overwrote it)."""
    stamp = moment.strftime("%Y%m%d-%H%M%S")
    suffix = path.suffix
    stem = path.name[: len(path.name) - len(suffix)] if suffix else path.name
    counter = 1
    while True:
        tag = stamp if counter == 1 else f"{stamp}-{counter}"
        candidate = path.with_name(f"{stem}.{tag}{suffix}")
        gz = candidate.with_name(candidate.name + ".gz")
        if not candidate.exists() and not (compress and gz.exists()):
            return candidate
        counter += 1


def rotate(path: Path, moment: datetime, compress: bool) -> Path:
    """Move the full file aside (gzipped when `compress`, the plain copy removed); the next
    append starts a fresh file. Returns the archive's path."""
    target = archive_name(path, moment, compress)
    os.replace(path, target)
    if not compress:
        return target
    gz = target.with_name(target.name + ".gz")
    fd = os.open(gz, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600)
    with (
        open(target, "rb") as source,
        open(fd, "wb") as raw,
        gzip.GzipFile(filename=target.name, mode="wb", fileobj=raw) as out,
    ):
        shutil.copyfileobj(source, out, MIB)
    target.unlink()
    return gz


def limit_bytes(max_size_mb: int, compress_old: bool) -> int | None:
    """The rotation limit (`cli.md` §7.7): None when rotation is off or unlimited."""
    if max_size_mb == 0 and not compress_old:
        return None
    if max_size_mb < 0:
        return None
    return (max_size_mb or DEFAULT_LIMIT_MB) * MIB
