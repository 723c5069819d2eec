"""The built-in mock provider: every route and steering model, checked against the SDK types."""

from __future__ import annotations

import base64
import struct
from typing import Any

import orjson
import pytest
from anthropic.types import Message, MessageTokensCount, RawMessageStreamEvent
from openai.types import Completion, CreateEmbeddingResponse, Model
from openai.types.chat import ChatCompletion, ChatCompletionChunk
from openai.types.responses import Response, ResponseStreamEvent
from pydantic import TypeAdapter

from tokenomics.upstream.mock import MockProvider, MockReply, Steering, parse_steering

USER = "one two three four five six seven eight nine ten eleven twelve thirteen fourteen"
REPLY = "Mock reply to: one two three four five six seven eight nine ten eleven twelve"
CHAT = {"model": "gpt-4o", "messages": [{"role": "user", "content": USER}]}
CLAUDE = {"model": "claude-x", "max_tokens": 10, "messages": [{"role": "user", "content": USER}]}
GEMINI = {"contents": [{"role": "user", "parts": [{"text": USER}]}]}
# input = 14 words + 3 for the one message; output = 15 words
INPUT, OUTPUT = 17, 15


def post(
    path: str, body: Any, *, query: str = "", provider: MockProvider | None = None
) -> MockReply:
    raw = body if isinstance(body, bytes) else orjson.dumps(body)
    return (provider or MockProvider()).respond("POST", path, query, {}, raw)


def decoded(reply: MockReply) -> Any:
    return orjson.loads(b"".join(reply.chunks))


def header(reply: MockReply, name: str) -> str | None:
    return dict(reply.headers).get(name)


def sse(reply: MockReply) -> list[tuple[str | None, str]]:
    """(event name, data) per chunk; asserts one SSE event per chunk."""
    events = []
    for chunk in reply.chunks:
        text = chunk.decode()
        assert text.endswith(("\n\n", "\r\n\r\n"))
        lines = text.strip().splitlines()
        name = lines[0].removeprefix("event: ") if lines[0].startswith("event: ") else None
        assert lines[-1].startswith("data: ")
        events.append((name, lines[-1].removeprefix("data: ")))
    return events


def data(reply: MockReply) -> list[Any]:
    return [orjson.loads(d) for _, d in sse(reply) if d != "[DONE]"]


# --- OpenAI ------------------------------------------------------------------------------------


def test_chat_completion_when_buffered_is_a_valid_chat_completion_with_usage() -> None:
    reply = post("/v1/chat/completions", CHAT)
    assert reply.status == 200
    assert header(reply, "content-type") == "application/json"
    assert header(reply, "x-request-id") == "req_mock_1"
    completion = ChatCompletion.model_validate(decoded(reply))
    assert completion.id == "chatcmpl-mock-1"
    assert completion.model == "gpt-4o"
    assert completion.choices[0].message.content == REPLY
    assert completion.choices[0].finish_reason == "stop"
    assert completion.usage is not None
    assert (completion.usage.prompt_tokens, completion.usage.completion_tokens) == (INPUT, OUTPUT)
    assert completion.usage.total_tokens == INPUT + OUTPUT


def test_chat_tokens_count_system_messages_and_text_parts() -> None:
    body = {
        "model": "m",
        "messages": [
            {"role": "system", "content": "be brief"},
            {"role": "user", "content": [{"type": "text", "text": "hi there"}]},
        ],
    }
    completion = ChatCompletion.model_validate(decoded(post("/v1/chat/completions", body)))
    assert completion.choices[0].message.content == "Mock reply to: hi there"
    assert completion.usage is not None
    assert completion.usage.prompt_tokens == 2 + 2 + 3 * 2


def test_chat_stream_without_include_usage_sends_deltas_per_word_and_no_usage() -> None:
    reply = post("/v1/chat/completions", {**CHAT, "stream": True})
    assert header(reply, "content-type") == "text/event-stream"
    assert sse(reply)[-1] == (None, "[DONE]")
    chunks = [ChatCompletionChunk.model_validate(d) for d in data(reply)]
    assert chunks[0].choices[0].delta.role == "assistant"
    contents = [c.choices[0].delta.content for c in chunks[1:-1]]
    assert len(contents) == OUTPUT
    assert "".join(c or "" for c in contents) == REPLY
    assert chunks[-1].choices[0].finish_reason == "stop"
    assert all(c.usage is None for c in chunks)
    assert all(c.id == "chatcmpl-mock-1" for c in chunks)


