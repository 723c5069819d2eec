"""`from_exchange`: the headers a record keeps (credentials never, names lower-cased, header
names remembered between requests) and the content types read from them; `journal_line`: the
same bytes as the ledger schema's `request_entry` and `records_line`."""

from __future__ import annotations

from collections.abc import AsyncGenerator
from datetime import UTC, datetime, timedelta, timezone
from types import SimpleNamespace
from typing import TYPE_CHECKING, Any, cast

from hypothesis import given
from hypothesis import strategies as st
from tests.support.finished import finished
from tests.support.ledger_entries import EntryValues, records_line, request_entry

from tokenomics.domain.budget import Spend
from tokenomics.domain.policy import MemoryPolicy, Policy
from tokenomics.domain.usage import ResponseMeta, Usage
from tokenomics.pipeline.exchange import BODY_LIMIT, Exchange, Incoming, Reply, Settled
from tokenomics.services import finished as finished_module
from tokenomics.services.capture import is_sensitive
from tokenomics.services.finished import Finished, from_exchange, journal_line, sent_body

if TYPE_CHECKING:
    from tokenomics.pipeline.target import Target
    from tokenomics.upstream.client import UpstreamResponse

REQUEST = [
    ("host", "proxy"),
    ("authorization", "Bearer secret-token"),
    ("content-type", "application/json"),
    ("x-api-key", "secret-key"),
    ("content-type", "text/plain"),
    ("user-agent", "sdk/1.0"),
]
REPLY = [
    ("Content-Type", "application/json; charset=utf-8"),
    ("X-Request-Id", "r1"),
    ("Set-Cookie", "session=secret"),
    ("Api-Key", "secret"),
]


def _exchange(request: list[tuple[str, str]], reply: list[tuple[str, str]]) -> Exchange:
    incoming = Incoming(
        "POST", request, dict(request), "peer", 0.0, "2026-01-01T00:00:00.000Z", "r"
    )
    ex = Exchange(incoming, "/v1/chat/completions", "")
    ex.status, ex.reply = 200, Reply(200, reply, b"{}")
    ex.settle(Settled(Usage(1, 1), None, None))
    return ex


def test_credentials_never_enter_a_record_and_names_are_lower_case() -> None:
    for _ in range(2):  # the second time from the remembered names
        record = from_exchange(_exchange(REQUEST, REPLY), 5)
        assert record.request_headers == (
            ("host", "proxy"),
            ("content-type", "application/json"),
            ("content-type", "text/plain"),
            ("user-agent", "sdk/1.0"),
        )
        assert record.response_headers == (
            ("content-type", "application/json; charset=utf-8"),
            ("x-request-id", "r1"),
        )
        assert record.request_content_type == "application/json"  # the first one
        assert record.response_content_type == "application/json; charset=utf-8"
        assert "secret" not in repr((record.request_headers, record.response_headers))


def test_a_record_without_content_type_or_reply_has_none() -> None:
    ex = _exchange([("accept", "*/*")], [])
    ex.reply = None
    record = from_exchange(ex, 5)
    assert (record.request_content_type, record.response_headers) == ("", ())
    assert record.response_content_type == ""


def test_remembered_header_names_stay_bounded_whatever_clients_send() -> None:
    names = [(f"x-made-up-{n}", "v") for n in range(finished_module.NAMES_LIMIT + 10)]
    record = from_exchange(_exchange([*names, ("Authorization", "Bearer t")], []), 5)
    assert len(record.request_headers) == len(names)
    assert len(finished_module._NAMES) <= finished_module.NAMES_LIMIT


def reference_headers(pairs: list[tuple[str, str]]) -> tuple[tuple[tuple[str, str], ...], str]:
    """The headers a record keeps, pair by pair: credentials dropped, names lower-cased, the
    first content type that has a value."""
    kept = tuple((name.lower(), value) for name, value in pairs if not is_sensitive(name))
    return kept, next((value for name, value in kept if name == "content-type" and value), "")


NAME = st.sampled_from([
    "host", "Host", "content-type", "Content-Type", "CONTENT-TYPE", "authorization",
    "Authorization", "x-api-key", "X-Api-Key", "cookie", "user-agent", "x-request-id",
    "X-Request-Id", "set-cookie", "x-goog-api-key", "openai-organization",
])  # fmt: skip
PAIRS = st.lists(st.tuples(NAME, st.sampled_from(["", "v", "application/json"])), max_size=8)


