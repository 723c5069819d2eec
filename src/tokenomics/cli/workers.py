"""`server.workers: N` (issue 18): `serve` becomes a supervisor of N serving processes.

Each worker is this same command run again with `TOKENOMICS_WORKER` set; it serves the
configured listeners with SO_REUSEPORT (the kernel spreads connections over them), keeps its
own ledger session (`ledger` reads every session, so their output is merged) and shares budgets
and rate limits through Redis, which is why more than one worker needs `session.backend: redis`.

The supervisor restarts a worker that dies (with a growing delay when they die young, and
gives up after `MAX_QUICK_DEATHS` deaths in a row within `YOUNG` seconds of starting), and on
SIGINT/SIGTERM passes SIGTERM to every worker, waits for them to drain (server.shutdown_grace
plus a margin), then kills what is left. With webhooks configured, the supervisor also keeps the
machine's one webhook delivery process (`services/delivery_process.py`; workers do not deliver:
it finds their events by polling the outbox), stopped after the workers. A worker's stdin is a
pipe from the supervisor that nobody writes: when it ends (the supervisor was killed), the
worker shuts down gracefully (`serve.watch_supervisor`) instead of serving on, orphaned.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, TextIO

import trio

from tokenomics.domain.errors import ConfigError
from tokenomics.services.delivery_process import WORKER_ENV

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Mapping, Sequence

    from tokenomics.config.settings import Settings
    from tokenomics.services.delivery_process import DeliveryProcess

YOUNG = 2.0
MAX_QUICK_DEATHS = 5
STOP_MARGIN = 5.0


def is_worker(environ: Mapping[str, str]) -> bool:
    return bool(environ.get(WORKER_ENV))


def check_workers(settings: Settings) -> int:
    """The worker count; a `ConfigError` saying why when it cannot be honoured."""
    workers = settings.server.workers
    if workers < 1:
        raise ConfigError(f"server.workers must be at least 1 (got {workers})")
    if workers > 1 and settings.session.backend != "redis":
        raise ConfigError(
            f"server.workers: {workers} needs session.backend: redis: each worker would "
            "otherwise keep its own budgets and rate limits and the token would get "
            f"{workers} times its limits; set session.backend: redis (and session.redis.addr) "
            "or use one worker"
        )
    return workers


def worker_command() -> list[str]:
    """This process's own command line (`python -m tokenomics serve ...`, or the zipapp)."""
    return [sys.executable, *sys.orig_argv[1:]]


@dataclass
class Supervisor:
    command: Sequence[str]
    environ: Mapping[str, str]
    count: int
    grace: float
    stderr: TextIO
    processes: dict[int, trio.Process] = field(default_factory=dict)
    stopping: bool = False
    restarts: int = 0
    delivery: DeliveryProcess | None = None

    async def run(self, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        with trio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
            async with trio.open_nursery() as nursery:
                if self.delivery is not None:
                    await nursery.start(self.delivery.run)
                for index in range(self.count):
                    nursery.start_soon(self._keep, index)
                nursery.start_soon(self._on_signal, signals, nursery.cancel_scope)
                task_status.started()

    async def _on_signal(self, signals: AsyncIterator[int], scope: trio.CancelScope) -> None:
        async for signum in signals:
            name = signal.Signals(signum).name
            print(f"{name}: stopping {len(self.processes)} worker(s)", file=self.stderr, flush=True)
            await self.stop()
            scope.cancel()  # the delivery process, last (SIGTERM and the grace period)
            return

    async def stop(self) -> None:
        self.stopping = True
        for process in self.processes.values():
            if process.returncode is None:
                process.send_signal(signal.SIGTERM)
        with trio.move_on_after(self.grace + STOP_MARGIN):
            for process in list(self.processes.values()):
                await process.wait()
        for process in self.processes.values():
            if process.returncode is None:
                process.kill()

    async def _keep(self, index: int) -> None:
        env = {**self.environ, WORKER_ENV: str(index + 1)}
        quick_deaths, delay = 0, 0.1
        while not self.stopping:
            started = trio.current_time()
            # stdin: a pipe nobody writes; the worker stops when it ends (this process died).
            process = await trio.lowlevel.open_process(
                list(self.command), env=env, stdin=subprocess.PIPE
            )
            self.processes[index] = process
            if self.stopping:  # `stop` ran while it was starting: it was not signalled
                process.send_signal(signal.SIGTERM)
            with trio.CancelScope(shield=True):
                code = await process.wait()
                if process.stdin is not None:
                    await process.stdin.aclose()
            if self.stopping:
                return
            young = trio.current_time() - started < YOUNG
            quick_deaths = quick_deaths + 1 if young else 0
            print(f"worker {index + 1} (PID {process.pid}) exited with {code}; restarting",
                  file=self.stderr, flush=True)  # fmt: skip
            if quick_deaths >= MAX_QUICK_DEATHS:
                print(f"worker {index + 1} keeps dying at start; stopping", file=self.stderr)
                await self.stop()
                raise ConfigError(f"worker {index + 1} exited {quick_deaths} times at start")
            self.restarts += 1
            await trio.sleep(delay if young else 0)
            delay = min(delay * 2, 5.0) if young else 0.1


def supervisor(settings: Settings, environ: Mapping[str, str], stderr: TextIO) -> Supervisor:
    count = check_workers(settings)
    keeper = Supervisor(
        worker_command(), dict(environ), count, float(settings.server.shutdown_grace), stderr
    )
    # (imported here: the HTTP client behind them is not for `--help`)
    from tokenomics.services.delivery_process import DeliveryProcess
    from tokenomics.services.events_service import delivery_config, webhook_targets

    targets = webhook_targets(settings.events.webhooks)
    if targets:
        db_path = Path(settings.storage.db_path)
        keeper.delivery = DeliveryProcess(delivery_config(settings, db_path, targets), environ)
    print(f"Tokenomics supervising {count} workers (PID {os.getpid()})", file=stderr, flush=True)
    return keeper