def test_chat_stream_with_include_usage_ends_with_a_usage_only_chunk() -> None:
    body = {**CHAT, "stream": True, "stream_options": {"include_usage": True}}
    chunks = [
        ChatCompletionChunk.model_validate(d) for d in data(post("/v1/chat/completions", body))
    ]
    assert chunks[-1].choices == []
    assert chunks[-1].usage is not None
    assert (chunks[-1].usage.prompt_tokens, chunks[-1].usage.completion_tokens) == (INPUT, OUTPUT)
    assert all(c.usage is None for c in chunks[:-1])


@pytest.mark.parametrize("path", ["/openai/v1/chat/completions", "/v1beta/openai/chat/completions"])
def test_chat_route_matches_by_suffix_under_a_base_path(path: str) -> None:
    assert ChatCompletion.model_validate(decoded(post(path, CHAT))).object == "chat.completion"


def test_legacy_completion_buffered_and_streamed() -> None:
    body = {"model": "gpt-3.5-turbo-instruct", "prompt": USER}
    completion = Completion.model_validate(decoded(post("/v1/completions", body)))
    assert completion.choices[0].text == REPLY
    assert completion.usage is not None
    assert (completion.usage.prompt_tokens, completion.usage.completion_tokens) == (INPUT, OUTPUT)
    streamed = {**body, "stream": True, "stream_options": {"include_usage": True}}
    # like the real API, stream chunks carry finish_reason null, which the SDK type rejects
    chunks = data(post("/v1/completions", streamed))
    assert all(c["object"] == "text_completion" for c in chunks)
    assert "".join(c["choices"][0]["text"] for c in chunks if c["choices"]) == REPLY
    assert [c["choices"][0]["finish_reason"] for c in chunks[:-1]] == [None] * OUTPUT + ["stop"]
    last = Completion.model_validate(chunks[-1])
    assert last.usage is not None
    assert last.usage.completion_tokens == OUTPUT


def test_responses_buffered_is_a_valid_response_with_usage() -> None:
    body = {"model": "gpt-4o", "input": USER, "instructions": "be brief"}
    response = Response.model_validate(decoded(post("/v1/responses", body)))
    assert response.id == "resp_mock_1"
    assert response.output_text == REPLY
    assert response.usage is not None
    assert response.usage.input_tokens == INPUT + 2 + 3
    assert response.usage.output_tokens == OUTPUT
    assert response.usage.total_tokens == INPUT + 5 + OUTPUT


def test_responses_reads_the_last_user_item_of_an_input_list() -> None:
    items = [
        {"role": "user", "content": "first question"},
        {"role": "assistant", "content": "an answer"},
        {"type": "message", "role": "user", "content": [{"type": "input_text", "text": "why"}]},
    ]
    response = Response.model_validate(
        decoded(post("/v1/responses", {"model": "m", "input": items}))
    )
    assert response.output_text == "Mock reply to: why"
    assert response.usage is not None
    assert response.usage.input_tokens == 5 + 3 * 3


def test_responses_stream_sends_named_events_ending_in_completed_with_usage() -> None:
    reply = post("/v1/responses", {"model": "gpt-4o", "input": USER, "stream": True})
    adapter: TypeAdapter[Any] = TypeAdapter(ResponseStreamEvent)
    events = [(name, adapter.validate_json(d)) for name, d in sse(reply)]
    assert all(name == event.type for name, event in events)
    names = [name for name, _ in events]
    assert names[0] == "response.created"
    assert names.count("response.output_text.delta") == OUTPUT
    assert names[-3:] == [
        "response.content_part.done",
        "response.output_item.done",
        "response.completed",
    ]
    assert [e.sequence_number for _, e in events] == list(range(len(events)))
    deltas = "".join(e.delta for n, e in events if n == "response.output_text.delta")
    assert deltas == REPLY
    final = events[-1][1].response
    assert final.output_text == REPLY
    assert (final.usage.input_tokens, final.usage.output_tokens) == (INPUT, OUTPUT)


