"""What memory files and communication events keep of a streamed reply, in bounded memory.

A stream may run for minutes: keeping every chunk the client received until it ends made
each open stream grow by all it had sent (1,000 slow streams: +57 MB). An SSE reply is read
as it goes instead (every 4 KiB: a short stream is read once, at its end), into what its
readers show (`cli.md` §7.3, §7.6):
- the numbered `data:` payloads, as the memory file clips them: their first and last
  characters and their length (`Clipped`);
- the assistant text, up to its own limit (`StreamAccounting`, text only);
- the first `keep_bodies` payloads and how many there were (communication events).
Any other stream (a Gemini JSON array) keeps its chunks, up to `BODY_LIMIT` bytes, as before.
Only the first `BODY_LIMIT` bytes are read either way; `kept_bytes` says how many were.
"""

from __future__ import annotations

from collections import deque
from typing import TYPE_CHECKING

from tokenomics.domain.stream_usage import StreamAccounting
from tokenomics.pipeline.exchange import BODY_LIMIT
from tokenomics.upstream.sse import EventSplitter, event_fields, split_events

if TYPE_CHECKING:
    from collections.abc import Iterable

SECTION_LIMIT = 8 * 1024  # characters of one memory section (`services/memory_limits.clip`)
CLIP_HEAD = SECTION_LIMIT // 4  # what `clip` keeps of a text's start …
CLIP_TAIL = SECTION_LIMIT - CLIP_HEAD  # … and of its end
READ_EVERY = 4 * 1024  # an SSE stream's chunks are read once this many bytes wait (and at its end)
EVENT_BODIES = 256  # SSE payloads listed as communication events (`services/comm_events`)


def is_event_stream(content_type: str) -> bool:
    return "event-stream" in content_type.lower()


class Clipped:
    """A text appended piece by piece, kept as its first `head` and last `tail` characters
    and its length: all `clip` shows of it. While the text fits in `head + tail` characters,
    `head + tail_text()` is the whole of it."""

    __slots__ = ("_head", "_keep_head", "_keep_tail", "_tail", "_tail_size", "length")

    def __init__(self, head: int = CLIP_HEAD, tail: int = CLIP_TAIL) -> None:
        self._keep_head, self._keep_tail = head, tail
        self._head = ""
        self._tail: deque[str] = deque()
        self._tail_size = 0
        self.length = 0

    @property
    def head(self) -> str:
        return self._head

    def append(self, piece: str) -> None:
        self.length += len(piece)
        room = self._keep_head - len(self._head)
        if room > 0:
            self._head += piece[:room]
            piece = piece[room:]
        if piece:
            tail = self._tail
            if len(piece) >= self._keep_tail:  # the whole tail is in it: only that is kept
                tail.clear()
                self._tail_size = 0
                piece = piece[len(piece) - self._keep_tail :]
                if not piece:
                    return
            tail.append(piece)
            self._tail_size += len(piece)
            # Whole pieces the tail no longer needs are dropped: it holds `tail` characters
            # and at most one piece more, and nothing is copied.
            while tail and self._tail_size - len(tail[0]) >= self._keep_tail:
                self._tail_size -= len(tail.popleft())

    def tail_text(self) -> str:
        """The last `tail` characters (fewer when the text is shorter)."""
        return "".join(self._tail)[-self._keep_tail :] if self._keep_tail else ""

    @property
    def left_out(self) -> int:
        """Characters neither in `head` nor in `tail_text()`."""
        return max(0, self.length - self._keep_head - self._keep_tail)


