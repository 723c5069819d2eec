"""Usage as the providers send it today, built from the installed SDKs' own pydantic types.

Every usage object sets every field its SDK type has (`full` checks it, nested objects too), so
a field added by a newer SDK fails the tests that use these shapes until the accounting (and
docs/ACCOUNTING.md) says where it goes. Gemini has no SDK in the dev extras: its
`usageMetadata` follows the REST reference, every field set.

The figures are those of the billing audit: Anthropic with extended thinking and prompt caching
on claude-sonnet-4-5 (21 uncached + 1,800 cache-read + 300 cache-write input tokens, 91 output
tokens of which 60 thinking: $0.003093), OpenAI with cache reads, cache writes and reasoning.
"""

from __future__ import annotations

from typing import Any

from anthropic.types import CacheCreation, MessageDeltaUsage, ServerToolUsage
from anthropic.types import OutputTokensDetails as AnthropicOutputDetails
from anthropic.types import Usage as AnthropicUsage
from openai.types import CompletionUsage
from openai.types.completion_usage import CompletionTokensDetails, PromptTokensDetails
from openai.types.create_embedding_response import Usage as EmbeddingUsage
from openai.types.responses import ResponseUsage
from openai.types.responses.response_usage import (
    InputTokensDetails,
    InputTokensDetailsCacheWriteTokensDetails,
    OutputTokensDetails,
)
from pydantic import BaseModel

from tokenomics.domain.usage import Usage


def full(model: BaseModel) -> dict[str, Any]:
    """`model` as JSON, once every field of it (and of the models inside it) was set."""
    _check_full(model)
    dumped: dict[str, Any] = model.model_dump(mode="json")
    return dumped


def _check_full(model: BaseModel) -> None:
    missing = set(type(model).model_fields) - model.model_fields_set
    assert not missing, f"{type(model).__name__} has fields the shape leaves out: {missing}"
    for name in type(model).model_fields:
        value = getattr(model, name)
        assert value is not None, f"{type(model).__name__}.{name} is None"
        if isinstance(value, BaseModel):
            _check_full(value)


# ── Anthropic ────────────────────────────────────────────────────────────────────────────────

ANTHROPIC_MODEL = "claude-sonnet-4-5"
ANTHROPIC_COST = 0.003093  # 21 x $3 + 1,800 x $0.30 + 300 x $3.75 + 91 x $15, per million
ANTHROPIC_FIGURES = {
    "input_tokens": 21,
    "cache_read_input_tokens": 1800,
    "cache_creation_input_tokens": 300,
    "output_tokens": 91,
    "output_tokens_details": AnthropicOutputDetails(thinking_tokens=60),
    "server_tool_use": ServerToolUsage(web_search_requests=0, web_fetch_requests=0),
}
ANTHROPIC_USAGE = full(
    AnthropicUsage(
        **ANTHROPIC_FIGURES,
        cache_creation=CacheCreation(ephemeral_5m_input_tokens=300, ephemeral_1h_input_tokens=0),
        inference_geo="us",
        service_tier="standard",
        speed="standard",
    )
)
# message_start: the input figures, output so far 1 (no thinking yet)
ANTHROPIC_START_USAGE = {
    **ANTHROPIC_USAGE,
    "output_tokens": 1,
    "output_tokens_details": {"thinking_tokens": 0},
}
ANTHROPIC_DELTA_USAGE = full(MessageDeltaUsage(**ANTHROPIC_FIGURES))  # cumulative figures
ANTHROPIC_EXPECTED = Usage(
    input_tokens=2121,
    output_tokens=91,
    cached_input_tokens=1800,
    cache_creation_tokens=300,
    reasoning_tokens=60,
)

# ── OpenAI ───────────────────────────────────────────────────────────────────────────────────

OPENAI_MODEL = "gpt-4o"
CHAT_USAGE = full(
    CompletionUsage(
        prompt_tokens=2100,
        completion_tokens=500,
        total_tokens=2600,
        prompt_tokens_details=PromptTokensDetails(
            audio_tokens=0, cache_write_tokens=300, cached_tokens=1536, image_tokens=0,
            text_tokens=2100,
        ),
        completion_tokens_details=CompletionTokensDetails(
            accepted_prediction_tokens=0, audio_tokens=0, reasoning_tokens=384,
            rejected_prediction_tokens=0, text_tokens=116,
        ),
    )
)  # fmt: skip
RESPONSES_USAGE = full(
    ResponseUsage(
        input_tokens=2100,
        input_tokens_details=InputTokensDetails(
            cached_tokens=1536,
            cache_write_tokens=300,
            cache_write_tokens_details=InputTokensDetailsCacheWriteTokensDetails(
                ttl_12h_tokens=0, ttl_30m_tokens=300
            ),
        ),
        output_tokens=500,
        output_tokens_details=OutputTokensDetails(reasoning_tokens=384),
        total_tokens=2600,
    )
)
OPENAI_EXPECTED = Usage(
    input_tokens=2100,
    output_tokens=500,
    cached_input_tokens=1536,
    cache_creation_tokens=300,
    reasoning_tokens=384,
)
# gpt-4o: 264 x $2.50 + 1,536 x $1.25 + 300 x $2.50 (cache writes: the input price) + 500 x $10
OPENAI_COST = 0.00833
EMBEDDING_USAGE = full(EmbeddingUsage(prompt_tokens=8, total_tokens=8))

# ── Gemini (REST `usageMetadata`, every field) ───────────────────────────────────────────────

GEMINI_MODEL = "gemini-2.5-flash"
GEMINI_USAGE = {
    "promptTokenCount": 2100,
    "cachedContentTokenCount": 1536,
    "candidatesTokenCount": 116,
    "toolUsePromptTokenCount": 10,
    "thoughtsTokenCount": 384,
    "totalTokenCount": 2610,
    "promptTokensDetails": [{"modality": "TEXT", "tokenCount": 2100}],
    "cacheTokensDetails": [{"modality": "TEXT", "tokenCount": 1536}],
    "candidatesTokensDetails": [{"modality": "TEXT", "tokenCount": 116}],
    "toolUsePromptTokensDetails": [{"modality": "TEXT", "tokenCount": 10}],
    "trafficType": "ON_DEMAND",
}
GEMINI_EXPECTED = Usage(
    input_tokens=2110, output_tokens=500, cached_input_tokens=1536, reasoning_tokens=384
)
GEMINI_COST = 0.00146828  # 574 x $0.30 + 1,536 x $0.03 + 500 x $2.50, per million
