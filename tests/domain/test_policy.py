"""`core.md` §1 and §11 scenarios 1-13, 23, 27: parsing and validating policies."""

import json

import pytest

from tokenomics.domain.errors import PolicyError
from tokenomics.domain.policy import DEFAULT_RETRY_ON, parse_policy


def error_of(doc: object) -> str:
    text = doc if isinstance(doc, str) else json.dumps(doc)
    with pytest.raises(PolicyError) as err:
        parse_policy(text)
    return str(err.value)


def test_minimal_policy_is_valid() -> None:
    policy = parse_policy('{"base_key_env":"K"}')
    assert policy.base_key_env == "K"
    assert policy.max_tokens == 0 and policy.rules == () and policy.providers == ()


@pytest.mark.parametrize("doc", [{}, {"model": "gpt-4"}, {"providers": {}}])
def test_key_env_or_a_provider_is_required(doc: object) -> None:
    assert error_of(doc) == "base_key_env is required (or at least one provider)"


def test_a_provider_with_an_empty_list_is_enough() -> None:
    assert parse_policy('{"providers":{"x":[]}}').providers == (("x", ()),)


@pytest.mark.parametrize("text", ["", "{not json}", "[]", "42", '"x"'])
def test_non_objects_are_json_errors(text: str) -> None:
    assert error_of(text).startswith("invalid policy JSON")


@pytest.mark.parametrize(
    ("doc", "detail"),
    [
        ({"base_key_env": "K", "max_tokens": 1000.5}, "policy.max_tokens must be an integer"),
        ({"base_key_env": "K", "max_tokens": "1000"}, "policy.max_tokens must be an integer"),
        ({"base_key_env": "K", "max_tokens": True}, "policy.max_tokens must be an integer"),
        ({"base_key_env": 5}, "policy.base_key_env must be a string"),
        ({"base_key_env": "K", "metadata": {"a": 1}}, "policy.metadata.a must be a string"),
        ({"base_key_env": "K", "providers": {"openai": {"base_key_env": "K"}}}, "must be an array"),
        (
            {"base_key_env": "K", "prompts": [{"role": "system", "content": 1}]},
            "content must be a string",
        ),
        ({"base_key_env": "K", "max_token": 5}, 'unknown field "max_token"'),
        ({"base_key_env": "K", "retry": {"retry_on": ["500"]}}, "retry_on[0] must be an integer"),
    ],
)
def test_wrong_types_and_unknown_fields_are_json_errors(doc: object, detail: str) -> None:
    message = error_of(doc)
    assert message.startswith("invalid policy JSON: ")
    assert detail in message


def test_null_scalars_keep_their_defaults() -> None:
    policy = parse_policy('{"base_key_env":"K","max_tokens":null,"model":null,"rules":null}')
    assert policy.max_tokens == 0 and policy.model == "" and policy.rules == ()


def test_provider_policy_needs_its_own_key_env() -> None:
    doc = {"providers": {"openai": [{"model": "gpt-4"}]}}
    assert error_of(doc) == 'provider "openai" policy 0: base_key_env is required'


def test_the_builtin_mock_needs_no_key_env_other_providers_do() -> None:
    assert parse_policy('{"providers": {"mock": [{}]}}').providers[0][0] == "mock"
    assert parse_policy('{"default_provider": "mock"}').default_provider == "mock"
    assert error_of({"default_provider": "openai"}) == (
        "base_key_env is required (or at least one provider)"
    )
    doc = {"providers": {"mock": [{}], "openai": [{}]}}
    assert error_of(doc) == 'provider "openai" policy 0: base_key_env is required'


def test_bad_model_regex() -> None:
    assert error_of({"base_key_env": "K", "model_regex": "[bad"}).startswith(
        'invalid model_regex "[bad"'
    )
    message = error_of({"providers": {"p": [{"base_key_env": "K", "model_regex": "(?=x)"}]}})
    assert message.startswith('provider "p" policy 0: invalid model_regex "(?=x)"')


def test_legacy_string_rules_become_input_fail_regex_rules() -> None:
    policy = parse_policy('{"base_key_env":"K","rules":["secret","password"]}')
    assert [(r.type, r.pattern, r.action, r.scope, r.name) for r in policy.rules] == [
        ("regex", "secret", "fail", "input", ""),
        ("regex", "password", "fail", "input", ""),
    ]
    assert policy.rules[1].display_name == "password"


def test_mixed_rule_forms_are_refused() -> None:
    message = error_of({"base_key_env": "K", "rules": ["x", {"type": "regex", "pattern": "y"}]})
    assert message.startswith("invalid policy JSON: ")
    assert "rules must be an array of rule objects or regex strings" in message


