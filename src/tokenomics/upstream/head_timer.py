"""The response-headers deadline of requests on pooled connections, and the idle timeout of
each read of their bodies, kept by one task.

A cancel scope with a deadline around every upstream call (`trio.move_on_after`) was the
largest single cost of trio's machinery on the proxy's path (~4% of its CPU, py-spy at c=1):
entering and leaving it registers the deadline in trio's heap and recomputes the task's
cancel status. Here a request on a pooled connection only records its deadline in a heap of
our own (`watch`, `unwatch`: a push and a counter); one task (`run`, started by the
composition root) sleeps until the earliest deadline, and a connection still waiting for its
response head (or the next body bytes) then is shut down: its pending write or read fails
at once, and the request reports the timeout (`timed_out`). The connection is never reused.

The task sleeps until the earliest deadline, or (nothing watched) for the shortest timeout
seen, so a new watch rarely has to move its wake-up (only a timeout shorter than any before).
Entries that were unwatched stay in the heap until they reach its top or the heap is
compacted (when it holds more than twice the watched entries).
"""

from __future__ import annotations

import contextlib
import math
import socket
from heapq import heapify, heappop, heappush
from typing import Protocol

import trio

COMPACT_SLACK = 64


class Watched(Protocol):
    """A connection under the timer: `watch` is the number of its current entry (0: none)."""

    watch: int
    timed_out: bool

    def shut_down(self) -> None: ...


class HeadTimer:
    def __init__(self) -> None:
        self._heap: list[tuple[float, int, Watched]] = []
        self._live = 0
        self._serial = 0
        self._shortest = math.inf
        self._nap: trio.CancelScope | None = None
        self.running = False

    def watch(self, connection: Watched, timeout: float) -> None:
        """`connection` times out `timeout` seconds from now unless `unwatch`ed before."""
        deadline = trio.current_time() + timeout
        self._serial += 1
        connection.watch = self._serial
        connection.timed_out = False
        heap = self._heap
        heappush(heap, (deadline, self._serial, connection))
        self._live += 1
        if len(heap) > 2 * self._live + COMPACT_SLACK:
            self._compact()
        if timeout < self._shortest:
            self._shortest = timeout
        nap = self._nap
        if nap is not None and deadline < nap.deadline:
            nap.deadline = deadline

    def unwatch(self, connection: Watched) -> None:
        if connection.watch:
            connection.watch = 0
            self._live -= 1

    def statistics(self) -> dict[str, int]:
        """Connections awaiting a response head, and the heap's entries (unwatched ones too)."""
        return {"watched": self._live, "entries": len(self._heap)}

    def _compact(self) -> None:
        self._heap = [entry for entry in self._heap if entry[2].watch == entry[1]]
        heapify(self._heap)

    def _expire(self, now: float) -> float:
        """Time out what is due; returns when to look again."""
        heap = self._heap
        while heap:
            deadline, serial, connection = heap[0]
            if connection.watch != serial:  # unwatched
                heappop(heap)
            elif deadline <= now:
                heappop(heap)
                self.unwatch(connection)
                connection.timed_out = True
                connection.shut_down()
            else:
                return deadline
        return now + self._shortest

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Keep the deadlines until cancelled; requests fall back to a cancel scope of their
        own while this does not run."""
        self.running = True
        try:
            task_status.started()
            while True:
                with trio.CancelScope(deadline=self._expire(trio.current_time())) as nap:
                    self._nap = nap
                    await trio.sleep_forever()
        finally:
            self.running = False
            self._nap = None


def shut_down(sock: socket.socket | trio.socket.SocketType) -> None:
    """End both directions of `sock` without closing it: a task waiting to read sees the end
    of the stream, one waiting to write an error."""
    with contextlib.suppress(OSError):  # already shut down, or reset
        sock.shutdown(socket.SHUT_RDWR)
