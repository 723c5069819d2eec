"""`capture`: which headers are credentials, their canonical names, and sanitising."""

from __future__ import annotations

import pytest

from tokenomics.services.capture import canonical, is_sensitive, sanitise


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
