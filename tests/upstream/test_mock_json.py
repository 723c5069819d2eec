"""The mock answers a request for JSON with valid JSON, shaped by its schema, in every family."""

from __future__ import annotations

from typing import Any

import orjson
from hypothesis import given
from hypothesis import strategies as st
from tests.upstream.test_mock import CHAT, CLAUDE, GEMINI, REPLY, data, decoded, post

from tokenomics.upstream.mock_json import MAX_DEPTH, json_request, shaped

VERDICT = {
    "type": "object",
    "properties": {
        "reasoning": {"type": "string"},
        "next_speaker": {"type": "string", "enum": ["user", "model"]},
        "score": {"type": "integer"},
        "tags": {"type": "array", "items": {"type": "string"}, "minItems": 1},
        "ok": {"type": ["boolean", "null"]},
    },
    "required": ["reasoning", "next_speaker"],
}
VERDICT_VALUE = {
    "reasoning": REPLY, "next_speaker": "user", "score": 1, "tags": [REPLY], "ok": False,
}  # fmt: skip


def test_chat_json_schema_is_answered_with_the_schema_shape() -> None:
    fmt = {"type": "json_schema", "json_schema": {"name": "v", "schema": VERDICT}}
    reply = decoded(post("/v1/chat/completions", {**CHAT, "response_format": fmt}))
    assert orjson.loads(reply["choices"][0]["message"]["content"]) == VERDICT_VALUE


def test_chat_json_object_and_streamed_pieces_join_to_json() -> None:
    body = {**CHAT, "response_format": {"type": "json_object"}, "stream": True}
    chunks = data(post("/v1/chat/completions", body))
    text = "".join(c["choices"][0]["delta"].get("content", "") for c in chunks if c["choices"])
    assert orjson.loads(text) == {"reply": REPLY}


def test_plain_text_format_stays_text() -> None:
    body = {**CHAT, "response_format": {"type": "text"}}
    reply = decoded(post("/v1/chat/completions", body))
    assert reply["choices"][0]["message"]["content"] == REPLY


def test_responses_text_format() -> None:
    fmt = {"type": "json_schema", "name": "v", "schema": VERDICT}
    body = {"model": "gpt-x", "input": CHAT["messages"][0]["content"], "text": {"format": fmt}}
    reply = decoded(post("/v1/responses", body))
    assert orjson.loads(reply["output"][0]["content"][0]["text"]) == VERDICT_VALUE


def test_anthropic_output_format() -> None:
    fmt = {"type": "json_schema", "schema": VERDICT}
    for key, value in (("output_format", fmt), ("output_config", {"format": fmt})):
        reply = decoded(post("/v1/messages", {**CLAUDE, key: value}))
        assert orjson.loads(reply["content"][0]["text"]) == VERDICT_VALUE


def test_gemini_response_schema_with_upper_case_types_and_code_assist_wrapper() -> None:
    schema = {
        "type": "OBJECT",
        "properties": {"next_speaker": {"type": "STRING", "enum": ["user", "model"]}},
    }
    config = {"responseMimeType": "application/json", "responseSchema": schema}
    plain = decoded(
        post("/v1beta/models/g:generateContent", {**GEMINI, "generationConfig": config})
    )
    wrapped = {"model": "g", "request": {**GEMINI, "generationConfig": config}}
    assist = decoded(post("/v1beta/models/g:generateContent", wrapped))
    for reply in (plain, assist):
        text = reply["candidates"][0]["content"]["parts"][0]["text"]
        assert orjson.loads(text) == {"next_speaker": "user"}


def test_gemini_json_schema_with_refs() -> None:
    schema = {
        "type": "object",
        "properties": {"item": {"$ref": "#/$defs/Item"}},
        "$defs": {"Item": {"type": "object", "properties": {"n": {"type": "number"}}}},
    }
    config = {"responseMimeType": "application/json", "responseJsonSchema": schema}
    reply = decoded(
        post("/v1beta/models/g:generateContent", {**GEMINI, "generationConfig": config})
    )
    assert orjson.loads(reply["candidates"][0]["content"]["parts"][0]["text"]) == {"item": {"n": 1}}


def test_a_recursive_schema_ends_at_the_depth_limit() -> None:
    schema = {"type": "object", "properties": {"next": {"$ref": "#"}}}
    value: Any = shaped(schema, "x")
    depth = 0
    while isinstance(value, dict):
        value, depth = value["next"], depth + 1
    assert value is None and depth == MAX_DEPTH + 1


json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**63), 2**63 - 1) | st.text(max_size=5),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner),
    max_leaves=30,
)
schema_keys = st.sampled_from(
    ["type", "properties", "items", "enum", "const", "anyOf", "$ref", "minItems", "schema"]
)
hostile = st.recursive(
    json_values,
    lambda inner: st.dictionaries(schema_keys | st.text(max_size=6), inner, max_size=5),
    max_leaves=40,
)


@given(hostile, hostile)
def test_any_request_body_gives_serialisable_json_or_text(schema: Any, extra: Any) -> None:
    bodies = [
        {"response_format": {"type": "json_schema", "json_schema": {"schema": schema}}},
        {"text": {"format": {"type": "json_schema", "schema": schema}}, "x": extra},
        {"generationConfig": {"responseMimeType": "application/json", "responseSchema": schema}},
        {"response_format": schema, "output_config": extra},
    ]
    for body in bodies:
        found = json_request(body)
        if found is not None:
            orjson.dumps(shaped(found, "reply"))


def test_numbers_respect_their_bounds() -> None:
    schema = {
        "type": "object",
        "properties": {
            "complexity_score": {"type": "integer", "minimum": 1, "maximum": 100},
            "ratio": {"type": "number", "exclusiveMaximum": -2},
            "count": {"type": "INTEGER", "minimum": 2.5},
        },
    }
    assert shaped(schema, "x") == {"complexity_score": 1, "ratio": -3, "count": 3}


def test_an_array_gets_as_many_items_as_its_min_items_asks() -> None:
    schema = {"type": "array", "items": {"type": "integer"}, "minItems": 3}
    assert len(shaped(schema, "hi")) == 3
    assert shaped({**schema, "minItems": 0}, "hi") == []
    assert len(shaped({**schema, "minItems": 10**6}, "hi")) == 64  # bounded