def test_embeddings_are_deterministic_vectors_of_eight_floats() -> None:
    body = {"model": "text-embedding-3-small", "input": ["alpha beta", "gamma"]}
    first = CreateEmbeddingResponse.model_validate(decoded(post("/v1/embeddings", body)))
    again = CreateEmbeddingResponse.model_validate(decoded(post("/v1/embeddings", body)))
    assert first.data == again.data
    assert [len(e.embedding) for e in first.data] == [8, 8]
    assert first.data[0].embedding != first.data[1].embedding
    assert (first.usage.prompt_tokens, first.usage.total_tokens) == (3 + 6, 3 + 6)


def test_embeddings_in_base64_decode_to_the_float_vector() -> None:
    floats = decoded(post("/v1/embeddings", {"model": "e", "input": "alpha"}))["data"][0][
        "embedding"
    ]
    body = {"model": "e", "input": "alpha", "encoding_format": "base64"}
    packed = decoded(post("/v1/embeddings", body))["data"][0]["embedding"]
    unpacked = struct.unpack("<8f", base64.b64decode(packed))
    assert unpacked == pytest.approx(floats, abs=1e-6)


@pytest.mark.parametrize("path", ["/v1/models", "/models", "/openai/v1/models"])
def test_models_list_names_the_mock_models(path: str) -> None:
    reply = MockProvider().respond("GET", path, "", {}, b"")
    listing = decoded(reply)
    models = [Model.model_validate(m) for m in listing["data"]]
    assert listing["object"] == "list"
    assert [m.id for m in models] == ["mock-gpt", "mock-claude", "mock-gemini", "echo"]


# --- Anthropic ---------------------------------------------------------------------------------


def test_anthropic_message_when_buffered_is_a_valid_message_with_usage() -> None:
    body = {**CLAUDE, "system": [{"type": "text", "text": "be brief"}]}
    message = Message.model_validate(decoded(post("/v1/messages", body)))
    assert message.id == "msg_mock_1"
    assert message.content[0].type == "text"
    assert message.content[0].text == REPLY
    assert message.stop_reason == "end_turn"
    assert message.usage.input_tokens == INPUT + 2 + 3
    assert message.usage.output_tokens == OUTPUT
    assert (message.usage.cache_read_input_tokens, message.usage.cache_creation_input_tokens) == (
        0,
        0,
    )


def test_anthropic_message_reads_text_blocks_of_the_last_user_turn() -> None:
    body = {
        "model": "c",
        "system": "sys",
        "messages": [
            {"role": "user", "content": "earlier"},
            {"role": "assistant", "content": "ok"},
            {"role": "user", "content": [{"type": "text", "text": "latest words"}]},
        ],
    }
    message = Message.model_validate(decoded(post("/v1/messages", body)))
    assert message.content[0].type == "text"
    assert message.content[0].text == "Mock reply to: latest words"


def test_anthropic_stream_follows_the_real_event_sequence() -> None:
    reply = post("/v1/messages", {**CLAUDE, "stream": True})
    events = sse(reply)
    names = [name for name, _ in events]
    assert names[:3] == ["message_start", "content_block_start", "ping"]
    assert names[3:-3] == ["content_block_delta"] * OUTPUT
    assert names[-3:] == ["content_block_stop", "message_delta", "message_stop"]
    adapter: TypeAdapter[Any] = TypeAdapter(RawMessageStreamEvent)
    parsed = [adapter.validate_json(d) for name, d in events if name != "ping"]
    assert all(n == e.type for n, e in zip([n for n in names if n != "ping"], parsed, strict=True))
    start, delta = parsed[0], parsed[-2]
    assert (start.message.usage.input_tokens, start.message.usage.output_tokens) == (INPUT, 1)
    assert "".join(e.delta.text for e in parsed if e.type == "content_block_delta") == REPLY
    assert (delta.delta.stop_reason, delta.usage.output_tokens) == ("end_turn", OUTPUT)


def test_anthropic_count_tokens_answers_the_input_count() -> None:
    counted = MessageTokensCount.model_validate(decoded(post("/v1/messages/count_tokens", CLAUDE)))
    assert counted.input_tokens == INPUT


# --- Gemini ------------------------------------------------------------------------------------


def test_gemini_generate_content_has_candidates_and_usage_metadata() -> None:
    body = {**GEMINI, "systemInstruction": {"parts": [{"text": "be brief"}]}}
    answer = decoded(post("/v1beta/models/gemini-2.5-flash:generateContent", body))
    candidate = answer["candidates"][0]
    assert candidate["content"] == {"parts": [{"text": REPLY}], "role": "model"}
    assert candidate["finishReason"] == "STOP"
    assert answer["usageMetadata"] == {
        "promptTokenCount": INPUT + 5,
        "candidatesTokenCount": OUTPUT,
        "totalTokenCount": INPUT + 5 + OUTPUT,
    }
    assert answer["modelVersion"] == "gemini-2.5-flash"
    assert answer["responseId"] == "gemini_mock_1"


