"""The counters backend as `doctor` and `status` show it: which backend, whether Redis answers,
and how many settles wait in the local queue for Redis to come back (issue 18)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from tokenomics.cli import checks
from tokenomics.domain.errors import StoreError
from tokenomics.store.redis_pending import pending_count

if TYPE_CHECKING:
    from tokenomics.cli.checks import Check
    from tokenomics.config.settings import Settings


def report(settings: Settings) -> dict[str, Any]:
    if settings.session.backend != "redis":
        return {"backend": "memory", "ok": True, "detail": "in-process, saved to SQLite"}
    probe = checks.redis(settings, timeout=1.0)
    try:
        waiting = pending_count(Path(settings.storage.db_path))
    except StoreError:
        waiting = 0
    return {
        "backend": "redis",
        "ok": probe.level == "ok",
        "detail": probe.detail,
        "pending_settles": waiting,
    }


def check(settings: Settings) -> Check:
    info = report(settings)
    if info["backend"] == "memory":
        return checks.Check("ok", "counters", "backend memory (in-process, saved to SQLite)")
    waiting = info["pending_settles"]
    if waiting:
        return checks.Check(
            "warn", "counters",
            f"backend redis: {waiting} settle(s) wait in the local queue for Redis",
            "they are applied by the running proxy once Redis answers",
        )  # fmt: skip
    return checks.Check("ok", "counters", "backend redis, shared by every proxy and worker")


def line(info: dict[str, Any]) -> str:
    state = "up" if info["ok"] else "DOWN"
    line = f"  Counters: {info['backend']} ({state}: {info['detail']})"
    if info.get("pending_settles"):
        line += f", {info['pending_settles']} settle(s) waiting for Redis"
    return line + "\n"
