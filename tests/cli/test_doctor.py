"""`tokenomics doctor` (`cli.md` §5.1, scenarios 63-65, D23): the line format, exit 1 with a
fix on every failing check, and no side effects."""

from __future__ import annotations

import json
import os
import socket
import sqlite3
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from tests.conftest import Result
from tests.support.daemons import free_port

from tokenomics.cli import pidfile

Cli = Callable[..., Result]


def check_line(out: str, name: str) -> str:
    lines = [line for line in out.splitlines() if line[7:].startswith(name + " ")]
    assert len(lines) == 1, out
    return lines[0]


def test_healthy_setup_passes_with_exit_0(
    cli: Cli, monkeypatch: pytest.MonkeyPatch, home: Path
) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test")
    monkeypatch.setenv("TOKENOMICS_ENCRYPTION_KEY", "e" * 32)
    assert cli("token", "create", "--policy", '{"base_key_env":"OPENAI_API_KEY"}').code == 0
    result = cli("doctor")
    assert result.code == 0, result.out
    assert check_line(result.out, "hash key") == (
        "[ok]   hash key           $TOKENOMICS_HASH_KEY is set"
    )
    assert check_line(result.out, "database").startswith("[ok]   database           found ")
    assert "(1 token(s))" in result.out
    assert check_line(result.out, "store schema").startswith("[ok]   store schema       version ")
    assert check_line(result.out, "price table").startswith("[ok]   price table        ")
    assert check_line(result.out, "proxy status").endswith("no background proxy running")
    assert "[FAIL]" not in result.out and "sk-test" not in result.out
    assert result.out.endswith("\n\nAll checks passed with 2 warning(s)\n")  # config, providers


def test_doctor_changes_nothing_on_a_fresh_home(cli: Cli, home: Path) -> None:
    result = cli("doctor")
    assert result.code == 0, result.out
    assert check_line(result.out, "config file").endswith("no config.yaml found, using defaults")
    assert check_line(result.out, "database").startswith("[!!]   database")
    assert not (home / ".tokenomics").exists()


