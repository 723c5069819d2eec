"""The relay's lazy accounting, made cheaper, answers and sends what it did before (71a4f51,
kept below as the reference): the same bytes out, usage, metadata and text, whatever the
stream (hostile shapes included: marks inside the text, escaped quotes, `"usage": null`, CRLF,
odd line-end runs, unicode), wherever it is cut, before and past `max_kept` (eager)."""

from __future__ import annotations

import re
from bisect import bisect_right
from itertools import accumulate
from typing import Any

import orjson
from hypothesis import given, settings
from hypothesis import strategies as st
from tests.domain.test_usage import (
    ANTHROPIC_STREAM,
    GEMINI_STREAM,
    OPENAI_STREAM,
    RESPONSES_STREAM,
    words,
)

from tokenomics.domain.lazy_stream_usage import LazyStreamAccounting, marks
from tokenomics.domain.usage import Family
from tokenomics.pipeline.relay import _Relayed, _usage_only
from tokenomics.upstream.sse import EventSplitter, all_event_fields, event_fields, split_events

_MARKS = (
    (b"usage", re.compile(rb'usage(?!"\s*:\s*null)')),
    (b'"finish_reason"', re.compile(rb'"finish_reason"\s*:\s*"')),
    (b"finishReason", re.compile(rb"finishReason")),
    (b"stop_reason", re.compile(rb"stop_reason")),
    (b'"response"', re.compile(rb'"response"')),
)


def reference_marks(data: bytes) -> list[int]:
    found: list[int] = []
    for literal, pattern in _MARKS:
        at = data.find(literal)
        if at >= 0:
            found += [match.start() for match in pattern.finditer(data, at)]
    return found


Span = tuple[int, int]


def _event_end(block: bytes, position: int) -> int:
    end = block.find(b"\n\n", position)
    return len(block) if end < 0 else end + 2


def reference_to_read(block: bytes, meta: bool) -> list[Span] | None:
    positions = reference_marks(block)
    if not positions and not meta:
        return []
    if b"\r" in block:
        return None
    picked: set[Span] = set()
    for position in positions:
        start = block.rfind(b"\n\n", 0, position) + 2
        if start == 1:
            start = 0
        elif start >= 3 and block[start - 3] == 10:
            return None
        picked.add((start, _event_end(block, position)))
    at, size = 0, len(block)
    while meta and at < size:
        end = _event_end(block, at)
        picked.add((at, end))
        meta = block.find(b"data", at, end) < 0
        at = end
    spans = sorted(picked)
    for _, end in spans:
        if end < size and block[end] == 10:
            return None
    return spans


def reference_spans_of_events(
    block: bytes, events: list[bytes], meta: bool, eager: bool
) -> list[Span]:
    ends = list(accumulate(map(len, events)))
    spans = [(end - len(raw), end) for raw, end in zip(events, ends, strict=True)]
    if eager:
        return spans
    picked = {bisect_right(ends, position) for position in reference_marks(block)}
    if meta:
        first = next((i for i, raw in enumerate(events) if b"data" in raw), len(events) - 1)
        picked.update(range(first + 1))
    return [spans[index] for index in sorted(picked)]


class ReferenceRelayed:
    """`_Relayed` as it was."""

    def __init__(self, accounting: LazyStreamAccounting, strip: bool) -> None:
        self._accounting, self._strip = accounting, strip
        self._split = EventSplitter()

    def feed(self, chunk: bytes) -> bytes:
        whole = self._split.whole(chunk)
        out = self._account(whole, last=False) if whole else b""
        return out if self._strip else chunk

    def close(self) -> bytes:
        rest = self._split.flush()
        out = self._account(rest, last=True) if rest else b""
        return out if self._strip else b""

    def _account(self, block: bytes, last: bool) -> bytes:
        accounting = self._accounting
        eager = accounting.eager
        spans = None if eager or last else reference_to_read(block, accounting.needs_meta)
        if spans is None:
            events = [block] if last else split_events(block)
            spans = reference_spans_of_events(block, events, accounting.needs_meta, eager)
        dropped: list[Span] = []
        for start, end in spans:
            fields = event_fields(block[start:end])
            payload = accounting.feed_data(*fields) if fields is not None else None
            if self._strip and _usage_only(payload):
                dropped.append((start, end))
        if not eager:
            accounting.keep(block)
        if not dropped:
            return block
        starts = [0, *(end for _, end in dropped)]
        ends = [*(start for start, _ in dropped), len(block)]
        return b"".join(block[start:end] for start, end in zip(starts, ends, strict=True))


# ── hostile streams ──────────────────────────────────────────────────────────────────────────

