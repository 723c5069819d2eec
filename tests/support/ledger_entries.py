"""Ledger entries the way tests write them: a RequestEntry from plain values, in the key
order of `cli.md` §7.3, and a journal line of it. The proxy builds its journal lines in one
pass from its record (`services/finished.journal_line`); a differential test pins the two to
the same bytes, and ledger tests use these to write sessions and journals of their own."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import orjson

from tokenomics.domain.budget import Spend
from tokenomics.domain.durations import format_rfc3339_nano
from tokenomics.domain.ledger import Entry


@dataclass(slots=True)
class EntryValues:
    """The plain values of one finished exchange that the ledger keeps. Built once per request
    and only read: not frozen, whose `__init__` costs ~5x (`object.__setattr__` per field)."""

    recorded_at: datetime
    token_hash: str
    model: str
    provider: str
    input_tokens: int
    output_tokens: int
    duration_ms: int
    status_code: int
    cost_usd: float | None
    stream: bool = False
    error: str = ""
    upstream_id: str = ""
    upstream_request_id: str = ""
    retry_count: int = 0
    fallback_model: str = ""
    rule_matches: Sequence[Mapping[str, str]] = ()
    metadata: Mapping[str, str] = field(default_factory=dict)
    provider_meta: Mapping[str, Any] = field(default_factory=dict)
    estimated: bool = False
    path: str = ""  # the request's path, without the query string


def request_entry(v: EntryValues) -> Entry:
    """A RequestEntry in the key order of §7.3; optional keys omitted when zero or empty."""
    consumed = v.input_tokens + v.output_tokens > 0
    cost = v.cost_usd if v.cost_usd is not None or consumed else 0.0
    entry: Entry = {
        "timestamp": format_rfc3339_nano(v.recorded_at),
        "token_hash": v.token_hash,
        "model": v.model,
        "provider": v.provider,
        "input_tokens": v.input_tokens,
        "output_tokens": v.output_tokens,
        "duration_ms": v.duration_ms,
        "status_code": v.status_code,
        "cost_usd": cost,
    }
    # The optional keys in their order, each only when set (written out: once per request).
    if v.path:
        entry["path"] = v.path
    if v.stream:
        entry["stream"] = v.stream
    if v.error:
        entry["error"] = v.error
    if v.upstream_id:
        entry["upstream_id"] = v.upstream_id
    if v.upstream_request_id:
        entry["upstream_request_id"] = v.upstream_request_id
    if v.retry_count:
        entry["retry_count"] = v.retry_count
    if v.fallback_model:
        entry["fallback_model"] = v.fallback_model
    if v.rule_matches:
        entry["rule_matches"] = [dict(m) for m in v.rule_matches]
    if v.metadata and (metadata := {k: s for k, s in v.metadata.items() if s}):
        entry["metadata"] = metadata
    if provider_meta := {k: m for k, m in v.provider_meta.items() if m not in (None, "", 0)}:
        entry["provider_meta"] = provider_meta
    if cost is None:
        entry["unpriced"] = True
    if v.estimated:
        entry["estimated"] = v.estimated
    return entry


def records_line(request: Entry, spend: Spend | None = None) -> bytes:
    record: Entry = {"request": request}
    if spend is not None:
        record["spend"] = {"tokens": spend.tokens, "cost_usd": spend.cost_usd}
    return orjson.dumps(record, option=orjson.OPT_APPEND_NEWLINE)  # no copy to add the "\n"
