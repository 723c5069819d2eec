"""`core.md` §11 scenarios 14-22: resolving a policy for a model, and the model check."""

import json

import pytest

from tokenomics.domain.errors import ModelNotAllowed
from tokenomics.domain.policy import Prompt, parse_policy
from tokenomics.domain.resolve import inject_prompts, resolve_for_model, resolve_provider

ROUTING = {
    "base_key_env": "GLOBAL_KEY",
    "max_tokens": 100000,
    "providers": {
        "openai": [
            {"model": "gpt-4o", "base_key_env": "OPENAI_PAT", "max_tokens": 50000},
            {"model_regex": "^gpt-3", "base_key_env": "OPENAI_PAT", "max_tokens": 200000},
        ],
        "anthropic": [
            {"model_regex": "^claude", "base_key_env": "ANTHROPIC_PAT",
             "upstream_url": "https://api.anthropic.com"},
        ],
        "groq": [{"model_regex": "^llama", "base_key_env": "GROQ_PAT"}],
    },
}  # fmt: skip


def test_unmatched_models_use_the_global_view() -> None:
    resolved = resolve_for_model(parse_policy('{"base_key_env":"K"}'), "anything")
    assert (resolved.base_key_env, resolved.provider_name) == ("K", "")


@pytest.mark.parametrize(
    ("model", "provider", "key", "max_tokens"),
    [
        ("gpt-4o", "openai", "OPENAI_PAT", 50000),
        ("gpt-3.5-turbo", "openai", "OPENAI_PAT", 200000),
        ("claude-3-opus", "anthropic", "ANTHROPIC_PAT", 100000),
        ("llama-3-70b", "groq", "GROQ_PAT", 100000),
        ("mistral-large", "", "GLOBAL_KEY", 100000),
    ],
)
def test_multi_provider_routing(model: str, provider: str, key: str, max_tokens: int) -> None:
    resolved = resolve_for_model(parse_policy(json.dumps(ROUTING)), model)
    assert (resolved.provider_name, resolved.base_key_env, resolved.max_tokens) == (
        provider,
        key,
        max_tokens,
    )
    if provider == "anthropic":
        assert resolved.upstream_url == "https://api.anthropic.com"


def test_first_match_within_a_provider_wins_and_wildcards_match_anything() -> None:
    policy = parse_policy(
        '{"providers":{"openai":[{"model":"gpt-4o","base_key_env":"A"},'
        '{"model_regex":"^gpt-","base_key_env":"B"},{"base_key_env":"W"}]}}'
    )
    assert resolve_for_model(policy, "gpt-4o").base_key_env == "A"
    assert resolve_for_model(policy, "gpt-4-turbo").base_key_env == "B"
    assert resolve_for_model(policy, "any-model").base_key_env == "W"


def test_document_order_decides_between_providers() -> None:
    first = '{"providers":{"b":[{"base_key_env":"B"}],"a":[{"model":"gpt-4o","base_key_env":"A"}]}}'
    for _ in range(10):
        assert resolve_for_model(parse_policy(first), "gpt-4o").provider_name == "b"


def test_prompts_provider_first_and_input_untouched() -> None:
    policy = parse_policy(
        json.dumps(
            {
                "base_key_env": "K",
                "prompts": [{"role": "system", "content": "G1"}, {"role": "system", "content": "G2"}],
                "providers": {
                    "p": [{"base_key_env": "K", "prompts": [
                        {"role": "system", "content": "P1"}, {"role": "system", "content": "P2"}]}]
                },
            }
        )
    )  # fmt: skip
    resolved = resolve_for_model(policy, "m")
    messages: list[dict[str, object]] = [{"role": "user", "content": "hello"}]
    result = inject_prompts(resolved.prompts, messages)
    assert [m["content"] for m in result] == ["P1", "P2", "G1", "G2", "hello"]
    assert messages == [{"role": "user", "content": "hello"}]
    assert inject_prompts((), messages) is messages
    assert resolved.prompts[0] == Prompt("system", "P1")


def test_provider_rules_are_appended_after_global_rules() -> None:
    policy = parse_policy(
        '{"base_key_env":"K","rules":["global"],'
        '"providers":{"p":[{"base_key_env":"K","rules":[{"pattern":"prov","action":"warn"}]}]}}'
    )
    rules = resolve_for_model(policy, "m").rules
    assert [(r.pattern, r.action) for r in rules] == [("global", "fail"), ("prov", "warn")]


