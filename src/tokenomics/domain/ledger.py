"""Session-ledger request entries and rollups (`cli.md` §7.3, §7.4; decisions D13, D15, D17).

Pure functions over plain values and JSON-shaped dicts, so the flusher, crash recovery and the
`ledger` CLI all compute the same numbers from the same entries.

Cost (D15) — how a price that is unknown never turns into a silent 0:

* Every RequestEntry has `cost_usd`: a number, or `null` when the model has no price; an
  unpriced entry also carries `"unpriced": true`. A request that consumed no tokens (rejected
  locally, or an upstream error without usage) costs `0.0` whether or not its model is priced.
* Every rollup (totals, by_model, by_provider, by_token) has `cost_usd` = the sum over its
  *priced* requests (rounded to 10 decimals), and `unpriced_count` = how many of its requests had
  no price (omitted when 0). `cost_usd` is therefore complete only when `unpriced_count` is
  absent; readers show it as a lower bound otherwise (the CLI prints `$0.0123+`). A rollup in
  which nothing was priced has `cost_usd: null`, so an unpriced model never reads as free
  (`domain.money` shows it `n/a`); an empty one costs `0.0`.
* `"estimated": true` on an entry means some of its token figures were estimated by us, not
  reported by the provider (D13); rollups count those in `estimated_count` (omitted when 0).

Beyond the original schema, an entry has the request's `path` (omitted when empty), and
TokenRollup also accumulates cached/creation/reasoning tokens (omitted when 0; the original never
did).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from tokenomics.domain.durations import format_rfc3339

Entry = dict[str, Any]
_EXTRA_TOKENS = ("cached_input_tokens", "cache_creation_tokens", "reasoning_tokens")


def parse_time(text: str) -> datetime | None:
    """A timestamp written by this module (or Go's RFC3339/RFC3339Nano), else None."""
    if not isinstance(text, str) or not text:
        return None
    value = text.strip().upper().replace("Z", "+00:00")
    head, dot, rest = value.partition(".")
    if dot:  # fromisoformat takes at most 6 fraction digits
        digits = len(rest) - len(rest.lstrip("0123456789"))
        value = f"{head}.{rest[:digits][:6].ljust(6, '0')}{rest[digits:]}"
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        return None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def _int(entry: Mapping[str, Any], key: str) -> int:
    value = entry.get(key)
    return value if isinstance(value, int) and not isinstance(value, bool) else 0


def _meta_int(entry: Mapping[str, Any], key: str) -> int:
    meta = entry.get("provider_meta")
    return _int(meta, key) if isinstance(meta, Mapping) else 0


@dataclass(slots=True)
class Rollup:
    """One UsageRollup (or the token figures of totals / a TokenRollup) being accumulated."""

    request_count: int = 0
    input_tokens: int = 0
    output_tokens: int = 0
    extra: dict[str, int] = field(default_factory=lambda: dict.fromkeys(_EXTRA_TOKENS, 0))
    cost_usd: float = 0.0
    unpriced_count: int = 0
    estimated_count: int = 0

    def add(self, entry: Mapping[str, Any]) -> None:
        self.request_count += 1
        self.input_tokens += _int(entry, "input_tokens")
        self.output_tokens += _int(entry, "output_tokens")
        for key in _EXTRA_TOKENS:
            self.extra[key] += _meta_int(entry, key)
        cost = entry.get("cost_usd")
        if isinstance(cost, int | float) and not isinstance(cost, bool):
            self.cost_usd += cost
        else:
            self.unpriced_count += 1
        self.estimated_count += bool(entry.get("estimated"))

    def tokens(self) -> Entry:
        out: Entry = {
            "request_count": self.request_count,
            "input_tokens": self.input_tokens,
            "output_tokens": self.output_tokens,
            "total_tokens": self.input_tokens + self.output_tokens,
        }
        out.update((k, n) for k, n in self.extra.items() if n)
        return out

    def cost(self) -> Entry:
        priced = self.unpriced_count < self.request_count or not self.request_count
        out: Entry = {"cost_usd": round(self.cost_usd, 10) if priced else None}
        if self.unpriced_count:
            out["unpriced_count"] = self.unpriced_count
        if self.estimated_count:
            out["estimated_count"] = self.estimated_count
        return out

    def as_dict(self) -> Entry:
        return self.tokens() | self.cost()


@dataclass(slots=True)
class TokenRollup(Rollup):
    models_used: list[str] = field(default_factory=list)
    first_seen: str = ""
    last_seen: str = ""

    def add(self, entry: Mapping[str, Any]) -> None:
        Rollup.add(self, entry)
        model = entry.get("model", "")
        if isinstance(model, str) and model and model not in self.models_used:
            self.models_used.append(model)
        moment = parse_time(entry.get("timestamp", ""))
        if moment is not None:
            seen = format_rfc3339(moment)
            self.first_seen = min(self.first_seen or seen, seen)
            self.last_seen = max(self.last_seen, seen)

    def as_dict(self) -> Entry:
        out = Rollup.as_dict(self)
        out["models_used"] = list(self.models_used)
        out.update(first_seen=self.first_seen, last_seen=self.last_seen)
        return out


@dataclass(slots=True)
class Totals(Rollup):
    error_count: int = 0
    retry_count: int = 0
    rule_violation_count: int = 0
    rate_limit_count: int = 0

    def add(self, entry: Mapping[str, Any]) -> None:
        Rollup.add(self, entry)
        status = _int(entry, "status_code")
        self.error_count += status >= 400
        self.rate_limit_count += status == 429
        self.retry_count += _int(entry, "retry_count")
        matches = entry.get("rule_matches") or []
        self.rule_violation_count += sum(
            1 for m in matches if isinstance(m, Mapping) and m.get("action") == "fail"
        )

    def as_dict(self) -> Entry:
        counts = {
            "error_count": self.error_count,
            "retry_count": self.retry_count,
            "rule_violation_count": self.rule_violation_count,
            "rate_limit_count": self.rate_limit_count,
        }
        return self.tokens() | counts | self.cost()


def rollups(entries: Iterable[Mapping[str, Any]]) -> Entry:
    """`totals`, `by_model`, `by_provider` and `by_token` of §7.4 (plus cost) for `entries`."""
    totals = Totals()
    by_model: dict[str, Rollup] = {}
    by_provider: dict[str, Rollup] = {}
    by_token: dict[str, TokenRollup] = {}
    for entry in entries:
        totals.add(entry)
        model, provider = str(entry.get("model", "")), str(entry.get("provider", ""))
        by_model.setdefault(model, Rollup()).add(entry)
        if provider:
            by_provider.setdefault(provider, Rollup()).add(entry)
        by_token.setdefault(str(entry.get("token_hash", "")), TokenRollup()).add(entry)
    return {
        "totals": totals.as_dict(),
        "by_model": {k: r.as_dict() for k, r in by_model.items()},
        "by_provider": {k: r.as_dict() for k, r in by_provider.items()},
        "by_token": {k: r.as_dict() for k, r in by_token.items()},
    }
