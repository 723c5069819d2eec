"""Memory markdown entries (`cli.md` §7.6, §7.7), without an event loop or a disk."""

from __future__ import annotations

import pytest
from tests.support.finished import REPLY_BODY, REQUEST_BODY, finished, openai_deltas, sse, streamed

from tokenomics.domain.durations import format_rfc3339
from tokenomics.pipeline.stream_capture import EVENT_BODIES, StreamCapture
from tokenomics.services.capture import parse_time
from tokenomics.services.comm_events import communication_events
from tokenomics.services.memory_format import (
    TRUNCATED,
    body_text,
    event_content,
    exchange_entries,
    response_content,
    stream_text,
)

KEY = "a1b2c3d4"


def captured(chunks: tuple[bytes, ...]) -> StreamCapture:
    return StreamCapture.of(chunks, sse=True)


def test_buffered_exchange_writes_exact_request_and_response_entries() -> None:
    headers = (("user-agent", "sdk/1.0"), ("authorization", "Bearer tkn_x"), ("accept", "*/*"))

    text = exchange_entries(finished(request_headers=headers), KEY)

    assert text == (
        f"## 2026-11-27T10:00:01Z | {KEY} | request | gpt-4o\n\n"
        "Content-Type: application/json\n"
        "Request-Headers:\n"
        "  User-Agent: sdk/1.0\n"
        "\n"
        "Body:\n"
        f"{REQUEST_BODY.decode()}\n\n---\n\n"
        f"## 2026-11-27T10:00:02Z | {KEY} | response | gpt-4o\n\n"
        "Content-Type: application/json\n"
        "Response-Headers:\n"
        "  Content-Type: application/json\n"
        "  X-Request-Id: r1\n"
        "\n"
        "Body:\n"
        f"{REPLY_BODY.decode()}\n\n---\n\n"
    )
    assert "tkn_x" not in text and "Accept" not in text  # only the headers that matter


def test_streamed_exchange_renders_events_and_the_captured_text() -> None:
    chunks = openai_deltas("Hello", " world")

    assert response_content(streamed(chunks)) == (
        "Content-Type: text/event-stream\n"
        "Response-Headers:\n"
        "  Content-Type: text/event-stream\n"
        "\n"
        "Body:\n"
        "[streaming sse]\n"
        "\n"
        "SSE events:\n"
        '1. {"choices":[{"index":0,"delta":{"content":"Hello"}}]}\n'
        '2. {"choices":[{"index":0,"delta":{"content":" world"}}]}\n'
        "3. [DONE]\n"
        "\n"
        "Captured assistant text:\n"
        "Hello world"
    )


def test_stream_without_events_says_none_captured() -> None:
    assert stream_text(StreamCapture(sse=True), 0) == (
        "[streaming sse]\n\nSSE events:\n(none captured)\n\nCaptured assistant text:\n(none)"
    )


def test_stream_cut_at_the_capture_limit_says_truncated() -> None:
    chunks = openai_deltas("partial")

    text = stream_text(captured(chunks), total=sum(len(c) for c in chunks) + 10)

    assert text.endswith(f"Captured assistant text:\npartial\n\n{TRUNCATED}")


def test_anthropic_stream_text_is_captured_by_event_name() -> None:
    chunks = (
        b'event: content_block_delta\ndata: {"type":"content_block_delta","index":0,'
        b'"delta":{"type":"text_delta","text":"Bonjour"}}\n\n',
    )

    assert stream_text(captured(chunks), len(chunks[0])).endswith(
        "Captured assistant text:\nBonjour"
    )


def test_text_the_relay_already_read_is_used_as_is() -> None:
    chunks = openai_deltas("Bon", "jour")
    parsed = stream_text(captured(chunks), sum(len(c) for c in chunks))
    assert stream_text(captured(chunks), sum(len(c) for c in chunks), ("Bonjour", False)) == parsed
    cut = stream_text(captured(chunks), sum(len(c) for c in chunks), ("Bon", True))
    assert cut.endswith(f"Captured assistant text:\nBon\n\n{TRUNCATED}")


def test_buffered_error_reply_is_not_written_but_a_streamed_one_is() -> None:
    buffered = finished(status=500, response_body=b'{"error":"boom"}')
    stream = streamed(sse('{"error":{"message":"boom"}}'), status=500)

    assert response_content(buffered) is None
    assert "| response |" not in exchange_entries(buffered, KEY)
    assert "| response |" in exchange_entries(stream, KEY)


def test_request_rejected_locally_writes_nothing() -> None:
    record = finished(forwarded=False, status=403, request_body=b"", request_bytes=0)

    assert exchange_entries(record, KEY) == ""


def test_binary_empty_and_cut_bodies() -> None:
    assert body_text(b"", 0, "application/json") == "(empty)"
    assert body_text(b"\x89PNG", 2048, "image/png") == "[binary, 2048 bytes]"
    assert body_text(b"\xff\xfe", 2, "text/plain") == "[binary, 2 bytes]"
    assert body_text(b"abc", 10, "text/plain") == (
        "abc\n[body truncated for memory: 10 bytes in full]"
    )


