"""Each API family's output cap, read from the request for the budget reservation (issue 12
item 5): the request's own limit (times the choices it asks for), else the default per choice.
A hostile value (a string, a bool, a fraction, zero, a negative) counts as no limit."""

from __future__ import annotations

from typing import Any

import pytest

from tokenomics.formats.anthropic import AnthropicMessages
from tokenomics.formats.base import Adapter
from tokenomics.formats.gemini import Gemini
from tokenomics.formats.openai import (
    OpenAIChat,
    OpenAICompletions,
    OpenAIEmbeddings,
    OpenAIResponses,
)

DEFAULT = 4096


@pytest.mark.parametrize(
    ("adapter", "body", "cap"),
    [
        (OpenAIChat(), {}, DEFAULT),
        (OpenAIChat(), {"max_tokens": 220}, 220),
        (OpenAIChat(), {"max_completion_tokens": 300, "max_tokens": 220}, 300),
        (OpenAIChat(), {"max_tokens": 220, "n": 3}, 660),
        (OpenAIChat(), {"n": 2}, 2 * DEFAULT),
        (OpenAICompletions(), {"max_tokens": 16, "best_of": 5, "n": 2}, 80),
        (OpenAIResponses(), {"max_output_tokens": 500, "max_tokens": 1}, 500),
        (OpenAIResponses(), {}, DEFAULT),
        (OpenAIEmbeddings(), {"max_tokens": 50}, 0),
        (AnthropicMessages(), {"max_tokens": 1024}, 1024),
        (Gemini(), {"generationConfig": {"maxOutputTokens": 100, "candidateCount": 2}}, 200),
        (Gemini(), {"generation_config": {"max_output_tokens": 70}}, 70),
        (Gemini(), {"generationConfig": "hostile"}, DEFAULT),
        (Adapter(), {"max_tokens": 9}, 9),
    ],
)
def test_the_output_cap_of_each_family(adapter: Adapter, body: dict[str, Any], cap: int) -> None:
    assert adapter.output_cap(body, DEFAULT) == cap


@pytest.mark.parametrize("value", ["1000", True, 10.5, 0, -5, None, [100], {"n": 1}])
def test_a_hostile_limit_counts_as_none(value: Any) -> None:
    assert OpenAIChat().output_cap({"max_tokens": value, "n": value}, DEFAULT) == DEFAULT
    assert AnthropicMessages().output_cap({"max_tokens": value}, DEFAULT) == DEFAULT
