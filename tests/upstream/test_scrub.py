"""Scrubbing secrets from upstream replies: every form, split across chunks anywhere, headers."""

from __future__ import annotations

import re
from itertools import pairwise
from urllib.parse import quote, urlencode

import orjson
from hypothesis import given, settings
from hypothesis import strategies as st

from tokenomics.upstream.scrub import MARKER, MIN_SECRET, Scrubber

KEY = "sk-proj-Ab3+d/e=F_0123456789xyz"  # `+`, `/`, `=`: its percent form is not itself
PLAIN_KEY = "AIzaSyD-plain_key_0123456789abcdefghi"


def scrubber(*secrets: str) -> Scrubber:
    found = Scrubber.of(secrets)
    assert found is not None
    return found


def scrub(chunks: list[bytes], *secrets: str) -> bytes:
    """The whole body as the scrubber lets it out, chunk by chunk, then its end."""
    filtering = scrubber(*secrets)
    return b"".join(filtering.feed(chunk) for chunk in chunks) + filtering.flush()


def splits(data: bytes, cuts: list[int]) -> list[bytes]:
    bounds = [0, *sorted({c % (len(data) + 1) for c in cuts}), len(data)]
    return [data[a:b] for a, b in pairwise(bounds)]


ECHOES = [
    f'{{"error":"bad key","headers":{{"authorization":"Bearer {KEY}"}}}}',
    f"GET /v1beta/models/x:generateContent?{urlencode({'key': KEY})} HTTP/1.1",
    "echoed " + re.sub("%..", lambda hex_: hex_[0].lower(), quote(KEY, safe="")) + " in hex",
    orjson.dumps({"key": KEY}).decode(),
    '{"escaped": "' + KEY.replace("/", "\\/") + '"}',
]


def test_every_form_of_the_key_is_replaced() -> None:
    for text in ECHOES:
        out = scrub([text.encode()], KEY)
        assert KEY.encode() not in out, text
        assert b"%2B" not in out.upper() and b"+d" not in out, text
        assert MARKER in out


def test_a_key_split_across_two_chunks_at_every_position_is_caught() -> None:
    for text in ECHOES:
        data = text.encode()
        for cut in range(len(data) + 1):
            out = scrub([data[:cut], data[cut:]], KEY)
            assert out == scrub([data], KEY), (text, cut)
            assert KEY.encode() not in out


@given(
    before=st.binary(max_size=60),
    after=st.binary(max_size=60),
    cuts=st.lists(st.integers(min_value=0, max_value=400), max_size=8),
)
def test_chunking_never_changes_the_result(before: bytes, after: bytes, cuts: list[int]) -> None:
    data = before + PLAIN_KEY.encode() + after + KEY.encode() + before
    out = scrub(splits(data, cuts), KEY, PLAIN_KEY)
    assert PLAIN_KEY.encode() not in out and KEY.encode() not in out
    assert out == scrub([data], KEY, PLAIN_KEY)


@given(data=st.binary(max_size=300), cuts=st.lists(st.integers(0, 400), max_size=8))
def test_a_body_without_the_key_passes_unchanged(data: bytes, cuts: list[int]) -> None:
    if PLAIN_KEY.encode() in data:
        return
    assert scrub(splits(data, cuts), PLAIN_KEY) == data


def test_only_an_end_that_could_begin_the_key_is_held_back() -> None:
    filtering = scrubber(PLAIN_KEY)
    assert filtering.feed(b'data: {"x": 1}\n\n') == b'data: {"x": 1}\n\n'
    assert filtering.feed(b"key is AIzaS") == b"key is "
    assert filtering.feed(b"yD-other") == b"AIzaSyD-other"
    assert filtering.feed(b"tail AIz") == b"tail "
    assert filtering.flush() == b"AIz"  # the body ended before a key did


def test_header_values_are_scrubbed_and_a_header_named_after_the_key_dropped() -> None:
    filtering = scrubber(KEY, PLAIN_KEY)
    headers = [
        ("content-type", "application/json"),
        ("x-echo-authorization", f"Bearer {KEY}"),
        ("x-echo-url", f"/v1/models?key={quote(KEY, safe='')}"),
        (f"x-{PLAIN_KEY.lower()}", "1"),
        (f"x-{PLAIN_KEY}", "1"),
    ]
    assert filtering.headers(headers) == [
        ("content-type", "application/json"),
        ("x-echo-authorization", "Bearer [REDACTED]"),
        ("x-echo-url", "/v1/models?key=[REDACTED]"),
        (f"x-{PLAIN_KEY.lower()}", "1"),  # not the key: keys are case-sensitive
    ]
    clean = [("content-type", "text/plain")]
    assert filtering.headers(clean) is clean


def test_short_or_empty_secrets_are_not_scrubbed() -> None:
    assert Scrubber.of(["", "x" * (MIN_SECRET - 1)]) is None
    assert Scrubber.of(["", PLAIN_KEY]) is not None


def _reference_headers(scrubber: Scrubber, headers: list[tuple[str, str]]) -> list[tuple[str, str]]:
    """`Scrubber.headers` as it was (a nested list comprehension, `any` over a generator)."""
    texts = scrubber._texts
    every = "\0".join([part for pair in headers for part in pair])
    if not any(text in every for text in texts):
        return headers
    return [
        (name, scrubber._text(value)) for name, value in headers if scrubber._text(name) == name
    ]


_PARTS = st.sampled_from(["sk-abcdefgh/12", "sk-abcdefgh", "/12", "x", "\0", "%2F12", "\\/"])


@settings(max_examples=300, deadline=None)
@given(st.lists(st.tuples(st.lists(_PARTS, max_size=3).map("".join),
                          st.lists(_PARTS, max_size=4).map("".join)), max_size=5))  # fmt: skip
def test_headers_are_scrubbed_as_the_reference_scrubbed_them(
    headers: list[tuple[str, str]],
) -> None:
    scrubber = Scrubber.of(["sk-abcdefgh/12"])
    assert scrubber is not None
    assert scrubber.headers(headers) == _reference_headers(scrubber, headers)