@pytest.mark.parametrize(
    ("rule", "message"),
    [
        ({"pattern": "x", "action": "delete"},
         'global rule 0: invalid rule action "delete"; must be fail, warn, log, or mask'),
        ({"pattern": "x", "scope": "everywhere"},
         'global rule 0: invalid rule scope "everywhere"; must be input, output, or both'),
        ({"type": "fuzzy"},
         'global rule 0: invalid rule type "fuzzy"; must be regex, keyword, pii, or jailbreak'),
        ({"type": "keyword", "keywords": []}, "global rule 0: keyword rule requires at least one keyword"),
        ({"type": "keyword", "keywords": [" "]}, "global rule 0: keyword rule has an empty keyword"),
        ({"type": "pii"},
         "global rule 0: pii rule requires at least one detect type "
         "(ssn, credit_card, email, phone, ip_address, aws_key, api_key)"),
        ({"type": "pii", "detect": ["fingerprint"]},
         'global rule 0: unknown PII type "fingerprint"; available: ssn, credit_card, email, phone, '
         "ip_address, aws_key, api_key, jwt, private_key, connection_string, github_token"),
        ({"type": "jailbreak", "pattern": "x"},
         "global rule 0: jailbreak rule should not have pattern, keywords, or detect fields"),
        ({"type": "regex"}, "global rule 0: regex rule requires a pattern"),
        ({"pattern": "(a"}, 'global rule 0: invalid rule regex "(a": missing ): (a'),
    ],
)  # fmt: skip
def test_rule_validation_messages(rule: dict[str, object], message: str) -> None:
    assert error_of({"base_key_env": "K", "rules": [rule]}) == message


def test_rule_action_is_checked_before_scope() -> None:
    rule = {"pattern": "x", "action": "nope", "scope": "nope"}
    assert "invalid rule action" in error_of({"base_key_env": "K", "rules": [rule]})


def test_pii_names_are_case_insensitive_and_defaults_are_written_back() -> None:
    policy = parse_policy(
        '{"base_key_env":"K","rules":[{"type":"pii","detect":["SSN","Email"]},{"pattern":"p"}]}'
    )
    assert policy.rules[0].detect == ("ssn", "email")
    only_pattern = policy.rules[1]
    assert (only_pattern.type, only_pattern.action, only_pattern.scope) == (
        "regex",
        "fail",
        "input",
    )


def test_keyword_rules_compile_to_word_bounded_case_insensitive_patterns() -> None:
    policy = parse_policy('{"base_key_env":"K","rules":[{"type":"keyword","keywords":["pass"]}]}')
    (pattern,) = policy.rules[0].compiled
    assert pattern.pattern == r"(?i)\bpass\b"
    assert pattern.search("PASS") and pattern.search("pass the test")
    assert not pattern.search("I am a passenger")


def test_provider_rule_errors_name_provider_policy_and_rule() -> None:
    doc = {"providers": {"openai": [{"base_key_env": "K", "rules": [{"type": "regex"}]}]}}
    assert error_of(doc) == 'provider "openai" policy 0: rule 0: regex rule requires a pattern'


def test_null_provider_policy_is_an_error_not_a_crash() -> None:
    assert (
        error_of({"providers": {"openai": [None]}})
        == 'provider "openai" policy 0: must be an object'
    )


def test_invalid_providers_are_reported_in_document_order() -> None:
    doc = '{"providers":{"zeta":[{"model":"a"}],"alpha":[{"model":"b"}]}}'
    for _ in range(5):
        assert error_of(doc) == 'provider "zeta" policy 0: base_key_env is required'


def test_retry_defaults_and_memory() -> None:
    policy = parse_policy(
        '{"base_key_env":"K","retry":{"max_retries":2,"fallbacks":["m2"]},'
        '"memory":{"enabled":true,"file_name":"{token_hash}.md","max_size_mb":5}}'
    )
    assert policy.retry is not None
    assert policy.retry.retry_on == DEFAULT_RETRY_ON and policy.retry.fallbacks == ("m2",)
    assert policy.memory.enabled and policy.memory.max_size_mb == 5


def test_max_cost_accepts_numbers() -> None:
    assert parse_policy('{"base_key_env":"K","max_cost_usd":2.5}').max_cost_usd == 2.5
    assert "max_cost_usd must be a number" in error_of({"base_key_env": "K", "max_cost_usd": "2"})


def test_negative_timeout_means_unset() -> None:
    assert parse_policy('{"base_key_env":"K","timeout":-5}').timeout == 0


@pytest.mark.parametrize(
    ("rate_rule", "message"),
    [
        ({"requests": 5, "window": "abc"}, 'rate_limit rule 0: invalid window "abc"'),
        ({"requests": 5, "window": "0s"}, 'rate_limit rule 0: invalid window "0s"'),
        ({"requests": -1}, "rate_limit rule 0: requests and tokens must not be negative"),
        ({"requests": 1, "strategy": "leaky"},
         'rate_limit rule 0: invalid strategy "leaky"; must be sliding or fixed'),
    ],
)  # fmt: skip
def test_rate_limit_windows_are_checked_at_parse_time(rate_rule: object, message: str) -> None:
    assert error_of({"base_key_env": "K", "rate_limit": {"rules": [rate_rule]}}) == message


def test_rate_limit_accepts_days_and_defaults_to_a_sliding_minute() -> None:
    policy = parse_policy(
        '{"base_key_env":"K","rate_limit":{"rules":[{"requests":5},{"tokens":9,"window":"7d",'
        '"strategy":"fixed"}],"max_parallel":2}}'
    )
    assert policy.rate_limit is not None
    first, second = policy.rate_limit.rules
    assert (first.window_delta.total_seconds(), first.strategy) == (60, "sliding")
    assert (second.window_delta.days, second.strategy) == (7, "fixed")
    assert policy.rate_limit.max_parallel == 2