@given(messages=st.lists(PAIRS, min_size=1, max_size=4))
def test_the_kept_headers_are_those_of_each_pair_in_turn(
    messages: list[list[tuple[str, str]]],
) -> None:
    for pairs in [*messages, *messages]:  # the second time from the remembered names
        assert finished_module._headers(pairs) == reference_headers(pairs)


# ── the journal line: one pass, the same bytes as the schema's `request_entry` ────────────────

TEXT = st.sampled_from(["", "x", "gpt-4o", 'q"\\\n', "é😀"])
COUNT = st.integers(0, 3) | st.integers(-2, 10**12)
OPTIONAL_INT = st.none() | COUNT


def reference_line(f: Finished) -> bytes:
    """The journal line as it was built before `journal_line`: `EntryValues`, `request_entry`,
    `records_line`."""
    usage, meta = f.usage, f.meta
    provider_meta = {
        "cached_input_tokens": usage.cached_input_tokens,
        "cache_creation_tokens": usage.cache_creation_tokens,
        "reasoning_tokens": usage.reasoning_tokens,
        "actual_model": meta.actual_model,
        "finish_reason": meta.finish_reason,
        "rate_limit_remaining_requests": meta.rate_limit_remaining_requests,
        "rate_limit_remaining_tokens": meta.rate_limit_remaining_tokens,
        "rate_limit_reset": meta.rate_limit_reset,
    }
    values = EntryValues(
        f.recorded_at, f.token_hash, f.model, f.provider, usage.input_tokens,
        usage.output_tokens, f.duration_ms, f.status, f.cost_usd, f.stream, f.error,
        meta.upstream_id, meta.upstream_request_id, f.retry_count, f.fallback_model,
        f.rule_matches, f.metadata, provider_meta, usage.estimated, f.path,
    )  # fmt: skip
    return records_line(request_entry(values), f.spend)


@given(
    at=st.datetimes(
        datetime(1971, 1, 2),
        datetime(2100, 1, 1),
        timezones=st.sampled_from([UTC, timezone(timedelta(hours=-7, minutes=-30))]),
    ),
    texts=st.tuples(TEXT, TEXT, TEXT, TEXT, TEXT, TEXT),
    usage=st.builds(Usage, COUNT, COUNT, COUNT, COUNT, COUNT, st.booleans()),
    meta=st.builds(ResponseMeta, TEXT, TEXT, TEXT, OPTIONAL_INT, OPTIONAL_INT, TEXT, TEXT),
    cost=st.none() | st.floats(0, 1e6) | st.just(0.0),
    status=st.sampled_from([0, 200, 401, 429, 502]),
    flags=st.tuples(st.booleans(), st.integers(0, 3), st.integers(0, 10**6)),
    matches=st.lists(st.dictionaries(TEXT, TEXT, max_size=3), max_size=2),
    metadata=st.dictionaries(TEXT, TEXT, max_size=3),
    spend=st.none() | st.builds(Spend, st.integers(0, 10**12), st.floats(0, 1e6)),
)
def test_the_journal_line_is_the_schemas_whatever_is_set(
    at: datetime,
    texts: tuple[str, ...],
    usage: Usage,
    meta: ResponseMeta,
    cost: float | None,
    status: int,
    flags: tuple[bool, int, int],
    matches: list[dict[str, str]],
    metadata: dict[str, str],
    spend: Spend | None,
) -> None:
    token_hash, model, provider, error, fallback, path = texts
    stream, retries, duration = flags
    record = finished(
        recorded_at=at, token_hash=token_hash, model=model, provider=provider, usage=usage,
        meta=meta, cost_usd=cost, status=status, stream=stream, error=error,
        retry_count=retries, fallback_model=fallback, rule_matches=tuple(matches),
        metadata=metadata, spend=spend, path=path, duration_ms=duration,
    )  # fmt: skip
    assert journal_line(record) == reference_line(record)


# ── the record: the same as built field by field by name (the first `from_exchange`) ─────────


