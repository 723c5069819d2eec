"""`openai_usage` reads its fields inline (a hot path: every stream's last chunk); it answers
as the field-by-field reader it replaced (kept below as the reference), whatever the shape."""

from __future__ import annotations

from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from tokenomics.domain.usage import Usage, int_field, map_field, openai_usage


def _detail(usage: Any, details: str, key: str) -> int:
    return int_field(map_field(usage, details), key) or 0


def _openai(given: int, output: int, cached: int, written: int, reasoning: int) -> Usage:
    cached = min(cached, given)
    return Usage(
        input_tokens=given,
        output_tokens=output,
        cached_input_tokens=cached,
        cache_creation_tokens=min(written, given - cached),
        reasoning_tokens=min(reasoning, output),
    )


def reference(usage: Any) -> Usage | None:
    """`openai_usage` as it was (71a4f51)."""
    prompt = int_field(usage, "prompt_tokens")
    completion = int_field(usage, "completion_tokens")
    if prompt is not None or completion is not None:
        cached = int_field(map_field(usage, "prompt_tokens_details"), "cached_tokens")
        if cached is None:
            cached = int_field(usage, "prompt_cache_hit_tokens")
        return _openai(
            prompt or 0,
            completion or 0,
            cached or 0,
            _detail(usage, "prompt_tokens_details", "cache_write_tokens"),
            _detail(usage, "completion_tokens_details", "reasoning_tokens"),
        )
    given_ = int_field(usage, "input_tokens")
    output = int_field(usage, "output_tokens")
    if given_ is None and output is None:
        return None
    return _openai(
        given_ or 0,
        output or 0,
        _detail(usage, "input_tokens_details", "cached_tokens"),
        _detail(usage, "input_tokens_details", "cache_write_tokens"),
        _detail(usage, "output_tokens_details", "reasoning_tokens"),
    )


VALUE = st.one_of(
    st.integers(-3, 2000), st.booleans(), st.none(), st.floats(allow_nan=False),
    st.sampled_from(["3", "", "x"]), st.just([1]),
)  # fmt: skip
DETAIL_KEYS = ["cached_tokens", "cache_write_tokens", "reasoning_tokens", "audio_tokens"]
DETAILS = st.one_of(st.dictionaries(st.sampled_from(DETAIL_KEYS), VALUE, max_size=4), VALUE)
KEYS = ["prompt_tokens", "completion_tokens", "total_tokens", "input_tokens", "output_tokens",
        "prompt_cache_hit_tokens"]  # fmt: skip
DETAIL_FIELDS = ["prompt_tokens_details", "completion_tokens_details", "input_tokens_details",
                 "output_tokens_details"]  # fmt: skip
USAGE = st.one_of(
    st.builds(
        lambda a, b: {**a, **b},
        st.dictionaries(st.sampled_from(KEYS), VALUE, max_size=6),
        st.dictionaries(st.sampled_from(DETAIL_FIELDS), DETAILS, max_size=4),
    ),
    VALUE,
)


@given(USAGE)
def test_openai_usage_reads_as_the_field_readers_did(usage: Any) -> None:
    assert openai_usage(usage) == reference(usage)


def test_the_usual_shapes() -> None:
    chat = {"prompt_tokens": 1117, "completion_tokens": 46, "total_tokens": 1163,
            "prompt_tokens_details": {"cached_tokens": 1024, "audio_tokens": 0},
            "completion_tokens_details": {"reasoning_tokens": 10}}  # fmt: skip
    assert openai_usage(chat) == Usage(1117, 46, 1024, 0, 10)
    assert openai_usage({"prompt_tokens": 5, "prompt_cache_hit_tokens": 9}) == Usage(5, 0, 5)
    responses = {"input_tokens": 2000, "input_tokens_details": {"cached_tokens": 1500},
                 "output_tokens": 300, "output_tokens_details": {"reasoning_tokens": 256}}  # fmt: skip
    assert openai_usage(responses) == Usage(2000, 300, 1500, 0, 256)
    assert openai_usage({"total_tokens": 3}) is None
