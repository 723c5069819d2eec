"""TokenSummary (docs/ADMIN_API.md): what the key list shows of a token, built from a
`TokenRecord`, and the list cache keyed by the store's generation (10,000 tokens are parsed
once per change, not once per page view)."""

from __future__ import annotations

import threading
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Literal

import orjson

from tokenomics.domain.durations import is_expired, parse_rfc3339

if TYPE_CHECKING:
    from collections.abc import Callable

    from tokenomics.domain.budget import Spend
    from tokenomics.domain.policy import Policy, ProviderPolicy
    from tokenomics.store.tokens import TokenRecord, TokenStore

Summary = dict[str, Any]
# a summary, its JSON without the closing brace plus ",", and its expiry (see `cached`)
Cached = tuple[Summary, bytes, "datetime | Literal[False] | None"]


def _models(entries: tuple[ProviderPolicy, ...]) -> list[str]:
    found = {e.model for e in entries if e.model}
    found |= {f"regex:{e.model_regex}" for e in entries if e.model_regex}
    return sorted(found)


def policy_summary(p: Policy) -> Summary:
    return {
        "base_key_env": p.base_key_env,
        "default_provider": p.default_provider,
        "upstream_url": p.upstream_url,
        "model": p.model,
        "model_regex": p.model_regex,
        "max_tokens": p.max_tokens,
        "max_cost_usd": p.max_cost_usd,
        "rule_count": len(p.rules),
        "prompt_count": len(p.prompts),
        "memory": p.memory.enabled,
        "metadata": dict(p.metadata),
    }


def summary(record: TokenRecord) -> Summary:
    """The parts of a summary that change only when the record does (no clock, no spend)."""
    out: Summary = {
        "token_hash": record.token_hash,
        "created_at": record.created_at,
        "expires_at": record.expires_at,
    }
    p = record.policy
    if p is None:
        return {**out, "policy": None, "providers": [], "error": record.error}
    providers = [
        {"name": name, "policy_count": len(entries), "models": _models(entries)}
        for name, entries in sorted(p.providers)
    ]
    return {**out, "policy": policy_summary(p), "providers": providers}


def live_part(item: Summary, spend: Callable[[str], Spend], now: datetime) -> Summary:
    """What changes by itself: expired or not, and the budget counters."""
    used = spend(item["token_hash"])
    policy = item["policy"] or {}
    budget = {
        "used_tokens": used.tokens,
        "used_cost_usd": round(used.cost_usd, 10),
        "max_tokens": policy.get("max_tokens", 0),
        "max_cost_usd": policy.get("max_cost_usd", 0.0),
    }
    return {"expired": is_expired(item["expires_at"], now), "budget": budget}


def live(item: Summary, spend: Callable[[str], Spend], now: datetime) -> Summary:
    """`item` with its `live_part`."""
    return {**item, **live_part(item, spend, now)}


def live_json(cached: Cached, spend: Callable[[str], Spend], now: datetime) -> bytes:
    """`live(item)` as JSON: the item's JSON, kept, spliced with its live part's."""
    item, head, expires = cached
    used = spend(item["token_hash"])
    policy = item["policy"] or {}
    live = {
        "expired": expires is False or (expires is not None and now > expires),
        "budget": {
            "used_tokens": used.tokens,
            "used_cost_usd": round(used.cost_usd, 10),
            "max_tokens": policy.get("max_tokens", 0),
            "max_cost_usd": policy.get("max_cost_usd", 0.0),
        },
    }
    return head + orjson.dumps(live)[1:]


def cached(item: Summary) -> Cached:
    """`item` with its JSON (open for the live part) and its expiry parsed once (False: not
    readable, so expired: fail closed like `is_expired`)."""
    text = item["expires_at"]
    expires: datetime | Literal[False] | None = None
    if text:
        moment = parse_rfc3339(text)
        expires = moment if moment is not None else False
    return item, orjson.dumps(item)[:-1] + b",", expires


def detail(record: TokenRecord, spend: Callable[[str], Spend]) -> Summary:
    """One token for `GET /keys/{hash}`: the summary, the raw policy and the policy parsed."""
    try:
        parsed: Any = orjson.loads(record.policy_raw)
    except orjson.JSONDecodeError:
        parsed = None
    item = live(summary(record), spend, datetime.now(UTC))
    return {**item, "policy_raw": record.policy_raw, "policy_json": parsed}


class SummaryCache:
    """Every token's summary, newest first, rebuilt only when the store's generation moves."""

    def __init__(self) -> None:
        self._generation = -1
        self._items: list[Cached] = []
        self._lock = threading.Lock()

    def items(self, store: TokenStore) -> list[Cached]:
        """Blocking (reads the store when it changed): call on a worker thread."""
        with self._lock:
            generation = store.generation()
            if generation != self._generation:
                records = store.list()
                records.sort(key=lambda r: r.token_hash)
                records.sort(key=lambda r: r.created_at, reverse=True)
                items = [summary(r) for r in records]
                self._items = [cached(item) for item in items]
                self._generation = generation
            return self._items
