"""Resolving a policy for one request: provider matching, merging, model check (`core.md` §1.6)."""

from __future__ import annotations

import functools
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from tokenomics.domain.errors import ModelNotAllowed
from tokenomics.domain.memo import remember

if TYPE_CHECKING:
    from tokenomics.domain.policy import (
        MemoryPolicy,
        Policy,
        Prompt,
        ProviderPolicy,
        RateLimit,
        Retry,
    )
    from tokenomics.domain.regex import Pattern
    from tokenomics.domain.rules import Rule


@dataclass(frozen=True, slots=True)
class Resolved:
    """The effective policy for one model: global fields merged with the matching provider."""

    provider_name: str
    base_key_env: str
    upstream_url: str
    max_tokens: int
    max_cost_usd: float
    model: str
    model_regex: str
    model_pattern: Pattern | None
    prompts: tuple[Prompt, ...]
    rules: tuple[Rule, ...]
    timeout: int
    default_provider: str
    memory: MemoryPolicy
    rate_limit: RateLimit | None
    retry: Retry | None
    metadata: dict[str, str] = field(default_factory=dict)

    def check_model(self, model: str) -> None:
        """Exact model first, then the regex; raises `ModelNotAllowed` (HTTP 403)."""
        if self.model and model != self.model:
            raise ModelNotAllowed(f'model "{model}" not allowed; policy requires "{self.model}"')
        if self.model_pattern is not None and not _matches(self.model_pattern, model):
            raise ModelNotAllowed(
                f'model "{model}" does not match policy regex "{self.model_regex}"'
            )


@functools.lru_cache(maxsize=4096)
def _matches(pattern: Pattern, model: str) -> bool:
    """RE2's Python wrapper costs microseconds a search; a policy sees few distinct models."""
    return pattern.search(model) is not None


# What `resolve_for_model` (True) and `resolve_provider` (False) answered, by policy and model
# or provider name: a token's requests ask the same few. A policy is immutable (an edited one
# is a new object) and is kept beside its answers, so an answer is never read for another
# policy, nor for a new one at a reused `id` (the table holds the old one alive meanwhile).
_RESOLVED: dict[tuple[int, str, bool], tuple[Policy, Resolved]] = {}
RESOLVED_LIMIT = 1024


def _global_view(policy: Policy) -> Resolved:
    return Resolved(
        provider_name="",
        base_key_env=policy.base_key_env,
        upstream_url=policy.upstream_url,
        max_tokens=policy.max_tokens,
        max_cost_usd=policy.max_cost_usd,
        model=policy.model,
        model_regex=policy.model_regex,
        model_pattern=policy.model_pattern,
        prompts=policy.prompts,
        rules=policy.rules,
        timeout=policy.timeout,
        default_provider=policy.default_provider,
        memory=policy.memory,
        rate_limit=policy.rate_limit,
        retry=policy.retry,
        metadata=policy.metadata,
    )


def _merge(view: Resolved, name: str, pp: ProviderPolicy) -> Resolved:
    model, model_regex, pattern = view.model, view.model_regex, view.model_pattern
    if pp.model:
        model, pattern = pp.model, None  # an exact provider model lifts the global regex
    if pp.model_regex:
        model_regex, pattern = pp.model_regex, pp.model_pattern
    return Resolved(
        provider_name=name,
        base_key_env=pp.base_key_env or view.base_key_env,
        upstream_url=pp.upstream_url or view.upstream_url,
        max_tokens=pp.max_tokens if pp.max_tokens > 0 else view.max_tokens,
        max_cost_usd=pp.max_cost_usd if pp.max_cost_usd > 0 else view.max_cost_usd,
        model=model,
        model_regex=model_regex,
        model_pattern=pattern,
        prompts=pp.prompts + view.prompts,
        rules=view.rules + pp.rules,
        timeout=pp.timeout if pp.timeout > 0 else view.timeout,
        default_provider=view.default_provider,
        memory=view.memory,
        rate_limit=view.rate_limit,
        retry=view.retry,
        metadata=view.metadata,
    )


def resolve_for_model(policy: Policy, model: str) -> Resolved:
    """The first matching provider policy in document order wins; else the global view."""
    found = _RESOLVED.get((id(policy), model, True))
    if found is not None and found[0] is policy:
        return found[1]
    view = _global_view(policy)
    for name, entries in policy.providers:
        for pp in entries:
            if pp.matches(model):
                return _remember(policy, model, True, _merge(view, name, pp))
    return _remember(policy, model, True, view)


def resolve_provider(policy: Policy, name: str) -> Resolved:
    """The global view merged with the first policy of provider `name` (model ignored)."""
    found = _RESOLVED.get((id(policy), name, False))
    if found is not None and found[0] is policy:
        return found[1]
    view = _global_view(policy)
    for provider, entries in policy.providers:
        if provider == name and entries:
            return _remember(policy, name, False, _merge(view, name, entries[0]))
    return _remember(policy, name, False, view)


def _remember(policy: Policy, name: str, by_model: bool, resolved: Resolved) -> Resolved:
    remember(_RESOLVED, (id(policy), name, by_model), (policy, resolved), RESOLVED_LIMIT)
    return resolved


def inject_prompts(
    prompts: tuple[Prompt, ...], messages: list[dict[str, object]]
) -> list[dict[str, object]]:
    """A new list: the resolved prompts as messages, then the given messages (not mutated)."""
    if not prompts:
        return messages
    injected: list[dict[str, object]] = [{"role": p.role, "content": p.content} for p in prompts]
    return injected + messages
