"""The sans-I/O SSE parser: WHATWG field rules, line ends and UTF-8 split anywhere, bounds."""

from __future__ import annotations

import json

import pytest

from tokenomics.upstream.sse import (
    EventSplitter,
    SSEEvent,
    SSEParser,
    SSETooLarge,
    event_fields,
)

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


def parse_all(chunks: list[bytes], **kw: int) -> list[SSEEvent]:
    parser = SSEParser(**kw)
    events: list[SSEEvent] = []
    for chunk in chunks:
        events += parser.feed(chunk)
    return events + parser.close()


def parse(data: bytes) -> list[SSEEvent]:
    return parse_all([data])


# ── field rules ──────────────────────────────────────────────────────────────────────────────


def test_data_line_then_blank_line_dispatches_one_event() -> None:
    assert parse(b"data: hello\n\n") == [SSEEvent(None, "hello", None)]


def test_data_without_space_and_with_two_spaces_strip_exactly_one() -> None:
    events = parse(b"data:tight\n\ndata:  spaced\n\n")
    assert [e.data for e in events] == ["tight", " spaced"]


def test_multi_line_data_is_joined_with_newlines() -> None:
    assert parse(b"data: one\ndata: two\ndata:\n\n")[0].data == "one\ntwo\n"


def test_comments_unknown_fields_and_retry_are_ignored() -> None:
    events = parse(b": keep-alive\nretry: 100\nfoo: bar\ndata: x\n:another\n\n")
    assert events == [SSEEvent(None, "x", None)]


def test_event_name_applies_to_one_event_only() -> None:
    events = parse(b"event: message_start\ndata: a\n\ndata: b\n\n")
    assert [(e.event, e.data) for e in events] == [("message_start", "a"), (None, "b")]


def test_empty_event_name_means_none() -> None:
    assert parse(b"event:\ndata: a\n\n")[0].event is None


def test_id_persists_across_events_and_an_id_with_nul_is_ignored() -> None:
    events = parse(b"id: 7\ndata: a\n\ndata: b\n\nid: 8\x00\ndata: c\n\nid\ndata: d\n\n")
    assert [e.id for e in events] == ["7", "7", "7", ""]


def test_field_without_colon_has_empty_value() -> None:
    assert parse(b"data\n\n") == [SSEEvent(None, "", None)]


def test_blank_lines_without_data_dispatch_nothing_and_reset_the_event_name() -> None:
    assert parse(b"\n\n\nevent: lonely\n\ndata: x\n\n") == [SSEEvent(None, "x", None)]


def test_colon_inside_value_is_kept() -> None:
    assert parse(b'data: {"a": "b:c"}\n\n')[0].data == '{"a": "b:c"}'


# ── line ends, chunking, encoding ────────────────────────────────────────────────────────────


@pytest.mark.parametrize("end", [b"\n", b"\r\n", b"\r"])
def test_every_line_end_style_is_accepted(end: bytes) -> None:
    stream = end.join([b"event: e", b"data: a", b"data: b", b"", b"data: c", b"", b""])
    assert parse(stream) == [SSEEvent("e", "a\nb", None), SSEEvent(None, "c", None)]


def test_cr_at_chunk_end_and_lf_at_next_chunk_start_are_one_line_end() -> None:
    # Were CR and LF two line ends, the blank line between them would dispatch "a" alone.
    events = parse_all([b"data: a\r", b"\ndata: b\r", b"\n\r", b"\n"])
    assert events == [SSEEvent(None, "a\nb", None)]


def test_cr_at_chunk_end_is_a_line_end_when_no_lf_follows() -> None:
    parser = SSEParser()
    assert parser.feed(b"data: a\r") == []
    assert parser.feed(b"\r") == [SSEEvent(None, "a", None)]


def test_lone_lf_after_cr_is_skipped_only_once() -> None:
    events = parse_all([b"data: a\r", b"\n", b"\ndata: b\n\n"])
    assert events == [SSEEvent(None, "a", None), SSEEvent(None, "b", None)]


def test_utf8_split_at_every_byte_decodes_intact() -> None:
    stream = "data: héllo wörld 🎉 中文\n\n".encode()
    for size in (1, 2, 3, 5):
        chunks = [stream[i : i + size] for i in range(0, len(stream), size)]
        assert parse_all(chunks) == [SSEEvent(None, "héllo wörld 🎉 中文", None)]


def test_invalid_utf8_is_replaced_not_raised() -> None:
    assert parse(b"data: a\xffb\n\n")[0].data == "a\ufffdb"


def test_bom_at_the_very_start_is_dropped_even_when_split() -> None:
    stream = b"\xef\xbb\xbfdata: x\n\n"
    for cut in range(len(stream) + 1):
        assert parse_all([stream[:cut], stream[cut:]]) == [SSEEvent(None, "x", None)], cut


