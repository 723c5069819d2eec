"""Usage normalisation: buffered bodies of every family, streams of every family, metadata."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tokenomics.domain.lazy_stream_usage import LazyStreamAccounting, marks
from tokenomics.domain.stream_usage import StreamAccounting
from tokenomics.domain.usage import (
    Family,
    ResponseMeta,
    Usage,
    merge_estimate,
    meta_from_response,
    meta_with_headers,
    usage_from_body,
)
from tokenomics.upstream.sse import EventSplitter, all_event_fields, event_fields

FAMILIES: tuple[Family, ...] = ("openai", "anthropic", "gemini")


def words(text: str) -> int:
    """A stand-in estimator: one token per word, easy to check by hand."""
    return len(text.split())


# ── real-world shaped streams ────────────────────────────────────────────────────────────────


def sse(*events: tuple[str | None, Any], end: str = "\n") -> bytes:
    out = []
    for name, payload in events:
        data = payload if isinstance(payload, str) else json.dumps(payload)
        out.append((f"event: {name}{end}" if name else "") + f"data: {data}{end}{end}")
    return "".join(out).encode()


def openai_chunk(delta: dict[str, Any], finish: str | None = None, **extra: Any) -> dict[str, Any]:
    return {
        "id": "chatcmpl-B9MHDbslfkBeAs8l4bebGdFOJ6PeG",
        "object": "chat.completion.chunk",
        "created": 1741570283,
        "model": "gpt-4o-2024-08-06",
        "system_fingerprint": "fp_eb9dce56a8",
        "choices": [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}],
        "usage": None,
        **extra,
    }


OPENAI_STREAM = sse(
    (None, openai_chunk({"role": "assistant", "content": "", "refusal": None})),
    (None, openai_chunk({"content": "Hello"})),
    (None, openai_chunk({"content": " there, friend"})),
    (None, openai_chunk({}, "stop")),
    (
        None,
        {
            **openai_chunk({}),
            "choices": [],
            "usage": {
                "prompt_tokens": 1117,
                "completion_tokens": 46,
                "total_tokens": 1163,
                "prompt_tokens_details": {"cached_tokens": 1024, "audio_tokens": 0},
                "completion_tokens_details": {"reasoning_tokens": 0, "audio_tokens": 0},
            },
        },
    ),
    (None, "[DONE]"),
)

_RESPONSE = {
    "id": "resp_67c9fdcecf488190bdd9a0409de3a1ec07b8b0ad4e5eb654",
    "object": "response",
    "created_at": 1741290958,
    "status": "in_progress",
    "model": "o4-mini-2025-04-16",
    "output": [],
    "usage": None,
}
RESPONSES_STREAM = sse(
    ("response.created", {"type": "response.created", "sequence_number": 0, "response": _RESPONSE}),
    ("response.in_progress", {"type": "response.in_progress", "response": _RESPONSE}),
    (
        "response.output_item.added",
        {
            "type": "response.output_item.added",
            "output_index": 0,
            "item": {"id": "msg_1", "type": "message", "role": "assistant", "content": []},
        },
    ),
    (
        "response.output_text.delta",
        {"type": "response.output_text.delta", "item_id": "msg_1", "delta": "Hi"},
    ),
    (
        "response.output_text.delta",
        {"type": "response.output_text.delta", "item_id": "msg_1", "delta": " there"},
    ),
    (
        "response.output_text.done",
        {"type": "response.output_text.done", "item_id": "msg_1", "text": "Hi there"},
    ),
    (
        "response.completed",
        {
            "type": "response.completed",
            "response": {
                **_RESPONSE,
                "status": "completed",
                "usage": {
                    "input_tokens": 2000,
                    "input_tokens_details": {"cached_tokens": 1500},
                    "output_tokens": 300,
                    "output_tokens_details": {"reasoning_tokens": 256},
                    "total_tokens": 2300,
                },
            },
        },
    ),
)

ANTHROPIC_STREAM = sse(
    (
        "message_start",
        {
            "type": "message_start",
            "message": {
                "id": "msg_01XFDUDYJgAACzvnptvVoYEL",
                "type": "message",
                "role": "assistant",
                "model": "claude-sonnet-4-5-20250929",
                "content": [],
                "stop_reason": None,
                "usage": {
                    "input_tokens": 25,
                    "cache_creation_input_tokens": 100,
                    "cache_read_input_tokens": 2000,
                    "output_tokens": 1,
                },
            },
        },
    ),
    (
        "content_block_start",
        {"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}},
    ),
    ("ping", {"type": "ping"}),
    (
        "content_block_delta",
        {
            "type": "content_block_delta",
            "index": 0,
            "delta": {"type": "text_delta", "text": "Hello"},
        },
    ),
    (
        "content_block_delta",
        {"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": "!"}},
    ),
    ("content_block_stop", {"type": "content_block_stop", "index": 0}),
    (
        "message_delta",
        {
            "type": "message_delta",
            "delta": {"stop_reason": "end_turn", "stop_sequence": None},
            "usage": {"output_tokens": 15},
        },
    ),
    ("message_stop", {"type": "message_stop"}),
)


def gemini_chunk(text: str, usage: dict[str, int], finish: str | None = None) -> dict[str, Any]:
    candidate: dict[str, Any] = {
        "content": {"parts": [{"text": text}], "role": "model"},
        "index": 0,
    }
    if finish:
        candidate["finishReason"] = finish
    return {
        "candidates": [candidate],
        "usageMetadata": usage,
        "modelVersion": "gemini-2.5-flash",
        "responseId": "mKfPaKXQNbqOz7IPh9TnsQ4",
    }


GEMINI_STREAM = sse(
    (None, gemini_chunk("The sky", {"promptTokenCount": 8, "totalTokenCount": 8})),
    (
        None,
        gemini_chunk(
            " is blue.",
            {
                "promptTokenCount": 8,
                "candidatesTokenCount": 5,
                "thoughtsTokenCount": 40,
                "cachedContentTokenCount": 4,
                "totalTokenCount": 53,
            },
            "STOP",
        ),
    ),
    end="\r\n",
)


def account(stream: bytes, family: Family, chunks: list[bytes] | None = None) -> StreamAccounting:
    acc = StreamAccounting(family)
    splitter = EventSplitter()
    raws = [
        raw
        for chunk in (chunks if chunks is not None else [stream])
        for raw in splitter.feed(chunk)
    ]
    for fields in map(event_fields, [*raws, splitter.flush()]):
        if fields is not None and fields[1] != b"[DONE]":
            acc.feed(fields[0], json.loads(fields[1]))
    return acc


def test_openai_chat_stream_with_include_usage() -> None:
    acc = account(OPENAI_STREAM, "openai")
    assert acc.result(words) == Usage(
        input_tokens=1117, output_tokens=46, cached_input_tokens=1024, reasoning_tokens=0
    )
    assert acc.text == "Hello there, friend"
    assert (acc.upstream_id, acc.actual_model, acc.finish_reason) == (
        "chatcmpl-B9MHDbslfkBeAs8l4bebGdFOJ6PeG",
        "gpt-4o-2024-08-06",
        "stop",
    )


def test_responses_api_stream() -> None:
    acc = account(RESPONSES_STREAM, "openai")
    assert acc.result(words) == Usage(
        input_tokens=2000, output_tokens=300, cached_input_tokens=1500, reasoning_tokens=256
    )
    assert acc.text == "Hi there"
    assert acc.upstream_id == "resp_67c9fdcecf488190bdd9a0409de3a1ec07b8b0ad4e5eb654"
    assert (acc.actual_model, acc.finish_reason) == ("o4-mini-2025-04-16", "completed")


def test_anthropic_stream_merges_message_start_and_message_delta() -> None:
    acc = account(ANTHROPIC_STREAM, "anthropic")
    assert acc.result(words) == Usage(
        input_tokens=25 + 2000 + 100,
        output_tokens=15,
        cached_input_tokens=2000,
        cache_creation_tokens=100,
    )
    assert acc.text == "Hello!"
    assert (acc.upstream_id, acc.finish_reason) == ("msg_01XFDUDYJgAACzvnptvVoYEL", "end_turn")
    assert acc.actual_model == "claude-sonnet-4-5-20250929"


def test_gemini_stream_usage_is_cumulative_and_thoughts_are_output() -> None:
    acc = account(GEMINI_STREAM, "gemini")
    assert acc.result(words) == Usage(
        input_tokens=8, output_tokens=45, cached_input_tokens=4, reasoning_tokens=40
    )
    assert acc.text == "The sky is blue."
    assert (acc.upstream_id, acc.actual_model, acc.finish_reason) == (
        "mKfPaKXQNbqOz7IPh9TnsQ4",
        "gemini-2.5-flash",
        "STOP",
    )


@pytest.mark.parametrize(
    ("stream", "family"),
    [
        (OPENAI_STREAM, "openai"),
        (RESPONSES_STREAM, "openai"),
        (ANTHROPIC_STREAM, "anthropic"),
        (GEMINI_STREAM, "gemini"),
    ],
)
def test_every_split_point_of_a_stream_gives_the_same_accounting(
    stream: bytes, family: Family
) -> None:
    whole = account(stream, family)
    expected = (whole.result(words), whole.text, whole.upstream_id, whole.finish_reason)
    for cut in range(len(stream) + 1):
        acc = account(stream, family, [stream[:cut], stream[cut:]])
        assert (acc.result(words), acc.text, acc.upstream_id, acc.finish_reason) == expected, cut


def test_newer_anthropic_message_delta_may_carry_input_and_cache_figures() -> None:
    acc = StreamAccounting("anthropic")
    acc.feed("message_start", {"type": "message_start", "message": {"usage": {"input_tokens": 10}}})
    acc.feed(
        "message_delta",
        {
            "type": "message_delta",
            "delta": {"stop_reason": "tool_use"},
            "usage": {"input_tokens": 12, "cache_read_input_tokens": 30, "output_tokens": 9},
        },
    )
    assert acc.result(words) == Usage(input_tokens=42, output_tokens=9, cached_input_tokens=30)
    assert acc.finish_reason == "tool_use"


def test_anthropic_stream_cut_before_message_delta_estimates_the_output() -> None:
    start = {
        "type": "message_start",
        "message": {"id": "m", "usage": {"input_tokens": 10, "output_tokens": 1}},
    }
    delta = {"type": "content_block_delta", "delta": {"type": "text_delta", "text": "a b c d"}}
    acc = StreamAccounting("anthropic")
    acc.feed("message_start", start)
    acc.feed("content_block_delta", delta)
    assert acc.result(words) == Usage(input_tokens=10, output_tokens=4, estimated=True)


# ── estimates when nothing is reported ───────────────────────────────────────────────────────


def test_stream_without_usage_estimates_output_from_text_and_tool_arguments() -> None:
    acc = StreamAccounting("openai")
    acc.feed(None, openai_chunk({"content": "one two three"}))
    tool = {
        "index": 0,
        "id": "call_1",
        "type": "function",
        "function": {"name": "get", "arguments": ""},
    }
    acc.feed(None, openai_chunk({"tool_calls": [tool]}))
    more = {"index": 0, "function": {"arguments": '{"city": "Paris"}'}}
    acc.feed(None, openai_chunk({"tool_calls": [more]}, "tool_calls"))
    usage = acc.result(words)
    assert usage == Usage(input_tokens=0, output_tokens=3 + 3, estimated=True)
    assert acc.text == "one two three"
    assert not acc.usage_seen
    assert acc.finish_reason == "tool_calls"


def test_anthropic_tool_json_and_thinking_deltas_count_for_estimates_only() -> None:
    acc = StreamAccounting("anthropic")
    for delta in (
        {"type": "thinking_delta", "thinking": "let me think\n"},
        {"type": "input_json_delta", "partial_json": '{"q": "x y"}'},
        {"type": "text_delta", "text": "done"},
    ):
        acc.feed("content_block_delta", {"type": "content_block_delta", "delta": delta})
    assert acc.text == "done"
    assert acc.result(words) == Usage(output_tokens=1 + 3 + 3, estimated=True)


def test_responses_function_call_arguments_count_for_estimates() -> None:
    acc = StreamAccounting("openai")
    acc.feed(
        "response.function_call_arguments.delta",
        {"type": "response.function_call_arguments.delta", "delta": '{"a": 1, "b": 2}'},
    )
    assert acc.result(words).output_tokens == 4


def test_gemini_thought_parts_are_not_assistant_text() -> None:
    acc = StreamAccounting("gemini")
    parts = [{"text": "pondering deeply", "thought": True}, {"text": "answer"}]
    acc.feed(None, {"candidates": [{"content": {"parts": parts}}]})
    assert acc.text == "answer"
    assert acc.result(words).output_tokens == 3


def test_captured_text_is_capped_in_utf8_bytes_and_flagged() -> None:
    acc = StreamAccounting("openai", max_text_bytes=10)
    acc.feed(None, openai_chunk({"content": "abcdefgh"}))
    assert not acc.text_truncated
    acc.feed(None, openai_chunk({"content": "ééé"}))  # 6 bytes, room for 2: one é
    acc.feed(None, openai_chunk({"content": "more"}))
    assert acc.text == "abcdefghé"
    assert acc.text_truncated
    # What did not fit is still estimated, one token per 4 bytes: 4 + 4 bytes -> 2.
    assert acc.result(lambda text: 0).output_tokens == 2


def test_first_id_wins_and_last_nonzero_usage_wins() -> None:
    acc = StreamAccounting("openai")
    acc.feed(None, {"id": "first", "choices": []})
    acc.feed(
        None, {"id": "second", "choices": [], "usage": {"prompt_tokens": 5, "completion_tokens": 2}}
    )
    acc.feed(
        None, {"id": "third", "choices": [], "usage": {"prompt_tokens": 0, "completion_tokens": 0}}
    )
    assert acc.upstream_id == "first"
    assert acc.result(words) == Usage(input_tokens=5, output_tokens=2)


def test_groq_usage_in_x_groq_is_read() -> None:
    acc = StreamAccounting("openai")
    acc.feed(
        None,
        {
            "id": "c",
            "choices": [],
            "x_groq": {"usage": {"prompt_tokens": 3, "completion_tokens": 4}},
        },
    )
    assert acc.result(words) == Usage(input_tokens=3, output_tokens=4)


def test_stream_meta_combines_body_fields_and_headers() -> None:
    acc = account(ANTHROPIC_STREAM, "anthropic")
    meta = acc.meta({"Request-Id": "req_1", "anthropic-ratelimit-requests-remaining": "49"})
    assert meta == ResponseMeta(
        upstream_id="msg_01XFDUDYJgAACzvnptvVoYEL",
        actual_model="claude-sonnet-4-5-20250929",
        finish_reason="end_turn",
        rate_limit_remaining_requests=49,
        upstream_request_id="req_1",
    )


# ── buffered bodies ──────────────────────────────────────────────────────────────────────────


def test_openai_chat_completion_body() -> None:
    body = {
        "id": "chatcmpl-1",
        "object": "chat.completion",
        "model": "o3-2025-04-16",
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": "x"},
                "finish_reason": "length",
            }
        ],
        "usage": {
            "prompt_tokens": 19,
            "completion_tokens": 10,
            "total_tokens": 29,
            "prompt_tokens_details": {"cached_tokens": 0},
            "completion_tokens_details": {"reasoning_tokens": 8},
        },
    }
    assert usage_from_body(body, "openai") == Usage(
        input_tokens=19, output_tokens=10, reasoning_tokens=8
    )
    meta = meta_from_response(body, {})
    assert (meta.upstream_id, meta.actual_model, meta.finish_reason) == (
        "chatcmpl-1",
        "o3-2025-04-16",
        "length",
    )


def test_openai_responses_body() -> None:
    body = {
        "id": "resp_1",
        "object": "response",
        "status": "incomplete",
        "model": "gpt-5",
        "usage": {
            "input_tokens": 328,
            "input_tokens_details": {"cached_tokens": 128},
            "output_tokens": 52,
            "output_tokens_details": {"reasoning_tokens": 40},
        },
    }
    assert usage_from_body(body, "openai") == Usage(
        input_tokens=328, output_tokens=52, cached_input_tokens=128, reasoning_tokens=40
    )
    assert meta_from_response(body, {}).finish_reason == "incomplete"


def test_embeddings_body_has_input_only() -> None:
    body = {
        "object": "list",
        "data": [],
        "model": "text-embedding-3-small",
        "usage": {"prompt_tokens": 8, "total_tokens": 8},
    }
    assert usage_from_body(body, "openai") == Usage(input_tokens=8)


def test_anthropic_message_body_totals_input_with_cache_reads_and_writes() -> None:
    body = {
        "id": "msg_1",
        "type": "message",
        "model": "claude-haiku-4-5",
        "stop_reason": "max_tokens",
        "usage": {
            "input_tokens": 50,
            "cache_creation_input_tokens": 1000,
            "cache_read_input_tokens": 3000,
            "cache_creation": {"ephemeral_5m_input_tokens": 1000, "ephemeral_1h_input_tokens": 0},
            "output_tokens": 200,
            "service_tier": "standard",
        },
    }
    assert usage_from_body(body, "anthropic") == Usage(
        input_tokens=4050, output_tokens=200, cached_input_tokens=3000, cache_creation_tokens=1000
    )
    assert meta_from_response(body, {}).finish_reason == "max_tokens"


def test_anthropic_count_tokens_body() -> None:
    assert usage_from_body({"input_tokens": 2095}, "anthropic") == Usage(input_tokens=2095)


def test_gemini_body_adds_thoughts_to_output() -> None:
    body = {
        "candidates": [{"content": {"parts": [{"text": "hi"}]}, "finishReason": "MAX_TOKENS"}],
        "usageMetadata": {
            "promptTokenCount": 100,
            "candidatesTokenCount": 20,
            "thoughtsTokenCount": 300,
            "cachedContentTokenCount": 64,
            "totalTokenCount": 420,
        },
        "modelVersion": "gemini-2.5-pro",
        "responseId": "r-1",
    }
    assert usage_from_body(body, "gemini") == Usage(
        input_tokens=100, output_tokens=320, cached_input_tokens=64, reasoning_tokens=300
    )
    meta = meta_from_response(body, {})
    assert (meta.upstream_id, meta.actual_model, meta.finish_reason) == (
        "r-1",
        "gemini-2.5-pro",
        "MAX_TOKENS",
    )


def test_deepseek_cache_hits_count_as_cached_input() -> None:
    usage = {
        "prompt_tokens": 100,
        "completion_tokens": 5,
        "prompt_cache_hit_tokens": 64,
        "prompt_cache_miss_tokens": 36,
    }
    assert usage_from_body({"usage": usage}, "openai") == Usage(
        input_tokens=100, output_tokens=5, cached_input_tokens=64
    )


@pytest.mark.parametrize(
    "body",
    [
        {},
        {"id": "x", "choices": []},
        {"usage": None},
        {"usage": {}},
        {"usage": {"prompt_tokens": "12", "completion_tokens": True}},
        {"usage": {"input_tokens": -1, "output_tokens": 1.5}},
        {"usageMetadata": {"totalTokenCount": 5}},
        {"input_tokens": False},
    ],
)
def test_bodies_without_usable_usage_give_none(body: dict[str, Any]) -> None:
    for family in FAMILIES:
        assert usage_from_body(body, family) is None


def test_non_int_figures_are_ignored_next_to_valid_ones() -> None:
    body = {
        "usage": {
            "prompt_tokens": 10,
            "completion_tokens": "7",
            "prompt_tokens_details": {"cached_tokens": True},
        }
    }
    assert usage_from_body(body, "openai") == Usage(input_tokens=10)


def test_total_tokens_adds_input_and_output_once() -> None:
    assert (
        Usage(
            input_tokens=10, output_tokens=5, reasoning_tokens=4, cached_input_tokens=3
        ).total_tokens
        == 15
    )


# ── metadata from headers ────────────────────────────────────────────────────────────────────


def test_rate_limit_and_request_id_headers_in_any_case() -> None:
    headers = {
        "X-RateLimit-Remaining-Requests": "499",
        "x-ratelimit-remaining-tokens": " 29000 ",
        "X-Ratelimit-Reset-Requests": "120ms",
        "X-Ratelimit-Reset-Tokens": "2s",
        "Apim-Request-Id": "apim-1",
        "X-Request-ID": "req-1",
    }
    meta = meta_from_response(None, headers)
    assert meta == ResponseMeta(
        rate_limit_remaining_requests=499,
        rate_limit_remaining_tokens=29000,
        rate_limit_reset="120ms",
        upstream_request_id="req-1",
    )


def test_anthropic_headers_and_fallbacks() -> None:
    headers = {
        "anthropic-ratelimit-requests-remaining": "not a number",
        "anthropic-ratelimit-tokens-remaining": "7000",
        "anthropic-ratelimit-tokens-reset": "2025-01-01T00:00:30Z",
        "request-id": "req_011",
        "mistral-correlation-id": "mc-1",
    }
    meta = meta_from_response({}, headers)
    assert meta.rate_limit_remaining_requests is None
    assert meta.rate_limit_remaining_tokens == 7000
    assert meta.rate_limit_reset == "2025-01-01T00:00:30Z"
    assert meta.upstream_request_id == "req_011"


def test_empty_meta_is_flagged() -> None:
    assert meta_from_response(None, {"content-type": "application/json"}).is_empty
    assert not meta_from_response({"id": "x"}, {}).is_empty


# ── merge_estimate ───────────────────────────────────────────────────────────────────────────


def test_merge_without_report_is_all_estimate() -> None:
    assert merge_estimate(None, 120, 30) == Usage(
        input_tokens=120, output_tokens=30, estimated=True
    )


def test_merge_keeps_a_complete_report_untouched() -> None:
    reported = Usage(input_tokens=100, output_tokens=20, cached_input_tokens=50)
    assert merge_estimate(reported, 120, 30) is reported


def test_merge_fills_a_missing_input_and_marks_it() -> None:
    reported = Usage(output_tokens=20, reasoning_tokens=5)
    assert merge_estimate(reported, 120, 30) == Usage(
        input_tokens=120, output_tokens=20, reasoning_tokens=5, estimated=True
    )


def test_merge_of_a_stream_estimate_fills_the_input() -> None:
    streamed = Usage(output_tokens=7, estimated=True)
    assert merge_estimate(streamed, 50, 0) == Usage(
        input_tokens=50, output_tokens=7, estimated=True
    )


def test_merge_keeps_a_reported_zero_output_when_no_estimate_is_given() -> None:
    embeddings = Usage(input_tokens=8)
    assert merge_estimate(embeddings, 9, 0) == embeddings


# ── the lazy accounting: marks, late reading ──────────────────────────────────────────────


def events_of(stream: bytes) -> list[tuple[str | None, bytes]]:
    return all_event_fields(stream)


OPENAI_WITHOUT_USAGE = sse(
    (None, openai_chunk({"role": "assistant", "content": ""})),
    (None, openai_chunk({"content": "one two"})),
    (None, openai_chunk({"tool_calls": [{"index": 0, "function": {"arguments": '{"a": 1}'}}]})),
    (None, {**openai_chunk({}), "choices": [{"index": 0, "delta": {}, "finish_reason": "length"}]}),
    (None, "[DONE]"),
)

ANTHROPIC_CUT = ANTHROPIC_STREAM[: ANTHROPIC_STREAM.index(b"event: message_delta")]


@pytest.mark.parametrize(
    ("data", "marked"),
    [
        (b'{"choices":[{"delta":{"content":"hi"},"finish_reason":null}],"usage":null}', False),
        (b'{"choices":[],"usage" : {"prompt_tokens":1}}', True),
        (b'{"choices":[{"delta":{},"finish_reason" :  "stop"}]}', True),
        (b'{"x_groq":{"usage":{"prompt_tokens":3}}}', True),
        (b'{"candidates":[],"usageMetadata":{"totalTokenCount":3}}', True),
        (b'{"type":"message_delta","delta":{"stop_reason":"end_turn"}}', True),
        (b'{"type":"response.completed","response":{"status":"completed"}}', True),
        (b'{"type":"response.output_text.delta","delta":"Hi"}', False),
        (b'{"type":"content_block_delta","delta":{"type":"text_delta","text":"Hi"}}', False),
    ],
)
def test_marks_find_what_may_carry_more_than_text(data: bytes, marked: bool) -> None:
    assert bool(marks(data)) is marked
    assert bool(marks(b"\n\n".join([b"data: {}", data, b"data: {}"]))) is marked


def test_marks_are_positions_in_the_block() -> None:
    block = b'data: {"usage":null}\n\ndata: {"usage":{"a":1}}\n\n'
    assert marks(block) == [block.index(b'usage":{')]


def lazy_of(
    stream: bytes, family: Family = "openai", max_kept: int = 1 << 20
) -> LazyStreamAccounting:
    """Fed like the relay does, one event a block: read now when marked or meta is missing."""
    lazy = LazyStreamAccounting(family, events_of, max_kept=max_kept)
    for name, data in events_of(stream):
        raw = sse((name, data.decode()))
        if lazy.eager or lazy.needs_meta or marks(raw):
            lazy.feed_data(name, data)
        if not lazy.eager:
            lazy.keep(raw)
    return lazy


def test_with_final_usage_reported_the_kept_text_is_never_read() -> None:
    lazy = lazy_of(OPENAI_STREAM)
    assert lazy.result(words) == account(OPENAI_STREAM, "openai").result(words)
    assert lazy.meta({}) == account(OPENAI_STREAM, "openai").meta({})
    assert lazy.text() is None


def test_without_usage_the_kept_events_are_read_for_the_estimate() -> None:
    lazy = lazy_of(OPENAI_WITHOUT_USAGE)
    assert lazy.result(words) == Usage(output_tokens=2 + 2, estimated=True)
    assert lazy.text() == ("one two", False)
    assert lazy.meta({}).finish_reason == "length"


def test_past_its_limit_the_lazy_accounting_reads_everything_and_turns_eager() -> None:
    lazy = lazy_of(OPENAI_STREAM, "openai", max_kept=400)
    assert lazy.eager
    assert lazy.text() == ("Hello there, friend", False)
    assert lazy.result(words) == account(OPENAI_STREAM, "openai").result(words)


def _meta_reference(headers: dict[str, str]) -> ResponseMeta:
    """The reading of the headers before its one-pass form: every name lower-cased first."""
    lower = {name.lower(): value for name, value in headers.items()}

    def number(*names: str) -> int | None:
        for name in names:
            value = lower.get(name)
            if value is not None:
                try:
                    return int(value.strip())
                except ValueError:
                    continue
        return None

    def text(*names: str) -> str:
        return next((v for name in names if (v := lower.get(name))), "")

    return ResponseMeta(
        "id", "model", "stop",
        number("x-ratelimit-remaining-requests", "anthropic-ratelimit-requests-remaining"),
        number("x-ratelimit-remaining-tokens", "anthropic-ratelimit-tokens-remaining"),
        text("x-ratelimit-reset-requests", "anthropic-ratelimit-tokens-reset",
             "x-ratelimit-reset-tokens"),
        text("x-request-id", "request-id", "apim-request-id", "mistral-correlation-id"),
    )  # fmt: skip


_META_NAMES = st.sampled_from([
    "x-request-id", "X-Request-ID", "request-id", "apim-request-id", "Mistral-Correlation-Id",
    "x-ratelimit-remaining-requests", "X-RateLimit-Remaining-Requests",
    "anthropic-ratelimit-requests-remaining", "x-ratelimit-remaining-tokens",
    "anthropic-ratelimit-tokens-remaining", "x-ratelimit-reset-requests",
    "anthropic-ratelimit-tokens-reset", "x-ratelimit-reset-tokens", "content-type", "Date",
])  # fmt: skip


@given(
    st.dictionaries(
        _META_NAMES | st.text(max_size=8),
        st.sampled_from(["", "12", " 7 ", "x", "1.5"]) | st.text(max_size=4),
    )
)
def test_meta_headers_read_as_when_every_name_was_lower_cased_first(
    headers: dict[str, str],
) -> None:
    meta = meta_with_headers(headers, upstream_id="id", actual_model="model", finish_reason="stop")
    assert meta == _meta_reference(headers)
