"""A plain TCP stream for our HTTP/1.1 server's connections and the upstream pool's.

`trio.SocketStream` does each `send_all` and `receive_some` through three context managers (a
conflict detector, an error translator, and an async one trying the call before waiting),
which cost about as much as the system call they wrap: on the proxy's path (two sends and two
receives a request) ~40% of the socket time. This stream does the same with trio's public
low-level I/O, once the connection is made (`adopt` takes the socket of a connected or accepted
`trio.SocketStream`, whose options, `TCP_NODELAY` and `TCP_NOTSENT_LOWAT`, stay set):

- each call is a checkpoint, like trio's: cancelled before the system call when the task is
  cancelled, a trip through the scheduler after one that did not have to wait (`send_now`
  skips that trip, for a caller that waits right after; `receive_when_ready` waits before
  its system call, for a caller that knows nothing is there yet);
- `aclose()` wakes a task waiting to send or receive (`ClosedResourceError`), so a write to a
  client that stopped reading ends when the server's sweep closes its socket;
- errors are trio's: `ClosedResourceError` once closed here, `BrokenResourceError` for any
  other socket error.

TLS stays on `trio.SSLStream` over `trio.SocketStream`.
"""

from __future__ import annotations

import select
import socket

import trio
from trio.lowlevel import (
    cancel_shielded_checkpoint,
    checkpoint,
    checkpoint_if_cancelled,
    notify_closing,
    wait_readable,
    wait_writable,
)

READ_SIZE = 64 * 1024


def poller(sock: socket.socket | trio.socket.SocketType) -> select.poll:
    """A poll object watching `sock` for reading: `poll(0)` is not empty when a read would not
    block now (data, or the peer's close: an idle connection's end). Kept with its open
    socket, it asks again without being made again."""
    poll = select.poll()
    poll.register(sock.fileno(), select.POLLIN)
    return poll


def _failed(stream: TCPStream, exc: OSError) -> trio.BrokenResourceError | trio.ClosedResourceError:
    if stream.closed:
        return trio.ClosedResourceError("this stream was closed")
    return trio.BrokenResourceError(f"socket error: {exc}")


def _closed() -> trio.ClosedResourceError:
    return trio.ClosedResourceError("this stream was closed")


async def _send(stream: TCPStream, data: bytes | bytearray | memoryview) -> bool:
    """Send all of `data`; True when the kernel took it at once (no wait, no scheduling:
    `send_all` then owes trio's contract a checkpoint)."""
    if stream.closed:
        raise _closed()
    await checkpoint_if_cancelled()
    try:
        sent = stream.socket.send(data)
    except BlockingIOError:
        sent = 0
    except OSError as exc:
        raise _failed(stream, exc) from exc
    if sent == len(data):
        return True
    await _send_rest(stream, memoryview(data)[sent:])
    return False


async def _send_rest(stream: TCPStream, rest: memoryview) -> None:
    sock = stream.socket
    while rest:
        await wait_writable(sock)
        try:
            rest = rest[sock.send(rest) :]
        except BlockingIOError:
            pass
        except OSError as exc:
            raise _failed(stream, exc) from exc


async def _receive_later(stream: TCPStream, size: int) -> bytes:
    sock = stream.socket
    while True:
        await wait_readable(sock)
        try:
            return sock.recv(size)
        except BlockingIOError:
            pass
        except OSError as exc:
            raise _failed(stream, exc) from exc


class TCPStream(trio.abc.HalfCloseableStream):
    """One connected TCP socket; one task sends and one receives at a time (not checked)."""

    def __init__(self, sock: socket.socket) -> None:
        sock.setblocking(False)
        self.socket = sock
        self.closed = False

    @classmethod
    def adopt(cls, stream: trio.SocketStream) -> TCPStream:
        """The socket of `stream`, which must not be used afterwards."""
        sock = stream.socket
        family, kind, proto = sock.family, sock.type, sock.proto
        return cls(socket.socket(family, kind, proto, fileno=sock.detach()))

    async def send_all(self, data: bytes | bytearray | memoryview) -> None:
        if await _send(self, data):
            await cancel_shielded_checkpoint()

    async def send_now(self, data: bytes | bytearray | memoryview) -> None:
        """`send_all`, a cancel point, but no trip through the scheduler when the kernel takes
        all of `data` at once: for a caller that waits right after (for a reply, or for the
        next request), where that trip (a turn of trio's loop, an epoll_wait) buys nothing."""
        await _send(self, data)

    async def receive_some(self, max_bytes: int | None = None) -> bytes:
        if self.closed:
            raise _closed()
        size = max_bytes or READ_SIZE
        await checkpoint_if_cancelled()
        try:
            data = self.socket.recv(size)
        except BlockingIOError:
            return await _receive_later(self, size)
        except OSError as exc:
            raise _failed(self, exc) from exc
        await cancel_shielded_checkpoint()
        return data

    async def receive_when_ready(self, max_bytes: int | None = None) -> bytes:
        """`receive_some` for a caller that knows nothing has arrived yet (it has just sent a
        request, or read all of one and answers before the peer sends more): it waits for the
        socket first, where trying it first would fail (a system call and an exception)."""
        if self.closed:
            raise _closed()
        return await _receive_later(self, max_bytes or READ_SIZE)

    def receive_now(self, max_bytes: int | None = None) -> bytes | None:
        """What has arrived, None when nothing has: no checkpoint, for a reader that has just
        been scheduled (it waited for the socket) and reads again right away."""
        if self.closed:
            raise _closed()
        try:
            return self.socket.recv(max_bytes or READ_SIZE)
        except BlockingIOError:
            return None
        except OSError as exc:
            raise _failed(self, exc) from exc

    async def wait_send_all_might_not_block(self) -> None:
        if self.closed:
            raise _closed()
        await wait_writable(self.socket)

    async def send_eof(self) -> None:
        if self.closed:
            raise _closed()
        await checkpoint()
        try:
            self.socket.shutdown(socket.SHUT_WR)
        except OSError as exc:
            raise _failed(self, exc) from exc

    async def aclose(self) -> None:
        if not self.closed:
            self.closed = True
            notify_closing(self.socket)  # a task waiting on it gets ClosedResourceError
            self.socket.close()
        await checkpoint()
