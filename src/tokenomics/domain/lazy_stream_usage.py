"""`LazyStreamAccounting`, for the relay: `StreamAccounting`'s answers while parsing only the
events that may carry more than text (`marks`), keeping the others raw, to be read only when the
text turns out to be needed; with usage reported, most of a stream is never parsed."""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any

from tokenomics.domain.stream_usage import (
    DEFAULT_MAX_TEXT_BYTES,
    MAX_KEPT_BYTES,
    Event,
    StreamAccounting,
)

if TYPE_CHECKING:
    from collections.abc import Callable, Iterable, Mapping

    from tokenomics.domain.usage import Family, ResponseMeta, Usage


class LazyStreamAccounting:
    """`StreamAccounting`'s answers for a relayed stream, for less work. The relay feeds now
    only the events that may carry more than text (`marks` finds them in a block of events,
    in one scan) and the first ones, until the response id and model are known; every block
    of events is kept raw, in order. When the text is needed (no final usage was reported, or
    a caller asks for it) they are all read then, with `read_events`. Past `max_kept` bytes
    it reads them at once and becomes `eager`: from then on the relay feeds every event."""

    __slots__ = (
        "_blocks", "_family", "_full", "_max_kept", "_max_text", "_read_events", "_seen", "_size",
    )  # fmt: skip

    def __init__(
        self,
        family: Family,
        read_events: Callable[[bytes], Iterable[Event]],
        max_text_bytes: int = DEFAULT_MAX_TEXT_BYTES,
        max_kept: int = MAX_KEPT_BYTES,
    ) -> None:
        self._family, self._read_events = family, read_events
        self._max_text, self._max_kept = max_text_bytes, max_kept
        self._seen = StreamAccounting(family, max_text_bytes)  # fed the events read now only
        self._blocks: list[bytes] = []
        self._size = 0
        self._full: StreamAccounting | None = None  # fed every event, once it was needed

    @property
    def eager(self) -> bool:
        return self._full is not None

    @property
    def needs_meta(self) -> bool:
        """The response id or model is not known yet: read the first events."""
        return not (self._seen.upstream_id and self._seen.actual_model)

    def feed_data(self, name: str | None, data: bytes) -> Any:
        """Read one event now; returns its JSON (None: `[DONE]`, not JSON)."""
        return (self._full or self._seen).feed_data(name, data)

    def keep(self, events: bytes) -> None:
        """Keep a block of whole events (after feeding the ones to read now)."""
        if self._full is None:
            self._blocks.append(events)
            self._size += len(events)
            if self._size > self._max_kept:
                self._read_all()

    @property
    def needs_estimate(self) -> bool:
        """`result` will count the text: no final usage was reported (the kept events are
        read to know, when the ones read so far had none)."""
        if self._full is None and self._seen.final_usage() is not None:
            return False
        return self._read_all().needs_estimate

    def result(self, estimate: Callable[[str], int]) -> Usage:
        if self._full is None and (final := self._seen.final_usage()) is not None:
            return final
        return self._read_all().result(estimate)

    def meta(self, headers: Mapping[str, str]) -> ResponseMeta:
        return (self._full or self._seen).meta(headers)

    def text(self) -> tuple[str, bool] | None:
        """The assistant text and whether it was cut, when it has been read (else None)."""
        return None if self._full is None else (self._full.text, self._full.text_truncated)

    def _read_all(self) -> StreamAccounting:
        if self._full is None:
            events = (event for block in self._blocks for event in self._read_events(block))
            self._full = StreamAccounting.of_events(events, self._family, self._max_text)
            self._blocks = []
        return self._full


# A mark: (a byte that must be there, a literal that must be there, its two null forms, the
# pattern of a mark, starting with the literal).
_MARKS = (
    (b"", b"usage", (b'usage":null', b'usage": null'), re.compile(rb'usage(?!"\s*:\s*null)')),
    (b"", b'"finish_reason"', (b'"finish_reason":null', b'"finish_reason": null'),
     re.compile(rb'"finish_reason"\s*:\s*"')),
    (b"R", b"finishReason", None, re.compile(rb"finishReason")),
    (b"", b"stop_reason", None, re.compile(rb"stop_reason")),
    (b"", b'"response"', None, re.compile(rb'"response"')),  # a Responses object
)  # fmt: skip


def marks(data: bytes) -> list[int]:
    """Where the JSON events in `data` may carry more than text: usage (usageMetadata,
    x_groq.usage), a finish or stop reason, a Responses object (status, usage, id). OpenAI
    repeats `"usage":null` and `"finish_reason":null` in every chunk: only a value counts.

    Each literal is looked for first (`bytes.find`, a fast scan in C); a pattern runs only
    from where its literal is (its own search goes byte by byte, ~5x the instructions). A
    literal with null forms found once is matched there; one whose last place is a null form
    is counted (`_all_null`): found as often as its null forms, it is null everywhere, and
    the pattern does not run. `finishReason` is not looked for in a block without an `R`
    (`memchr`, ~10x faster: OpenAI and Anthropic events seldom have one)."""
    found: list[int] = []
    for byte, literal, nulls, pattern in _MARKS:
        if byte and byte not in data:
            continue
        at = data.find(literal)
        if at < 0:
            continue
        if nulls is not None:  # usage, finish_reason: often there, often null
            last = data.rfind(literal)
            if last == at:  # its only place (a usage chunk): no iterator
                if pattern.match(data, at) is not None:
                    found.append(at)
                continue
            if data.startswith(nulls, last) and _all_null(data, at, literal, nulls):
                continue
        found += [match.start() for match in pattern.finditer(data, at)]
    return found


def _all_null(data: bytes, at: int, literal: bytes, nulls: tuple[bytes, bytes]) -> bool:
    """Every place of `literal` from `at` (its first) on is one of its null forms, so none
    is a mark (asked when the last one is null: a value is usually in the last events). The
    form of the first is counted first (a stream has one serializer: two counts). Counts are
    of non-overlapping places: a null form never overlaps another, and `"finish_reason"`
    overlaps itself only by its closing quote; a place skipped so (or a mark) always leaves
    the literal counted more often than its null forms."""
    first, second = nulls if data.startswith(nulls[0], at) else (nulls[1], nulls[0])
    left = data.count(literal, at) - data.count(first, at)
    return left == 0 or left == data.count(second, at)
