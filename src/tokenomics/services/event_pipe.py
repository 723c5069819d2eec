"""Batches of finished requests handed to the delivery process, which commits their events.

The serving process then does no SQLite work for events: its event writer `offer`s each batch
(one line: a number, then the batch as `event_writer.encode` wrote it) and the delivery
process (`delivery_child.py`) builds the events, appends them to the outbox in one transaction
and answers with the batch's number on its standard output. A batch stays here until that
answer comes, so nothing is lost when the child dies: what it did not confirm is `taken` back
and appended by the serving process itself (`EventWriter.spill`). A batch the child committed
but was killed before confirming is appended twice, with the same event ids (a batch's ids
derive from its key): receivers already see an id more than once under at-least-once.

`offer` says no (and the writer appends the batch itself, as without a delivery process) while
no child is running, or when `LIMIT` bytes are waiting for an answer (a child starved of CPU
at nice 19): so what only this process holds stays as small as the writer's own batch was.
An empty line is a plain wake-up (events appended by this process itself).
"""

from __future__ import annotations

from collections import deque
from typing import TYPE_CHECKING

import trio

if TYPE_CHECKING:
    from collections.abc import Iterable

LIMIT = 1 << 20  # bytes handed over and not yet confirmed


class EventPipe:
    def __init__(self, limit: int = LIMIT) -> None:
        self._limit = limit
        self._waiting: deque[tuple[int, bytes]] = deque()  # not confirmed, oldest first
        self._bytes = 0
        self._number = 0  # of the last batch offered
        self._sent = 0  # the last batch written to the child
        self._wake = False
        self._ready = trio.Event()
        self._answers = b""  # an unfinished line of the child's answers
        self.up = False  # a child is running and reads what is sent

    def offer(self, payload: bytes) -> bool:
        """Take the batch for the delivery process, or say no (the caller appends it)."""
        if not self.up or self._bytes + len(payload) > self._limit:
            return False
        self._number += 1
        self._waiting.append((self._number, payload))
        self._bytes += len(payload)
        self._ready.set()
        return True

    @property
    def unanswered(self) -> int:
        """Batches handed over that the child has not confirmed yet."""
        return len(self._waiting)

    def wake(self) -> None:
        """Events were appended by this process: the child is told with an empty line."""
        self._wake = True
        self._ready.set()

    def start(self) -> None:
        """A new child reads from now on (what an earlier one did not confirm was taken)."""
        self._sent = self._number
        self.up = True

    async def feed(self, stdin: trio.abc.SendStream) -> None:
        """Write the batches (and wake-ups) to the child as they come, until it is gone."""
        while True:
            await self._ready.wait()
            self._ready = trio.Event()
            lines = [b"%d %s\n" % (n, p) for n, p in self._waiting if n > self._sent]
            if self._wake and not lines:
                lines.append(b"\n")
            self._wake = False
            if not lines:
                continue
            self._sent = self._number
            try:
                await stdin.send_all(b"".join(lines))
            except (trio.BrokenResourceError, trio.ClosedResourceError):
                return

    def answered(self, data: bytes) -> None:
        """The child's answers (the numbers of the batches it committed, a line each)."""
        lines = (self._answers + data).split(b"\n")
        self._answers = lines.pop()
        done = max((int(line) for line in lines if line.strip().isdigit()), default=0)
        while self._waiting and self._waiting[0][0] <= done:
            self._bytes -= len(self._waiting.popleft()[1])

    async def read_answers(self, stdout: trio.abc.ReceiveStream) -> None:
        """Until the child's output ends (it exited)."""
        while data := await stdout.receive_some(65536):
            self.answered(bytes(data))

    def take(self) -> list[bytes]:
        """The child is gone: what it did not confirm, for the caller to append."""
        self.up = False
        self._answers = b""
        taken: Iterable[bytes] = (payload for _, payload in self._waiting)
        payloads = list(taken)
        self._waiting.clear()
        self._bytes = 0
        return payloads
