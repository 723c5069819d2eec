"""`doctor` and `status` show the counters backend and its health (issue 18)."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

from tests.conftest import Result
from tests.support.redis_server import RedisServer, redis_server  # noqa: F401

from tokenomics.store.db import Database
from tokenomics.store.redis_pending import PendingSettles

REDIS = 'session:\n  backend: redis\n  redis:\n    addr: "{addr}"\n'


def test_memory_backend_is_shown(cli: Callable[..., Result]) -> None:
    assert "[ok]   counters           backend memory" in cli("doctor").out
    assert "Counters: memory (up: in-process, saved to SQLite)" in cli("status").out


def test_redis_backend_up_down_and_waiting_settles(
    cli: Callable[..., Result],
    work: Path,
    home: Path,
    redis_server: RedisServer,  # noqa: F811
) -> None:
    (work / "config.yaml").write_text(REDIS.format(addr=redis_server.addr))
    doctor = cli("doctor").out
    assert f"{redis_server.addr} answered PONG" in doctor
    assert "backend redis, shared by every proxy and worker" in doctor
    report = json.loads(cli("status", "--json").out)["counters"]
    assert report == {
        "backend": "redis", "ok": True, "detail": f"{redis_server.addr} answered PONG",
        "pending_settles": 0,
    }  # fmt: skip

    queue = PendingSettles(Database.open(home / ".tokenomics" / "tokenomics.db"))
    assert queue.add(["k"], ["a"])
    queue.close()
    redis_server.kill()
    status = cli("status").out
    assert f"Counters: redis (DOWN: cannot connect to {redis_server.addr}" in status
    assert "1 settle(s) waiting for Redis" in status
    doctor = cli("doctor").out
    assert "[!!]   counters           backend redis: 1 settle(s) wait" in doctor
    assert "[FAIL] redis              cannot connect to" in doctor