class StreamCapture:
    """Fed each chunk sent to the client, in order; read once the stream has ended.

    The request hands it over to the record's consumers unclosed (what was not read yet is at
    most `READ_EVERY` bytes): each consumer calls `close` before it reads the capture, in the
    ledger's batch, so the last read costs the request nothing."""

    __slots__ = (
        "_keep_bodies", "_splitter", "_unread", "bodies", "chunks", "kept_bytes", "numbered",
        "payloads", "sse", "text",
    )  # fmt: skip

    def __init__(self, sse: bool, keep_bodies: int = 0) -> None:
        self.sse = sse
        self._keep_bodies = keep_bodies
        self._splitter: EventSplitter | None = EventSplitter() if sse else None
        self.kept_bytes = 0  # of the stream, read here (at most `BODY_LIMIT`)
        self.chunks: list[bytes] = []  # not SSE: the chunks; SSE: the ones not read yet
        self._unread = 0
        self.numbered = Clipped()  # SSE: `1. <payload>` lines, joined with LF
        self.payloads = 0  # SSE: events with a non-empty `data`
        self.bodies: list[str] = []  # SSE: the first `keep_bodies` of those, decoded
        self.text = StreamAccounting(None)  # SSE: the assistant text the events carry

    @classmethod
    def of(cls, chunks: Iterable[bytes], sse: bool, keep_bodies: int = 0) -> StreamCapture:
        """The capture of a whole stream."""
        capture = cls(sse, keep_bodies)
        for chunk in chunks:
            capture.feed(chunk)
        capture.close()
        return capture

    @property
    def closed(self) -> bool:
        """All of it has been read (always, for a stream that is not SSE)."""
        return self._splitter is None

    def feed(self, chunk: bytes) -> None:
        room = BODY_LIMIT - self.kept_bytes
        if room <= 0:
            return
        chunk = chunk[:room]
        self.kept_bytes += len(chunk)
        self.chunks.append(chunk)
        if self._splitter is not None:
            self._unread += len(chunk)
            if self._unread > READ_EVERY:
                self._read()

    def close(self) -> None:
        """The end of the stream: what is left is read, an event lacking its blank line too.
        Once: a second call (another consumer of the record) finds nothing left to read."""
        if self._splitter is not None:
            self._read()
            if rest := self._splitter.flush():
                self._event(rest)
            self._splitter = None

    def _read(self) -> None:
        """The chunks fed since the last read, as events (in one piece: one scan)."""
        assert self._splitter is not None
        whole = self._splitter.whole(b"".join(self.chunks))
        self.chunks.clear()
        self._unread = 0
        payloads = data_lines(whole)
        if payloads is None:  # named events, comments, CR line ends, …: event by event
            for raw in split_events(whole):
                self._event(raw)
        elif payloads:
            self._payloads(payloads)

    def _payloads(self, payloads: list[bytes]) -> None:
        """The payloads of a block of plain `data: …` events (`data_lines`), in a few steps
        for the block: what `_event` does for one event, without cutting each one again."""
        full = [data for data in payloads if data]
        if not full:
            return
        self.text.feed_plain(full)
        decoded = [data.decode("utf-8", "replace") for data in full]
        first = self.payloads + 1
        self.payloads += len(decoded)
        numbered = "\n".join(map("{}. {}".format, range(first, self.payloads + 1), decoded))
        self.numbered.append(numbered if first == 1 else "\n" + numbered)
        if (room := self._keep_bodies - len(self.bodies)) > 0:
            self.bodies += decoded[:room]

    def _event(self, raw: bytes) -> None:
        fields = event_fields(raw)
        if fields is None:
            return
        name, data = fields
        self.text.feed_data(name, data)
        if not data:
            return
        payload = data.decode("utf-8", "replace")
        self.payloads += 1
        self.numbered.append(f"{'' if self.payloads == 1 else chr(10)}{self.payloads}. {payload}")
        if len(self.bodies) < self._keep_bodies:
            self.bodies.append(payload)


def data_lines(whole: bytes) -> list[bytes] | None:
    """The `data` of each event of a block of whole events when every one of them is a
    single `data: …` line with LF line ends (the usual stream); None for any other block
    (`event_fields` reads those). A few C-level scans and a split, for the whole block."""
    if not whole:
        return []
    if whole[:6] != b"data: " or whole[-2:] != b"\n\n" or b"\r" in whole:
        return None
    payloads = whole[6:-2].split(b"\n\ndata: ")
    # Every line end is one of the blank lines the split cut on: no payload has a line of
    # its own, an event has no other field. (`in` finds a byte with memchr; `count` steps.)
    return None if b"\n" in b"".join(payloads) else payloads
