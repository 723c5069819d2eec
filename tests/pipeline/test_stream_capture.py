"""`StreamCapture`: a stream read as it goes for memory and events, in bounded memory, shows
what reading all of its chunks at its end showed (the reference below, the code it replaced)."""

from __future__ import annotations

import orjson
import pytest
from hypothesis import given
from hypothesis import strategies as st

from tokenomics.domain.stream_usage import StreamAccounting
from tokenomics.pipeline.exchange import BODY_LIMIT
from tokenomics.pipeline.stream_capture import (
    CLIP_HEAD,
    CLIP_TAIL,
    READ_EVERY,
    Clipped,
    StreamCapture,
    data_lines,
)
from tokenomics.services.capture import sanitise
from tokenomics.services.memory_format import TRUNCATED, stream_text
from tokenomics.services.memory_limits import clip, clip_kept
from tokenomics.upstream.sse import EventSplitter, all_event_fields, event_fields, split_events

OPENAI = (
    b'data: {"choices":[{"delta":{"content":"Bonjour, \xc3\xa7a va"}}]}\n\n'
    b'data: {"choices":[{"delta":{"content":"\xf0\x9f\x8e\x89"}}]}\n\n'
    b'data: {"choices":[],"usage":{"total_tokens":3}}\n\n'
    b"data: [DONE]\n\n"
)
DECODED = [
    (None, '{"choices":[{"delta":{"content":"Bonjour, ça va"}}]}'),
    (None, '{"choices":[{"delta":{"content":"🎉"}}]}'),
    (None, '{"choices":[],"usage":{"total_tokens":3}}'),
    (None, "[DONE]"),
]
# Each shape with what the WHATWG field rules make of it (checked against the line-by-line
# parser this module replaced, `bench/sse_parsers.py --against aa880b7`).
SHAPES = [
    (OPENAI, DECODED),
    (OPENAI[:-2], DECODED),  # the last event lacks its blank line
    (OPENAI[:40], [(None, '{"choices":[{"delta":{"content":"B')]),  # cut (the capture limit)
    (b"data:no-space\n\ndata:  two spaces\n\n", [(None, "no-space"), (None, " two spaces")]),
    (b"data:\n\ndata: \n\n", [(None, ""), (None, "")]),  # empty payloads
    (
        b"event: message_start\ndata: {}\n\nevent: ping\ndata: {}\n\n",
        [("message_start", "{}"), ("ping", "{}")],
    ),  # named events
    (b": keep-alive\n\ndata: x\n\n", [(None, "x")]),  # a comment
    (b"data: a\ndata: b\n\n", [(None, "a\nb")]),  # two data lines make one payload
    (b"data: a\r\n\r\ndata: b\r\n\r\n", [(None, "a"), (None, "b")]),  # CRLF
    (b"\xef\xbb\xbfdata: bom\n\n", [(None, "bom")]),  # a BOM
    (b"data: a\n\n\n\ndata: b\n\n", [(None, "a"), (None, "b")]),  # extra blank lines
    (b"data: \xff\xfe invalid\n\n", [(None, "\ufffd\ufffd invalid")]),  # invalid UTF-8
    (b"id: 7\ndata: x\n\n", [(None, "x")]),
    (b"", []),
]


def bodies(chunks: list[bytes]) -> list[str]:
    return StreamCapture.of(chunks, sse=True, keep_bodies=100).bodies


@pytest.mark.parametrize(("raw", "expected"), SHAPES)
def test_payloads_follow_the_field_rules(
    raw: bytes, expected: list[tuple[str | None, str]]
) -> None:
    assert bodies([raw]) == [data for _, data in expected if data]


@pytest.mark.parametrize(("raw", "expected"), [SHAPES[0], SHAPES[5], SHAPES[8]])
def test_payloads_are_the_same_at_every_split(
    raw: bytes, expected: list[tuple[str | None, str]]
) -> None:
    for cut in range(len(raw) + 1):
        assert bodies([raw[:cut], raw[cut:]]) == [data for _, data in expected if data], cut


def test_named_events_carry_their_text() -> None:
    raw = (
        b'event: content_block_delta\ndata: {"type":"content_block_delta","index":0,'
        b'"delta":{"type":"text_delta","text":"Bonjour"}}\n\n'
    )
    assert StreamCapture.of([raw], sse=True).text.text == "Bonjour"


