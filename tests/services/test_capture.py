"""`capture.sse_fields`, the fast way to the names and payloads of a captured stream, agrees
with the full SSE parser on every shape, the usual one and the ones it hands over to the
parser."""

from __future__ import annotations

import pytest

from tokenomics.services.capture import canonical, is_sensitive, sanitise, sse_events, sse_fields

OPENAI = (
    b'data: {"choices":[{"delta":{"content":"Bonjour, \xc3\xa7a va"}}]}\n\n'
    b'data: {"choices":[{"delta":{"content":"\xf0\x9f\x8e\x89"}}]}\n\n'
    b'data: {"choices":[],"usage":{"total_tokens":3}}\n\n'
    b"data: [DONE]\n\n"
)
SHAPES = [
    OPENAI,
    OPENAI[:-2],  # the last event lacks its blank line
    OPENAI[:40],  # cut inside an event (the capture limit)
    b"data:no-space\n\ndata:  two spaces\n\n",
    b"data:\n\ndata: \n\n",  # empty payloads
    b"event: message_start\ndata: {}\n\nevent: ping\ndata: {}\n\n",  # named events
    b": keep-alive\n\ndata: x\n\n",  # a comment
    b"data: a\ndata: b\n\n",  # two data lines make one payload
    b"data: a\r\n\r\ndata: b\r\n\r\n",  # CRLF
    b"\xef\xbb\xbfdata: bom\n\n",  # a BOM
    b"data: a\n\n\n\ndata: b\n\n",  # extra blank lines
    b"data: \xff\xfe invalid\n\n",  # invalid UTF-8
    b"id: 7\ndata: x\n\n",
    b"",
]


def sse_data(chunks: list[bytes]) -> list[tuple[str | None, str]]:
    return [(name, data.decode("utf-8", "replace")) for name, data in sse_fields(chunks)]


def parser_data(chunks: list[bytes]) -> list[tuple[str | None, str]]:
    return [(event.event, event.data) for event in sse_events(chunks)]


@pytest.mark.parametrize("raw", SHAPES)
def test_sse_fields_match_the_parser(raw: bytes) -> None:
    assert sse_data([raw]) == parser_data([raw])


@pytest.mark.parametrize("raw", [OPENAI, SHAPES[5], SHAPES[8]])
def test_sse_fields_match_the_parser_at_every_split(raw: bytes) -> None:
    for cut in range(len(raw) + 1):
        chunks = [raw[:cut], raw[cut:]]
        assert sse_data(chunks) == parser_data(chunks), cut


def test_the_usual_stream_yields_each_payload_decoded() -> None:
    assert sse_data([OPENAI]) == [
        (None, '{"choices":[{"delta":{"content":"Bonjour, ça va"}}]}'),
        (None, '{"choices":[{"delta":{"content":"🎉"}}]}'),
        (None, '{"choices":[],"usage":{"total_tokens":3}}'),
        (None, "[DONE]"),
    ]


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
