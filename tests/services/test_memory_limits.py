"""What a memory entry keeps: the headers that matter, and body sections cut to a size with the
cut marked (`services/memory_limits.py`)."""

from __future__ import annotations

import orjson
from hypothesis import given
from hypothesis import strategies as st
from tests.support.finished import finished, openai_deltas, streamed

from tokenomics.services.capture import is_sensitive
from tokenomics.services.memory_format import exchange_entries, response_content
from tokenomics.services.memory_limits import (
    KEPT_HEADERS,
    SECTION_LIMIT,
    STANDING_LIMIT,
    clip,
    kept_headers,
    request_text,
)


def test_only_the_headers_that_matter_are_kept() -> None:
    headers = [
        ("Content-Type", "application/json"), ("accept-encoding", "gzip"),
        ("x-stainless-os", "Linux"), ("anthropic-beta", "b1"), ("X-OpenClaw-Team", "ml"),
        ("x-api-key", "sk"), ("cookie", "c"), ("request-id", "r1"), ("openai-beta", "x"),
    ]  # fmt: skip
    assert kept_headers(headers) == [
        ("Content-Type", "application/json"), ("anthropic-beta", "b1"), ("X-OpenClaw-Team", "ml"),
        ("request-id", "r1"), ("openai-beta", "x"),
    ]  # fmt: skip


@given(st.text(max_size=3 * SECTION_LIMIT))
def test_a_clipped_text_keeps_its_start_and_end_and_says_how_much_went(text: str) -> None:
    clipped = clip(text)
    if len(text) <= SECTION_LIMIT:
        assert clipped == text
        return
    assert clipped.startswith(text[: SECTION_LIMIT // 4])
    assert clipped.endswith(text[-(SECTION_LIMIT - SECTION_LIMIT // 4) :])
    left_out = len(text) - SECTION_LIMIT
    assert f"\n[... {left_out} characters left out for memory ...]\n" in clipped
    assert len(clipped) < SECTION_LIMIT + 60


def test_a_long_request_loses_its_standing_parts_not_its_messages() -> None:
    tools = [{"name": f"t{n}", "description": "d" * 500} for n in range(30)]
    small_system = "Be brief."
    body = {
        "model": "m",
        "system": small_system,
        "messages": [{"role": "user", "content": "q" * 3000}, {"role": "user", "content": "hi"}],
        "tools": tools,
        "stream": True,
    }
    text = request_text(orjson.dumps(body).decode())
    shown = orjson.loads(text)
    assert shown["system"] == small_system  # short: part of the conversation
    assert shown["tools"] == f"[left out for memory: 30 items, {len(orjson.dumps(tools))} bytes]"
    assert shown["messages"] == body["messages"] and shown["stream"] is True
    assert len(orjson.dumps(small_system)) <= STANDING_LIMIT


def test_a_long_body_that_is_not_json_or_has_no_standing_parts_is_clipped() -> None:
    for text in ("x" * (2 * SECTION_LIMIT), orjson.dumps({"input": "y" * 20_000}).decode()):
        assert request_text(text) == clip(text)
        assert "characters left out for memory" in request_text(text)


def test_every_section_of_an_entry_is_cut() -> None:
    long = "word " * 10_000
    buffered = finished(request_body=long.encode(), request_bytes=len(long))
    assert len(exchange_entries(buffered, "k")) < 2 * SECTION_LIMIT + 1000
    stream = response_content(streamed(openai_deltas(*long.split())))
    assert stream is not None
    assert stream.count("characters left out for memory") == 2  # the events and the text
    assert len(stream) < 2 * SECTION_LIMIT + 1000


@given(
    st.sampled_from(["x-openclaw-", "X-OpenClaw-", "x-", ""]),
    st.from_regex(r"[a-z-]{1,20}", fullmatch=True),
)
def test_only_the_allowed_headers_reach_memory_and_never_a_credential(
    prefix: str, name: str
) -> None:
    header, secret = prefix + name, "s3cr3t-value"
    text = exchange_entries(finished(request_headers=((header, secret),)), "k")
    assert (secret in text) is (header.lower() in KEPT_HEADERS)
    assert not (secret in text and is_sensitive(header))


def test_credential_headers_are_never_written() -> None:
    secret = "s3cr3t-value"
    for name in ("authorization", "x-api-key", "x-openclaw-token", "x-openclaw-api-key", "cookie"):
        pairs = ((name, secret),)
        text = exchange_entries(finished(request_headers=pairs, response_headers=pairs), "k")
        assert secret not in text and name not in text.lower()
