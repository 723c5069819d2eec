"""The relay's event splitting and its filter of OpenAI's usage-only chunk (D13): events stay
whole whatever their line ends, only the usage-only event goes, and every other byte passes
unchanged and in order, wherever the chunks of the stream are cut. Its lazy accounting gives
the answers of the full one, wherever the stream is cut."""

from __future__ import annotations

from bisect import bisect_right
from itertools import accumulate

import orjson
import pytest
from hypothesis import given
from hypothesis import strategies as st
from tests.domain.test_usage import (
    ANTHROPIC_CUT,
    ANTHROPIC_STREAM,
    GEMINI_STREAM,
    OPENAI_STREAM,
    OPENAI_WITHOUT_USAGE,
    RESPONSES_STREAM,
    events_of,
    words,
)

from tokenomics.domain.lazy_stream_usage import LazyStreamAccounting, marks
from tokenomics.domain.stream_usage import StreamAccounting
from tokenomics.domain.usage import Family
from tokenomics.pipeline.relay import _Relayed, _to_read
from tokenomics.upstream.sse import EventSplitter, all_event_fields, event_fields, split_events

TEXT = b'data: {"choices":[{"index":0,"delta":{"content":"hi"}}],"usage":null}\n\n'
USAGE = b'data: {"choices": [ ],"usage":{"prompt_tokens":2,"total_tokens":3}}\n\n'
EMPTY_NO_USAGE = b'data: {"choices":[]}\n\n'  # no usage: not the chunk the proxy asked for
DONE = b"data: [DONE]\n\n"


def filtered(chunks: list[bytes]) -> bytes:
    relayed = _Relayed(LazyStreamAccounting("openai", all_event_fields), strip=True)
    return b"".join(relayed.feed(chunk) for chunk in chunks) + relayed.close()


@pytest.mark.parametrize(
    ("stream", "expected"),
    [
        (TEXT + TEXT + USAGE + DONE, TEXT + TEXT + DONE),
        (USAGE + TEXT + USAGE + TEXT, TEXT + TEXT),
        (TEXT + EMPTY_NO_USAGE + DONE, TEXT + EMPTY_NO_USAGE + DONE),
        (b": ping\n\n" + USAGE + b"\n\n" + DONE, b": ping\n\n" + b"\n\n" + DONE),
        (TEXT + DONE, TEXT + DONE),
    ],
)
def test_only_the_usage_only_event_is_dropped(stream: bytes, expected: bytes) -> None:
    assert filtered([stream]) == expected
    crlf = stream.replace(b"\n", b"\r\n")
    assert filtered([crlf]) == expected.replace(b"\n", b"\r\n")


@pytest.mark.parametrize("end", [b"\n", b"\r\n"])
def test_every_cut_of_the_stream_gives_the_same_bytes(end: bytes) -> None:
    stream = (TEXT + USAGE + DONE).replace(b"\n", end)
    expected = (TEXT + DONE).replace(b"\n", end)
    for cut in range(len(stream) + 1):
        assert filtered([stream[:cut], stream[cut:]]) == expected, cut


def test_an_unfinished_last_event_comes_out_at_the_end() -> None:
    relayed = _Relayed(LazyStreamAccounting("openai", all_event_fields), strip=True)
    assert relayed.feed(TEXT + b"data: {") == TEXT
    assert relayed.close() == b"data: {"


def test_without_the_filter_bytes_go_out_as_they_arrive_and_are_still_accounted() -> None:
    accounting = LazyStreamAccounting("openai", all_event_fields)
    relayed = _Relayed(accounting, strip=False)
    stream = TEXT + USAGE + DONE
    assert [relayed.feed(stream[:30]), relayed.feed(stream[30:])] == [stream[:30], stream[30:]]
    assert relayed.close() == b""
    assert accounting.result(len).input_tokens == 2
    assert accounting.text() is None  # usage was reported: the text was never read


@pytest.mark.parametrize("end", [b"\n", b"\r\n", b"\r"])
def test_an_event_of_several_lines_stays_one_event(end: bytes) -> None:
    event = b"event: message_delta" + end + b'data: {"type":"message_delta"}' + end + end
    for cut in range(len(event * 2) + 1):
        splitter = EventSplitter()
        stream = event * 2
        events = splitter.feed(stream[:cut]) + splitter.feed(stream[cut:])
        assert b"".join(events) + splitter.flush() == stream, cut
        assert all(e == event for e in events), (cut, events)


