"""The sans-I/O SSE parsing (`EventSplitter` + `event_fields`): WHATWG field rules, line ends
and UTF-8 split anywhere (checked on every cut and on generated streams cut at random), bounds."""

from __future__ import annotations

import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tokenomics.upstream.sse import EventSplitter, SSETooLarge, event_fields, split_events

OPENAI_STREAM = (
    b'data: {"id":"chatcmpl-1","object":"chat.completion.chunk","created":1,"model":"gpt-4o-2024-08-06",'
    b'"choices":[{"index":0,"delta":{"role":"assistant","content":""},"finish_reason":null}],"usage":null}\n\n'
    b'data: {"id":"chatcmpl-1","object":"chat.completion.chunk","created":1,"model":"gpt-4o-2024-08-06",'
    b'"choices":[{"index":0,"delta":{"content":"Bonjour, \xc3\xa7a va "},"finish_reason":null}],"usage":null}\n\n'
    b'data: {"id":"chatcmpl-1","object":"chat.completion.chunk","created":1,"model":"gpt-4o-2024-08-06",'
    b'"choices":[{"index":0,"delta":{"content":"\xf0\x9f\x8e\x89 ?"},"finish_reason":null}],"usage":null}\n\n'
    b'data: {"id":"chatcmpl-1","object":"chat.completion.chunk","created":1,"model":"gpt-4o-2024-08-06",'
    b'"choices":[{"index":0,"delta":{},"finish_reason":"stop"}],"usage":null}\n\n'
    b'data: {"id":"chatcmpl-1","object":"chat.completion.chunk","created":1,"model":"gpt-4o-2024-08-06",'
    b'"choices":[],"usage":{"prompt_tokens":12,"completion_tokens":7,"total_tokens":19}}\n\n'
    b"data: [DONE]\n\n"
)

ANTHROPIC_STREAM_CRLF = (
    b"event: message_start\r\n"
    b'data: {"type":"message_start","message":{"id":"msg_1","type":"message","role":"assistant",'
    b'"model":"claude-sonnet-4-5-20250929","content":[],"usage":{"input_tokens":25,"output_tokens":1}}}\r\n'
    b"\r\n"
    b"event: ping\r\n"
    b'data: {"type":"ping"}\r\n'
    b"\r\n"
    b"event: content_block_delta\r\n"
    b'data: {"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":"Hi"}}\r\n'
    b"\r\n"
    b"event: message_stop\r\n"
    b'data: {"type":"message_stop"}\r\n'
    b"\r\n"
)


Fields = tuple[str | None, str]


def parse_all(chunks: list[bytes], **kw: int) -> list[Fields]:
    """The events of a stream fed in `chunks`, their data decoded; the bytes of the whole
    events and of what is left at the end are the stream's, unchanged."""
    splitter = EventSplitter(**kw)
    raws = [raw for chunk in chunks for raw in splitter.feed(chunk)]
    raws.append(splitter.flush())
    assert b"".join(raws) == b"".join(chunks)
    found = [event_fields(raw) for raw in raws if raw]
    return [(name, data.decode("utf-8", "replace")) for name, data in filter(None, found)]


def parse(data: bytes) -> list[Fields]:
    return parse_all([data])


# ── field rules ──────────────────────────────────────────────────────────────────────────────


def test_data_line_then_blank_line_dispatches_one_event() -> None:
    assert parse(b"data: hello\n\n") == [(None, "hello")]


def test_data_without_space_and_with_two_spaces_strip_exactly_one() -> None:
    events = parse(b"data:tight\n\ndata:  spaced\n\n")
    assert [data for _, data in events] == ["tight", " spaced"]


def test_multi_line_data_is_joined_with_newlines() -> None:
    assert parse(b"data: one\ndata: two\ndata:\n\n") == [(None, "one\ntwo\n")]


