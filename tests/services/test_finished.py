"""`from_exchange`: the headers a record keeps (credentials never, names lower-cased, header
names remembered between requests) and the content types read from them; `journal_line`: the
same bytes as the ledger schema's `request_entry` and `records_line`."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

from hypothesis import given
from hypothesis import strategies as st
from tests.support.finished import finished

from tokenomics.domain.budget import Spend
from tokenomics.domain.ledger import EntryValues, request_entry
from tokenomics.domain.usage import ResponseMeta, Usage
from tokenomics.pipeline.exchange import Exchange, Incoming, Reply, Settled
from tokenomics.services import finished as finished_module
from tokenomics.services.finished import Finished, from_exchange, journal_line
from tokenomics.services.ledger_files import records_line

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
