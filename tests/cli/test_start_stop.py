"""`tokenomics start` / `stop` as real processes (`cli.md` §3 and §10 scenarios 52-62, D23):
the URL contract, "already running", stale and foreign PID files, a busy port, TLS only,
SIGTERM then SIGKILL, and the PID file format and lock."""

from __future__ import annotations

import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
from tests.support.daemons import Daemons, daemons, free_port, is_listening, ping, serve_processes

from tokenomics.cli import pidfile, process
from tokenomics.cli.pidfile import PidRecord

__all__ = ["daemons"]  # the fixture, imported for its side effect

pytestmark = pytest.mark.slow

IGNORE_TERM = (
    "import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); "
    "print('ready', flush=True); time.sleep(60)"
)


def start_flags(port: int) -> tuple[str, ...]:
    return ("start", "--port", str(port), "--pid-file", "run/t.pid", "--log-file", "t.log")


def test_start_prints_the_url_and_a_second_start_reuses_it_until_stop(
    daemons: Daemons, work: Path
) -> None:
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    started = daemons.run(*start_flags(port))
    assert started.code == 0, started.err
    assert started.out == url + "\n"
    assert started.err == f"Proxy started: {url}\n"
    record = pidfile.read(work / "run" / "t.pid")
    assert record is not None and record.url == url and record.start_time
    assert process.is_alive(record.pid) and ping(url) == 200
    assert process.health_pid(url) == record.pid

    again = daemons.run(*start_flags(port))
    assert again.code == 0, again.err
    assert again.out == url + "\n"
    assert again.err == f"Proxy already running: {url}. Use 'tokenomics stop' to stop it.\n"
    assert serve_processes(work) == [record.pid]

    stopped = daemons.run("stop", "--pid-file", "run/t.pid")
    assert stopped.code == 0, stopped.err
    assert stopped.err == f"Proxy stopped (PID {record.pid})\n"
    assert not process.is_alive(record.pid)
    assert not (work / "run" / "t.pid").exists()
    assert "SIGTERM: shutting down" in (work / "t.log").read_text()


def test_start_with_tls_serves_https_only(daemons: Daemons, work: Path) -> None:
    port, http_port = free_port(), free_port()
    env = daemons.env(TOKENOMICS_SERVER_HTTP_PORT=str(http_port))
    started = daemons.run(*start_flags(port), "--tls", env=env)
    assert started.code == 0, started.err
    url = f"https://127.0.0.1:{port}"
    assert started.out == url + "\n"
    record = pidfile.read(work / "run" / "t.pid")
    assert record is not None and process.health_pid(url) == record.pid
    assert not is_listening(http_port)  # §3.4: TLS mode opens no plain HTTP listener
    assert daemons.run("stop", "--pid-file", "run/t.pid").code == 0


def test_concurrent_starts_spawn_one_server(daemons: Daemons, work: Path) -> None:
    port = free_port()
    children = [daemons.popen(*start_flags(port)) for _ in range(2)]
    results = [child.communicate(timeout=60) for child in children]
    daemons.pid_files.append(work / "run" / "t.pid")  # for cleanup
    assert [child.returncode for child in children] == [0, 0], results
    assert {out for out, _ in results} == {f"http://127.0.0.1:{port}\n"}
    assert sorted("started" in err for _, err in results) == [False, True]
    assert len(serve_processes(work)) == 1


def test_start_on_a_busy_port_fails_with_the_servers_error_and_leaves_nothing(
    daemons: Daemons, work: Path
) -> None:
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        port = holder.getsockname()[1]
        started = daemons.run(*start_flags(port))
    assert started.code == 1
    assert started.out == ""
    assert started.err.startswith("Error: proxy failed to start: cannot listen on 127.0.0.1:")
    assert "already in use" in started.err and "(log: " in started.err
    assert started.err.count("\n") == 1
    assert not (work / "run" / "t.pid").exists()
    assert serve_processes(work) == []


def test_start_without_the_hash_key_refuses_before_spawning(daemons: Daemons, work: Path) -> None:
    env = daemons.env()
    del env["TOKENOMICS_HASH_KEY"]
    started = daemons.run(*start_flags(free_port()), env=env)
    assert started.code == 1
    assert "TOKENOMICS_HASH_KEY" in started.err and started.err.startswith("Error: ")
    assert not (work / "run" / "t.pid").exists() and not (work / "t.log").exists()


def test_start_replaces_a_stale_pid_file(daemons: Daemons, work: Path) -> None:
    (work / "run").mkdir()
    (work / "run" / "t.pid").write_text(f"{_exited_pid()}\n")
    port = free_port()
    started = daemons.run(*start_flags(port))
    assert started.code == 0, started.err
    assert "Removed stale PID file" in started.err
    assert started.err.endswith(f"Proxy started: http://127.0.0.1:{port}\n")
    assert daemons.run("stop", "--pid-file", "run/t.pid").code == 0


# ── stop without a server of ours ───────────────────────────────────────────────────────────


