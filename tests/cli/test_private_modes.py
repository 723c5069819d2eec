"""Every file Tokenomics writes is 0600 and every directory 0700, whatever the umask.

Real processes with the umask set (0o022, the usual one, and 0o000, the most permissive): a
token is created, `run --tls` sends a request through its in-process proxy (TLS files, ledger,
memory), `start` runs a background server with the log file and the debug proxy log on (PID
file, its lock, SQLite's -wal/-shm while the server holds the store open), then `stop`. The
data directory exists beforehand as 0755 and is narrowed. The whole tree is walked twice:
while the server runs and after it stopped.
"""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest
from tests.support.daemons import HASH_KEY, free_port

from tokenomics.config.private_files import open_private, private_dir, touch_private

ROOT = Path(__file__).resolve().parents[2]
POLICY = '{"default_provider": "mock"}'


def tokenomics(umask: int, env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    done = subprocess.run(
        [sys.executable, "-m", "tokenomics", *args], env=env, umask=umask, capture_output=True,
        text=True, timeout=60, check=False,
    )  # fmt: skip
    assert done.returncode == 0, (args, done.stderr)
    return done


def wrong_modes(top: Path) -> list[str]:
    """Every path under `top` (itself included) whose mode is not 0600 (file) / 0700 (dir)."""
    wrong = []
    for path in [top, *sorted(top.rglob("*"))]:
        info = path.lstat()
        wanted = 0o700 if stat.S_ISDIR(info.st_mode) else 0o600
        if stat.S_IMODE(info.st_mode) != wanted:
            wrong.append(f"{path.relative_to(top)}: {stat.S_IMODE(info.st_mode):04o}")
    return wrong


@pytest.mark.slow
@pytest.mark.parametrize("umask", [0o022, 0o000], ids=["umask022", "umask000"])
def test_every_file_written_is_private(umask: int, home: Path, work: Path) -> None:
    data = work / "data"
    data.mkdir()
    data.chmod(0o755)
    env = {
        **os.environ, "HOME": str(home), "TOKENOMICS_HASH_KEY": HASH_KEY,
        "TOKENOMICS_LOGGING_FILE_ENABLED": "true", "TOKENOMICS_LOGGING_LEVEL": "debug",
    }  # fmt: skip
    created = tokenomics(umask, env, "--dir", str(data), "token", "create", "--json", "--policy",
                         POLICY)  # fmt: skip
    token = json.loads(created.stdout)["token"]
    hello = str(ROOT / "examples" / "hello.py")
    tokenomics(umask, env, "run", "--dir", str(data), "--tls", "--token", token, sys.executable,
               hello)  # fmt: skip
    port = str(free_port())
    tokenomics(umask, env, "--dir", str(data), "start", "--port", port)
    try:
        seen = {p.name for p in data.rglob("*")}
        running = wrong_modes(data)
    finally:
        tokenomics(umask, env, "--dir", str(data), "stop")
    expected = {"tokenomics.db", "tokenomics.db-wal", "tokenomics.db-shm", "tokenomics.pid",
                "tokenomics.pid.lock", "tokenomics.log", "proxy.log", "sessions", "memory",
                "certs", "ca.crt", "ca.key", "server.crt", "server.key"}  # fmt: skip
    assert expected <= seen
    assert any(name.endswith(".json") for name in seen)  # run's session
    assert any(name.endswith(".md") for name in seen)  # run's memory file
    assert running == []
    assert wrong_modes(data) == []


def test_helpers_narrow_what_exists_and_create_private(tmp_path: Path) -> None:
    previous = os.umask(0)
    try:
        loose = tmp_path / "loose.log"
        loose.write_text("old")
        loose.chmod(0o666)
        os.close(open_private(loose, os.O_WRONLY | os.O_APPEND))
        assert stat.S_IMODE(loose.stat().st_mode) == 0o600
        nested = private_dir(tmp_path / "a" / "b" / "c")
        assert [stat.S_IMODE(p.stat().st_mode) for p in (nested.parent.parent, nested)] == [
            0o700,
            0o700,
        ]
        mine = tmp_path / "mine"
        mine.mkdir(mode=0o755)
        private_dir(mine)
        assert stat.S_IMODE(mine.stat().st_mode) == 0o755  # not ours to narrow unless owned
        private_dir(mine, owned=True)
        assert stat.S_IMODE(mine.stat().st_mode) == 0o700
        assert stat.S_IMODE(touch_private(tmp_path / "new").stat().st_mode) == 0o600
        with pytest.raises(NotADirectoryError):
            private_dir(loose, owned=True)
        assert stat.S_IMODE(loose.stat().st_mode) == 0o600
    finally:
        os.umask(previous)
