"""Policies: the JSON document bound to a wrapper token (`core.md` §1).

`parse_policy(text)` decodes, type-checks and validates a policy and returns an immutable
`Policy`. Errors are `PolicyError` with the original's messages: schema problems are prefixed
`invalid policy JSON: `, validation problems are not.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any, Literal

import orjson

from tokenomics.domain.durations import parse_window
from tokenomics.domain.errors import DurationError, PolicyError
from tokenomics.domain.json_fields import (
    SchemaError,
    array,
    boolean,
    expect,
    integer,
    number,
    object_of,
    string,
    strings,
)
from tokenomics.domain.regex import Pattern, RegexError, compile_re2
from tokenomics.domain.rules import Rule, RuleError, RuleShapeError, compile_rule, parse_rule_list

DEFAULT_RETRY_ON = (429, 500, 502, 503)
# The built-in in-process mock provider (`upstream/mock.py`) takes no key: a policy that sends
# its models there needs no `base_key_env` (neither in its entries nor as default_provider).
KEYLESS_PROVIDER = "mock"


@dataclass(frozen=True, slots=True)
class Prompt:
    role: str
    content: str


@dataclass(frozen=True, slots=True)
class RateRule:
    requests: int = 0
    tokens: int = 0
    window: str = ""
    strategy: Literal["sliding", "fixed"] = "sliding"
    window_delta: timedelta = timedelta(minutes=1)


@dataclass(frozen=True, slots=True)
class RateLimit:
    rules: tuple[RateRule, ...] = ()
    max_parallel: int = 0


@dataclass(frozen=True, slots=True)
class Retry:
    max_retries: int = 0
    fallbacks: tuple[str, ...] = ()
    retry_on: tuple[int, ...] = DEFAULT_RETRY_ON


@dataclass(frozen=True, slots=True)
class MemoryPolicy:
    enabled: bool = False
    file_path: str = ""
    file_name: str = ""
    redis: bool = False
    max_size_mb: int = 0
    compress_old: bool = False


@dataclass(frozen=True, slots=True)
class ProviderPolicy:
    base_key_env: str = ""
    upstream_url: str = ""
    max_tokens: int = 0
    max_cost_usd: float = 0.0
    model: str = ""
    model_regex: str = ""
    model_pattern: Pattern | None = None
    prompts: tuple[Prompt, ...] = ()
    rules: tuple[Rule, ...] = ()
    timeout: int = 0

    def matches(self, model: str) -> bool:
        """Exact model, or regex search, or a wildcard when neither is set."""
        if self.model and self.model == model:
            return True
        if self.model_pattern is not None and self.model_pattern.search(model):
            return True
        return not self.model and not self.model_regex


@dataclass(frozen=True, slots=True)
class Policy:
    base_key_env: str = ""
    upstream_url: str = ""
    max_tokens: int = 0
    max_cost_usd: float = 0.0
    model: str = ""
    model_regex: str = ""
    model_pattern: Pattern | None = None
    prompts: tuple[Prompt, ...] = ()
    rules: tuple[Rule, ...] = ()
    providers: tuple[tuple[str, tuple[ProviderPolicy, ...]], ...] = ()
    default_provider: str = ""
    memory: MemoryPolicy = MemoryPolicy()
    rate_limit: RateLimit | None = None
    retry: Retry | None = None
    timeout: int = 0
    metadata: dict[str, str] = field(default_factory=dict)


def _prompts(obj: dict[str, Any], path: str) -> tuple[Prompt, ...]:
    prompts = []
    for i, item in enumerate(array(obj, "prompts", path)):
        where = f"{path}.prompts[{i}]"
        msg = object_of(item, where, ("role", "content"))
        prompts.append(
            Prompt(role=string(msg, "role", where), content=string(msg, "content", where))
        )
    return tuple(prompts)


def _raw_rules(obj: dict[str, Any], path: str) -> list[dict[str, Any]]:
    try:
        return parse_rule_list(obj.get("rules"))
    except RuleShapeError as exc:
        raise SchemaError(
            f"rules must be an array of rule objects or regex strings: {path}.rules: {exc}"
        ) from None


_TOP_KEYS = (
    "base_key_env", "upstream_url", "max_tokens", "max_cost_usd", "model", "model_regex",
    "prompts", "rules", "providers", "default_provider", "memory", "rate_limit", "retry",
    "timeout", "metadata",
)  # fmt: skip
_PROVIDER_KEYS = (
    "base_key_env", "upstream_url", "max_tokens", "max_cost_usd", "model", "model_regex",
    "prompts", "rules", "timeout",
)  # fmt: skip


@dataclass(slots=True)
class _Draft:
    """A type-checked but not yet validated policy or provider policy."""

    fields: dict[str, Any]
    rules: list[dict[str, Any]]


def _draft(obj: dict[str, Any], path: str) -> _Draft:
    fields: dict[str, Any] = {
        "base_key_env": string(obj, "base_key_env", path),
        "upstream_url": string(obj, "upstream_url", path),
        "max_tokens": integer(obj, "max_tokens", path),
        "max_cost_usd": number(obj, "max_cost_usd", path),
        "model": string(obj, "model", path),
        "model_regex": string(obj, "model_regex", path),
        "prompts": _prompts(obj, path),
        "timeout": max(integer(obj, "timeout", path), 0),
    }
    return _Draft(fields, _raw_rules(obj, path))


def _decode(
    text: str | bytes,
) -> tuple[_Draft, list[tuple[str, list[_Draft | None]]], dict[str, Any]]:
    try:
        doc = orjson.loads(text)
    except orjson.JSONDecodeError as exc:
        raise SchemaError(str(exc)) from None
    top = object_of(doc, "policy", _TOP_KEYS)
    draft = _draft(top, "policy")
    providers: list[tuple[str, list[_Draft | None]]] = []
    raw_providers = top.get("providers", {})
    expect(isinstance(raw_providers, dict), "policy.providers", "an object", raw_providers)
    for name, entries in raw_providers.items():
        where = f"policy.providers.{name}"
        expect(isinstance(entries, list), where, "an array of provider policies", entries)
        drafts: list[_Draft | None] = []
        for i, entry in enumerate(entries):
            if entry is None:
                drafts.append(None)  # reported by validation, in document order
                continue
            drafts.append(
                _draft(object_of(entry, f"{where}[{i}]", _PROVIDER_KEYS), f"{where}[{i}]")
            )
        providers.append((name, drafts))
    extra = {
        "default_provider": string(top, "default_provider", "policy"),
        "memory": _memory(top),
        "rate_limit": top.get("rate_limit"),
        "retry": _retry(top),
        "metadata": _metadata(top),
    }
    return draft, providers, extra


def _memory(top: dict[str, Any]) -> MemoryPolicy:
    if "memory" not in top:
        return MemoryPolicy()
    path = "policy.memory"
    keys = ("enabled", "file_path", "file_name", "redis", "max_size_mb", "compress_old")
    obj = object_of(top["memory"], path, keys)
    return MemoryPolicy(
        enabled=boolean(obj, "enabled", path),
        file_path=string(obj, "file_path", path),
        file_name=string(obj, "file_name", path),
        redis=boolean(obj, "redis", path),
        max_size_mb=integer(obj, "max_size_mb", path),
        compress_old=boolean(obj, "compress_old", path),
    )


def _retry(top: dict[str, Any]) -> Retry | None:
    if "retry" not in top:
        return None
    path = "policy.retry"
    obj = object_of(top["retry"], path, ("max_retries", "fallbacks", "retry_on"))
    retry_on = array(obj, "retry_on", path)
    for i, status in enumerate(retry_on):
        expect(type(status) is int, f"{path}.retry_on[{i}]", "an integer", status)
    return Retry(
        max_retries=integer(obj, "max_retries", path),
        fallbacks=strings(obj, "fallbacks", path),
        retry_on=tuple(retry_on) or DEFAULT_RETRY_ON,
    )


def _metadata(top: dict[str, Any]) -> dict[str, str]:
    obj = top.get("metadata", {})
    expect(isinstance(obj, dict), "policy.metadata", "an object", obj)
    for key, value in obj.items():
        expect(isinstance(value, str), f"policy.metadata.{key}", "a string", value)
    return dict(obj)


# ── validation ───────────────────────────────────────────────────────────────────────────────


def _model_pattern(model_regex: str) -> Pattern | None:
    if not model_regex:
        return None
    try:
        return compile_re2(model_regex)
    except RegexError as exc:
        raise PolicyError(f'invalid model_regex "{model_regex}": {exc}') from None


def _rules(raw: list[dict[str, Any]], prefix: str, label: str) -> tuple[Rule, ...]:
    rules = []
    for i, rule in enumerate(raw):
        try:
            rules.append(compile_rule(rule))
        except RuleError as exc:
            raise PolicyError(f"{prefix}{label} {i}: {exc}") from None
    return tuple(rules)


def _provider(name: str, index: int, draft: _Draft | None) -> ProviderPolicy:
    prefix = f'provider "{name}" policy {index}: '
    if draft is None:
        raise PolicyError(prefix + "must be an object")
    if not draft.fields["base_key_env"] and name != KEYLESS_PROVIDER:
        raise PolicyError(prefix + "base_key_env is required")
    try:
        pattern = _model_pattern(draft.fields["model_regex"])
    except PolicyError as exc:
        raise PolicyError(prefix + exc.message) from None
    rules = _rules(draft.rules, prefix, "rule")
    return ProviderPolicy(**draft.fields, model_pattern=pattern, rules=rules)


def _rate_limit(raw: Any) -> RateLimit | None:
    if raw is None:
        return None
    path = "policy.rate_limit"
    try:
        obj = object_of(raw, path, ("rules", "max_parallel"))
        max_parallel = integer(obj, "max_parallel", path)
        raw_rules = array(obj, "rules", path)
    except SchemaError as exc:
        raise PolicyError(f"invalid policy JSON: {exc}") from None
    if max_parallel < 0:
        raise PolicyError("rate_limit max_parallel must not be negative")
    rules = []
    for i, item in enumerate(raw_rules):
        where = f"{path}.rules[{i}]"
        try:
            rule = object_of(item, where, ("requests", "tokens", "window", "strategy"))
            requests, tokens = integer(rule, "requests", where), integer(rule, "tokens", where)
            window, strategy = string(rule, "window", where), string(rule, "strategy", where)
        except SchemaError as exc:
            raise PolicyError(f"invalid policy JSON: {exc}") from None
        if requests < 0 or tokens < 0:
            raise PolicyError(f"rate_limit rule {i}: requests and tokens must not be negative")
        if strategy not in ("", "sliding", "fixed"):
            raise PolicyError(
                f'rate_limit rule {i}: invalid strategy "{strategy}"; must be sliding or fixed'
            )
        try:
            delta = parse_window(window)
        except DurationError as exc:
            raise PolicyError(f"rate_limit rule {i}: {exc}") from None
        rules.append(RateRule(requests, tokens, window, strategy or "sliding", delta))  # type: ignore[arg-type]
    return RateLimit(rules=tuple(rules), max_parallel=max_parallel)


def parse_policy(text: str | bytes) -> Policy:
    """Decode and validate a policy document, in the original's validation order."""
    try:
        draft, providers, extra = _decode(text)
    except SchemaError as exc:
        raise PolicyError(f"invalid policy JSON: {exc}") from None
    fields = draft.fields
    keyless = extra["default_provider"] == KEYLESS_PROVIDER
    if not fields["base_key_env"] and not providers and not keyless:
        raise PolicyError("base_key_env is required (or at least one provider)")
    pattern = _model_pattern(fields["model_regex"])
    rules = _rules(draft.rules, "global ", "rule")
    resolved = tuple(
        (name, tuple(_provider(name, i, d) for i, d in enumerate(drafts)))
        for name, drafts in providers
    )
    retry: Retry | None = extra["retry"]
    if retry is not None and retry.max_retries < 0:
        raise PolicyError("retry max_retries must not be negative")
    if extra["memory"].max_size_mb < 0:
        raise PolicyError("memory max_size_mb must not be negative")
    return Policy(
        **fields,
        model_pattern=pattern,
        rules=rules,
        providers=resolved,
        default_provider=extra["default_provider"],
        memory=extra["memory"],
        rate_limit=_rate_limit(extra["rate_limit"]),
        retry=retry,
        metadata=extra["metadata"],
    )