def test_control_characters_become_spaces_and_invalid_bytes_question_marks() -> None:
    chunks = (b'data: {"x":"a\x01b"}\n\n', b"data: caf\xe9\n\n")
    text = stream_text(captured(chunks), sum(len(c) for c in chunks))

    assert '1. {"x":"a b"}' in text
    assert "2. caf?" in text
    record = finished(request_headers=(("user-agent", "a\x07b"),), model="m\x00")
    assert "  User-Agent: a b\n" in exchange_entries(record, KEY)
    assert f"| {KEY} | request | m \n" in exchange_entries(record, KEY)


def test_missing_content_type_and_headers_say_none() -> None:
    record = finished(request_headers=(), request_content_type="")

    assert exchange_entries(record, KEY).startswith(
        f"## 2026-11-27T10:00:01Z | {KEY} | request | gpt-4o\n\n"
        "Content-Type: (none)\nRequest-Headers:\n  (none)\n\nBody:\n"
    )


def test_event_entry_lists_fields_sorted_headers_and_body() -> None:
    events = communication_events(finished(retry_count=2))
    headers = {
        "User-Agent": ["2"],
        "Authorization": ["x"],
        "X-Stainless-Os": ["os"],
        "Content-Type": ["1"],
    }
    received = dict(events[0], headers=headers)

    assert event_content(received) == (
        "Event: request.received\n"
        "Request: POST /v1/chat/completions\n"
        "Content-Type: application/json\n"
        "Headers:\n"
        "  Content-Type: 1\n"
        "  User-Agent: 2\n"
        "\n"
        "Body:\n"
        f"{REQUEST_BODY.decode()}"
    )
    assert event_content(events[-1]) == (
        "Event: response.completed\nStatus: 200\nRetry-Count: 2\n\nBody:\n(empty)"
    )


def test_chunk_event_entry_has_stream_and_index() -> None:
    chunk = communication_events(streamed(sse("x")))[2]

    assert event_content(chunk) == (
        "Event: response.chunk\nStream: true\nChunk-Index: 1\n\nBody:\nx"
    )


def test_event_entries_follow_the_exchange_entries() -> None:
    record = finished()
    text = exchange_entries(record, KEY, communication_events(record))

    headers = [line for line in text.splitlines() if line.startswith("## ")]
    assert headers == [
        f"## 2026-11-27T10:00:01Z | {KEY} | request | gpt-4o",
        f"## 2026-11-27T10:00:02Z | {KEY} | response | gpt-4o",
        f"## 2026-11-27T10:00:01Z | {KEY} | event | gpt-4o",
        f"## 2026-11-27T10:00:02Z | {KEY} | event | gpt-4o",
        f"## 2026-11-27T10:00:02Z | {KEY} | event | gpt-4o",
        f"## 2026-11-27T10:00:02Z | {KEY} | event | gpt-4o",
    ]


def left_open(chunks: tuple[bytes, ...]) -> StreamCapture:
    """A capture as the request hands it over: fed every chunk sent, not closed."""
    capture = StreamCapture(sse=True, keep_bodies=EVENT_BODIES)
    for chunk in chunks:
        capture.feed(chunk)
    return capture


def test_a_capture_the_request_left_open_is_read_by_whichever_consumer_comes_first() -> None:
    # The client went away mid-stream: the last event lacks its blank line.
    chunks = (*openai_deltas("Hello", " world")[:2], b'data: {"choices":[{"delta":{"content":"!"')
    closed = streamed(chunks)
    events = communication_events(closed)
    with_events, alone = exchange_entries(closed, KEY, events), exchange_entries(closed, KEY)
    # The ledger's memory reads the events first; policy memory reads the entries alone.
    record = streamed(chunks, response_stream=left_open(chunks))
    assert record.response_stream is not None and not record.response_stream.closed
    assert exchange_entries(record, KEY, communication_events(record)) == with_events
    assert record.response_stream.closed
    assert exchange_entries(record, KEY) == alone
    record = streamed(chunks, response_stream=left_open(chunks))
    assert exchange_entries(record, KEY) == alone
    assert communication_events(record) == events
    assert '3. {"choices":[{"delta":{"content":"!"\n' in alone  # the cut event, as it came
    assert "Captured assistant text:\nHello world\n" in alone
    assert [event.get("chunk_index") for event in events] == [None, None, 1, 2, 3, None]


@pytest.mark.parametrize(
    "started_at",
    [
        "2026-11-27T10:00:01.250Z",  # as `Requests` writes it: read without a parse
        "2026-12-31T23:59:59.999Z",
        "2026-11-27T10:00:01Z",  # others are parsed
        "2026-11-27T11:00:01.250+01:00",
        "2026-11-27T10:00:01.250123Z",
        "not a time",  # the record's end instead
    ],
)
def test_the_request_entry_is_dated_when_the_exchange_started(started_at: str) -> None:
    f = finished(started_at=started_at)
    expected = format_rfc3339(parse_time(started_at, f.recorded_at))
    assert exchange_entries(f, KEY).startswith(f"## {expected} | {KEY} | request |")


def test_header_lines_follow_each_records_own_headers() -> None:
    """The header lines are remembered by the kept headers: records that differ in a kept
    header's value get their own lines, in either order."""
    for value in ("sdk/1.0", "sdk/2.0", "sdk/1.0"):
        text = exchange_entries(finished(request_headers=(("user-agent", value),)), KEY)
        assert f"Request-Headers:\n  User-Agent: {value}\n\nBody:" in text
    text = exchange_entries(finished(request_headers=(("x-stainless-os", "linux"),)), KEY)
    assert "Request-Headers:\n  (none)\n\nBody:" in text
