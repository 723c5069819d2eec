"""`core.md` §4: the event envelope, its signature, filters and the catalogue's data keys."""

import hashlib
import hmac
from datetime import UTC, datetime

import orjson

from tokenomics.domain import events
from tokenomics.domain.events import Completed, Event

VECTOR_BODY = (
    b'{"id":"evt_00000000000000000000000000000000","type":"token.created",'
    b'"timestamp":"2025-01-15T10:30:00Z","data":{"expires_at":"","token_hash":"abcd1234"}}'
)
VECTOR_SIGNATURE = "sha256=611f123e2071af6c358fcbc421f3d3ecee695fed2ceaa8d37e2a0a006531f7bd"
FULL_HASH = "f" * 16 + "0" * 48


def test_the_spec_vector_envelope_and_signature_match() -> None:
    event = Event(
        "evt_" + "0" * 32, "token.created", "2025-01-15T10:30:00Z",
        {"token_hash": "abcd1234", "expires_at": ""},
    )  # fmt: skip
    assert event.envelope() == VECTOR_BODY
    assert events.signature("hmac-key-456", VECTOR_BODY) == VECTOR_SIGNATURE
    assert events.verify_signature("hmac-key-456", VECTOR_BODY, VECTOR_SIGNATURE)
    assert not events.verify_signature("other", VECTOR_BODY, VECTOR_SIGNATURE)


def test_ids_are_evt_and_32_hex_and_unique() -> None:
    ids = {events.new_id() for _ in range(1000)}
    assert len(ids) == 1000
    for value in ids:
        assert value.startswith("evt_") and len(value) == 36
        int(value[4:], 16)


def test_timestamps_are_rfc3339_nano_with_trailing_zeros_trimmed() -> None:
    assert events.rfc3339_nano(datetime(2025, 1, 15, 10, 30, tzinfo=UTC)) == "2025-01-15T10:30:00Z"
    moment = datetime(2025, 1, 15, 10, 30, 0, 120000, tzinfo=UTC)
    assert events.rfc3339_nano(moment) == "2025-01-15T10:30:00.12Z"


def test_empty_data_is_omitted_and_keys_are_sorted() -> None:
    assert b'"data"' not in Event("evt_x", "t", "2025-01-01T00:00:00Z").envelope()
    body = Event("evt_x", "t", "2025-01-01T00:00:00Z", {"b": 1, "a": 2}).envelope()
    assert body.endswith(b'"data":{"a":2,"b":1}}')


def test_filters_exact_prefix_star_and_empty() -> None:
    assert events.matches((), "token.created")
    assert events.matches(("*",), "rule.mask")
    assert events.matches(("token.*",), "token.created")
    assert events.matches(("tok*",), "token.deleted")
    assert not events.matches(("token.*",), "rule.violation")
    assert events.matches(("rule.violation",), "rule.violation")
    assert not events.matches(("rule.violation",), "rule.violation.x")
    assert not events.matches(("rule.?iolation",), "rule.violation")  # no other globbing
    assert events.any_matches([("token.*",), ("rule.*",)], "rule.mask")


def test_builders_carry_the_catalogue_keys_and_only_hash_prefixes() -> None:
    built = [
        events.token_created(FULL_HASH, None),
        events.token_updated(FULL_HASH, "2030-01-01T00:00:00Z"),
        events.token_deleted(FULL_HASH),
        events.token_expired(FULL_HASH, "2025-01-01T00:00:00Z"),
        events.rule_event("rule.violation", FULL_HASH, "gpt-4o", {"rule_name": "r", "message": "m"}),
        events.rule_event("rule.mask", FULL_HASH, "gpt-4o", {}),
        events.budget_exceeded(FULL_HASH, "gpt-4o", 10, 5, 12),
        events.budget_update(FULL_HASH, "gpt-4o", 42),
        events.rate_exceeded(FULL_HASH, "gpt-4o", "rate limit exceeded"),
        events.request_completed(Completed(FULL_HASH, "gpt-4o", False, 502, 3, 0)),
        events.request_completed(Completed(FULL_HASH, "gpt-4o", True, 200, 3, 4)),
        events.server_start(8080, 8443, True, "https://api.openai.com"),
        events.openclaw_agent("openclaw.agent.error", FULL_HASH, "m", 500,
                              {"agent_id": "a1", "team": ""}, "boom"),
    ]  # fmt: skip
    keys = [sorted(e.data) for e in built]
    assert keys == [
        ["expires_at", "token_hash"],
        ["expires_at", "token_hash"],
        ["token_hash"],
        ["expired_at", "token_hash"],
        ["message", "model", "rule_name", "token_hash"],
        ["model", "token_hash"],
        ["input", "limit", "model", "token_hash", "used"],
        ["input_tokens", "model", "token_hash"],
        ["error", "model", "token_hash"],
        ["error", "input_tokens", "model", "output_tokens", "status_code", "stream", "token_hash"],
        ["input_tokens", "model", "output_tokens", "status_code", "stream", "token_hash"],
        ["http_port", "https_port", "tls", "upstream"],
        ["agent_id", "error", "model", "status", "token_hash"],
    ]
    assert built[9].data["error"] is True
    assert {e.type for e in built} <= set(events.CATALOGUE)
    for e in built:
        assert FULL_HASH not in e.envelope().decode()
        if "token_hash" in e.data:
            assert e.data["token_hash"] == FULL_HASH[:16]


def test_from_envelope_reads_back_what_envelope_wrote() -> None:
    original = events.token_deleted(FULL_HASH)
    assert events.from_envelope(original.envelope()) == original
    assert orjson.loads(original.envelope())["type"] == "token.deleted"


def test_signature_is_hmac_sha256_of_the_raw_body() -> None:
    body = b'{"x":1}'
    expected = hmac.new(b"k", body, hashlib.sha256).hexdigest()
    assert events.signature("k", body) == f"sha256={expected}"
