"""Git context of a ledger session (`cli.md` §7.2): branch, commits at open and close, and
whether the working tree had uncommitted changes.

Each `git` call runs as a subprocess with a time limit, at session open and close only (never on
the request path); the calls of one context run at the same time, so taking it costs about one
call (a few milliseconds). A failing or slow call leaves its key out; outside a repository the
context is `{}`.
"""

from __future__ import annotations

import logging
import subprocess
from functools import partial
from typing import TYPE_CHECKING, Any

import trio

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable
    from pathlib import Path

GIT_SECONDS = 3.0

logger = logging.getLogger("tokenomics.ledger")


async def _kill(process: trio.Process) -> None:
    """On cancellation (shutdown, or the time limit) a read-only git call is simply killed."""
    process.kill()


async def _git(cwd: Path, *args: str) -> str | None:
    """Stdout of `git args` (stripped), or None on failure, timeout or no git."""
    with trio.move_on_after(GIT_SECONDS):
        try:
            done = await trio.run_process(
                ["git", *args], cwd=cwd, check=False, capture_stdout=True,
                capture_stderr=True, stdin=subprocess.DEVNULL, deliver_cancel=_kill,
            )  # fmt: skip
        except OSError:
            return None
        if done.returncode != 0:
            return None
        return bytes(done.stdout).decode("utf-8", "replace").strip()
    logger.warning("git %s took longer than %.0f s; left out of the ledger", args[0], GIT_SECONDS)
    return None


async def _dirty(cwd: Path) -> bool:
    status = await _git(cwd, "status", "--porcelain", "--untracked-files=no")
    return bool(status)


async def _gather(calls: dict[str, Callable[[], Awaitable[Any]]]) -> dict[str, Any]:
    """The results of `calls`, run concurrently, by key; empty results left out."""
    results: dict[str, Any] = {}

    async def one(key: str) -> None:
        results[key] = await calls[key]()

    async with trio.open_nursery() as nursery:
        for key in calls:
            nursery.start_soon(one, key)
    return {key: results[key] for key in calls if results.get(key)}


async def open_context(cwd: Path) -> dict[str, Any]:
    """`branch`, `commit_start`, `repo_root`, and `dirty: true` when the tree had changes."""
    context = await _gather({
        "branch": partial(_git, cwd, "rev-parse", "--abbrev-ref", "HEAD"),
        "commit_start": partial(_git, cwd, "rev-parse", "--short", "HEAD"),
        "repo_root": partial(_git, cwd, "rev-parse", "--show-toplevel"),
        "dirty": partial(_dirty, cwd),
    })  # fmt: skip
    return context if "repo_root" in context else {}


async def close_context(cwd: Path) -> dict[str, Any]:
    """`commit_end`, and `dirty_end: true` when the tree had changes at close."""
    return await _gather({
        "commit_end": partial(_git, cwd, "rev-parse", "--short", "HEAD"),
        "dirty_end": partial(_dirty, cwd),
    })  # fmt: skip
