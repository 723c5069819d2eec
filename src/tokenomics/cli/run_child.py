"""The child of `tokenomics run`: started with our stdin/stdout/stderr, signals forwarded (D22).

    code = await run_child(["node", "app.js"], env)   # the child's exit status, 128+N if killed

SIGINT, SIGTERM, SIGHUP and SIGQUIT sent to `run` are passed on to the child, and `run` itself
keeps running until the child has exited, so the proxy outlives every request the child makes.
A terminal's Ctrl-C (or Ctrl-\\) already reaches the child, which shares our foreground process
group; such a keyboard signal is not sent a second time.
"""

from __future__ import annotations

import os
import signal
import sys
from collections.abc import AsyncIterator, Mapping, Sequence
from functools import partial

import trio

from tokenomics.domain.errors import StartError

FORWARDED = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP, signal.SIGQUIT)
KEYBOARD = (signal.SIGINT, signal.SIGQUIT)


def exit_status(returncode: int) -> int:
    """A shell-style status: the exit code, or 128+N for a child killed by signal N."""
    return 128 - returncode if returncode < 0 else returncode


def _terminal_delivered(signum: int) -> bool:
    """Whether a keyboard signal came from our terminal, which sent it to the child as well."""
    if signum not in KEYBOARD:
        return False
    try:
        fd = sys.stdin.fileno()
        return os.isatty(fd) and os.tcgetpgrp(fd) == os.getpgrp()
    except (OSError, ValueError, AttributeError):
        return False


async def _forward(process: trio.Process, signals: AsyncIterator[int]) -> None:
    async for signum in signals:
        if process.returncode is None and not _terminal_delivered(signum):
            process.send_signal(signum)


async def run_child(argv: Sequence[str], env: Mapping[str, str]) -> int:
    """Run `argv` to completion with our standard streams; returns its shell-style status."""
    with trio.open_signal_receiver(*FORWARDED) as signals:
        async with trio.open_nursery() as nursery:
            try:
                process: trio.Process = await nursery.start(
                    partial(
                        trio.run_process, list(argv), check=False, env=dict(env),
                        stdin=None, stdout=None, stderr=None,
                    )
                )  # fmt: skip
            except OSError as exc:
                reason = (exc.strerror or str(exc)).lower()
                raise StartError(f"start command: {argv[0]}: {reason}") from None
            nursery.start_soon(_forward, process, signals)
            await process.wait()
            nursery.cancel_scope.cancel()
    assert process.returncode is not None
    return exit_status(process.returncode)
