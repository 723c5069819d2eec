"""Incremental, sans-I/O Server-Sent-Events parser (WHATWG HTML, "event stream interpretation").

Feed it the bytes of a response body as they arrive; it returns the events completed by each
chunk. Line ends may be LF, CRLF or CR, split anywhere across chunks (a CR ending one chunk and
an LF starting the next are one line end). UTF-8 sequences may be split too: lines are cut on
bytes first (CR and LF never occur inside a multi-byte sequence) and decoded whole.

Deviations from the browser algorithm, on purpose: an event without a name has `event=None`
(not "message"), `retry:` is ignored, and `close()` dispatches a final event that lacks its
blank line (a proxy wants the last usage chunk even from a sloppy upstream).

Memory is bounded: a pending line or an event's data above `max_event_bytes` raises
`SSETooLarge`. The work per chunk is a few C-level scans (`in`, `replace`, `split`) plus one
Python step per line, never per byte.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

DEFAULT_MAX_EVENT_BYTES = 8 * 1024 * 1024
_BOM = b"\xef\xbb\xbf"
# A line end, then an empty line. A CR before an LF is never a line end of its own: without
# the lookahead, `a\r\nb` would read as `a`, CR, LF (a blank line) and split an event.
_EVENT_END = re.compile(rb"(?:\r\n|\r(?!\n)|\n)(?:\r\n|\r(?!\n)|\n)")


class SSETooLarge(ValueError):
    """A single line or event of the stream exceeds the parser's limit."""


@dataclass(frozen=True, slots=True)
class SSEEvent:
    event: str | None  # the `event:` field; None when the event has none
    data: str  # `data:` lines joined with "\n"
    id: str | None  # the last event ID in effect when dispatched (it persists across events)


class SSEParser:
    """Bytes in, `SSEEvent`s out. One instance per stream; not thread-safe."""

    __slots__ = (
        "_data",
        "_data_bytes",
        "_event",
        "_last_id",
        "_limit",
        "_pending",
        "_pending_bytes",
        "_skip_lf",
        "_started",
    )

    def __init__(self, max_event_bytes: int = DEFAULT_MAX_EVENT_BYTES) -> None:
        if max_event_bytes <= 0:
            raise ValueError("max_event_bytes must be positive")
        self._limit = max_event_bytes
        self._pending: list[bytes] = []  # the unfinished last line, in pieces
        self._pending_bytes = 0
        self._skip_lf = False  # the previous chunk ended with CR: drop one leading LF
        self._started = False  # the BOM check at the very start is done
        self._data: list[str] = []
        self._data_bytes = 0
        self._event: str | None = None
        self._last_id: str | None = None

    def feed(self, chunk: bytes) -> list[SSEEvent]:
        """Parse the next piece of the stream; return the events it completed."""
        if not self._started:
            chunk = self._strip_bom(chunk)
            if not self._started:
                return []
        if self._skip_lf and chunk:
            self._skip_lf = False
            if chunk[:1] == b"\n":
                chunk = chunk[1:]
        if not chunk:
            return []
        has_cr = b"\r" in chunk
        if not has_cr and b"\n" not in chunk:
            self._hold(chunk)
            return []
        if self._pending:
            chunk = b"".join((*self._pending, chunk))
            self._pending.clear()
            self._pending_bytes = 0
        if has_cr:
            self._skip_lf = chunk.endswith(b"\r")
            chunk = chunk.replace(b"\r\n", b"\n").replace(b"\r", b"\n")
        lines = chunk.split(b"\n")
        rest = lines.pop()
        events = self._lines(lines)
        if rest:
            self._hold(rest)
        return events

    def close(self) -> list[SSEEvent]:
        """End of stream: finish a pending line and dispatch an event lacking its blank line."""
        if not self._started and self._pending:
            self._started = True  # a stream shorter than a BOM: the held bytes are a line
        lines = [b"".join(self._pending)] if self._pending else []
        lines.append(b"")
        self._pending.clear()
        self._pending_bytes = 0
        self._skip_lf = False
        return self._lines(lines)

    # ── internals ────────────────────────────────────────────────────────────────────────────

    def _strip_bom(self, chunk: bytes) -> bytes:
        """Hold bytes until the first three are known; drop them if they are a UTF-8 BOM."""
        head = b"".join((*self._pending, chunk))
        if len(head) < len(_BOM) and _BOM.startswith(head):
            self._pending = [head] if head else []
            self._pending_bytes = len(head)
            return b""
        self._started = True
        self._pending.clear()
        self._pending_bytes = 0
        return head[len(_BOM) :] if head.startswith(_BOM) else head

    def _hold(self, piece: bytes) -> None:
        self._pending_bytes += len(piece)
        if self._pending_bytes > self._limit:
            raise SSETooLarge(f"an event-stream line exceeds {self._limit} bytes")
        self._pending.append(piece)

    def _lines(self, lines: list[bytes]) -> list[SSEEvent]:
        events: list[SSEEvent] = []
        for line in lines:
            if not line:
                if self._data:
                    events.append(self._dispatch())
                else:
                    self._event = None
                continue
            if line[0] == 0x3A:  # ":" starts a comment
                continue
            name, value = _field(line)
            if name == b"data":
                self._add_data(value)
            elif name == b"event":
                self._event = value.decode("utf-8", "replace")
            elif name == b"id" and b"\0" not in value:
                self._last_id = value.decode("utf-8", "replace")
        return events

    def _add_data(self, value: bytes) -> None:
        self._data_bytes += len(value) + 1
        if self._data_bytes > self._limit:
            raise SSETooLarge(f"an event-stream event exceeds {self._limit} bytes")
        self._data.append(value.decode("utf-8", "replace"))

    def _dispatch(self) -> SSEEvent:
        event = SSEEvent(self._event or None, "\n".join(self._data), self._last_id)
        self._data = []
        self._data_bytes = 0
        self._event = None
        return event