def test_bom_later_in_the_stream_is_not_dropped() -> None:
    # A second BOM makes the field name "\ufeffdata", an unknown field.
    assert parse(b"data: a\n\n\xef\xbb\xbfdata: b\n\n") == [SSEEvent(None, "a", None)]


def test_stream_shorter_than_a_bom_still_parses() -> None:
    assert parse_all([b"\xef", b"\xbb"]) == []
    assert parse(b"d") == []


def test_every_split_point_of_an_openai_stream_gives_the_same_events() -> None:
    whole = parse(OPENAI_STREAM)
    assert len(whole) == 6
    assert json.loads(whole[1].data)["choices"][0]["delta"]["content"] == "Bonjour, ça va "
    for cut in range(len(OPENAI_STREAM) + 1):
        assert parse_all([OPENAI_STREAM[:cut], OPENAI_STREAM[cut:]]) == whole, cut


def test_every_split_point_of_a_crlf_stream_gives_the_same_events() -> None:
    whole = parse(ANTHROPIC_STREAM_CRLF)
    assert [e.event for e in whole] == [
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
    parser = SSEParser()
    assert parser.feed(b"data: a\n") == []
    assert parser.feed(b"\ndata: b") == [SSEEvent(None, "a", None)]
    assert parser.feed(b"\n\n") == [SSEEvent(None, "b", None)]


# ── end of stream ────────────────────────────────────────────────────────────────────────────


def test_close_flushes_an_event_without_its_blank_line() -> None:
    parser = SSEParser()
    assert parser.feed(b"event: last\ndata: x\n") == []
    assert parser.close() == [SSEEvent("last", "x", None)]


def test_close_finishes_a_pending_line_without_line_end() -> None:
    parser = SSEParser()
    assert parser.feed(b"data: a\n\ndata: tail") == [SSEEvent(None, "a", None)]
    assert parser.close() == [SSEEvent(None, "tail", None)]


def test_close_with_nothing_pending_returns_nothing() -> None:
    parser = SSEParser()
    parser.feed(b"data: a\n\n: comment\n")
    assert parser.close() == []


# ── bounds ───────────────────────────────────────────────────────────────────────────────────


def test_a_line_growing_past_the_limit_raises() -> None:
    parser = SSEParser(max_event_bytes=1000)
    parser.feed(b"data: " + b"x" * 900)
    with pytest.raises(SSETooLarge):
        parser.feed(b"y" * 200)


def test_an_event_growing_past_the_limit_raises() -> None:
    parser = SSEParser(max_event_bytes=1000)
    with pytest.raises(SSETooLarge):
        for _ in range(100):
            parser.feed(b"data: " + b"x" * 50 + b"\n")


def test_events_up_to_the_limit_pass_and_the_budget_resets_per_event() -> None:
    line = b"data: " + b"x" * 499 + b"\n\n"  # 500 bytes of data with its newline
    events = parse_all([line] * 10, max_event_bytes=500)
    assert len(events) == 10


def test_too_large_is_a_value_error() -> None:
    assert issubclass(SSETooLarge, ValueError)
    with pytest.raises(ValueError, match="positive"):
        SSEParser(max_event_bytes=0)


# ── whole events for the relay (EventSplitter, event_fields) ─────────────────────────────────


@pytest.mark.parametrize(
    "raw",
    [
        OPENAI_STREAM,
        ANTHROPIC_STREAM_CRLF,
        b"data:no-space\n\ndata:  two\n\ndata:\n\n",
        b": comment\n\nevent: named\ndata: a\ndata: b\nid: 3\n\n",
        b"\xef\xbb\xbfdata: bom\n\n",
        b"event: x\rdata: cr only\r\r",
        b"field-without-colon\ndata\n\n",
        b"data: tail without blank line",
    ],
)
def test_event_fields_of_whole_events_match_the_parser(raw: bytes) -> None:
    for cut in range(len(raw) + 1):
        splitter = EventSplitter()
        events = splitter.feed(raw[:cut]) + splitter.feed(raw[cut:])
        rest = splitter.flush()
        assert b"".join(events) + rest == raw
        fields = [f for f in map(event_fields, [*events, rest] if rest else events) if f]
        expected = [(e.event, e.data) for e in parse(raw)]
        assert [(name, data.decode("utf-8", "replace")) for name, data in fields] == expected, cut


def test_an_unfinished_event_past_the_limit_raises() -> None:
    splitter = EventSplitter(max_event_bytes=1000)
    splitter.feed(b"data: " + b"x" * 900)
    with pytest.raises(SSETooLarge):
        splitter.feed(b"x" * 200)