def reference_text(chunks: list[bytes], total: int) -> str:
    """`memory_format.stream_text` as it was: every chunk kept to the end, then read whole."""
    events = all_event_fields(b"".join(chunks))
    accounting = StreamAccounting.of_events(events, None)
    payloads = [data.decode("utf-8", "replace") for _, data in events]
    numbered = "\n".join(f"{n}. {p}" for n, p in enumerate(filter(None, payloads), 1))
    lines = ["[streaming sse]", "", "SSE events:"]
    lines.append(clip(sanitise(numbered.replace("\ufffd", "?"))) if numbered else "(none captured)")
    lines += ["", "Captured assistant text:", clip(sanitise(accounting.text)) or "(none)"]
    if accounting.text_truncated or total > sum(len(chunk) for chunk in chunks):
        lines += ["", TRUNCATED]
    return "\n".join(lines)


def delta(text: str) -> bytes:
    return (
        b"data: " + orjson.dumps({"choices": [{"index": 0, "delta": {"content": text}}]}) + b"\n\n"
    )


PAYLOAD = st.text(st.characters(codec="utf-8", exclude_characters="\r\n"), max_size=400)


@given(
    st.lists(st.one_of(PAYLOAD.map(delta), PAYLOAD.map(lambda p: f"data: {p}\n\n".encode()),
                       st.binary(max_size=60)), max_size=80),
    st.lists(st.integers(1, 700), min_size=1, max_size=20),
)  # fmt: skip
def test_memory_shows_what_reading_the_whole_stream_showed(
    events: list[bytes], cuts: list[int]
) -> None:
    stream = b"".join(events)
    chunks, at = [], 0
    while at < len(stream):  # cut where hypothesis says, over and over
        size = cuts[len(chunks) % len(cuts)]
        chunks.append(stream[at : at + size])
        at += size
    total = len(stream)
    text = stream_text(StreamCapture.of(chunks, sse=True), total)
    assert text == reference_text(chunks, total)


def test_a_long_stream_keeps_only_what_memory_shows() -> None:
    capture = StreamCapture(sse=True)
    sent = [delta(f" word{n}") for n in range(3_000)]
    for chunk in sent:
        capture.feed(chunk)
    assert sum(map(len, capture.chunks)) <= READ_EVERY  # read as it goes
    capture.close()
    assert capture.payloads == 3_000 and capture.bodies == [] and capture.chunks == []
    assert capture.kept_bytes == sum(map(len, sent)) < BODY_LIMIT
    numbered = capture.numbered
    assert len(numbered.head) == CLIP_HEAD and len(numbered.tail_text()) == CLIP_TAIL
    assert clip_kept(numbered, sanitise).endswith('{"content":" word2999"}}]}')
    again = StreamCapture(sse=True)
    for _ in range(20):  # past the capture limit nothing more is read
        again.feed(b"data: " + b"x" * 100_000 + b"\n\n")
    again.close()
    assert again.kept_bytes == BODY_LIMIT and again.payloads == 6


@given(st.lists(st.text(max_size=3000), max_size=30), st.integers(0, 50), st.integers(0, 50))
def test_clipped_is_clip_of_the_joined_text(pieces: list[str], head: int, tail: int) -> None:
    kept = Clipped(head, tail)
    for piece in pieces:
        kept.append(piece)
    whole = "".join(pieces)
    assert kept.length == len(whole)
    assert kept.head == whole[:head]
    if len(whole) > head + tail:
        assert kept.left_out == len(whole) - head - tail
        assert kept.tail_text() == (whole[-tail:] if tail else "")
    else:
        assert kept.left_out == 0 and kept.head + kept.tail_text() == whole


@given(st.text(max_size=3 * (CLIP_HEAD + CLIP_TAIL)), st.integers(1, 5000))
def test_clip_kept_is_clip(text: str, step: int) -> None:
    kept = Clipped()
    for at in range(0, len(text), step):
        kept.append(text[at : at + step])
    assert clip_kept(kept, sanitise) == clip(sanitise(text))


@pytest.mark.parametrize(("raw", "expected"), SHAPES)
def test_a_block_of_plain_data_lines_is_read_in_one_split(
    raw: bytes, expected: list[tuple[str | None, str]]
) -> None:
    whole = EventSplitter().whole(raw)
    payloads = data_lines(whole)
    if payloads is not None:  # else read event by event (`event_fields`)
        events = [fields for raw in split_events(whole) if (fields := event_fields(raw))]
        assert payloads == [data for _, data in events]


