"""docs/POLICY.md documents every policy field, rule type and option, and its examples parse."""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path

import orjson
import pytest

from tokenomics.domain import policy, rules

DOC = (Path(__file__).resolve().parents[2] / "docs" / "POLICY.md").read_text(encoding="utf-8")
DERIVED = {"model_pattern", "window_delta", "compiled"}  # computed, not written in a policy


@pytest.mark.parametrize(
    "record",
    [policy.Policy, policy.ProviderPolicy, policy.MemoryPolicy, policy.Retry, policy.RateLimit,
     policy.RateRule, policy.Prompt, rules.Rule],
)  # fmt: skip
def test_every_field_is_documented(record: type) -> None:
    names = {f.name for f in dataclasses.fields(record)} - DERIVED
    missing = sorted(name for name in names if f"`{name}`" not in DOC)
    assert missing == [], f"docs/POLICY.md does not mention {record.__name__} fields {missing}"


def test_every_rule_type_action_scope_and_pii_detector_is_documented() -> None:
    words = (*rules.RULE_TYPES, *rules.ACTIONS, *rules.SCOPES, *rules.PII_TYPES)
    assert [w for w in words if f"`{w}`" not in DOC] == []


def test_every_json_example_is_a_valid_policy() -> None:
    blocks = re.findall(r"```json\n(.*?)```", DOC, re.S)
    policies = [b for b in blocks if b.lstrip().startswith("{")]
    fragments = [b for b in blocks if not b.lstrip().startswith("{")]
    assert len(policies) >= 3 and fragments
    for text in policies:
        policy.parse_policy(text)
    for text in fragments:  # `"rate_limit": {...}` and friends, inside a minimal policy
        doc = orjson.loads("{" + text.strip() + "}")
        policy.parse_policy(orjson.dumps({"default_provider": "mock", **doc}))
