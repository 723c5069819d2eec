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


# ── schema checking ──────────────────────────────────────────────────────────────────────────


class _SchemaError(Exception):
    pass


def _type_name(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int | float):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "an array"
    return "an object"


def _expect(ok: bool, path: str, wanted: str, value: Any) -> None:
    if not ok:
        raise _SchemaError(f"{path} must be {wanted}, got {_type_name(value)}")


def _object(value: Any, path: str, known: tuple[str, ...]) -> dict[str, Any]:
    _expect(isinstance(value, dict), path, "an object", value)
    for key in value:
        if key not in known:
            raise _SchemaError(f'unknown field "{key}" in {path}')
    return {k: v for k, v in value.items() if v is not None}


def _str(obj: dict[str, Any], key: str, path: str) -> str:
    value = obj.get(key, "")
    _expect(isinstance(value, str), f"{path}.{key}", "a string", value)
    return str(value)


def _int(obj: dict[str, Any], key: str, path: str) -> int:
    value = obj.get(key, 0)
    _expect(type(value) is int, f"{path}.{key}", "an integer", value)
    return int(value)


def _number(obj: dict[str, Any], key: str, path: str) -> float:
    value = obj.get(key, 0)
    _expect(type(value) in (int, float), f"{path}.{key}", "a number", value)
    return float(value)


def _bool(obj: dict[str, Any], key: str, path: str) -> bool:
    value = obj.get(key, False)
    _expect(isinstance(value, bool), f"{path}.{key}", "a boolean", value)
    return bool(value)


def _list(obj: dict[str, Any], key: str, path: str) -> list[Any]:
    value = obj.get(key, [])
    _expect(isinstance(value, list), f"{path}.{key}", "an array", value)
    return list(value)


def _str_list(obj: dict[str, Any], key: str, path: str) -> tuple[str, ...]:
    items = _list(obj, key, path)
    for i, item in enumerate(items):
        _expect(isinstance(item, str), f"{path}.{key}[{i}]", "a string", item)
    return tuple(items)


def _prompts(obj: dict[str, Any], path: str) -> tuple[Prompt, ...]:
    prompts = []
    for i, item in enumerate(_list(obj, "prompts", path)):
        where = f"{path}.prompts[{i}]"
        msg = _object(item, where, ("role", "content"))
        prompts.append(Prompt(role=_str(msg, "role", where), content=_str(msg, "content", where)))
    return tuple(prompts)


def _raw_rules(obj: dict[str, Any], path: str) -> list[dict[str, Any]]:
    try:
        return parse_rule_list(obj.get("rules"))
    except RuleShapeError as exc:
        raise _SchemaError(
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
        "base_key_env": _str(obj, "base_key_env", path),
        "upstream_url": _str(obj, "upstream_url", path),
        "max_tokens": _int(obj, "max_tokens", path),
        "max_cost_usd": _number(obj, "max_cost_usd", path),
        "model": _str(obj, "model", path),
        "model_regex": _str(obj, "model_regex", path),
        "prompts": _prompts(obj, path),
        "timeout": max(_int(obj, "timeout", path), 0),
    }
    return _Draft(fields, _raw_rules(obj, path))


def _decode(
    text: str | bytes,
) -> tuple[_Draft, list[tuple[str, list[_Draft | None]]], dict[str, Any]]:
    try:
        doc = orjson.loads(text)
    except orjson.JSONDecodeError as exc:
        raise _SchemaError(str(exc)) from None
    top = _object(doc, "policy", _TOP_KEYS)
    draft = _draft(top, "policy")
    providers: list[tuple[str, list[_Draft | None]]] = []
    raw_providers = top.get("providers", {})
    _expect(isinstance(raw_providers, dict), "policy.providers", "an object", raw_providers)
    for name, entries in raw_providers.items():
        where = f"policy.providers.{name}"
        _expect(isinstance(entries, list), where, "an array of provider policies", entries)
        drafts: list[_Draft | None] = []
        for i, entry in enumerate(entries):
            if entry is None:
                drafts.append(None)  # reported by validation, in document order
                continue
            drafts.append(_draft(_object(entry, f"{where}[{i}]", _PROVIDER_KEYS), f"{where}[{i}]"))
        providers.append((name, drafts))
    extra = {
        "default_provider": _str(top, "default_provider", "policy"),
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
    obj = _object(top["memory"], path, keys)
    return MemoryPolicy(
        enabled=_bool(obj, "enabled", path),
        file_path=_str(obj, "file_path", path),
        file_name=_str(obj, "file_name", path),
        redis=_bool(obj, "redis", path),
        max_size_mb=_int(obj, "max_size_mb", path),
        compress_old=_bool(obj, "compress_old", path),
    )


def _retry(top: dict[str, Any]) -> Retry | None:
    if "retry" not in top:
        return None
    path = "policy.retry"
    obj = _object(top["retry"], path, ("max_retries", "fallbacks", "retry_on"))
    retry_on = _list(obj, "retry_on", path)
    for i, status in enumerate(retry_on):
        _expect(type(status) is int, f"{path}.retry_on[{i}]", "an integer", status)
    return Retry(
        max_retries=_int(obj, "max_retries", path),
        fallbacks=_str_list(obj, "fallbacks", path),
        retry_on=tuple(retry_on) or DEFAULT_RETRY_ON,
    )


def _metadata(top: dict[str, Any]) -> dict[str, str]:
    obj = top.get("metadata", {})
    _expect(isinstance(obj, dict), "policy.metadata", "an object", obj)
    for key, value in obj.items():
        _expect(isinstance(value, str), f"policy.metadata.{key}", "a string", value)
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
        obj = _object(raw, path, ("rules", "max_parallel"))
        max_parallel = _int(obj, "max_parallel", path)
        raw_rules = _list(obj, "rules", path)
    except _SchemaError as exc:
        raise PolicyError(f"invalid policy JSON: {exc}") from None
    if max_parallel < 0:
        raise PolicyError("rate_limit max_parallel must not be negative")
    rules = []
    for i, item in enumerate(raw_rules):
        where = f"{path}.rules[{i}]"
        try:
            rule = _object(item, where, ("requests", "tokens", "window", "strategy"))
            requests, tokens = _int(rule, "requests", where), _int(rule, "tokens", where)
            window, strategy = _str(rule, "window", where), _str(rule, "strategy", where)
        except _SchemaError as exc:
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
    except _SchemaError as exc:
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
