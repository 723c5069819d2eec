"""Ledger entries, rollups and cost against hand-computed values (`cli.md` §7.3/§7.4,
scenarios 74 and 75; D13 estimated, D15 unpriced)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from typing import Any

from hypothesis import given
from hypothesis import strategies as st
from tests.support.ledger_entries import EntryValues, request_entry

from tokenomics.domain.ledger import parse_time, rollups
from tokenomics.domain.ledger_session import format_duration, session_json, summary

T0 = datetime(2026, 11, 27, 10, 30, 0, 123456, tzinfo=UTC)
A, B = "a" * 64, "b" * 64


def entry(token: str, model: str, inp: int, out: int, cost: float | None, **kw: object) -> dict:
    values = EntryValues(
        recorded_at=kw.pop("at", T0),  # type: ignore[arg-type]
        token_hash=token, model=model, provider=str(kw.pop("provider", "openai")),
        input_tokens=inp, output_tokens=out, duration_ms=12,
        status_code=int(kw.pop("status", 200)),  # type: ignore[call-overload]
        cost_usd=cost, **kw,  # type: ignore[arg-type]
    )  # fmt: skip
    return request_entry(values)


def scenario_74() -> list[dict]:
    return [
        entry(A, "gpt-4", 100, 50, 0.0045),
        entry(
            A,
            "gpt-4",
            200,
            100,
            0.009,
            at=T0 + timedelta(seconds=61),
            provider_meta={"cached_input_tokens": 50, "reasoning_tokens": 20},
        ),
        entry(B, "claude-x", 150, 75, None, provider="anthropic", estimated=True),
    ]


def test_request_entry_has_the_schema_key_order_and_omits_empty_optionals() -> None:
    e = entry(A, "gpt-4", 1, 2, 0.5)
    assert list(e) == [
        "timestamp", "token_hash", "model", "provider", "input_tokens", "output_tokens",
        "duration_ms", "status_code", "cost_usd",
    ]  # fmt: skip
    assert e["timestamp"] == "2026-11-27T10:30:00.123456000Z"
    assert parse_time(e["timestamp"]) == T0


def test_request_entry_keeps_optionals_in_order_and_flags_unpriced_and_estimated() -> None:
    e = entry(
        A, "m", 5, 5, None, stream=True, error="boom", retry_count=2, fallback_model="f",
        rule_matches=[{"action": "warn", "message": "x"}], metadata={"team": "ml", "skill": ""},
        provider_meta={"finish_reason": "stop", "rate_limit_reset": ""}, estimated=True,
    )  # fmt: skip
    assert e["cost_usd"] is None and e["unpriced"] is True and e["estimated"] is True
    assert list(e)[9:] == [
        "stream", "error", "retry_count", "fallback_model", "rule_matches", "metadata",
        "provider_meta", "unpriced", "estimated",
    ]  # fmt: skip
    assert e["metadata"] == {"team": "ml"}
    assert e["provider_meta"] == {"finish_reason": "stop"}


def reference_entry(v: EntryValues) -> dict[str, Any]:
    """§7.3 stated once more, plainly: the required keys, then each optional one when set."""
    cost = v.cost_usd if v.cost_usd is not None or v.input_tokens + v.output_tokens else 0.0
    required = {
        "timestamp": v.recorded_at.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%f000Z"),
        "token_hash": v.token_hash, "model": v.model, "provider": v.provider,
        "input_tokens": v.input_tokens, "output_tokens": v.output_tokens,
        "duration_ms": v.duration_ms, "status_code": v.status_code, "cost_usd": cost,
    }  # fmt: skip
    optional = {
        "path": v.path, "stream": v.stream, "error": v.error, "upstream_id": v.upstream_id,
        "upstream_request_id": v.upstream_request_id, "retry_count": v.retry_count,
        "fallback_model": v.fallback_model, "rule_matches": [dict(m) for m in v.rule_matches],
        "metadata": {k: s for k, s in v.metadata.items() if s},
        "provider_meta": {k: m for k, m in v.provider_meta.items() if m not in (None, "", 0)},
        "unpriced": cost is None, "estimated": v.estimated,
    }  # fmt: skip
    return required | {k: value for k, value in optional.items() if value}


TEXT = st.sampled_from(["", "x", "gpt-4o"])
META = st.dictionaries(TEXT, st.one_of(st.none(), TEXT, st.integers(0, 3), st.booleans()))


@given(
    at=st.datetimes(
        datetime(2000, 1, 2),
        datetime(2100, 1, 1),
        timezones=st.sampled_from([UTC, timezone(timedelta(hours=2))]),
    ),
    tokens=st.tuples(st.integers(0, 5), st.integers(0, 5)),
    cost=st.one_of(st.none(), st.floats(0, 1)),
    texts=st.tuples(TEXT, TEXT, TEXT, TEXT, TEXT),
    flags=st.tuples(st.booleans(), st.booleans(), st.integers(0, 2)),
    matches=st.lists(st.dictionaries(TEXT, TEXT), max_size=2),
    metadata=st.dictionaries(TEXT, TEXT),
    provider_meta=META,
)
def test_request_entry_is_the_schema_whatever_is_set(
    at: datetime,
    tokens: tuple[int, int],
    cost: float | None,
    texts: tuple[str, str, str, str, str],
    flags: tuple[bool, bool, int],
    matches: list[dict[str, str]],
    metadata: dict[str, str],
    provider_meta: dict[str, Any],
) -> None:
    path, error, upstream_id, upstream_request_id, fallback = texts
    stream, estimated, retries = flags
    values = EntryValues(
        recorded_at=at, token_hash=A, model="m", provider="p", input_tokens=tokens[0],
        output_tokens=tokens[1], duration_ms=3, status_code=200, cost_usd=cost, stream=stream,
        error=error, upstream_id=upstream_id, upstream_request_id=upstream_request_id,
        retry_count=retries, fallback_model=fallback, rule_matches=matches, metadata=metadata,
        provider_meta=provider_meta, estimated=estimated, path=path,
    )  # fmt: skip
    got, expected = request_entry(values), reference_entry(values)
    assert list(got.items()) == list(expected.items())


def test_a_request_without_tokens_costs_zero_even_without_a_price() -> None:
    e = entry("", "", 0, 0, None, status=401, error="invalid token")
    assert e["cost_usd"] == 0.0 and "unpriced" not in e


def test_scenario_74_totals_models_and_tokens() -> None:
    r = rollups(scenario_74())
    assert r["totals"] == {
        "request_count": 3, "input_tokens": 450, "output_tokens": 225, "total_tokens": 675,
        "cached_input_tokens": 50, "reasoning_tokens": 20, "error_count": 0, "retry_count": 0,
        "rule_violation_count": 0, "rate_limit_count": 0, "cost_usd": 0.0135,
        "unpriced_count": 1, "estimated_count": 1,
    }  # fmt: skip
    assert set(r["by_model"]) == {"gpt-4", "claude-x"}
    assert r["by_model"]["gpt-4"] == {
        "request_count": 2, "input_tokens": 300, "output_tokens": 150, "total_tokens": 450,
        "cached_input_tokens": 50, "reasoning_tokens": 20, "cost_usd": 0.0135,
    }  # fmt: skip
    # nothing in it was priced: null, never a free-looking 0.0 (issue 19)
    assert r["by_model"]["claude-x"]["cost_usd"] is None
    assert r["by_model"]["claude-x"]["unpriced_count"] == 1
    assert r["by_provider"]["anthropic"]["cost_usd"] is None
    token_a = r["by_token"][A]
    assert token_a["models_used"] == ["gpt-4"]
    assert token_a["first_seen"] == "2026-11-27T10:30:00Z"
    assert token_a["last_seen"] == "2026-11-27T10:31:01Z"
    assert token_a["cached_input_tokens"] == 50
    assert list(r["by_provider"]) == ["openai", "anthropic"]


def test_scenario_75_error_rate_limit_retry_and_rule_counters() -> None:
    entries = [
        entry(A, "m", 0, 0, None, status=429, retry_count=2,
              rule_matches=[{"action": "fail", "message": "x"}, {"action": "warn", "message": "y"}]),
        entry(A, "m", 0, 0, None, status=500, provider=""),
    ]  # fmt: skip
    totals = rollups(entries)["totals"]
    assert (totals["error_count"], totals["rate_limit_count"]) == (2, 1)
    assert (totals["retry_count"], totals["rule_violation_count"]) == (2, 1)
    assert rollups(entries)["by_provider"] == {"openai": rollups(entries[:1])["by_model"]["m"]}


def test_session_json_key_order_and_events_only_when_present() -> None:
    s = session_json(
        session_id="0123abcd", started_at=T0, ended_at=T0 + timedelta(minutes=75),
        git={"branch": "main", "repo_root": "", "dirty": False}, requests=[],
    )  # fmt: skip
    assert list(s) == [
        "session_id", "started_at", "ended_at", "duration_ms", "git", "totals", "by_model",
        "by_provider", "by_token", "requests",
    ]  # fmt: skip
    assert s["git"] == {"branch": "main"}
    assert s["started_at"] == "2026-11-27T10:30:00Z" and s["duration_ms"] == 4_500_000
    assert s["totals"]["request_count"] == 0 and s["by_model"] == {}
    with_events = session_json(
        session_id="x", started_at=T0, ended_at=T0, git={}, requests=[], events=[{"type": "t"}]
    )
    assert with_events["communication_events"] == [{"type": "t"}]


def test_summary_merges_sessions_and_reduces_token_rollups() -> None:
    one = {"session_id": "1", "requests": scenario_74()[:2]}
    two = {"session_id": "2", "requests": scenario_74()[2:]}
    merged = summary([one, two])
    assert list(merged) == ["sessions", "totals", "by_model", "by_provider", "by_token"]
    assert merged["sessions"] == 2 and merged["totals"]["total_tokens"] == 675
    assert "models_used" not in merged["by_token"][A]
    assert merged["by_token"][A]["total_tokens"] == 450


def test_duration_formatting() -> None:
    assert format_duration(59_000) == "59s"
    assert format_duration(60_000) == "60s"
    assert format_duration(600_000) == "10m0s"
    assert format_duration(4_500_000) == "75m0s"