def test_gemini_stream_with_alt_sse_sends_crlf_events_with_cumulative_usage() -> None:
    reply = post("/v1beta/models/g:streamGenerateContent", GEMINI, query="alt=sse")
    assert header(reply, "content-type") == "text/event-stream"
    assert all(c.endswith(b"\r\n\r\n") for c in reply.chunks)
    chunks = data(reply)
    assert "".join(c["candidates"][0]["content"]["parts"][0]["text"] for c in chunks) == REPLY
    assert [c["usageMetadata"]["candidatesTokenCount"] for c in chunks] == list(
        range(1, OUTPUT + 1)
    )
    assert "finishReason" not in chunks[0]["candidates"][0]
    assert chunks[-1]["candidates"][0]["finishReason"] == "STOP"


def test_gemini_stream_without_alt_sse_is_one_json_array_sent_in_pieces() -> None:
    reply = post("/v1beta/models/g:streamGenerateContent", GEMINI)
    assert header(reply, "content-type") == "application/json"
    assert len(reply.chunks) == OUTPUT + 1
    chunks = decoded(reply)
    assert isinstance(chunks, list)
    assert chunks[-1]["usageMetadata"]["candidatesTokenCount"] == OUTPUT


def test_gemini_count_tokens_reads_contents_or_a_generate_request() -> None:
    direct = decoded(post("/v1beta/models/g:countTokens", GEMINI))
    wrapped = decoded(post("/v1beta/models/g:countTokens", {"generateContentRequest": GEMINI}))
    assert direct == wrapped == {"totalTokens": INPUT}


# --- errors, steering, determinism -------------------------------------------------------------


def test_unknown_route_is_a_404_in_openai_shape() -> None:
    reply = post("/v1/files", {"model": "m"})
    assert reply.status == 404
    assert decoded(reply)["error"]["type"] == "not_found_error"
    assert MockProvider().respond("GET", "/v1/chat/completions", "", {}, b"").status == 404


@pytest.mark.parametrize(
    ("path", "shape"),
    [
        ("/v1/chat/completions", "openai"),
        ("/v1/messages", "anthropic"),
        ("/v1beta/models/g:generateContent", "gemini"),
    ],
)
def test_malformed_json_is_a_400_in_the_family_shape(path: str, shape: str) -> None:
    for body in (b"{not json", b"", b"[1, 2]"):
        reply = post(path, body)
        assert reply.status == 400
        assert_error_shape(decoded(reply), shape, 400)


def assert_error_shape(body: Any, shape: str, status: int) -> None:
    if shape == "anthropic":
        assert body["type"] == "error"
        assert set(body["error"]) == {"type", "message"}
    elif shape == "gemini":
        assert body["error"]["code"] == status
        assert {"message", "status"} <= set(body["error"])
    else:
        assert {"message", "type", "code"} <= set(body["error"])


@pytest.mark.parametrize(
    ("path", "body", "shape"),
    [
        ("/v1/chat/completions", {**CHAT, "model": "fail-429"}, "openai"),
        ("/v1/responses", {"model": "fail-429", "input": "x"}, "openai"),
        ("/v1/messages", {**CLAUDE, "model": "fail-429"}, "anthropic"),
        ("/v1beta/models/fail-429:streamGenerateContent", GEMINI, "gemini"),
    ],
)
def test_fail_model_answers_its_status_in_the_family_shape(
    path: str, body: Any, shape: str
) -> None:
    reply = post(path, {**body, "stream": True})
    assert reply.status == 429
    assert header(reply, "retry-after") == "1"
    assert header(reply, "content-type") == "application/json"
    assert header(reply, "x-request-id") == "req_mock_1"
    assert_error_shape(decoded(reply), shape, 429)


def test_fail_model_error_types_follow_the_status() -> None:
    reply = post("/v1/messages", {**CLAUDE, "model": "fail-529"})
    assert decoded(reply)["error"]["type"] == "overloaded_error"
    reply = post("/v1/chat/completions", {**CHAT, "model": "fail-400"})
    assert (reply.status, decoded(reply)["error"]["type"]) == (400, "invalid_request_error")
    assert header(reply, "retry-after") is None
    gemini = post("/v1beta/models/fail-503:generateContent", GEMINI)
    assert decoded(gemini)["error"]["status"] == "UNAVAILABLE"