STREAMS: list[tuple[Family, bytes]] = [
    ("openai", OPENAI_STREAM),
    ("openai", RESPONSES_STREAM),
    ("anthropic", ANTHROPIC_STREAM),
    ("gemini", GEMINI_STREAM),
    ("openai", OPENAI_WITHOUT_USAGE),
    ("anthropic", ANTHROPIC_CUT),
    ("openai", TEXT + b"data: not json\n\n" + TEXT + DONE),
    ("openai", TEXT + TEXT + b'data: {"choices":[{"delta":{"content":"x"}}]}'),  # unfinished
]


@pytest.mark.parametrize(("family", "stream"), STREAMS)
@pytest.mark.parametrize("max_kept", [1 << 20, 300])
def test_the_lazy_accounting_answers_like_the_full_one_at_every_cut(
    family: Family, stream: bytes, max_kept: int
) -> None:
    whole = StreamAccounting.of_events(events_of(stream), family)
    expected = (whole.result(words), whole.meta({}))
    for cut in range(0, len(stream) + 1, 7):
        accounting = LazyStreamAccounting(family, all_event_fields, max_kept=max_kept)
        relayed = _Relayed(accounting, strip=False)
        out = relayed.feed(stream[:cut]) + relayed.feed(stream[cut:]) + relayed.close()
        assert out == stream, cut  # unfiltered: every byte once, as it came
        assert (accounting.result(words), accounting.meta({})) == expected, cut
        text = accounting.text()
        assert text is None or text == (whole.text, whole.text_truncated), cut


# ── where the relay reads: found around the marks, as cutting every event found them ────────


def split_reference(block: bytes, meta: bool, strip: bool) -> tuple[list[bytes], bytes]:
    """The events the relay read of a block and what it sent, as it did when it cut every
    block into events (`split_events`) and picked them by index."""
    events = split_events(block)
    ends = list(accumulate(map(len, events)))
    picked = {bisect_right(ends, position) for position in marks(block)}
    if meta:
        first = next((i for i, raw in enumerate(events) if b"data" in raw), len(events) - 1)
        picked.update(range(first + 1))
    read = [events[index] for index in sorted(picked)]
    accounting = StreamAccounting("openai")
    dropped = set()
    for index in sorted(picked):
        fields = event_fields(events[index])
        payload = accounting.feed_data(*fields) if fields is not None else None
        if strip and isinstance(payload, dict) and "usage" in payload and not payload["choices"]:
            dropped.add(index)
    return read, b"".join(raw for index, raw in enumerate(events) if index not in dropped)


EVENT = st.sampled_from(
    [TEXT, USAGE, DONE, EMPTY_NO_USAGE, b": ping\n\n", b"\n", b"\n\n", b"\r\n", b"event: x\n",
     b'data: {"choices":[{"delta":{},"finish_reason":"stop"}]}\n\n', b"data: {}\n\n",
     b'data: {"usage":null,"choices":[{"delta":{"content":"a"}}]}\n\n', b"id: 1\n"]
)  # fmt: skip


@given(st.lists(EVENT, max_size=12), st.booleans(), st.booleans())
def test_the_events_read_are_the_ones_cutting_the_block_read(
    parts: list[bytes], meta: bool, strip: bool
) -> None:
    block = EventSplitter().whole(b"".join(parts))
    if not block:
        return
    expected_read, expected_out = split_reference(block, meta, strip)
    spans = _to_read(block, meta)
    if spans is not None:  # found around the marks: the same events
        assert [block[start:end] for start, end in spans] == expected_read
    accounting = LazyStreamAccounting("openai", all_event_fields)
    if not meta:  # the response id and model are known already
        accounting.feed_data(None, b'{"id":"x","model":"m"}')
    relayed = _Relayed(accounting, strip=strip)
    assert relayed.feed(block) == (expected_out if strip else block)
    # Once it reads every event (past `max_kept`), the same bytes go out.
    eager = LazyStreamAccounting("openai", all_event_fields, max_kept=0)
    relayed = _Relayed(eager, strip=strip)
    relayed.feed(b'data: {"id":"x","model":"m"}\n\n')
    assert eager.eager
    assert relayed.feed(block) == (expected_out if strip else block)


def test_a_buffered_body_reads_as_it_did_when_decoded_first() -> None:
    from tokenomics.pipeline.relay import _json

    for body in [
        b'{"a":"\xc3\xa7"}',
        b'{"a":"\xff"}',
        b"[1,2]",
        b"not json",
        b"",
        b'{"a":"\xe2\x82"}',
    ]:
        try:
            expected = orjson.loads(body.decode("utf-8", "replace"))
        except orjson.JSONDecodeError:
            expected = None
        assert _json(body) == expected, body
