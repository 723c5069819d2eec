"""Files and directories only their owner can read: 0600 files in 0700 directories.

Every file Tokenomics writes (token store, SQLite's -wal/-shm, ledger, memory, logs, PID and
lock files, TLS keys and certificates) goes through these helpers, so its mode never depends
on the umask: new files are created 0600 (`O_CREAT` with 0600 can only lose bits to a umask,
never gain them), and a file or directory we own that is wider (from an older version, or
created by hand) is narrowed when we open it. Directories we create, parents included, are
0700; a directory that already exists is narrowed only when it is ours to own (`{dir}` and
its `sessions/`, `memory/`, `certs/`), never a parent the user chose (such as `/var/log`).
"""

from __future__ import annotations

import contextlib
import errno
import os
import stat
import tempfile
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from pathlib import Path

FILE_MODE = 0o600
DIR_MODE = 0o700


def _narrow(path: Path | int, mode: int, wanted: int) -> None:
    """Drop the group/other bits of a file or directory we own (others' are left alone)."""
    if stat.S_IMODE(mode) & ~wanted & 0o777:
        if isinstance(path, int):
            os.fchmod(path, stat.S_IMODE(mode) & wanted)
        else:
            os.chmod(path, stat.S_IMODE(mode) & wanted)


def private_dir(path: Path, *, owned: bool = False) -> Path:
    """`path` as a directory, creating it and its missing parents 0700.

    With `owned`, an existing `path` that we own is narrowed to 0700 too."""
    missing: list[Path] = []
    at = path
    while not at.exists() and at != at.parent:
        missing.append(at)
        at = at.parent
    for level in reversed(missing):
        with contextlib.suppress(FileExistsError):  # another process was quicker
            level.mkdir(mode=DIR_MODE)
            os.chmod(level, DIR_MODE)  # exact, whatever the umask
    info = path.stat()
    if not stat.S_ISDIR(info.st_mode):
        raise NotADirectoryError(errno.ENOTDIR, os.strerror(errno.ENOTDIR), str(path))
    if owned and not missing and info.st_uid == os.geteuid():
        _narrow(path, info.st_mode, DIR_MODE)
    return path


def narrow_file(path: Path) -> None:
    """Narrow an existing file of ours to 0600 without opening it: opening and closing a
    descriptor of an SQLite file drops every POSIX lock this process holds on it (its other
    connections' too), after which another process may reset the WAL under them."""
    info = path.stat()
    if info.st_uid == os.geteuid():
        _narrow(path, info.st_mode, FILE_MODE)


def open_private(path: Path, flags: int) -> int:
    """`os.open(path, flags | O_CREAT)` as a 0600 file; an existing file of ours is narrowed."""
    fd = os.open(path, flags | os.O_CREAT | os.O_CLOEXEC, FILE_MODE)
    try:
        info = os.fstat(fd)
        if info.st_uid == os.geteuid():
            _narrow(fd, info.st_mode, FILE_MODE)
    except BaseException:
        os.close(fd)
        raise
    return fd


def touch_private(path: Path) -> Path:
    """Create `path` (0600) if missing, or narrow it; for files others open after us."""
    os.close(open_private(path, os.O_WRONLY))
    return path


def write_atomic(path: Path, data: bytes, *, mode: int | None = FILE_MODE) -> None:
    """Replace `path` in one step with a file holding `data`: the one way Tokenomics writes a
    whole file (session JSON, PID file, certificates, settings of agents, remote state).

    A temporary file (`mkstemp`: 0600 from the start, whatever the umask) next to `path` is
    written, given its final mode, fsynced, renamed over `path`, and the directory fsynced so
    the rename survives a power loss too. `mode` None keeps the mode of an existing `path`
    (0600 for a new one). A symlink at `path` is followed: its target is replaced. On error
    the temporary file is removed and `path` is untouched."""
    path = path.resolve() if path.is_symlink() else path
    if mode is None:
        try:
            mode = stat.S_IMODE(path.stat().st_mode)
        except FileNotFoundError:
            mode = FILE_MODE
    fd, temp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as out:
            out.write(data)
            out.flush()
            if mode != FILE_MODE:
                os.fchmod(out.fileno(), mode)
            os.fsync(out.fileno())
        os.replace(temp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(temp)
        raise
    _fsync_dir(path.parent)


def _fsync_dir(path: Path) -> None:
    """Make a rename in `path` durable (best effort: some filesystems refuse)."""
    with contextlib.suppress(OSError):
        dir_fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)