def test_flaky_model_fails_on_odd_calls_and_succeeds_on_even_ones() -> None:
    provider = MockProvider()
    statuses = [
        post("/v1/chat/completions", {**CHAT, "model": "flaky-500"}, provider=provider).status
        for _ in range(4)
    ]
    other = post("/v1/chat/completions", {**CHAT, "model": "flaky-503-b"}, provider=provider)
    assert statuses == [500, 200, 500, 200]
    assert other.status == 503
    assert dict(provider.statistics().calls_by_model) == {"flaky-500": 4, "flaky-503-b": 1}
    assert provider.statistics().replies == 5


def test_slow_and_pace_models_set_the_reply_delays() -> None:
    slow = post("/v1/chat/completions", {**CHAT, "model": "slow-1500"})
    assert (slow.first_byte_delay, slow.chunk_interval) == (1.5, 0.0)
    paced = post("/v1/chat/completions", {**CHAT, "model": "slow-10-pace-250", "stream": True})
    assert (paced.first_byte_delay, paced.chunk_interval) == (0.01, 0.25)
    failing = post("/v1/chat/completions", {**CHAT, "model": "slow-3000-fail-502"})
    assert (failing.status, failing.first_byte_delay) == (502, 3.0)


@pytest.mark.parametrize(
    ("path", "body", "query"),
    [
        ("/v1/chat/completions", {**CHAT, "stream_options": {"include_usage": True}}, ""),
        ("/v1/completions", {"model": "m", "prompt": "x"}, ""),
        ("/v1/responses", {"model": "m", "input": "x"}, ""),
        ("/v1/embeddings", {"model": "m", "input": "x"}, ""),
        ("/v1/messages", CLAUDE, ""),
        ("/v1beta/models/nousage-g:streamGenerateContent", GEMINI, "alt=sse"),
        ("/v1beta/models/nousage-g:generateContent", GEMINI, ""),
    ],
)
@pytest.mark.parametrize("stream", [False, True])
def test_nousage_model_omits_every_usage_field(
    path: str, body: Any, query: str, stream: bool
) -> None:
    body = {**body, "model": "nousage-x", "stream": stream}
    raw = b"".join(post(path, body, query=query).chunks)
    for key in (b'"usage"', b"usageMetadata", b"_tokens", b"TokenCount"):
        assert key not in raw


def test_echo_model_answers_the_last_user_text_verbatim() -> None:
    text = "call me at alice@example.com, thanks!  "
    body = {"model": "echo", "messages": [{"role": "user", "content": text}]}
    completion = ChatCompletion.model_validate(decoded(post("/v1/chat/completions", body)))
    assert completion.choices[0].message.content == text
    chunks = data(post("/v1/chat/completions", {**body, "stream": True}))
    assert "".join(c["choices"][0]["delta"].get("content", "") for c in chunks) == text


def test_request_ids_count_up_per_provider_and_replies_are_deterministic() -> None:
    provider = MockProvider()
    ids = [
        header(post("/v1/chat/completions", CHAT, provider=provider), "x-request-id")
        for _ in range(3)
    ]
    assert ids == ["req_mock_1", "req_mock_2", "req_mock_3"]
    assert post("/v1/messages", {**CLAUDE, "stream": True}) == post(
        "/v1/messages", {**CLAUDE, "stream": True}
    )


@pytest.mark.parametrize(
    ("model", "expected"),
    [
        ("gpt-4o", Steering()),
        ("fail-429", Steering(fail=429)),
        ("flaky-500-claude", Steering(flaky=500)),
        ("gzip-slow-200-pace-50-x", Steering(frozenset({"gzip"}), slow_ms=200, pace_ms=50)),
        ("nousage-echo", Steering(frozenset({"nousage", "echo"}))),
        ("fail-abc", Steering()),
        ("fail-999", Steering()),
        ("fail-200", Steering()),
        ("my-fail-429", Steering()),
        ("close_after_headers-garbage", Steering(frozenset({"close_after_headers", "garbage"}))),
    ],
)
def test_parse_steering_reads_leading_words_only(model: str, expected: Steering) -> None:
    assert parse_steering(model) == expected