def test_comments_unknown_fields_and_retry_are_ignored() -> None:
    events = parse(b": keep-alive\nretry: 100\nfoo: bar\ndata: x\n:another\n\n")
    assert events == [(None, "x")]


def test_event_name_applies_to_one_event_only() -> None:
    events = parse(b"event: message_start\ndata: a\n\ndata: b\n\n")
    assert events == [("message_start", "a"), (None, "b")]


def test_empty_event_name_means_none() -> None:
    assert parse(b"event:\ndata: a\n\n") == [(None, "a")]
    assert parse(b"event: \ndata: a\n\n") == [(None, "a")]


def test_id_is_ignored_a_proxy_does_not_resume() -> None:
    events = parse(b"id: 7\ndata: a\n\ndata: b\n\nid: 8\x00\ndata: c\n\nid\ndata: d\n\n")
    assert events == [(None, "a"), (None, "b"), (None, "c"), (None, "d")]


def test_field_without_colon_has_empty_value() -> None:
    assert parse(b"data\n\n") == [(None, "")]


def test_blank_lines_without_data_dispatch_nothing_and_reset_the_event_name() -> None:
    assert parse(b"\n\n\nevent: lonely\n\ndata: x\n\n") == [(None, "x")]


def test_colon_inside_value_is_kept() -> None:
    assert parse(b'data: {"a": "b:c"}\n\n') == [(None, '{"a": "b:c"}')]


# ── line ends, chunking, encoding ────────────────────────────────────────────────────────────


@pytest.mark.parametrize("end", [b"\n", b"\r\n", b"\r"])
def test_every_line_end_style_is_accepted(end: bytes) -> None:
    stream = end.join([b"event: e", b"data: a", b"data: b", b"", b"data: c", b"", b""])
    assert parse(stream) == [("e", "a\nb"), (None, "c")]


def test_cr_at_chunk_end_and_lf_at_next_chunk_start_are_one_line_end() -> None:
    # Were CR and LF two line ends, the blank line between them would dispatch "a" alone.
    events = parse_all([b"data: a\r", b"\ndata: b\r", b"\n\r", b"\n"])
    assert events == [(None, "a\nb")]


def test_cr_at_chunk_end_waits_for_the_next_byte_then_is_a_line_end() -> None:
    splitter = EventSplitter()
    assert splitter.feed(b"data: a\r") == []
    assert splitter.feed(b"\r") == []  # it may yet be a CRLF
    assert splitter.feed(b"data: b") == [b"data: a\r\r"]
    assert splitter.flush() == b"data: b"


def test_lone_lf_after_cr_is_skipped_only_once() -> None:
    events = parse_all([b"data: a\r", b"\n", b"\ndata: b\n\n"])
    assert events == [(None, "a"), (None, "b")]


def test_utf8_split_at_every_byte_decodes_intact() -> None:
    stream = "data: héllo wörld 🎉 中文\n\n".encode()
    for size in (1, 2, 3, 5):
        chunks = [stream[i : i + size] for i in range(0, len(stream), size)]
        assert parse_all(chunks) == [(None, "héllo wörld 🎉 中文")]


def test_invalid_utf8_is_replaced_not_raised() -> None:
    assert parse(b"data: a\xffb\n\n") == [(None, "a\ufffdb")]


def test_bom_at_the_very_start_is_dropped_even_when_split() -> None:
    stream = b"\xef\xbb\xbfdata: x\n\n"
    for cut in range(len(stream) + 1):
        assert parse_all([stream[:cut], stream[cut:]]) == [(None, "x")], cut


def test_bom_opening_a_later_event_is_dropped_too() -> None:
    # A deviation: a browser reads "\ufeffdata" there, an unknown field. Events are read one
    # by one, without knowing whether one is the stream's first.
    assert parse(b"data: a\n\n\xef\xbb\xbfdata: b\n\n") == [(None, "a"), (None, "b")]


