"""`capture.sse_fields`, the names and payloads of a captured stream, on every shape: the
usual one and the ones read line by line."""

from __future__ import annotations

import pytest

from tokenomics.services.capture import canonical, is_sensitive, sanitise, sse_fields

OPENAI = (
    b'data: {"choices":[{"delta":{"content":"Bonjour, \xc3\xa7a va"}}]}\n\n'
    b'data: {"choices":[{"delta":{"content":"\xf0\x9f\x8e\x89"}}]}\n\n'
    b'data: {"choices":[],"usage":{"total_tokens":3}}\n\n'
    b"data: [DONE]\n\n"
)
DECODED = [
    (None, '{"choices":[{"delta":{"content":"Bonjour, ça va"}}]}'),
    (None, '{"choices":[{"delta":{"content":"🎉"}}]}'),
    (None, '{"choices":[],"usage":{"total_tokens":3}}'),
    (None, "[DONE]"),
]
# Each shape with what the WHATWG field rules make of it (checked against the line-by-line
# parser this module replaced, `bench/sse_parsers.py --against aa880b7`).
SHAPES = [
    (OPENAI, DECODED),
    (OPENAI[:-2], DECODED),  # the last event lacks its blank line
    (OPENAI[:40], [(None, '{"choices":[{"delta":{"content":"B')]),  # cut (the capture limit)
    (b"data:no-space\n\ndata:  two spaces\n\n", [(None, "no-space"), (None, " two spaces")]),
    (b"data:\n\ndata: \n\n", [(None, ""), (None, "")]),  # empty payloads
    (
        b"event: message_start\ndata: {}\n\nevent: ping\ndata: {}\n\n",
        [("message_start", "{}"), ("ping", "{}")],
    ),  # named events
    (b": keep-alive\n\ndata: x\n\n", [(None, "x")]),  # a comment
    (b"data: a\ndata: b\n\n", [(None, "a\nb")]),  # two data lines make one payload
    (b"data: a\r\n\r\ndata: b\r\n\r\n", [(None, "a"), (None, "b")]),  # CRLF
    (b"\xef\xbb\xbfdata: bom\n\n", [(None, "bom")]),  # a BOM
    (b"data: a\n\n\n\ndata: b\n\n", [(None, "a"), (None, "b")]),  # extra blank lines
    (b"data: \xff\xfe invalid\n\n", [(None, "\ufffd\ufffd invalid")]),  # invalid UTF-8
    (b"id: 7\ndata: x\n\n", [(None, "x")]),
    (b"", []),
]


def sse_data(chunks: list[bytes]) -> list[tuple[str | None, str]]:
    return [(name, data.decode("utf-8", "replace")) for name, data in sse_fields(chunks)]


@pytest.mark.parametrize(("raw", "expected"), SHAPES)
def test_sse_fields_follow_the_field_rules(
    raw: bytes, expected: list[tuple[str | None, str]]
) -> None:
    assert sse_data([raw]) == expected


@pytest.mark.parametrize(("raw", "expected"), [SHAPES[0], SHAPES[5], SHAPES[8]])
def test_sse_fields_are_the_same_at_every_split(
    raw: bytes, expected: list[tuple[str | None, str]]
) -> None:
    for cut in range(len(raw) + 1):
        assert sse_data([raw[:cut], raw[cut:]]) == expected, cut


def test_header_names_keep_their_answers_when_remembered() -> None:
    for _ in range(2):  # the second round is answered from the memo
        assert is_sensitive("X-Goog-Api-Key") and is_sensitive("authorization")
        assert not is_sensitive("x-ratelimit-remaining-tokens")
        assert canonical("x-request-id") == "X-Request-Id"


@pytest.mark.parametrize(
    ("text", "clean"),
    [
        ("plain ascii\twith\r\nline ends", "plain ascii\twith\r\nline ends"),
        ("bell\x07 and del\x7f", "bell  and del "),
        ("é accents and 🎉", "é accents and 🎉"),
        ("é with c1\x85 and nul\x00", "é with c1  and nul "),
        ("lone surrogate \udcff", "lone surrogate ?"),
        ("", ""),
    ],
)
def test_sanitise_replaces_control_characters_in_ascii_and_other_text(
    text: str, clean: str
) -> None:
    assert sanitise(text) == clean
