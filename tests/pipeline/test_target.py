"""Which provider a request is recorded under (issue 19: the default OpenAI route had none)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tokenomics.config.providers import ProviderConfig, load_providers
from tokenomics.domain.policy import parse_policy
from tokenomics.formats.classify import classify
from tokenomics.pipeline.target import resolve_target

PROVIDERS = load_providers(cwd=Path("/nonexistent"), home=None, data_dir=Path("/nonexistent"),
                           inline={})  # fmt: skip
CHAT = classify("POST", "/v1/chat/completions", {})


def provider_of(policy: str, upstream: str, default: str = "") -> str:
    target = resolve_target(
        parse_policy(policy), CHAT, "gpt-4o", providers=PROVIDERS, default_provider=default,
        server_upstream=upstream, environ={"K": "sk-1", "OPENAI_API_KEY": "sk-2"},
    )  # fmt: skip
    return target.provider_name


@pytest.mark.parametrize(
    ("upstream", "name"),
    [
        ("https://api.openai.com", "openai"),  # not its alias `generic`, at the same URL
        ("https://API.openai.com/", "openai"),
        ("mock://tokenomics", "mock"),
        ("https://user:secret@llm.internal:8443/v1", "llm.internal:8443"),  # no provider there
        ("http://127.0.0.1:4000", "127.0.0.1:4000"),
    ],
)
def test_the_default_route_is_named_after_the_upstream_it_went_to(upstream: str, name: str) -> None:
    assert provider_of('{"base_key_env": "K"}', upstream) == name


def test_a_named_provider_keeps_its_name_and_the_default_route_gets_no_provider_settings() -> None:
    assert provider_of('{"providers": {"groq": [{"base_key_env": "K"}]}}', "mock://x") == "groq"
    assert provider_of('{"base_key_env": "K"}', "https://api.openai.com", "my-default") == (
        "my-default"
    )
    target = resolve_target(
        parse_policy('{"base_key_env": "K"}'), CHAT, "gpt-4o", providers=PROVIDERS,
        default_provider="", server_upstream="https://api.openai.com", environ={"K": "sk-1"},
    )  # fmt: skip
    assert target.provider is None and target.key_env == "K"


def test_of_two_providers_at_one_upstream_the_one_named_in_the_host_wins() -> None:
    both = {
        "generic": ProviderConfig("generic", upstream_url="https://api.example.com"),
        "example": ProviderConfig("example", upstream_url="https://api.example.com/"),
    }
    target = resolve_target(
        parse_policy('{"base_key_env": "K"}'), CHAT, "m", providers=both, default_provider="",
        server_upstream="https://api.example.com", environ={"K": "sk-1"},
    )  # fmt: skip
    assert target.provider_name == "example"
