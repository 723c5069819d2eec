"""Which provider a request is recorded under (issue 19: the default OpenAI route had none), and
targets remembered: the same as resolved afresh, per policy object and environment, refusals
never."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tokenomics.config.providers import ProviderConfig, load_providers
from tokenomics.domain.errors import ModelNotAllowed, ProxyError, TokenomicsError
from tokenomics.domain.policy import Policy, parse_policy
from tokenomics.formats.base import Route
from tokenomics.formats.classify import classify
from tokenomics.pipeline import target as target_module
from tokenomics.pipeline.target import Target, resolve_target

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


def resolve(policy: Policy, model: str, environ: dict[str, str], route: Route = CHAT) -> Target:
    return resolve_target(
        policy, route, model, providers=PROVIDERS, default_provider="",
        server_upstream="https://api.openai.com", environ=environ,
    )  # fmt: skip


def test_a_target_is_remembered_per_policy_model_route_and_environment() -> None:
    policy, environ = parse_policy('{"base_key_env": "K", "model_regex": "^gpt-"}'), {"K": "sk"}
    first = resolve(policy, "gpt-4o", environ)
    assert resolve(policy, "gpt-4o", environ) is first
    assert resolve(policy, "gpt-4o-mini", environ).resolved.model_regex == "^gpt-"
    assert resolve(policy, "gpt-4o-mini", environ) is not first
    edited = parse_policy('{"base_key_env": "K2"}')  # an edit is a new policy object
    assert resolve(edited, "gpt-4o", {"K2": "sk-2"}).key == "sk-2"
    assert resolve(policy, "gpt-4o", {"K": "sk-other"}).key == "sk-other"  # another environment
    passthrough = classify("GET", "/v1/models", {})
    assert resolve(policy, "", environ, passthrough).resolved.model_regex == "^gpt-"
    assert resolve(policy, "", environ, passthrough) is not resolve(policy, "gpt-4o", environ)


def test_a_refusal_is_never_remembered() -> None:
    policy = parse_policy('{"base_key_env": "UNSET", "model_regex": "^gpt-"}')
    for _ in range(2):
        with pytest.raises(ProxyError, match='"UNSET" is not set'):
            resolve(policy, "gpt-4o", {})
        with pytest.raises(ModelNotAllowed):
            resolve(policy, "claude", {})


@given(
    policy=st.sampled_from([
        '{"base_key_env": "K"}', '{"base_key_env": "K", "model_regex": "^gpt-"}',
        '{"providers": {"groq": [{"base_key_env": "K", "model_regex": "^llama"}],'
        ' "openai": [{"base_key_env": "K2"}]}}',
        '{"providers": {"anthropic": [{"base_key_env": "K"}]}, "default_provider": "groq"}',
    ]),
    calls=st.lists(
        st.tuples(
            st.sampled_from(["", "gpt-4o", "llama", "claude-sonnet-4"]),
            st.sampled_from(["POST /v1/chat/completions", "POST /v1/messages", "GET /v1/models"]),
            st.sampled_from([{}, {"K": "a"}, {"K": "a", "K2": "b"}]),
        ),
        max_size=12,
    ),
)  # fmt: skip
def test_a_remembered_target_is_the_one_resolved_afresh(
    policy: str, calls: list[tuple[str, str, dict[str, str]]]
) -> None:
    parsed = parse_policy(policy)
    for model, request, environ in calls:
        method, path = request.split(" ")
        route = classify(method, path, {})
        try:
            got: Target | str = resolve(parsed, model, environ, route)
        except TokenomicsError as exc:
            got = exc.message
        try:
            fresh: Target | str = target_module._resolve(
                parsed, route, model, route.adapter is not None or bool(model), PROVIDERS, "",
                "https://api.openai.com", environ,
            )  # fmt: skip
        except TokenomicsError as exc:
            fresh = exc.message
        assert got == fresh
