"""The cheaper slot finders find what the previous ones found (tests/formats/reference_slots):
the same places (container identity and key), the same texts, the same output caps, over
generated request and response bodies of every family."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from tests.formats import reference_slots as ref

from tokenomics.formats.anthropic import AnthropicCountTokens, AnthropicMessages
from tokenomics.formats.base import Adapter, Slot
from tokenomics.formats.estimate import ENCODE_LIMIT, bound_texts
from tokenomics.formats.gemini import Gemini, GeminiCountTokens
from tokenomics.formats.openai import (
    OpenAIChat,
    OpenAICompletions,
    OpenAIEmbeddings,
    OpenAIResponses,
)

if TYPE_CHECKING:
    from collections.abc import Callable

# Keys the adapters look at, so that generated bodies reach every branch.
KEYS = [
    "messages", "content", "tool_calls", "function", "arguments", "function_call", "text",
    "type", "tool_use", "input", "source", "document", "data", "prompt", "instructions",
    "output", "system", "contents", "parts", "systemInstruction", "system_instruction",
    "functionCall", "function_call", "args", "functionResponse", "function_response",
    "response", "generateContentRequest", "choices", "message", "candidates", "tools",
    "max_tokens", "max_completion_tokens", "n", "best_of", "max_output_tokens",
    "generationConfig", "generation_config", "maxOutputTokens", "candidateCount", "role",
]  # fmt: skip
SCALARS = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-3, 5000),
    st.floats(allow_nan=False, width=32),
    st.sampled_from(["", "hi", "text", "content", "tool_use", "document", "data", "héllo"]),
    st.text(max_size=8),
)
JSON = st.recursive(
    SCALARS,
    lambda inner: st.one_of(
        st.lists(inner, max_size=4),
        st.dictionaries(st.sampled_from(KEYS) | st.text(max_size=3), inner, max_size=5),
    ),
    max_leaves=30,
)
BODIES = st.dictionaries(st.sampled_from(KEYS), JSON, max_size=6)

# (adapter, reference request slots, reference response slots)
CASES: list[tuple[Adapter, Callable[[Any], list[Any]], Callable[[Any], list[Any]] | None]] = [
    (OpenAIChat(), ref.chat_slots, ref.chat_response_slots),
    (OpenAICompletions(), ref.completions_slots, ref.chat_response_slots),
    (OpenAIResponses(), ref.responses_slots, ref.responses_response_slots),
    (OpenAIEmbeddings(), ref.embeddings_slots, None),
    (AnthropicMessages(), ref.anthropic_slots, ref.anthropic_response_slots),
    (AnthropicCountTokens(), ref.anthropic_slots, ref.anthropic_response_slots),
    (Gemini(), ref.gemini_slots, ref.gemini_response_slots),
    (GeminiCountTokens(), ref.gemini_count_slots, ref.gemini_response_slots),
]
IDS = [type(case[0]).__name__ for case in CASES]


def places(slots: list[Slot] | list[ref.Slot]) -> list[tuple[int, Any]]:
    return [(id(slot.container), slot.key) for slot in slots]


def outcome(find: Callable[[], Any]) -> Any:
    """What `find` gives, or the type of what it raises (the old version raised on some
    malformed bodies, e.g. a number where a list belongs; the new one must not)."""
    try:
        return find()
    except Exception as error:  # compared, not swallowed
        return type(error)


@pytest.mark.parametrize(("adapter", "request_slots", "response_slots"), CASES, ids=IDS)
@settings(max_examples=300, deadline=None)
@given(body=BODIES)
def test_same_slots_texts_and_caps(
    adapter: Adapter,
    request_slots: Callable[[Any], list[ref.Slot]],
    response_slots: Callable[[Any], list[ref.Slot]] | None,
    body: dict[str, Any],
) -> None:
    expected = outcome(lambda: request_slots(body))
    found = outcome(lambda: adapter.slots(body))
    if isinstance(expected, type):  # the old code failed on it: the new one reads past it
        assert not isinstance(found, type)
        assert not isinstance(outcome(lambda: adapter.texts(body)), type)
    else:
        assert places(found) == places(expected)
        assert [s.text for s in found] == [s.text for s in expected]
        assert adapter.texts(body) == ref.texts(expected, body)
    if response_slots is not None:
        got = outcome(lambda: places(adapter.response_slots(body)))
        was = outcome(lambda: places(response_slots(body)))
        assert not isinstance(got, type) and (isinstance(was, type) or got == was)
    if isinstance(adapter, OpenAIChat):
        assert adapter.output_cap(body, 4096) == ref.chat_output_cap(body, 4096)


@given(body=BODIES)
@settings(max_examples=300, deadline=None)
def test_openai_chat_messages(body: dict[str, Any]) -> None:
    """Chat bodies shaped as chat bodies (messages of dicts), where most requests are."""
    messages = [
        {k: v for k, v in body.items() if k in {"role", "content", "tool_calls", "function_call"}}
    ]
    chat = {"model": "m", **body, "messages": messages}
    expected = outcome(lambda: places(ref.chat_slots(chat)))
    found = outcome(lambda: places(OpenAIChat().slots(chat)))
    assert not isinstance(found, type) and (isinstance(expected, type) or found == expected)
    expected_texts = outcome(lambda: ref.texts(ref.chat_slots(chat), chat))
    texts = outcome(lambda: OpenAIChat().texts(chat))
    assert not isinstance(texts, type)
    assert isinstance(expected_texts, type) or texts == expected_texts


def test_slot_equality_and_writes_as_before() -> None:
    """Equal when they name the same place, unhashable (a container is mutable), and `set`
    writes through, as the frozen dataclass did."""
    body = {"a": "x"}
    assert Slot(body, "a") == Slot(body, "a")
    assert Slot(body, "a") != Slot(body, "b")
    assert Slot(body, "a") != ("a",)
    with pytest.raises(TypeError):
        hash(Slot(body, "a"))
    Slot(body, "a").set("y")
    assert body == {"a": "y"}
    assert repr(Slot(body, "a")) == "Slot(container={'a': 'y'}, key='a')"


TEXTS = st.lists(
    st.one_of(
        st.text(max_size=20),
        st.builds(
            lambda c, n: c * n,
            st.sampled_from(["a", "é", "\ud800", "😀"]),
            st.integers(0, ENCODE_LIMIT + 10),
        ),
    ),
    max_size=4,
)


@given(texts=TEXTS, per_text=st.sampled_from([0, 3]))
@settings(max_examples=200, deadline=None)
def test_bound_texts_as_before(texts: list[str], per_text: int) -> None:
    """The sum taken at once when nothing passes the estimate limit equals the previous
    text-by-text total, on both sides of the limit."""
    expected = ref.bound_texts(texts, per_text=per_text)
    assert bound_texts(texts, per_text=per_text) == expected
    assert bound_texts(iter(texts), per_text=per_text) == expected
