"""`canonical_path`: one decoding, and what it accepts reaches the upstream unchanged (12.1)."""

from __future__ import annotations

from urllib.parse import quote, unquote

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tokenomics.domain.errors import BadPath
from tokenomics.formats.paths import canonical_path
from tokenomics.upstream.pool import Destination
from tokenomics.upstream.urls import join_url


@pytest.mark.parametrize(
    ("raw", "decoded"),
    [
        ("/v1/chat/completions", "/v1/chat/completions"),
        ("/v1/chat/%63ompletions", "/v1/chat/completions"),
        ("//v1///chat/completions/", "/v1/chat/completions/"),
        (
            "/v1beta/models/gemini%2D2.0:generateContent",
            "/v1beta/models/gemini-2.0:generateContent",
        ),
        ("/v1/models/caf%C3%A9", "/v1/models/café"),
        ("/v1/models/claude@2024", "/v1/models/claude@2024"),
        ("/v1/a..b/.c/d.", "/v1/a..b/.c/d."),
    ],
)
def test_accepted_paths_are_decoded_once(raw: str, decoded: str) -> None:
    assert canonical_path(raw) == decoded
    assert canonical_path(raw) == decoded  # again, from the paths already accepted


@pytest.mark.parametrize(
    "raw",
    [
        "", "v1/chat/completions", "*", "http://h/v1/chat/completions", "/v1/caf\u00e9",
        "/v1/%", "/v1/%4", "/v1/%zz", "/v1/%C3", "/v1/%FF", "/v1%2Fchat", "/v1%5cchat",
        "/v1/%3F", "/v1/%23", "/v1/#", "/v1/%25", "/v1/%2523", "/v1/..", "/v1/%2E%2E/x",
        "/v1/./x", "/v1/%2e/x", "/v1/;x", "/v1/%3B", "/v1/\\x", "/v1/%00", "/v1/%0A", "/v1/%7F",
        "/v1/%C2%85", "/v1/%20", "/v1/%E2%80%A8", "/v1/{model}", "/v1/%7Bmodel%7D",
    ],
)  # fmt: skip
def test_ambiguous_paths_are_refused(raw: str) -> None:
    for _ in range(2):  # every time: a refusal is never remembered as accepted
        with pytest.raises(BadPath, match="^request path refused: "):
            canonical_path(raw)


PIECES = st.one_of(
    st.sampled_from(["/", "//", ".", "..", "%2e", "%2E%2e", "%25", "%2F", "%3F", "%23", "%C3%A9"]),
    st.characters(min_codepoint=0x21, max_codepoint=0x7E),
    st.text(max_size=4).map(lambda text: quote(text, safe="")),
)


@given(st.lists(PIECES, max_size=12).map(lambda pieces: "/" + "".join(pieces)))
def test_an_accepted_path_is_the_path_the_upstream_decodes(raw: str) -> None:
    """What the upstream gets (the request target of the upstream call, built like the
    proxy builds it) decodes, once, to exactly the path that was classified."""
    try:
        path = canonical_path(raw)
    except BadPath:
        return
    target = Destination.parse(join_url("http://upstream", path, "")).target
    assert unquote(target.decode("ascii"), errors="strict") == path
    assert canonical_path(target.decode("ascii")) == path  # and is accepted again unchanged