def test_timeouts_merge_and_global_only_fields_stay_global() -> None:
    policy = parse_policy(
        '{"base_key_env":"K","timeout":30,"rate_limit":{"rules":[{"requests":1}]},'
        '"retry":{"max_retries":1},"metadata":{"team":"x"},"memory":{"enabled":true},'
        '"providers":{"openai":[{"model":"gpt-4o","base_key_env":"K","timeout":120}]}}'
    )
    routed, unknown = resolve_for_model(policy, "gpt-4o"), resolve_for_model(policy, "unknown")
    assert (routed.timeout, unknown.timeout) == (120, 30)
    for resolved in (routed, unknown):
        assert resolved.rate_limit is policy.rate_limit and resolved.retry is policy.retry
        assert resolved.metadata == {"team": "x"} and resolved.memory is policy.memory


def test_model_check_messages() -> None:
    exact = resolve_for_model(parse_policy('{"base_key_env":"K","model":"gpt-4"}'), "x")
    with pytest.raises(ModelNotAllowed) as err:
        exact.check_model("gpt-3.5-turbo")
    assert str(err.value) == 'model "gpt-3.5-turbo" not allowed; policy requires "gpt-4"'
    assert err.value.status == 403
    exact.check_model("gpt-4")
    with pytest.raises(ModelNotAllowed):
        exact.check_model("")
    regex = resolve_for_model(parse_policy('{"base_key_env":"K","model_regex":"^gpt-4"}'), "x")
    with pytest.raises(
        ModelNotAllowed, match='^model "claude-3" does not match policy regex "\\^gpt-4"$'
    ):
        regex.check_model("claude-3")


def test_global_exact_model_still_applies_to_a_regex_routed_provider() -> None:
    policy = parse_policy(
        '{"base_key_env":"K","model":"gpt-4o",'
        '"providers":{"anthropic":[{"model_regex":"^claude","base_key_env":"A"}]}}'
    )
    resolved = resolve_for_model(policy, "claude-3")
    assert resolved.provider_name == "anthropic"
    with pytest.raises(ModelNotAllowed, match="not allowed"):
        resolved.check_model("claude-3")


def test_provider_exact_model_lifts_the_global_regex() -> None:
    policy = parse_policy(
        '{"base_key_env":"K","model_regex":"^gpt",'
        '"providers":{"x":[{"model":"llama","base_key_env":"L"}]}}'
    )
    resolve_for_model(policy, "llama").check_model("llama")


def test_resolve_provider_merges_its_first_policy() -> None:
    policy = parse_policy(json.dumps(ROUTING))
    resolved = resolve_provider(policy, "openai")
    assert (resolved.provider_name, resolved.max_tokens) == ("openai", 50000)
    assert resolve_provider(policy, "").provider_name == ""
    assert resolve_provider(policy, "missing").base_key_env == "GLOBAL_KEY"


def test_an_edited_policy_is_resolved_afresh_not_from_the_old_ones_answers() -> None:
    before = parse_policy(json.dumps(ROUTING))
    assert resolve_for_model(before, "gpt-4o").max_tokens == 50000
    assert resolve_for_model(before, "gpt-4o") is resolve_for_model(before, "gpt-4o")
    edited = {
        **ROUTING,
        "providers": {"openai": [{"model": "gpt-4o", "base_key_env": "K", "max_tokens": 7}]},
    }
    after = parse_policy(json.dumps(edited))
    assert resolve_for_model(after, "gpt-4o").max_tokens == 7
    assert resolve_for_model(after, "claude-3-opus").provider_name == ""
    assert resolve_provider(after, "anthropic").upstream_url == ""
    assert resolve_provider(before, "anthropic").upstream_url == "https://api.anthropic.com"
    assert resolve_for_model(before, "gpt-4o").max_tokens == 50000


def test_the_remembered_answers_stay_bounded_whatever_models_clients_send() -> None:
    from tokenomics.domain import resolve

    policy = parse_policy(json.dumps(ROUTING))
    for n in range(resolve.RESOLVED_LIMIT + 10):
        assert resolve_for_model(policy, f"made-up-{n}").provider_name == ""
    assert len(resolve._RESOLVED) <= resolve.RESOLVED_LIMIT
    assert resolve_for_model(policy, "llama-3").provider_name == "groq"