def reference_record(ex: Exchange, duration_ms: int, now: datetime) -> Finished:
    request, settled = ex.request, ex.settled
    request_headers, request_type = reference_headers(request.raw_headers)
    sent = sent_body(ex) if ex.upstream is not None and ex.capture else b""
    reply = ex.reply
    response_headers, response_type = (
        reference_headers(reply.headers) if reply is not None else ((), "")
    )
    policy = ex.policy
    body = reply.body if reply is not None and reply.stream is None else b""
    return Finished(
        recorded_at=now, started_at=request.started_at, duration_ms=duration_ms,
        client_request_id=request.client_request_id, method=request.method, path=ex.path,
        token_hash=ex.token_hash, model=ex.attempt_model or ex.model,
        provider=ex.target.provider_name if ex.target else "", status=ex.status,
        stream=ex.stream or bool(reply is not None and reply.stream is not None),
        error=ex.error, usage=settled.usage, meta=ex.meta or ResponseMeta(),
        cost_usd=settled.cost_usd, retry_count=ex.retry_count,
        fallback_model=ex.fallback_model, rule_matches=tuple(ex.rule_matches),
        metadata=dict(ex.metadata),
        memory=policy.memory if policy is not None and policy.memory.enabled else None,
        forwarded=ex.upstream is not None, request_headers=request_headers,
        request_content_type=request_type, request_body=sent[:BODY_LIMIT],
        request_bytes=len(sent), response_headers=response_headers,
        response_content_type=response_type, response_body=body[:BODY_LIMIT],
        response_stream=ex.sent,
        response_bytes=len(body) if reply is not None and reply.stream is None else ex.sent_bytes,
        first_byte_ms=ex.first_byte_ms, response_text=ex.relayed_text, events=tuple(ex.events),
        spend=settled.spend, authenticated=ex.policy is not None,
    )  # fmt: skip


async def _chunks() -> AsyncGenerator[bytes, None]:
    yield b"data: {}\n\n"


BODY = st.sampled_from([b"", b"{}", b"x" * (BODY_LIMIT + 1)])
EXCHANGE = st.fixed_dictionaries({
    "reply": st.sampled_from(["none", "buffered", "stream"]),
    "reply_body": BODY,
    "request_body": BODY,
    "forwarded": st.booleans(),
    "capture": st.booleans(),
    "memory": st.none() | st.booleans(),
    "target": st.booleans(),
    "meta": st.none() | st.just(ResponseMeta(upstream_id="u", finish_reason="stop")),
    "texts": st.tuples(TEXT, TEXT, TEXT, TEXT, TEXT),
    "numbers": st.tuples(st.integers(0, 3), st.integers(0, 10**6), st.none() | st.integers(0, 9)),
    "stream": st.booleans(),
    "lists": st.tuples(
        st.lists(st.dictionaries(TEXT, TEXT, max_size=2), max_size=2),
        st.dictionaries(TEXT, TEXT, max_size=2),
        st.lists(st.tuples(TEXT, st.dictionaries(TEXT, TEXT, max_size=1)), max_size=2),
    ),
    "relayed": st.none() | st.tuples(TEXT, st.booleans()),
    "settled": st.tuples(
        st.none() | st.floats(0, 1), st.none() | st.builds(Spend, st.integers(0, 9), st.floats(0, 1))
    ),
})  # fmt: skip


@given(fields=EXCHANGE, request=PAIRS, reply=PAIRS)
def test_the_record_is_the_exchange_field_by_field(
    fields: dict[str, Any], request: list[tuple[str, str]], reply: list[tuple[str, str]]
) -> None:
    ex = _exchange(request, reply)  # settled with Usage(1, 1), no price, no spend
    kind = fields["reply"]
    ex.reply = None if kind == "none" else Reply(200, reply, fields["reply_body"])
    if kind == "stream":
        assert ex.reply is not None
        ex.reply.stream = _chunks()
    ex.body_bytes = fields["request_body"]
    ex.upstream = cast("UpstreamResponse", object()) if fields["forwarded"] else None
    ex.capture = fields["capture"]
    if fields["memory"] is not None:
        ex.policy = Policy(memory=MemoryPolicy(enabled=fields["memory"]))
    if fields["target"]:
        ex.target = cast("Target", SimpleNamespace(provider_name="mock"))
    ex.meta = fields["meta"]
    ex.model, ex.attempt_model, ex.error, ex.fallback_model, ex.token_hash = fields["texts"]
    ex.retry_count, ex.sent_bytes, ex.first_byte_ms = fields["numbers"]
    ex.stream = fields["stream"]
    matches, metadata, events = fields["lists"]
    ex.rule_matches, ex.metadata, ex.events = matches, metadata, events
    ex.relayed_text = fields["relayed"]
    now = datetime(2026, 12, 6, 23, 0, 0, 123456, tzinfo=UTC)
    got, expected = from_exchange(ex, 7, now), reference_record(ex, 7, now)
    assert repr(got) == repr(expected)
    assert got == expected
    if ex.reply is not None and ex.reply.stream is not None:
        ex.reply.stream.aclose().close()