def _field(line: bytes) -> tuple[bytes, bytes]:
    """A field line's name and value (one space after the colon dropped)."""
    name, _, value = line.partition(b":")
    return name, value[1:] if value[:1] == b" " else value


# ── whole events, for a proxy that relays them ───────────────────────────────────────────────


class EventSplitter:
    """Cuts a byte stream into whole events, each with its blank line, bytes as received.

    For relaying event by event (`split_events`, `event_fields`); an unfinished event waits
    for the rest, up to `max_event_bytes` (then `SSETooLarge`)."""

    def __init__(self, max_event_bytes: int = DEFAULT_MAX_EVENT_BYTES) -> None:
        self._pending = b""
        self._limit = max_event_bytes

    def whole(self, chunk: bytes) -> bytes:
        """The whole events so far, as one piece."""
        data = self._pending + chunk
        if b"\r" in data:  # a CR at the very end may be half of a CRLF: it waits
            scan = data[:-1] if data.endswith(b"\r") else data
            end = max((m.end() for m in _EVENT_END.finditer(scan)), default=0)
        else:  # the usual line ends: one scan from the right
            end = data.rfind(b"\n\n") + 2 if b"\n\n" in data else 0
        self._pending = data[end:]
        if len(self._pending) > self._limit:
            raise SSETooLarge(f"an event-stream event exceeds {self._limit} bytes")
        return data[:end]

    def feed(self, chunk: bytes) -> list[bytes]:
        return split_events(self.whole(chunk))

    def flush(self) -> bytes:
        """The end of the stream: what is left (an event lacking its blank line)."""
        rest, self._pending = self._pending, b""
        return rest


def split_events(whole: bytes) -> list[bytes]:
    """The events of `EventSplitter.whole`, each with its blank line."""
    if b"\r" not in whole:
        return [event + b"\n\n" for event in whole.split(b"\n\n")[:-1]]
    events: list[bytes] = []
    start = 0
    for match in _EVENT_END.finditer(whole):
        events.append(whole[start : match.end()])
        start = match.end()
    return events


EventFields = tuple[str | None, bytes]  # the `event` name (or None) and the `data`


def all_event_fields(data: bytes) -> list[EventFields]:
    """The fields of every event with data in `data`, the stream's unfinished last event
    (lacking its blank line) included."""
    splitter = EventSplitter()
    raws = splitter.feed(data)
    raws.append(splitter.flush())
    return [fields for raw in raws if raw and (fields := event_fields(raw)) is not None]


def event_fields(raw: bytes) -> EventFields | None:
    """The `event` name and the `data` (lines joined with LF) of one whole event, by the
    field rules of `SSEParser`; None when it has no `data` line (comments, keep-alives).

    The usual event, one `data:` line, is cut out directly. A BOM opening the event is
    dropped (it can only be the stream's own)."""
    body = raw.rstrip(b"\r\n")  # the data itself never ends with a line end
    if body.startswith(_BOM):
        body = body[len(_BOM) :]
    if body[:5] == b"data:" and b"\n" not in body and b"\r" not in body:
        return None, body[6:] if body[5:6] == b" " else body[5:]
    name: str | None = None
    data: list[bytes] = []
    for line in body.replace(b"\r\n", b"\n").replace(b"\r", b"\n").split(b"\n"):
        if not line or line[:1] == b":":
            continue
        field, value = _field(line)
        if field == b"data":
            data.append(value)
        elif field == b"event":
            name = value.decode("utf-8", "replace") or None
    return (name, b"\n".join(data)) if data else None