@pytest.mark.parametrize(
    ("whole", "payloads"),
    [
        (OPENAI, [data.encode() for _, data in DECODED]),
        (b"data: a\n\ndata: \n\n", [b"a", b""]),  # an empty payload: read as none
        (b"", []),
        (b"data:no-space\n\n", None),
        (b"data: a\ndata: b\n\n", None),  # two data lines
        (b"event: e\ndata: a\n\n", None),
        (b"data: a\n\n: comment\n\n", None),
        (b"data: a\r\n\r\n", None),
        (b"data: a\n\n\ndata: b\n\n", None),  # a line end more
        (b"\xef\xbb\xbfdata: bom\n\n", None),
    ],
)
def test_only_blocks_of_single_data_lines_are_read_in_one_split(
    whole: bytes, payloads: list[bytes] | None
) -> None:
    assert data_lines(whole) == payloads


SHAPE = st.sampled_from([raw for raw, _ in SHAPES if raw.endswith(b"\n\n")])


@given(
    st.lists(st.one_of(SHAPE, PAYLOAD.map(delta), st.binary(max_size=30)), max_size=40),
    st.lists(st.integers(1, 5000), min_size=1, max_size=10),
)
def test_every_payload_is_counted_and_kept_like_reading_the_whole_stream(
    events: list[bytes], cuts: list[int]
) -> None:
    stream = b"".join(events)
    chunks, at = [], 0
    while at < len(stream):
        size = cuts[len(chunks) % len(cuts)]
        chunks.append(stream[at : at + size])
        at += size
    capture = StreamCapture.of(chunks, sse=True, keep_bodies=50)
    payloads = [data.decode("utf-8", "replace") for _, data in all_event_fields(stream) if data]
    assert capture.payloads == len(payloads)
    assert capture.bodies == payloads[:50]
    assert stream_text(capture, len(stream)) == reference_text(chunks, len(stream))


def test_a_capture_left_open_is_read_by_its_first_reader_and_only_once() -> None:
    capture = StreamCapture(sse=True, keep_bodies=10)
    capture.feed(OPENAI[:50])
    capture.feed(OPENAI[50:])
    assert capture.payloads == 0  # under READ_EVERY: nothing read yet
    first = stream_text(capture, len(OPENAI))
    assert capture.payloads == 4 and capture.chunks == []
    capture.close()  # another reader closes it again: nothing left to read
    assert capture.payloads == 4 and stream_text(capture, len(OPENAI)) == first
    assert first == stream_text(StreamCapture.of([OPENAI], sse=True), len(OPENAI))


CHUNK_FIELD = st.sampled_from(["content", "refusal", "role", "reasoning", "tool_calls"])
CHUNK = st.fixed_dictionaries(
    {"choices": st.lists(st.fixed_dictionaries(
        {"delta": st.dictionaries(CHUNK_FIELD, st.one_of(st.text(max_size=5), st.none(),
                                                         st.integers(-5, 5)), max_size=3)},
        optional={"finish_reason": st.sampled_from([None, "stop", ""]), "text": st.text(max_size=3)},
    ), max_size=2)},
    optional={"id": st.sampled_from(["", "c1"]), "model": st.sampled_from(["", "m"]),
              "type": st.sampled_from([None, "response.output_text.delta"]),
              "usage": st.just({"prompt_tokens": 1, "completion_tokens": 2}),
              "candidates": st.just([{"content": {"parts": [{"text": "g"}]}}])},
)  # fmt: skip
RAW_PAYLOAD = st.one_of(
    CHUNK.map(orjson.dumps), st.sampled_from([b"[DONE]", b"not json", b"\xff{}", b"[1]"])
)


@given(st.lists(RAW_PAYLOAD, max_size=12), st.sampled_from([None, "openai", "gemini"]))
def test_feed_plain_accounts_like_feeding_each_event(payloads: list[bytes], family: str) -> None:
    one_by_one = StreamAccounting(family)  # type: ignore[arg-type]
    for data in payloads:
        one_by_one.feed_data(None, data)
    plain = StreamAccounting(family)  # type: ignore[arg-type]
    plain.feed_plain(payloads)
    assert plain.text == one_by_one.text
    assert plain.result(len) == one_by_one.result(len)
    assert plain.meta({}) == one_by_one.meta({})


def test_data_lines_refuse_a_payload_with_a_line_of_its_own() -> None:
    assert data_lines(b"data: a\n\ndata: b\n\n") == [b"a", b"b"]
    assert data_lines(b"data: a\nid: 1\n\ndata: b\n\n") is None
    assert data_lines(b"data: a\n\ndata: b\n\n\n") is None
