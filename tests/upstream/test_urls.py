"""Upstream URL joining, default query parameters and redaction."""

import pytest

from tokenomics.domain.errors import UpstreamConfigError
from tokenomics.upstream.urls import join_url, redact, with_query


def test_join_keeps_the_base_path_and_substitutes_the_model() -> None:
    assert join_url("https://api.groq.com/openai/", "/v1/chat/completions", "a=1") == (
        "https://api.groq.com/openai/v1/chat/completions?a=1"
    )
    assert (
        join_url("http://h", "/m/{model}:go", "", model="gemini-pro") == "http://h/m/gemini-pro:go"
    )


@pytest.mark.parametrize("base", ["ftp://x", "not a url", "https://{resource}.openai.azure.com"])
def test_unusable_bases_are_configuration_errors(base: str) -> None:
    with pytest.raises(UpstreamConfigError):
        join_url(base, "/v1/x", "")


def test_default_query_parameters_and_forced_ones() -> None:
    url = with_query("http://h/p?api-version=old&x=1", {"api-version": "new", "k": "v"})
    assert url == "http://h/p?api-version=old&x=1&k=v"
    forced = with_query("http://h/p?key=client", {"key": "real"}, override=("key",))
    assert forced == "http://h/p?key=real"


def test_redact_drops_credentials_and_query() -> None:
    assert redact("https://user:pass@host:8443/path?key=secret") == "https://host:8443/path"
