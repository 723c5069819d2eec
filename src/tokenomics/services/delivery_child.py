"""The webhook delivery process: the dispatcher, alone, at the lowest CPU priority.

`python -m tokenomics.services.delivery_child`, started and supervised by
`services/delivery_process.py` (a child of `serve`, or of the `server.workers` supervisor).
Its standard input is its line to the parent: the first line is the configuration (JSON: the
database, the webhook targets with their secrets, the maximum age, the poll interval, the
shutdown grace and the log format), then each line is a batch of the parent's finished
requests (`<number> <batch>`: their events are built and appended in one transaction, then the
number is written to the standard output, the parent's receipt) or, empty, a wake-up (the
parent appended events itself; rows of other processes are found by polling). The end of the
input means the parent is gone: what is still in the pipe is committed first. On SIGTERM, or
at the end of the input, an attempt in flight gets the grace period; what is not delivered
stays in the outbox for the next start. One delivery process per outbox: a lock file beside
the database (`<db>.delivery.lock`, flock) is held while delivering (batches are committed
meanwhile). `os.nice(19)`: request handling always
wins the CPU, and delivery still moves (slowly) under saturation; events wait in the durable
outbox meanwhile.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import logging
import os
import signal
import sys
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import trio
import trio.lowlevel

from tokenomics.domain import events
from tokenomics.domain.errors import StoreError
from tokenomics.services.dispatcher import Dispatcher
from tokenomics.services.event_writer import EventWriter
from tokenomics.services.logs import JsonFormatter, TextFormatter
from tokenomics.services.webhook_send import HttpSender, WebhookTarget
from tokenomics.store.db import Database
from tokenomics.store.outbox import Outbox

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Sequence

log = logging.getLogger("tokenomics.webhooks")
NICE = 19
LOCK_POLL = 0.25
LINE_LIMIT = 16 * 2**20  # bytes of configuration read at most


@dataclass(frozen=True, slots=True)
class ChildConfig:
    db_path: str
    targets: tuple[WebhookTarget, ...]
    max_age: float
    grace: float
    poll_interval: float = 0.5
    log_level: int = logging.INFO
    log_json: bool = True

    def encode(self) -> bytes:
        """One line of JSON (it carries the secrets: written to the child's pipe only)."""
        fields: dict[str, Any] = asdict(self)
        return json.dumps(fields).encode() + b"\n"

    @classmethod
    def decode(cls, line: bytes) -> ChildConfig:
        fields = json.loads(line)
        targets = tuple(
            WebhookTarget(**{**t, "events": tuple(t["events"])}) for t in fields.pop("targets")
        )
        return cls(targets=targets, **fields)


def read_config(fd: int = 0) -> tuple[ChildConfig, bytes]:
    """The first line of the input, read raw, and what came after it (batches already)."""
    data = b""
    while b"\n" not in data:
        chunk = os.read(fd, 65536)
        if not chunk or len(data) > LINE_LIMIT:
            raise SystemExit("tokenomics delivery: no configuration on standard input")
        data += chunk
    line, _, rest = data.partition(b"\n")
    return ChildConfig.decode(line), rest


def _log_to_stderr(config: ChildConfig) -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter() if config.log_json else TextFormatter())
    root = logging.getLogger("tokenomics")
    root.setLevel(config.log_level)
    root.propagate = False
    root.addHandler(handler)


def _commit(writer: EventWriter, line: bytes, answer_fd: int) -> None:
    """One batch of the parent's (`<number> <batch>`): its events appended in one transaction,
    then its number answered (in the worker thread: a shutdown cannot come between them)."""
    number, _, payload = line.partition(b" ")
    try:
        writer.commit(payload)
    except StoreError as exc:  # not answered: the parent appends it when this process ends
        log.error("event outbox: a batch of events not written: %s", exc)
        return
    except (ValueError, TypeError) as exc:  # never: the parent encoded it
        log.error("event outbox: a batch of events not readable: %s", exc)
        return
    with contextlib.suppress(OSError):  # the parent is gone: nobody waits for the answer
        os.write(answer_fd, number + b"\n")


async def _listen(
    stdin: trio.lowlevel.FdStream, writer: EventWriter, dispatcher: Dispatcher,
    done: trio.Event, pending: bytes = b"", answer_fd: int = 1,
) -> None:  # fmt: skip
    """Commit each batch that comes, wake the dispatcher on each line (an empty one is a plain
    wake-up); at the end of the input (read to the end: a killed parent's last batches are
    still in the pipe) the parent is gone."""
    async with stdin:
        while True:
            *lines, pending = pending.split(b"\n")
            for line in lines:
                if line:
                    await trio.to_thread.run_sync(_commit, writer, line, answer_fd)
                dispatcher.wake()
            data = await stdin.receive_some(65536)
            if not data:
                break
            pending += data
    done.set()


async def _signalled(signals: AsyncIterator[int], done: trio.Event) -> None:
    async for _ in signals:
        done.set()
        return


def lock_path(db_path: str) -> Path:
    path = Path(db_path)
    return path.with_name(path.name + ".delivery.lock")


async def _run_alone(dispatcher: Dispatcher, path: Path) -> None:
    """The dispatcher, once this process holds the outbox's delivery lock: one delivery
    process per outbox (two `serve`s on one store, or a child not yet gone after its parent was
    killed while a new one starts, would otherwise send the same events twice)."""
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
    try:
        waiting = False
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if not waiting:
                    log.warning("another process delivers this outbox's events; waiting for it")
                    waiting = True
                await trio.sleep(LOCK_POLL)
        await dispatcher.run()
    finally:
        os.close(fd)  # and the lock with it


async def deliver(config: ChildConfig, stdin_fd: int = 0, pending: bytes = b"") -> None:
    """Commit the parent's batches and run the dispatcher until SIGTERM or the end of the
    input, then stop it with the grace period."""
    database, written = Database.open(Path(config.db_path)), Database.open(Path(config.db_path))
    sender = HttpSender()
    targets: Sequence[WebhookTarget] = config.targets
    dispatcher = Dispatcher(
        Outbox(database), lambda: targets, sender, max_age=config.max_age,
        poll_interval=config.poll_interval,
    )  # fmt: skip
    filters = [t.events for t in targets]
    writer = EventWriter(
        Outbox(written), lambda kind: events.any_matches(filters, kind), dispatcher.wake
    )
    done = trio.Event()
    try:
        with trio.open_signal_receiver(signal.SIGTERM) as signals:
            async with trio.open_nursery() as nursery:
                nursery.start_soon(_run_alone, dispatcher, lock_path(config.db_path))
                stdin = trio.lowlevel.FdStream(os.dup(stdin_fd))
                nursery.start_soon(_listen, stdin, writer, dispatcher, done, pending)
                nursery.start_soon(_signalled, signals, done)
                await done.wait()
                dispatcher.stop(config.grace)
                nursery.cancel_scope.cancel()
    finally:
        with trio.CancelScope(shield=True):
            await sender.aclose()
        database.close()
        written.close()


def main() -> None:
    config, pending = read_config()
    os.nice(NICE)
    _log_to_stderr(config)
    # A terminal's Ctrl-C reaches the whole process group: stopping is the parent's call (it
    # sends SIGTERM once its listeners have drained and its last events are written).
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    trio.run(deliver, config, 0, pending)


if __name__ == "__main__":
    main()