def test_stream_shorter_than_a_bom_still_parses() -> None:
    assert parse_all([b"\xef", b"\xbb"]) == []
    assert parse(b"d") == []


def test_every_split_point_of_an_openai_stream_gives_the_same_events() -> None:
    whole = parse(OPENAI_STREAM)
    assert len(whole) == 6
    assert json.loads(whole[1][1])["choices"][0]["delta"]["content"] == "Bonjour, ça va "
    for cut in range(len(OPENAI_STREAM) + 1):
        assert parse_all([OPENAI_STREAM[:cut], OPENAI_STREAM[cut:]]) == whole, cut


def test_every_split_point_of_a_crlf_stream_gives_the_same_events() -> None:
    whole = parse(ANTHROPIC_STREAM_CRLF)
    assert [name for name, _ in whole] == [
        "message_start",
        "ping",
        "content_block_delta",
        "message_stop",
    ]
    for cut in range(len(ANTHROPIC_STREAM_CRLF) + 1):
        pieces = [ANTHROPIC_STREAM_CRLF[:cut], ANTHROPIC_STREAM_CRLF[cut:]]
        assert parse_all(pieces) == whole, cut


def test_byte_by_byte_feeding_gives_the_same_events() -> None:
    for stream in (OPENAI_STREAM, ANTHROPIC_STREAM_CRLF, ANTHROPIC_STREAM_CRLF.replace(b"\n", b"")):
        assert parse_all([stream[i : i + 1] for i in range(len(stream))]) == parse(stream)


def test_events_are_returned_as_soon_as_their_blank_line_arrives() -> None:
    splitter = EventSplitter()
    assert splitter.feed(b"data: a\n") == []
    assert splitter.feed(b"\ndata: b") == [b"data: a\n\n"]
    assert splitter.feed(b"\n\n") == [b"data: b\n\n"]


def test_a_chunk_of_whole_events_comes_back_as_it_is() -> None:
    chunk = b"data: a\n\n"
    assert EventSplitter().whole(chunk) is chunk
    assert split_events(chunk)[0] is chunk
    assert split_events(b"data: a\n\ndata: b\n\n") == [b"data: a\n\n", b"data: b\n\n"]


# ── end of stream ────────────────────────────────────────────────────────────────────────────


def test_flush_gives_an_event_without_its_blank_line() -> None:
    splitter = EventSplitter()
    assert splitter.feed(b"event: last\ndata: x\n") == []
    assert event_fields(splitter.flush()) == ("last", b"x")


def test_flush_gives_a_pending_line_without_line_end() -> None:
    splitter = EventSplitter()
    assert splitter.feed(b"data: a\n\ndata: tail") == [b"data: a\n\n"]
    assert event_fields(splitter.flush()) == (None, b"tail")


def test_flush_with_nothing_pending_returns_nothing() -> None:
    splitter = EventSplitter()
    splitter.feed(b"data: a\n\n: comment\n")
    assert event_fields(splitter.flush()) is None
    assert splitter.flush() == b""


# ── bounds ───────────────────────────────────────────────────────────────────────────────────


def test_a_line_growing_past_the_limit_raises() -> None:
    splitter = EventSplitter(max_event_bytes=1000)
    splitter.feed(b"data: " + b"x" * 900)
    with pytest.raises(SSETooLarge):
        splitter.feed(b"y" * 200)


def test_an_event_growing_past_the_limit_raises() -> None:
    splitter = EventSplitter(max_event_bytes=1000)
    with pytest.raises(SSETooLarge):
        for _ in range(100):
            splitter.feed(b"data: " + b"x" * 50 + b"\n")


def test_events_up_to_the_limit_pass_and_the_budget_resets_per_event() -> None:
    line = b"data: " + b"x" * 499 + b"\n\n"  # 500 bytes of data with its newline
    events = parse_all([line] * 10, max_event_bytes=500)
    assert len(events) == 10


