"""`/admin/api/memory/files…`: the files under `{dir}/memory`, listed and read, never anything
outside it. A path is refused (400) when it has `..`, `.`, empty or absolute parts, a
backslash, NUL or `%`; then it is opened one component at a time relative to the directory
opened before it, with `O_NOFOLLOW`, so no symlink (planted anywhere below the memory
directory) and no rename race can lead elsewhere. Blocking I/O: call from a worker thread."""

from __future__ import annotations

import contextlib
import gzip
import io
import os
import stat
import zlib
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import trio

from tokenomics.domain.errors import AdminError
from tokenomics.services.admin.http import Request, Response, json_response
from tokenomics.services.admin.router import Route, route

if TYPE_CHECKING:
    import re
    from pathlib import Path

MAX_CONTENT = 1024 * 1024
MAX_PATH = 1024
MAX_FILES = 10_000
_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
_FILE_FLAGS = os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC | os.O_NONBLOCK


def _mod_time(seconds: float) -> str:
    return datetime.fromtimestamp(seconds, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def list_files(root: Path) -> list[dict[str, Any]]:
    """Every regular file below `root` (symlinks neither followed nor listed), newest first."""
    found: list[dict[str, Any]] = []
    for directory, dirs, files in os.walk(root, followlinks=False):
        dirs[:] = [d for d in dirs if not os.path.islink(os.path.join(directory, d))]
        for name in files:
            path = os.path.join(directory, name)
            with contextlib.suppress(OSError):
                st = os.lstat(path)
                if stat.S_ISREG(st.st_mode):
                    relative = os.path.relpath(path, root).replace(os.sep, "/")
                    found.append({"path": relative, "size": st.st_size, "mtime": st.st_mtime})
        if len(found) >= MAX_FILES:
            break
    found.sort(key=lambda f: (-f["mtime"], f["path"]))
    return [{"path": f["path"], "size": f["size"], "mod_time": _mod_time(f["mtime"])}
            for f in found]  # fmt: skip


def safe_parts(path: str) -> list[str]:
    """The components of a relative path, or 400 `invalid file path`."""
    parts = path.split("/")
    bad = not path or len(path) > MAX_PATH or path.startswith("/")
    bad = bad or any(c in path for c in ("\\", "\x00", "%"))
    if bad or any(part in ("", ".", "..") for part in parts):
        raise AdminError(400, "invalid file path")
    return parts


def _open_below(root: Path, parts: list[str]) -> int:
    """A descriptor of the regular file `root/parts…`, no component followed as a symlink."""
    fd = os.open(root, _DIR_FLAGS)
    try:
        for part in parts[:-1]:
            child = os.open(part, _DIR_FLAGS, dir_fd=fd)
            os.close(fd)
            fd = child
        return os.open(parts[-1], _FILE_FLAGS, dir_fd=fd)
    finally:
        os.close(fd)


def _text(data: bytes, gz: bool) -> tuple[str, bool]:
    if gz:
        try:
            with gzip.GzipFile(fileobj=io.BytesIO(data)) as f:
                data = f.read(MAX_CONTENT + 1)
        except (OSError, EOFError, zlib.error):
            raise AdminError(422, "file is not valid gzip") from None
    truncated = len(data) > MAX_CONTENT
    return data[:MAX_CONTENT].decode("utf-8", errors="replace"), truncated


def read_file(root: Path, path: str) -> dict[str, Any]:
    parts = safe_parts(path)
    try:
        fd = _open_below(root, parts)
    except OSError:  # missing, a symlink (ELOOP), a directory on the way that is a file, …
        raise AdminError(404, "file not found") from None
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise AdminError(404, "file not found")
        gz = path.endswith(".gz")
        limit = 16 * MAX_CONTENT if gz else MAX_CONTENT + 1  # compressed text: 16x at most read
        with os.fdopen(os.dup(fd), "rb") as f:
            data = f.read(limit)
    finally:
        os.close(fd)
    content, truncated = _text(data, gz)
    truncated = truncated or (not gz and st.st_size > MAX_CONTENT)
    return {"path": path, "size": st.st_size, "content": content, "truncated": truncated}


def routes(root: Path) -> list[Route]:
    async def listing(_request: Request, _match: re.Match[str]) -> Response:
        files = await trio.to_thread.run_sync(list_files, root)
        return json_response(200, {"count": len(files), "files": files})

    async def one(_request: Request, match: re.Match[str]) -> Response:
        return json_response(200, await trio.to_thread.run_sync(read_file, root, match["path"]))

    return [
        route("GET", "/memory/files", listing),
        route("GET", "/memory/files/(?P<path>.*)", one),
    ]
