"""Each API family's usage, read from the full shapes of the current SDK types (buffered and
streamed), priced, and never read as another family's (issue 19).

The events and bodies are validated by the SDKs' own types before they are read, so they are
shapes the providers send. docs/ACCOUNTING.md has one table row per field asserted here."""

from __future__ import annotations

from typing import Any

import pytest
from anthropic.types import Message, RawMessageDeltaEvent, RawMessageStartEvent
from hypothesis import given
from hypothesis import strategies as st
from openai.types import CreateEmbeddingResponse
from openai.types.chat import ChatCompletion, ChatCompletionChunk
from openai.types.responses import Response, ResponseCompletedEvent
from pydantic import BaseModel
from tests.domain.test_usage import events_of, lazy_of, sse, words
from tests.support import usage_shapes as shapes

from tokenomics.config.prices import load_prices
from tokenomics.domain.pricing import cost_usd
from tokenomics.domain.stream_usage import StreamAccounting
from tokenomics.domain.usage import Family, Usage, usage_from_body, usage_from_usage

PRICES = load_prices()


def checked(kind: type[BaseModel], value: dict[str, Any]) -> dict[str, Any]:
    """`value`, once the SDK type of it accepted it."""
    kind.model_validate(value)
    return value


# ── bodies and streams of every family, usage as the SDK types have it ──────────────────────

ANTHROPIC_MESSAGE = {
    "id": "msg_1",
    "type": "message",
    "role": "assistant",
    "model": shapes.ANTHROPIC_MODEL,
    "content": [
        {"type": "thinking", "thinking": "hm", "signature": "sig"},
        {"type": "text", "text": "Hi", "citations": None},
    ],
    "stop_reason": "end_turn",
    "stop_sequence": None,
    "usage": shapes.ANTHROPIC_USAGE,
}
ANTHROPIC_STREAM = sse(
    (
        "message_start",
        checked(
            RawMessageStartEvent,
            {
                "type": "message_start",
                "message": {
                    **ANTHROPIC_MESSAGE,
                    "content": [],
                    "stop_reason": None,
                    "usage": shapes.ANTHROPIC_START_USAGE,
                },
            },
        ),
    ),
    (
        "content_block_delta",
        {"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": "Hi"}},
    ),
    (
        "message_delta",
        checked(
            RawMessageDeltaEvent,
            {
                "type": "message_delta",
                "delta": {"stop_reason": "end_turn", "stop_sequence": None},
                "usage": shapes.ANTHROPIC_DELTA_USAGE,
            },
        ),
    ),
    ("message_stop", {"type": "message_stop"}),
)
CHAT_COMPLETION = {
    "id": "chatcmpl-1",
    "object": "chat.completion",
    "created": 1,
    "model": shapes.OPENAI_MODEL,
    "choices": [
        {
            "index": 0,
            "message": {"role": "assistant", "content": "Hi"},
            "finish_reason": "stop",
        }
    ],
    "usage": shapes.CHAT_USAGE,
}
CHUNK = {"id": "chatcmpl-1", "object": "chat.completion.chunk", "created": 1, "model": "gpt-4o"}
CHAT_STREAM = sse(
    (None, {**CHUNK, "choices": [{"index": 0, "delta": {"content": "Hi"}}]}),
    (None, checked(ChatCompletionChunk, {**CHUNK, "choices": [], "usage": shapes.CHAT_USAGE})),
    (None, "[DONE]"),
)
RESPONSE = {
    "id": "resp_1",
    "object": "response",
    "created_at": 1,
    "status": "completed",
    "model": shapes.OPENAI_MODEL,
    "output": [],
    "parallel_tool_calls": True,
    "tool_choice": "auto",
    "tools": [],
    "usage": shapes.RESPONSES_USAGE,
}
RESPONSES_STREAM = sse(
    (
        "response.output_text.delta",
        {"type": "response.output_text.delta", "item_id": "m", "delta": "Hi"},
    ),
    (
        "response.completed",
        checked(
            ResponseCompletedEvent,
            {"type": "response.completed", "sequence_number": 2, "response": RESPONSE},
        ),
    ),
)
EMBEDDINGS = {"object": "list", "data": [], "model": "text-embedding-3-small"}
GEMINI_RESPONSE = {
    "candidates": [{"content": {"parts": [{"text": "Hi"}], "role": "model"}}],
    "usageMetadata": shapes.GEMINI_USAGE,
    "modelVersion": shapes.GEMINI_MODEL,
    "responseId": "r-1",
}
GEMINI_STREAM = sse(
    (None, {**GEMINI_RESPONSE, "usageMetadata": {"promptTokenCount": 2100}}),
    (None, GEMINI_RESPONSE),
    end="\r\n",
)

BUFFERED: list[tuple[Family, dict[str, Any], Usage]] = [
    ("anthropic", checked(Message, ANTHROPIC_MESSAGE), shapes.ANTHROPIC_EXPECTED),
    ("openai", checked(ChatCompletion, CHAT_COMPLETION), shapes.OPENAI_EXPECTED),
    ("openai", checked(Response, RESPONSE), shapes.OPENAI_EXPECTED),
    (
        "openai",
        checked(CreateEmbeddingResponse, {**EMBEDDINGS, "usage": shapes.EMBEDDING_USAGE}),
        Usage(input_tokens=8),
    ),
    ("gemini", GEMINI_RESPONSE, shapes.GEMINI_EXPECTED),
]
STREAMED: list[tuple[Family, bytes, Usage]] = [
    ("anthropic", ANTHROPIC_STREAM, shapes.ANTHROPIC_EXPECTED),
    ("openai", CHAT_STREAM, shapes.OPENAI_EXPECTED),
    ("openai", RESPONSES_STREAM, shapes.OPENAI_EXPECTED),
    ("gemini", GEMINI_STREAM, shapes.GEMINI_EXPECTED),
]
COSTS = [
    (shapes.ANTHROPIC_MODEL, shapes.ANTHROPIC_EXPECTED, shapes.ANTHROPIC_COST),
    (shapes.OPENAI_MODEL, shapes.OPENAI_EXPECTED, shapes.OPENAI_COST),
    (shapes.GEMINI_MODEL, shapes.GEMINI_EXPECTED, shapes.GEMINI_COST),
]