TRICKY_TEXT = st.sampled_from(
    ["hi", "usage", '"usage": null', '"usage":{"prompt_tokens":9}', '\\"finish_reason\\": \\"stop\\"',
     '"finish_reason" : "x"', "finishReason", "stop_reason", '"response"', "é🎉", "data: x\n\nusage",
     "\r\n", "", 'x"response"response"'],
)  # fmt: skip


def _chunk(text: str, **extra: Any) -> bytes:
    body = {"id": "c1", "model": "m", "choices": [{"index": 0, "delta": {"content": text},
            "finish_reason": None}], **extra}  # fmt: skip
    return b"data: " + orjson.dumps(body) + b"\n\n"


RAW_EVENT = st.one_of(
    TRICKY_TEXT.map(_chunk),
    TRICKY_TEXT.map(lambda t: _chunk(t, usage=None)),
    TRICKY_TEXT.map(lambda t: b'data: {"choices":[{"delta":{"content":' + orjson.dumps(t) + b'}}]}\n\n'),
    st.sampled_from([
        b'data: {"id":"c1","model":"m","choices":[],"usage":{"prompt_tokens":3,"completion_tokens":4}}\n\n',
        b'data: {"choices":[],"usage":{"prompt_tokens":0,"completion_tokens":0}}\n\n',
        b'data: {"choices":[],"usage": null}\n\n',
        b'data: {"choices":[{"delta":{},"finish_reason" : "length"}]}\n\n',
        b'data: {"choices":[{"delta":{},"finish_reason":"stop"}]}\n\n',
        b'data: {"x_groq":{"usage":{"prompt_tokens":1,"completion_tokens":2}},"choices":[]}\n\n',
        b"data: [DONE]\n\n", b": ping\n\n", b"\n", b"\n\n", b"\r\n", b"\r", b"event: x\n", b"id: 1\n",
        b'data: {"id":"c2","model":"m2"}\n\n', b"data: {}\n\n", b'data: {"id": "\\"usage\\""}\n\n',
        b'data: {"choices":[{"delta":{"content":"a"}}]}\r\n\r\n', b"data: not json\n\n",
        b'data: {"id":"x","model":"m"', b"data: \xff\xfe\n\n",
    ]),
    st.sampled_from([OPENAI_STREAM, ANTHROPIC_STREAM, GEMINI_STREAM, RESPONSES_STREAM]).flatmap(
        lambda s: st.sampled_from(split_events(s))
    ),
)  # fmt: skip


SOUP = st.lists(
    st.sampled_from(
        [
            b'"finish_reason"',
            b"finish_reason",
            b'"',
            b":null",
            b": null",
            b':"',
            b": ",
            b" ",
            b"\t",
            b"usage",
            b'usage"',
            b'"usage":null',
            b"null",
            b":",
            b"\n\n",
            b"\n",
            b"data: ",
            b"{",
            b"}",
            b"finishReason",
            b"R",
            b"_",
            b"stop_reason",
            b'"response"',
            b"\r\n",
        ]
    ),
    max_size=16,
).map(b"".join)  # fragments of marks and their null forms, in any order: overlaps, near misses
RAW_EVENT = st.one_of(RAW_EVENT, SOUP.map(lambda soup: b"data: " + soup + b"\n\n"), SOUP)


def relay_all(relayed: Any, chunks: list[bytes]) -> bytes:
    return b"".join(relayed.feed(chunk) for chunk in chunks) + relayed.close()


def answers(accounting: LazyStreamAccounting) -> tuple[Any, ...]:
    needs = accounting.needs_estimate
    return needs, accounting.result(words), accounting.meta({}), accounting.text()


@settings(max_examples=400)
@given(
    st.lists(RAW_EVENT, max_size=14),
    st.lists(st.integers(1, 400), min_size=1, max_size=6),
    st.sampled_from(["openai", "anthropic", "gemini"]),
    st.booleans(),
    st.sampled_from([1 << 20, 600, 0]),
)
def test_the_relay_sends_and_answers_as_it_did(
    events: list[bytes], cuts: list[int], family: Family, strip: bool, max_kept: int
) -> None:
    stream = b"".join(events)
    chunks, at = [], 0
    while at < len(stream):
        size = cuts[len(chunks) % len(cuts)]
        chunks.append(stream[at : at + size])
        at += size
    old = LazyStreamAccounting(family, all_event_fields, max_kept=max_kept)
    new = LazyStreamAccounting(family, all_event_fields, max_kept=max_kept)
    expected = relay_all(ReferenceRelayed(old, strip), chunks)
    assert relay_all(_Relayed(new, strip), chunks) == expected
    assert answers(new) == answers(old)


@settings(max_examples=1000)
@given(st.lists(st.one_of(RAW_EVENT, SOUP), max_size=14))
def test_marks_are_where_they_were(events: list[bytes]) -> None:
    block = b"".join(events)
    assert marks(block) == reference_marks(block)