def test_too_large_is_a_value_error() -> None:
    assert issubclass(SSETooLarge, ValueError)
    with pytest.raises(ValueError, match="positive"):
        EventSplitter(max_event_bytes=0)


# ── every cut of odd streams, and generated streams cut at random ───────────────────────────


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        (
            b"data:no-space\n\ndata:  two\n\ndata:\n\n",
            [(None, "no-space"), (None, " two"), (None, "")],
        ),
        (b": comment\n\nevent: named\ndata: a\ndata: b\nid: 3\n\n", [("named", "a\nb")]),
        (b"\xef\xbb\xbfdata: bom\n\n", [(None, "bom")]),
        (b"event: x\rdata: cr only\r\r", [("x", "cr only")]),
        (b"field-without-colon\ndata\n\n", [(None, "")]),
        (b"data: tail without blank line", [(None, "tail without blank line")]),
    ],
)
def test_every_cut_of_an_odd_stream_gives_the_same_events(
    raw: bytes, expected: list[Fields]
) -> None:
    for cut in range(len(raw) + 1):
        assert parse_all([raw[:cut], raw[cut:]]) == expected, cut


_NAMES = st.sampled_from([None, "message_start", "content_block_delta", "ping", "é"])
_DATA = st.text(
    st.characters(blacklist_characters="\r\n", blacklist_categories=["Cs"]), max_size=40
)
_ENDS = st.sampled_from(["\n", "\r\n", "\r"])


@st.composite
def streams(draw: st.DrawFn) -> tuple[bytes, list[Fields]]:
    """An event stream (named or not, one or more data lines, comments, one line-end style)
    and the events it holds."""
    end = draw(_ENDS)
    parts, expected = [], []
    for _ in range(draw(st.integers(0, 6))):
        name, lines = draw(_NAMES), draw(st.lists(_DATA, min_size=1, max_size=3))
        if draw(st.booleans()):
            parts.append(": keep-alive" + end)
        head = f"event: {name}{end}" if name else ""
        parts.append(head + "".join(f"data: {line}{end}" for line in lines) + end)
        expected.append((name, "\n".join(lines)))
    return "".join(parts).encode(), expected


@given(stream=streams(), cuts=st.lists(st.integers(0, 2000), max_size=6))
def test_generated_streams_give_their_events_however_they_are_cut(
    stream: tuple[bytes, list[Fields]], cuts: list[int]
) -> None:
    raw, expected = stream
    points = sorted({min(cut, len(raw)) for cut in cuts})
    chunks = [raw[a:b] for a, b in zip([0, *points], [*points, len(raw)], strict=True)]
    assert parse_all(chunks) == expected
    assert parse(raw) == expected


@given(data=st.binary(max_size=300), cuts=st.lists(st.integers(0, 400), max_size=6))
def test_any_bytes_cut_anywhere_give_the_same_events_and_lose_nothing(
    data: bytes, cuts: list[int]
) -> None:
    points = sorted({min(cut, len(data)) for cut in cuts})
    chunks = [data[a:b] for a, b in zip([0, *points], [*points, len(data)], strict=True)]
    assert parse_all(chunks) == parse(data)  # parse_all also checks no byte is lost


def test_an_unfinished_event_past_the_limit_raises() -> None:
    splitter = EventSplitter(max_event_bytes=1000)
    splitter.feed(b"data: " + b"x" * 900)
    with pytest.raises(SSETooLarge):
        splitter.feed(b"x" * 200)


@pytest.mark.parametrize(
    "chunk", [b"data: a\n\n\n", b"data: a\n\n\n\n\n", b"data: a\n\ndata: b\n\n\n", b"\n\n\n"]
)
def test_an_odd_run_of_line_ends_is_relayed_whole(chunk: bytes) -> None:
    """The relay sends `split_events` of `whole`: every byte of it, extra blank lines too."""
    splitter = EventSplitter()
    whole = splitter.whole(chunk)
    assert b"".join(split_events(whole)) == whole == chunk