@pytest.mark.parametrize(("family", "body", "expected"), BUFFERED)
def test_a_buffered_body_gives_every_bucket_of_its_family(
    family: Family, body: dict[str, Any], expected: Usage
) -> None:
    assert usage_from_body(body, family) == expected


@pytest.mark.parametrize(("family", "stream", "expected"), STREAMED)
def test_a_stream_gives_every_bucket_of_its_family(
    family: Family, stream: bytes, expected: Usage
) -> None:
    assert StreamAccounting.of_events(events_of(stream), family).result(words) == expected
    lazy = lazy_of(stream, family)  # as the relay reads it: the marked events only
    assert lazy.result(words) == expected
    assert lazy.text() is None


@pytest.mark.parametrize(("model", "usage", "expected"), COSTS)
def test_each_bucket_gets_its_price(model: str, usage: Usage, expected: float) -> None:
    assert cost_usd(usage, PRICES.lookup(model)) == pytest.approx(expected, abs=1e-10)


def test_anthropic_usage_with_thinking_is_never_read_as_a_responses_usage() -> None:
    """The audit's case: `output_tokens_details` made it look like OpenAI Responses usage, so
    the 2,100 cache tokens were dropped and the cost came out 54% low ($0.001428)."""
    usage = usage_from_usage(shapes.ANTHROPIC_USAGE, "anthropic")
    assert usage == shapes.ANTHROPIC_EXPECTED
    assert cost_usd(usage, PRICES.lookup(shapes.ANTHROPIC_MODEL)) == shapes.ANTHROPIC_COST


def test_an_anthropic_stream_cut_after_message_start_keeps_the_cache_figures() -> None:
    """An abandoned stream: input as reported, output estimated from the text relayed."""
    cut = ANTHROPIC_STREAM[: ANTHROPIC_STREAM.index(b"event: message_delta")]
    usage = StreamAccounting.of_events(events_of(cut), "anthropic").result(words)
    assert usage == Usage(
        input_tokens=2121, output_tokens=1, cached_input_tokens=1800, cache_creation_tokens=300
    )


@pytest.mark.parametrize(
    ("family", "usage"),
    [
        ("openai", shapes.ANTHROPIC_USAGE),  # read as OpenAI: no cache fields of its own
        ("anthropic", shapes.CHAT_USAGE),  # no Anthropic field at all
        ("gemini", shapes.RESPONSES_USAGE),
    ],
)
def test_the_route_family_decides_never_the_keys(family: Family, usage: dict[str, Any]) -> None:
    found = usage_from_usage(usage, family)
    assert found is None or found.cache_creation_tokens == found.cached_input_tokens == 0


# ── whatever an upstream sends, the buckets stay within their totals ─────────────────────────

figure = st.one_of(st.none(), st.integers(-5, 10**7), st.booleans(), st.floats(), st.text())


@given(
    prompt=figure, completion=figure, cached=figure, written=figure, reasoning=figure,
    responses=st.booleans(),
)  # fmt: skip
def test_openai_buckets_stay_within_their_totals(
    prompt: Any, completion: Any, cached: Any, written: Any, reasoning: Any, responses: bool
) -> None:
    names = (
        ("input_tokens", "output_tokens", "input_tokens_details", "output_tokens_details")
        if responses
        else ("prompt_tokens", "completion_tokens", "prompt_tokens_details",
              "completion_tokens_details")
    )  # fmt: skip
    usage = usage_from_usage(
        {
            names[0]: prompt,
            names[1]: completion,
            names[2]: {"cached_tokens": cached, "cache_write_tokens": written},
            names[3]: {"reasoning_tokens": reasoning},
        },
        "openai",
    )
    _within_totals(usage)
    if usage is not None:
        assert usage.input_tokens == (prompt if type(prompt) is int and prompt >= 0 else 0)


@given(given_=figure, output=figure, read=figure, written=figure, thinking=figure)
def test_anthropic_input_is_the_sum_and_thinking_stays_within_the_output(
    given_: Any, output: Any, read: Any, written: Any, thinking: Any
) -> None:
    usage = usage_from_usage(
        {
            "input_tokens": given_,
            "output_tokens": output,
            "cache_read_input_tokens": read,
            "cache_creation_input_tokens": written,
            "output_tokens_details": {"thinking_tokens": thinking},
        },
        "anthropic",
    )
    _within_totals(usage)
    if usage is not None:
        parts = [v if type(v) is int and v >= 0 else 0 for v in (given_, read, written)]
        assert usage.input_tokens == sum(parts)


def _within_totals(usage: Usage | None) -> None:
    if usage is None:
        return
    assert usage.cached_input_tokens + usage.cache_creation_tokens <= usage.input_tokens
    assert usage.reasoning_tokens <= usage.output_tokens
    cost = cost_usd(usage, PRICES.lookup(shapes.ANTHROPIC_MODEL))
    assert cost is not None and cost >= 0
