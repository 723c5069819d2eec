"""Webhook delivery in a child process, off the serving process's CPU (issue 15).

Delivering an event costs about as much CPU as a short request (a signed POST and its answer),
and a request makes two or more events; on the proxy's own event loop that took 12-14% of its
throughput. So `serve` runs the dispatcher in `services/delivery_child.py`, at nice 19, and
this module keeps it running: it starts the child (the configuration on its standard input),
feeds it the event writer's batches and wake-ups (`EventPipe`: the child commits each batch and
answers with its number on its standard output), restarts it with a growing delay when it dies
(the outbox keeps every committed event; delivery goes on where the stored cursor says, and the
batches it did not answer are appended by this process: `spill`), and on cancellation stops it
with SIGTERM, the grace period plus a margin, then SIGKILL, and appends what it did not answer.
Rows of other processes (the CLI, `server.workers` processes) the child finds by polling the
outbox. `/metrics` reads the counters the child stores with each webhook's cursor.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import TYPE_CHECKING

import trio
import trio.lowlevel

import tokenomics
from tokenomics.services.event_pipe import EventPipe

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable, Mapping, Sequence

    from tokenomics.services.delivery_child import ChildConfig

log = logging.getLogger("tokenomics.webhooks")
WORKER_ENV = "TOKENOMICS_WORKER"  # set on `server.workers` processes (`cli/workers.py`)
CHILD_MODULE = "tokenomics.services.delivery_child"
YOUNG = 5.0  # a child that dies sooner than this is restarted after a growing delay
FIRST_DELAY = 0.2
MAX_DELAY = 30.0
STOP_MARGIN = 5.0


def child_command() -> list[str]:
    """This interpreter running the child module (from the source tree, an installed package
    or the pex venv of the pyz alike: `child_env` puts this package's root first)."""
    return [sys.executable, "-m", CHILD_MODULE]


def child_env(environ: Mapping[str, str]) -> dict[str, str]:
    root = str(Path(tokenomics.__file__).resolve().parent.parent)
    path = environ.get("PYTHONPATH", "")
    return {**environ, "PYTHONPATH": root + (os.pathsep + path if path else "")}


class DeliveryProcess:
    def __init__(
        self, config: ChildConfig, environ: Mapping[str, str], *,
        command: Sequence[str] | None = None, pipe: EventPipe | None = None,
        spill: Callable[[Sequence[bytes]], Awaitable[None]] | None = None,
    ) -> None:  # fmt: skip
        """`pipe`: the batches handed to the child; what it did not confirm when it exits
        goes to `spill` (the event writer appends it)."""
        self._config = config
        self._env = child_env(environ)
        self._command = list(command or child_command())
        self.pipe = pipe or EventPipe()
        self._spill = spill
        self.process: trio.Process | None = None
        self._finished: trio.Process | None = None  # the last child whose end was seen to
        self.starts = 0

    def wake(self) -> None:
        """New events are in the outbox (written by this process)."""
        self.pipe.wake()

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Keep the child running until cancelled; then stop it (bounded, shielded)."""
        delay = FIRST_DELAY
        try:
            await self._start()
            task_status.started()
            while True:
                started = trio.current_time()
                code = await self._supervise()
                young = trio.current_time() - started < YOUNG
                delay = min(delay * 2, MAX_DELAY) if young else FIRST_DELAY
                log.error(
                    "webhook delivery process exited with %s; restarting in %.1fs "
                    "(undelivered events wait in the outbox)", code, delay,
                )  # fmt: skip
                await trio.sleep(delay)
                await self._start()
        finally:
            with trio.CancelScope(shield=True):
                await self._stop()

    async def _start(self) -> None:
        process = await trio.lowlevel.open_process(
            self._command, stdin=subprocess.PIPE, stdout=subprocess.PIPE, env=self._env
        )
        self.process = process
        self.starts += 1
        assert process.stdin is not None
        with contextlib.suppress(trio.BrokenResourceError, trio.ClosedResourceError):
            await process.stdin.send_all(self._config.encode())  # else died: `_supervise` sees
        self.pipe.start()

    async def _supervise(self) -> int:
        """Feed batches and wake-ups to the running child until it exits; its exit code."""
        process = self.process
        assert process is not None and process.stdin is not None and process.stdout is not None
        async with trio.open_nursery() as reading:
            reading.start_soon(self.pipe.read_answers, process.stdout)  # to its end
            async with trio.open_nursery() as feeding:
                feeding.start_soon(self.pipe.feed, process.stdin)
                code = await process.wait()
                feeding.cancel_scope.cancel()
        await self._finish(process)
        return code

    async def _finish(self, process: trio.Process) -> None:
        """The child has exited: read its last answers, append the batches it did not
        confirm, close its pipes (shielded; once per child)."""
        self._finished = process
        with trio.CancelScope(shield=True):
            if process.stdout is not None and process.stdin is not None:
                with trio.move_on_after(STOP_MARGIN):  # ends at once: it has exited
                    await self.pipe.read_answers(process.stdout)
                await process.stdout.aclose()
                await process.stdin.aclose()
            payloads = self.pipe.take()
            if payloads and self._spill is not None:
                await self._spill(payloads)

    async def _stop(self) -> None:
        """SIGTERM (the child lets an attempt in flight finish within the grace period), then
        SIGKILL after the grace period and a margin."""
        process = self.process
        self.pipe.up = False
        if process is None or process is self._finished:
            return  # not started, or its end already seen to
        if process.returncode is None:
            process.send_signal(signal.SIGTERM)
            with trio.move_on_after(self._config.grace + STOP_MARGIN):
                await process.wait()
        if process.returncode is None:
            log.error("webhook delivery process did not stop in time: killed")
            process.kill()
            await process.wait()
        await self._finish(process)
