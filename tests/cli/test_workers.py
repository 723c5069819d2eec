"""`server.workers` (issue 18): N real serving processes on one port, supervised by `serve`."""

from __future__ import annotations

import http.server
import os
import queue
import signal
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import IO

import pytest
from tests.conftest import Result
from tests.support.daemons import Daemons, daemons, free_port, ping  # noqa: F401
from tests.support.redis_server import RedisServer, redis_server  # noqa: F401

CONFIG = """server:
  http_port: {port}
  workers: 2
  shutdown_grace: 2
  tls:
    enabled: false
session:
  backend: {backend}
  redis:
    addr: "{addr}"
"""


def children(pid: int) -> set[int]:
    found: set[int] = set()
    for task in Path(f"/proc/{pid}/task").iterdir():
        text = (task / "children").read_text().split()
        found.update(int(child) for child in text)
    return found


def wait_for(check: Callable[[], bool], seconds: float = 20) -> None:
    deadline = time.monotonic() + seconds
    while not check():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)


class Lines:
    """The lines of a child's stream, read by a thread, waited for with a deadline."""

    def __init__(self, stream: IO[str]) -> None:
        self.seen: list[str] = []
        self._queue: queue.Queue[str] = queue.Queue()
        threading.Thread(target=self._read, args=(stream,), daemon=True).start()

    def _read(self, stream: IO[str]) -> None:
        for line in stream:
            self._queue.put(line)

    def wait(self, text: str, count: int, seconds: float = 30) -> None:
        deadline = time.monotonic() + seconds
        while sum(text in line for line in self.seen) < count:
            self.seen.append(self._queue.get(timeout=max(deadline - time.monotonic(), 0.01)))

    def rest(self) -> str:
        while not self._queue.empty():
            self.seen.append(self._queue.get())
        return "".join(self.seen)


def answers(url: str) -> bool:
    try:
        return ping(url) == 200
    except OSError:
        return False


def test_more_than_one_worker_needs_redis(cli: Callable[..., Result], work: Path) -> None:
    (work / "config.yaml").write_text(CONFIG.format(port=free_port(), backend="memory", addr=""))
    result = cli("serve")
    assert result.code != 0
    assert "server.workers: 2 needs session.backend: redis" in result.err


@pytest.mark.slow
def test_two_workers_survive_a_sigkill_and_stop_on_sigterm(
    daemons: Daemons,  # noqa: F811
    redis_server: RedisServer,  # noqa: F811
) -> None:
    port = free_port()
    config = CONFIG.format(port=port, backend="redis", addr=redis_server.addr)
    (daemons.cwd / "config.yaml").write_text(config)
    parent = daemons.popen("serve")
    assert parent.stderr is not None
    lines = Lines(parent.stderr)
    url = f"http://127.0.0.1:{port}"
    try:
        lines.wait("Tokenomics listening on", 2)
        victim = min(children(parent.pid))
        os.kill(victim, signal.SIGKILL)
        lines.wait("Tokenomics listening on", 3)  # its replacement
        assert len(children(parent.pid)) == 2 and victim not in children(parent.pid)
        for _ in range(20):  # both workers answer on the one port
            assert ping(url) == 200
        workers = children(parent.pid)
        parent.send_signal(signal.SIGTERM)
        parent.wait(timeout=20)
    finally:
        if parent.poll() is None:
            parent.kill()
    err = lines.rest()
    assert parent.returncode == 0, err
    assert "exited with -9; restarting" in err
    assert "SIGTERM: stopping 2 worker(s)" in err
    for pid in workers:
        assert not Path(f"/proc/{pid}").exists() or "Z" in Path(f"/proc/{pid}/stat").read_text()
    sessions = list((daemons.home / ".tokenomics" / "sessions").glob("*.json"))
    assert len(sessions) >= 2  # one ledger session per worker, read together by `ledger`
    summary = daemons.run("ledger", "summary")
    assert f"Sessions: {len(sessions)}" in summary.out


@pytest.mark.slow
def test_workers_stop_when_their_supervisor_is_killed(
    daemons: Daemons,  # noqa: F811
    redis_server: RedisServer,  # noqa: F811
) -> None:
    port = free_port()
    config = CONFIG.format(port=port, backend="redis", addr=redis_server.addr)
    (daemons.cwd / "config.yaml").write_text(config)
    parent = daemons.popen("serve")
    assert parent.stderr is not None
    lines = Lines(parent.stderr)
    try:
        lines.wait("Tokenomics listening on", 2)
        workers = children(parent.pid)
        assert len(workers) == 2
        parent.kill()  # SIGKILL: the supervisor cannot pass anything on
        parent.wait(timeout=10)
        wait_for(lambda: not any(_alive(pid) for pid in workers))
    finally:
        if parent.poll() is None:
            parent.kill()
    assert "supervisor gone: shutting down" in lines.rest()
    assert not answers(f"http://127.0.0.1:{port}")


def _alive(pid: int) -> bool:
    try:
        return "Z" not in Path(f"/proc/{pid}/stat").read_text().split(")")[-1].split()[0]
    except FileNotFoundError:
        return False


class _Hook(http.server.BaseHTTPRequestHandler):
    """A webhook receiver answering 200 and recording each event's id and type."""

    received: list[tuple[str, str]]

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers["content-length"]))
        self.received.append((self.headers["x-event-id"], self.headers["x-event-type"]))
        self.send_response(200)
        self.send_header("content-length", "0")
        self.end_headers()

    def log_message(self, *args: object) -> None:
        pass


@pytest.mark.slow
def test_workers_share_one_delivery_process_kept_by_the_supervisor(
    daemons: Daemons,  # noqa: F811
    redis_server: RedisServer,  # noqa: F811
) -> None:
    received: list[tuple[str, str]] = []
    handler = type("Hook", (_Hook,), {"received": received})
    receiver = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=receiver.serve_forever, daemon=True).start()
    port = free_port()
    config = CONFIG.format(port=port, backend="redis", addr=redis_server.addr)
    hook = f"http://127.0.0.1:{receiver.server_port}/hook"
    (daemons.cwd / "config.yaml").write_text(config + f"events:\n  webhooks:\n    - url: {hook}\n")
    parent = daemons.popen("serve")
    assert parent.stderr is not None
    lines = Lines(parent.stderr)
    try:
        lines.wait("Tokenomics listening on", 2)
        created = daemons.run("token", "create", "--policy", '{"base_key_env": "K"}')
        assert created.code == 0, created.err
        wait_for(lambda: sorted(kind for _, kind in received).count("server.start") == 2)
        wait_for(lambda: any(kind == "token.created" for _, kind in received))
        processes = children(parent.pid)
        assert len(processes) == 3  # two workers and the delivery process
        delivering = [pid for pid in processes if b"delivery_child" in _cmdline(pid)]
        assert len(delivering) == 1
        assert all(not children(pid) for pid in processes)  # workers start none of their own
        parent.send_signal(signal.SIGTERM)
        parent.wait(timeout=30)
    finally:
        if parent.poll() is None:
            parent.kill()
        receiver.shutdown()
    assert parent.returncode == 0, lines.rest()
    assert not Path(f"/proc/{delivering[0]}").exists()
    ids = [event_id for event_id, _ in received]
    assert len(ids) == len(set(ids)) == 3  # two server.start, one token.created: once each


def _cmdline(pid: int) -> bytes:
    return Path(f"/proc/{pid}/cmdline").read_bytes()