def _exited_pid() -> int:
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    return child.pid


def test_stop_when_nothing_runs(daemons: Daemons, work: Path) -> None:
    stopped = daemons.run("stop", "--pid-file", "none.pid")
    assert (stopped.code, stopped.out) == (0, "")
    assert stopped.err == f"Proxy not running (no PID file at {work / 'none.pid'})\n"


def test_stop_with_a_pid_file_of_an_exited_process_removes_it(daemons: Daemons, work: Path) -> None:
    pid = _exited_pid()
    (work / "t.pid").write_text(str(pid))
    stopped = daemons.run("stop", "--pid-file", "t.pid")
    assert stopped.code == 0
    assert f"removed stale PID file {work / 't.pid'}: PID {pid} is not running" in stopped.err
    assert not (work / "t.pid").exists()


@pytest.mark.parametrize("content", ["{pid}", "{pid}\nstart=proc:1\nurl=http://127.0.0.1:9"])
def test_stop_never_signals_an_unrelated_live_process(
    daemons: Daemons, work: Path, content: str
) -> None:
    sleeper = subprocess.Popen(["sleep", "60"])
    try:
        (work / "t.pid").write_text(content.format(pid=sleeper.pid))
        stopped = daemons.run("stop", "--pid-file", "t.pid")
        assert stopped.code == 0
        assert "Proxy not running (removed stale PID file" in stopped.err
        assert f"PID {sleeper.pid}" in stopped.err
        time.sleep(0.2)
        assert sleeper.poll() is None  # not signalled
        assert not (work / "t.pid").exists()
    finally:
        sleeper.kill()
        sleeper.wait()


def test_stop_with_a_garbled_pid_file_fails(daemons: Daemons, work: Path) -> None:
    (work / "t.pid").write_text("not-a-number")
    stopped = daemons.run("stop", "--pid-file", "t.pid")
    assert stopped.code == 1
    assert stopped.err.startswith(f"Error: read PID file {work / 't.pid'}: ")


def test_stop_kills_a_server_that_ignores_sigterm_after_the_timeout(
    daemons: Daemons, work: Path
) -> None:
    """A recorded process that ignores SIGTERM (same start time as in the PID file, so it is
    "ours") gets SIGKILL after --timeout."""
    child = subprocess.Popen([sys.executable, "-c", IGNORE_TERM], stdout=subprocess.PIPE, text=True)
    try:
        assert child.stdout is not None and child.stdout.readline() == "ready\n"
        pidfile.write(work / "t.pid", PidRecord(child.pid, process.start_time(child.pid)))
        began = time.monotonic()
        stopped = daemons.run("stop", "--pid-file", "t.pid", "--timeout", "1")
        assert stopped.err == f"Proxy killed (PID {child.pid})\n"
        assert 1 <= time.monotonic() - began < 20
        assert child.wait(timeout=5) == -signal.SIGKILL
        assert not (work / "t.pid").exists()
    finally:
        child.kill()
        child.wait()


# ── the building blocks ────────────────────────────────────────────────────────────────────


def test_terminate_escalates_to_sigkill_only_when_sigterm_is_ignored() -> None:
    stubborn = subprocess.Popen([sys.executable, "-c", IGNORE_TERM], stdout=subprocess.PIPE)
    polite = subprocess.Popen(["sleep", "60"])
    try:
        assert stubborn.stdout is not None and stubborn.stdout.readline() == b"ready\n"
        assert process.terminate(stubborn.pid, grace=0.5) is False
        assert stubborn.wait(timeout=5) == -signal.SIGKILL
        assert process.terminate(polite.pid, grace=5) is True
        assert polite.wait(timeout=5) == -signal.SIGTERM
    finally:
        for child in (stubborn, polite):
            child.kill()
            child.wait()


def test_pid_file_round_trip_and_the_original_plain_format(tmp_path: Path) -> None:
    path = tmp_path / "d" / "x.pid"
    record = PidRecord(1234, "proc:99", "http://127.0.0.1:8080")
    pidfile.write(path, record)
    assert path.read_text().splitlines()[0] == "1234"
    assert pidfile.read(path) == record
    assert path.stat().st_mode & 0o777 == 0o600
    assert list(path.parent.iterdir()) == [path]  # no temporary file left
    path.write_text("4321")
    assert pidfile.read(path) == PidRecord(4321)
    assert pidfile.read(tmp_path / "missing.pid") is None


def test_pid_file_lock_is_exclusive(tmp_path: Path) -> None:
    path = tmp_path / "x.pid"
    code = "import sys; from pathlib import Path; from tokenomics.cli import pidfile\n"
    code += "with pidfile.locked(Path(sys.argv[1]), timeout=0.2): pass"
    command = [sys.executable, "-c", code, str(path)]
    with pidfile.locked(path):
        held = subprocess.run(command, capture_output=True, text=True, check=False)
    assert held.returncode == 1 and "another tokenomics start/stop holds" in held.stderr
    assert subprocess.run(command, capture_output=True, check=False).returncode == 0
