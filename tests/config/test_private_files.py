"""`write_atomic`, the one way a whole file is written: 0600 whatever the umask, the mode of
an existing file kept when asked, symlinks followed, nothing left behind on success or
failure, and the old content intact when the write fails."""

from __future__ import annotations

import os
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest

from tokenomics.config.private_files import write_atomic


@pytest.fixture
def open_umask() -> Iterator[None]:
    old = os.umask(0)  # the widest: a helper relying on the umask would create 0666
    try:
        yield
    finally:
        os.umask(old)


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    """A directory of the test's own (the suite's fixtures put other things in tmp_path)."""
    path = tmp_path / "folder"
    path.mkdir()
    return path


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_a_new_file_is_0600_whatever_the_umask(folder: Path, open_umask: None) -> None:
    path = folder / "state.json"
    write_atomic(path, b"{}")
    assert path.read_bytes() == b"{}" and mode(path) == 0o600
    assert os.listdir(folder) == ["state.json"]  # no temporary file left


def test_an_existing_wider_file_is_narrowed_by_default(folder: Path) -> None:
    path = folder / "ca.pem"
    path.write_bytes(b"old")
    path.chmod(0o644)
    write_atomic(path, b"new")
    assert path.read_bytes() == b"new" and mode(path) == 0o600


def test_mode_none_keeps_an_existing_files_mode_and_gives_a_new_one_0600(folder: Path) -> None:
    kept, new = folder / ".env", folder / "new.env"
    kept.write_bytes(b"A=1\n")
    kept.chmod(0o640)
    write_atomic(kept, b"A=2\n", mode=None)
    write_atomic(new, b"B=1\n", mode=None)
    assert (mode(kept), mode(new)) == (0o640, 0o600)


def test_a_symlink_is_followed_and_kept(folder: Path) -> None:
    target = folder / "real.json"
    target.write_bytes(b"old")
    link = folder / "link.json"
    link.symlink_to(target)
    write_atomic(link, b"new")
    assert link.is_symlink() and target.read_bytes() == b"new"


def test_a_failed_replace_leaves_the_old_content_and_no_temporary_file(folder: Path) -> None:
    path = folder / "occupied"
    path.mkdir()  # a directory cannot be replaced by a file
    (path / "inside").write_bytes(b"kept")
    with pytest.raises(OSError):
        write_atomic(path, b"data")
    assert sorted(os.listdir(folder)) == ["occupied"]
    assert (path / "inside").read_bytes() == b"kept"


def test_a_missing_directory_is_an_error_not_a_partial_file(folder: Path) -> None:
    with pytest.raises(FileNotFoundError):
        write_atomic(folder / "absent" / "file", b"x")
    assert os.listdir(folder) == []
