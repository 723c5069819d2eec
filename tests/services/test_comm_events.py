"""Communication events of a finished exchange (`cli.md` §7.3), without an event loop."""

from __future__ import annotations

from tests.support.finished import REPLY_BODY, REQUEST_BODY, finished, openai_deltas, sse, streamed

from tokenomics.services.comm_events import communication_events


def test_buffered_exchange_gives_request_start_body_and_completed_events() -> None:
    events = communication_events(finished())

    assert events == [
        {
            "timestamp": "2026-11-27T10:00:01.250Z",
            "type": "request.received",
            "token_hash": "0123456789abcdef",
            "model": "gpt-4o",
            "provider": "openai",
            "method": "POST",
            "path": "/v1/chat/completions",
            "content_type": "application/json",
            "headers": {"Content-Type": ["application/json"], "User-Agent": ["sdk/1.0"]},
            "body": REQUEST_BODY.decode(),
            "body_bytes": len(REQUEST_BODY),
        },
        {
            "timestamp": "2026-11-27T10:00:02.250Z",
            "type": "response.started",
            "token_hash": "0123456789abcdef",
            "model": "gpt-4o",
            "provider": "openai",
            "status_code": 200,
            "content_type": "application/json",
            "headers": {"Content-Type": ["application/json"], "X-Request-Id": ["r1"]},
        },
        {
            "timestamp": "2026-11-27T10:00:02.500Z",
            "type": "response.body",
            "token_hash": "0123456789abcdef",
            "model": "gpt-4o",
            "provider": "openai",
            "status_code": 200,
            "content_type": "application/json",
            "body": REPLY_BODY.decode(),
            "body_bytes": len(REPLY_BODY),
        },
        {
            "timestamp": "2026-11-27T10:00:02.500Z",
            "type": "response.completed",
            "token_hash": "0123456789abcdef",
            "model": "gpt-4o",
            "provider": "openai",
            "status_code": 200,
            "body_bytes": len(REPLY_BODY),
        },
    ]


def test_credential_headers_never_reach_an_event() -> None:
    headers = (
        ("Authorization", "Bearer tkn_secret"),
        ("x-api-key", "sk-1"),
        ("Api-Key", "k"),
        ("x-goog-api-key", "g"),
        ("anthropic-api-key", "a"),
        ("cookie", "c=1"),
        ("x-session-token", "t"),
        ("x-ratelimit-remaining-tokens", "99"),
        ("accept", "a/b"),
        ("accept", "c/d"),
    )
    received = communication_events(finished(request_headers=headers))[0]

    assert received["headers"] == {
        "X-Ratelimit-Remaining-Tokens": ["99"],
        "Accept": ["a/b", "c/d"],
    }


def test_streamed_sse_gives_one_chunk_event_per_sse_event() -> None:
    chunks = openai_deltas("Hel", "lo")
    events = communication_events(streamed(chunks, retry_count=1))

    kinds = [event["type"] for event in events]
    assert kinds == [
        "request.received",
        "response.started",
        "response.chunk",
        "response.chunk",
        "response.chunk",
        "response.completed",
    ]
    chunk_events = events[2:5]
    assert [event["chunk_index"] for event in chunk_events] == [1, 2, 3]
    assert chunk_events[0]["body"] == '{"choices":[{"index":0,"delta":{"content":"Hel"}}]}'
    assert chunk_events[2]["body"] == "[DONE]"
    assert all(event["stream"] is True for event in chunk_events)
    assert all(event["timestamp"] == "2026-11-27T10:00:02.250Z" for event in chunk_events)
    assert events[-1] == {
        "timestamp": "2026-11-27T10:00:02.500Z",
        "type": "response.completed",
        "token_hash": "0123456789abcdef",
        "model": "gpt-4o",
        "provider": "openai",
        "status_code": 200,
        "stream": True,
        "retry_count": 1,
        "body_bytes": sum(len(c) for c in chunks),
        "chunk_count": 3,
    }


def test_sse_event_split_across_chunks_is_one_chunk_event() -> None:
    chunks = (b'data: {"a"', b":1}\n", b"\ndata: [DONE]")  # the last lacks its blank line
    events = communication_events(streamed(chunks))

    assert [e["body"] for e in events if e["type"] == "response.chunk"] == ['{"a":1}', "[DONE]"]


def test_chunk_events_are_bounded_and_the_rest_counted() -> None:
    events = communication_events(streamed(sse(*(str(n) for n in range(10)))), max_chunks=4)

    chunk_events = [e for e in events if e["type"] == "response.chunk"]
    assert [e["body"] for e in chunk_events] == ["0", "1", "2", "3"]
    assert events[-1]["chunk_count"] == 10
    assert events[-1]["chunks_omitted"] == 6


def test_stream_that_is_not_sse_gives_one_event_per_chunk() -> None:
    chunks = (b'[{"a":1}', b',{"b":2}]')
    record = streamed(chunks, response_content_type="application/json")

    bodies = [e["body"] for e in communication_events(record) if e["type"] == "response.chunk"]
    assert bodies == ['[{"a":1}', ',{"b":2}]']


def test_upstream_error_gives_response_error_with_status_and_text() -> None:
    record = finished(status=502, error="upstream unreachable", response_body=b'{"error":{}}')

    final = communication_events(record)[-1]
    assert final["type"] == "response.error"
    assert final["status_code"] == 502
    assert final["error"] == "upstream unreachable"


def test_status_400_without_error_text_is_still_an_error_event() -> None:
    final = communication_events(finished(status=429))[-1]

    assert final["type"] == "response.error"
    assert "error" not in final


def test_binary_and_non_utf8_bodies_are_marked_binary_with_their_size() -> None:
    image = finished(request_content_type="image/png", request_body=b"\x89PNG", request_bytes=4)
    latin = finished(request_body=b"caf\xe9", request_bytes=4)

    for record in (image, latin):
        received = communication_events(record)[0]
        assert received["body"] == "[binary]"
        assert received["body_bytes"] == 4


def test_body_cut_inside_a_utf8_sequence_stays_text() -> None:
    body = "é".encode() * 3
    record = finished(request_body=body[:5], request_bytes=600_000)

    assert communication_events(record)[0]["body"] == "éé"


def test_control_characters_in_bodies_become_spaces() -> None:
    record = finished(request_body=b"a\x00b\x1bc\td\ne\x7f", request_bytes=10)

    assert communication_events(record)[0]["body"] == "a b c\td\ne "


def test_rejected_request_has_no_body_and_ends_in_an_error() -> None:
    record = finished(
        forwarded=False,
        status=403,
        error="rule violated: ssn",
        request_body=b"",
        request_bytes=0,
        first_byte_ms=None,
    )

    events = communication_events(record)
    assert "body" not in events[0]
    assert events[1]["timestamp"] == "2026-11-27T10:00:02.500Z"  # no first byte: recorded_at
    assert events[-1]["type"] == "response.error"


def test_unauthenticated_exchange_omits_the_token_hash() -> None:
    assert all("token_hash" not in e for e in communication_events(finished(token_hash="")))