def test_missing_hash_key_fails_with_the_fix(cli: Cli, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("TOKENOMICS_HASH_KEY")
    result = cli("doctor")
    assert result.code == 1
    line = check_line(result.out, "hash key")
    assert line.startswith("[FAIL] hash key           $TOKENOMICS_HASH_KEY not set")
    assert "; fix: export TOKENOMICS_HASH_KEY=$(openssl rand -hex 32)" in line
    assert result.out.endswith("\n\n1 check(s) failed, 4 warning(s)\n")  # config, db, keys


def test_missing_config_file_fails(cli: Cli) -> None:
    result = cli("--config", "missing.yaml", "doctor")
    assert result.code == 1
    assert result.out.startswith("[FAIL] config file        missing.yaml not found; fix: ")
    assert result.out.endswith("\n\n1 check(s) failed, 0 warning(s)\n")


def test_bad_config_fails_with_the_key(cli: Cli, work: Path) -> None:
    (work / "config.yaml").write_text("server:\n  http_port: lots\n")
    result = cli("doctor")
    assert result.code == 1
    line = check_line(result.out, "config parse")
    assert line.startswith("[FAIL] config parse       could not parse config: ")
    assert "http_port" in line and "; fix: " in line


def test_newer_schema_fails_and_says_to_upgrade(cli: Cli, home: Path) -> None:
    (home / ".tokenomics").mkdir()
    with sqlite3.connect(home / ".tokenomics" / "tokenomics.db") as conn:
        conn.execute("PRAGMA user_version = 99")
    result = cli("doctor")
    assert result.code == 1
    line = check_line(result.out, "store schema")
    assert line.startswith("[FAIL]") and "schema version 99" in line
    assert "; fix: install a newer Tokenomics" in line


def test_a_file_that_is_not_a_database_fails(cli: Cli, home: Path) -> None:
    (home / ".tokenomics").mkdir()
    (home / ".tokenomics" / "tokenomics.db").write_bytes(b"this is not sqlite" * 100)
    result = cli("doctor")
    assert result.code == 1
    line = check_line(result.out, "database")
    assert line.startswith("[FAIL] database           cannot open: ")
    assert "; fix: move " in line


def test_a_data_dir_that_is_a_file_fails(cli: Cli, work: Path) -> None:
    (work / "data").write_text("")
    result = cli("--dir", "data", "doctor")
    assert result.code == 1
    assert check_line(result.out, "data dir").startswith(
        f"[FAIL] data dir           {work / 'data'} is not a directory; fix: "
    )


@pytest.mark.skipif(os.geteuid() == 0, reason="root can write anywhere")
def test_an_unwritable_data_dir_fails(cli: Cli, work: Path) -> None:
    (work / "data").mkdir(mode=0o500)
    result = cli("--dir", "data", "doctor")
    assert result.code == 1
    assert "; fix: chmod u+rwx" in check_line(result.out, "data dir")


def test_stale_pid_file_is_a_warning(cli: Cli, home: Path) -> None:
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    pidfile.write(home / ".tokenomics" / "tokenomics.pid", pidfile.PidRecord(child.pid))
    line = check_line(cli("doctor").out, "proxy status")
    assert line.startswith("[!!]   proxy status       stale PID file at ")
    assert f"PID {child.pid} is not running" in line and "tokenomics stop" in line


# ── Redis, when session.backend is redis ────────────────────────────────────────────────────


@pytest.fixture
def fake_redis() -> Iterator[tuple[int, list[bytes]]]:
    """A one-connection server answering AUTH/SELECT with +OK (or -WRONGPASS) and PING +PONG."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen()
    seen: list[bytes] = []

    def serve() -> None:
        conn, _ = server.accept()
        with conn:
            while data := conn.recv(4096):
                seen.append(data)
                if b"PING" in data:
                    conn.sendall(b"+PONG\r\n")
                elif b"AUTH" in data and b"wrong" in data:
                    conn.sendall(b"-WRONGPASS invalid username-password pair\r\n")
                else:
                    conn.sendall(b"+OK\r\n")

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    yield server.getsockname()[1], seen
    server.close()


def use_redis(monkeypatch: pytest.MonkeyPatch, port: int, password: str = "") -> None:
    monkeypatch.setenv("TOKENOMICS_SESSION_BACKEND", "redis")
    monkeypatch.setenv("TOKENOMICS_SESSION_REDIS_ADDR", f"127.0.0.1:{port}")
    if password:
        monkeypatch.setenv("TOKENOMICS_SESSION_REDIS_PASSWORD", password)


def test_unreachable_redis_fails(cli: Cli, monkeypatch: pytest.MonkeyPatch) -> None:
    port = free_port()
    use_redis(monkeypatch, port)
    result = cli("doctor")
    assert result.code == 1
    line = check_line(result.out, "redis")
    assert line.startswith(f"[FAIL] redis              cannot connect to 127.0.0.1:{port}: ")
    assert "; fix: start Redis at 127.0.0.1:" in line


def test_reachable_redis_passes_and_the_password_stays_secret(
    cli: Cli, monkeypatch: pytest.MonkeyPatch, fake_redis: tuple[int, list[bytes]]
) -> None:
    port, seen = fake_redis
    use_redis(monkeypatch, port, password="hunter2-secret")
    result = cli("doctor")
    assert (
        check_line(result.out, "redis")
        == f"[ok]   redis              127.0.0.1:{port} answered PONG"
    )
    assert b"hunter2-secret" in b"".join(seen) and "hunter2" not in result.out


def test_redis_with_a_wrong_password_fails(
    cli: Cli, monkeypatch: pytest.MonkeyPatch, fake_redis: tuple[int, list[bytes]]
) -> None:
    port, _ = fake_redis
    use_redis(monkeypatch, port, password="wrong")
    line = check_line(cli("doctor").out, "redis")
    assert line.startswith("[FAIL] redis") and "WRONGPASS" in line
    assert line.endswith("; fix: set session.redis.password")


def test_redis_is_not_checked_with_the_memory_backend(cli: Cli) -> None:
    assert "] redis " not in cli("doctor").out


def test_doctor_json_has_every_check_and_the_same_exit_status(
    cli: Cli, monkeypatch: pytest.MonkeyPatch
) -> None:
    text = cli("doctor")
    monkeypatch.delenv("TOKENOMICS_HASH_KEY")
    result = cli("doctor", "--json")
    assert result.code == 1
    report = json.loads(result.out)
    assert report["ok"] is False and report["summary"] == "1 check(s) failed, 4 warning(s)"
    (failed,) = [c for c in report["checks"] if c["level"] == "fail"]
    assert failed["name"] == "hash key" and failed["fix"].startswith("export TOKENOMICS_HASH_KEY")
    assert len(report["checks"]) == len(text.out.strip().splitlines()) - 2  # blank + summary
