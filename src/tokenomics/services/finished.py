"""A finished exchange as the record consumers see it (ledger, memory, communication events).

Built on the request task by the recorder from the `Exchange` (plain values, no live objects),
then handed over a channel, so the request never waits on disk. Nothing changes a record once it
is built; it is not a frozen dataclass only because building one costs ~5x more (a frozen
`__init__` sets each of its ~38 fields through `object.__setattr__`, once per request). What
it carries is what the client and the upstream actually saw: the request body as sent
upstream (masked by rules, prompts added), the reply as the client received it (masked by
output rules). Credential headers never enter it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import orjson

from tokenomics.domain.durations import format_rfc3339_nano
from tokenomics.domain.memo import remember
from tokenomics.domain.usage import ResponseMeta, Usage
from tokenomics.pipeline.exchange import BODY_LIMIT
from tokenomics.services.capture import is_sensitive

if TYPE_CHECKING:
    from tokenomics.domain.budget import Spend
    from tokenomics.domain.ledger import Entry
    from tokenomics.domain.policy import MemoryPolicy
    from tokenomics.pipeline.exchange import Exchange
    from tokenomics.pipeline.stream_capture import StreamCapture

Headers = tuple[tuple[str, str], ...]


@dataclass(slots=True)
class Finished:
    recorded_at: datetime  # end of the exchange, UTC
    started_at: str  # RFC 3339 UTC with milliseconds
    duration_ms: int
    client_request_id: str
    method: str
    path: str  # without the query string
    token_hash: str  # full HMAC; "" when the request was not authenticated
    model: str  # the model actually attempted (the fallback when one was used)
    provider: str  # resolved provider name, "" when none was resolved
    status: int  # what the client got
    stream: bool
    error: str
    usage: Usage
    meta: ResponseMeta
    cost_usd: float | None  # None: the model has no price
    retry_count: int
    fallback_model: str
    rule_matches: tuple[dict[str, str], ...]
    metadata: dict[str, str]
    # The token policy's memory settings when its memory is enabled, else None.
    memory: MemoryPolicy | None
    forwarded: bool  # a request went upstream (False: rejected locally)
    request_headers: Headers  # as received, lower-case names, credentials removed
    request_content_type: str
    # As sent upstream, up to BODY_LIMIT; b"" when nothing was sent or nothing reads it (memory
    # and events are off: `Exchange.capture`), so a changed body is not encoded again for nobody.
    request_body: bytes
    request_bytes: int  # full size of that body
    response_headers: Headers  # as sent to the client
    response_content_type: str
    # A buffered reply's body, or the streamed chunks in order, both up to BODY_LIMIT bytes.
    response_body: bytes = b""
    response_stream: StreamCapture | None = None  # what memory and events keep of a stream
    response_bytes: int = 0  # full size of what the client received
    first_byte_ms: int | None = None  # from the start of the exchange to the reply's first byte
    # The assistant text of a streamed reply as the client received it (text, truncated), when
    # the relay already has it; None: read it from `response_chunks`.
    response_text: tuple[str, bool] | None = None
    events: tuple[tuple[str, dict[str, Any]], ...] = field(default=())  # `rule.*` events
    # The token's settled budget counter just after this request (None: no budget step ran):
    # the journal keeps it so that recovery rebuilds the counters (`ledger_files`).
    spend: Spend | None = None
    authenticated: bool = False  # the token was valid (a policy applied)

    @property
    def hash16(self) -> str:
        return self.token_hash[:16]

    @property
    def estimated(self) -> bool:
        return self.usage.estimated


# A header name as a record keeps it (lower-case), or "" for a credential's (dropped).
_NAMES: dict[str, str] = {}
NAMES_LIMIT = 1024


def _headers(pairs: list[tuple[str, str]]) -> tuple[Headers, str]:
    """The headers without credentials, names lower-cased, and their content type."""
    kept: list[tuple[str, str]] = []
    content_type = ""
    for name, value in pairs:
        lower = _NAMES.get(name)
        if lower is None:
            lower = remember(_NAMES, name, "" if is_sensitive(name) else name.lower(), NAMES_LIMIT)
        if lower:
            kept.append((lower, value))
            if lower == "content-type" and not content_type:
                content_type = value
    return tuple(kept), content_type


def sent_body(ex: Exchange) -> bytes:
    """The request body as it went upstream: an API family's body is re-encoded from the
    parsed one (masked by rules, prompts added), like the upstream call; others as received."""
    if ex.route is None or ex.route.adapter is None or ex.body is None:
        return ex.body_bytes
    if ex.body is ex.parsed_body:
        return ex.body_bytes
    return orjson.dumps(ex.body)


def from_exchange(ex: Exchange, duration_ms: int, now: datetime | None = None) -> Finished:
    """The record of `ex`, built on its task once it settled (its fields in `Finished`'s
    order: a keyword call of 35 costs ~2x a positional one, once per request)."""
    request, settled, reply, policy = ex.request, ex.settled, ex.reply, ex.policy
    request_headers, request_type = _headers(request.raw_headers)
    sent = sent_body(ex) if ex.upstream is not None and ex.capture else b""
    response_headers, response_type = _headers(reply.headers) if reply is not None else ((), "")
    body, buffered = (
        (reply.body, True) if reply is not None and reply.stream is None else (b"", False)
    )
    return Finished(
        now or datetime.now(UTC), request.started_at, duration_ms, request.client_request_id,
        request.method, ex.path, ex.token_hash, ex.attempt_model or ex.model,
        ex.target.provider_name if ex.target else "", ex.status,
        ex.stream or (reply is not None and not buffered), ex.error, settled.usage,
        ex.meta or ResponseMeta(), settled.cost_usd, ex.retry_count, ex.fallback_model,
        tuple(ex.rule_matches), dict(ex.metadata),
        policy.memory if policy is not None and policy.memory.enabled else None,
        ex.upstream is not None, request_headers, request_type, sent[:BODY_LIMIT], len(sent),
        response_headers, response_type, body[:BODY_LIMIT],
        ex.sent,  # what memory and events keep of a stream (they close it)
        len(body) if buffered else ex.sent_bytes, ex.first_byte_ms, ex.relayed_text,
        tuple(ex.events), settled.spend, policy is not None,
    )  # fmt: skip


def journal_line(f: Finished) -> bytes:
    """The session journal's line of a finished exchange: `{"request": RequestEntry, "spend":
    {...}}` plus a newline: the RequestEntry in the schema's key order (`cli.md` §7.3),
    optional keys only when set. Built in one pass from the record, once per request before
    its reply's last byte (no intermediate values, no `provider_meta` of unset figures to
    filter: ~30% of the journal's cost). Tests write entries with `tests/support/
    ledger_entries.py`, pinned to this by a differential test."""
    usage, meta = f.usage, f.meta
    cost = f.cost_usd
    if cost is None and not usage.input_tokens + usage.output_tokens > 0:
        cost = 0.0  # a request that consumed nothing costs nothing, priced or not
    entry: Entry = {
        "timestamp": format_rfc3339_nano(f.recorded_at),
        "token_hash": f.token_hash,
        "model": f.model,
        "provider": f.provider,
        "input_tokens": usage.input_tokens,
        "output_tokens": usage.output_tokens,
        "duration_ms": f.duration_ms,
        "status_code": f.status,
        "cost_usd": cost,
    }
    if f.path:
        entry["path"] = f.path
    if f.stream:
        entry["stream"] = f.stream
    if f.error:
        entry["error"] = f.error
    if meta.upstream_id:
        entry["upstream_id"] = meta.upstream_id
    if meta.upstream_request_id:
        entry["upstream_request_id"] = meta.upstream_request_id
    if f.retry_count:
        entry["retry_count"] = f.retry_count
    if f.fallback_model:
        entry["fallback_model"] = f.fallback_model
    if f.rule_matches:
        entry["rule_matches"] = [dict(m) for m in f.rule_matches]
    if f.metadata and (metadata := {k: s for k, s in f.metadata.items() if s}):
        entry["metadata"] = metadata
    if provider_meta := _provider_meta(usage, meta):
        entry["provider_meta"] = provider_meta
    if cost is None:
        entry["unpriced"] = True
    if usage.estimated:
        entry["estimated"] = usage.estimated
    record: Entry = {"request": entry}
    if (spend := f.spend) is not None:
        record["spend"] = {"tokens": spend.tokens, "cost_usd": spend.cost_usd}
    return orjson.dumps(record, option=orjson.OPT_APPEND_NEWLINE)  # no copy to add the "\n"


def _provider_meta(usage: Usage, meta: ResponseMeta) -> dict[str, Any]:
    """The entry's `provider_meta`: the figures the provider reported, those that are set (an
    int, str or None field is set when true, the schema's `not in (None, "", 0)`)."""
    found: dict[str, Any] = {}
    if usage.cached_input_tokens:
        found["cached_input_tokens"] = usage.cached_input_tokens
    if usage.cache_creation_tokens:
        found["cache_creation_tokens"] = usage.cache_creation_tokens
    if usage.reasoning_tokens:
        found["reasoning_tokens"] = usage.reasoning_tokens
    if meta.actual_model:
        found["actual_model"] = meta.actual_model
    if meta.finish_reason:
        found["finish_reason"] = meta.finish_reason
    if meta.rate_limit_remaining_requests:
        found["rate_limit_remaining_requests"] = meta.rate_limit_remaining_requests
    if meta.rate_limit_remaining_tokens:
        found["rate_limit_remaining_tokens"] = meta.rate_limit_remaining_tokens
    if meta.rate_limit_reset:
        found["rate_limit_reset"] = meta.rate_limit_reset
    return found
