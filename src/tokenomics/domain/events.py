"""Events: the values webhooks receive (`core.md` §4, `proxy.md` §5.5, decision D19).

An `Event` is built where something happens (a token write, a rule match, a finished request)
and becomes the envelope `{"id", "type", "timestamp", "data"}` once, when it is appended to the
outbox; those exact bytes are what is signed and sent on every try. Data carries hash prefixes
(16 hex, one length everywhere: the [fix] of `core.md` §4.2), never a raw token, key or prompt.
Pure values and functions: the clock and randomness are passed in or default to the system's.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import orjson

if TYPE_CHECKING:
    from collections.abc import Mapping, Sequence

HASH_PREFIX = 16

TOKEN_CREATED = "token.created"
TOKEN_UPDATED = "token.updated"
TOKEN_DELETED = "token.deleted"
TOKEN_EXPIRED = "token.expired"
RULE_VIOLATION = "rule.violation"
RULE_WARNING = "rule.warning"
RULE_MATCH = "rule.match"
RULE_MASK = "rule.mask"
BUDGET_EXCEEDED = "budget.exceeded"
BUDGET_UPDATE = "budget.update"
RATE_EXCEEDED = "rate.exceeded"
REQUEST_COMPLETED = "request.completed"
SERVER_START = "server.start"
OPENCLAW_REQUEST = "openclaw.agent.request"
OPENCLAW_SUCCESS = "openclaw.agent.success"
OPENCLAW_ERROR = "openclaw.agent.error"

CATALOGUE: tuple[str, ...] = (
    TOKEN_CREATED, TOKEN_UPDATED, TOKEN_DELETED, TOKEN_EXPIRED, RULE_VIOLATION, RULE_WARNING,
    RULE_MATCH, RULE_MASK, BUDGET_EXCEEDED, BUDGET_UPDATE, RATE_EXCEEDED, REQUEST_COMPLETED,
    SERVER_START, OPENCLAW_REQUEST, OPENCLAW_SUCCESS, OPENCLAW_ERROR,
)  # fmt: skip
# The OpenClaw metadata keys an `openclaw.*` event carries when they are non-empty.
OPENCLAW_KEYS = ("agent_id", "agent_type", "team", "channel", "skill", "environment")


def new_id() -> str:
    """`evt_` + 16 random bytes in lowercase hex."""
    return "evt_" + secrets.token_hex(16)


def rfc3339_nano(moment: datetime) -> str:
    """UTC, Go's RFC3339Nano: fraction with trailing zeros trimmed, none when zero."""
    utc = moment.astimezone(UTC).replace(tzinfo=None)
    text = utc.isoformat(timespec="seconds")
    if utc.microsecond:
        text += f".{utc.microsecond:06d}".rstrip("0")
    return text + "Z"


@dataclass(frozen=True, slots=True)
class Event:
    id: str
    type: str
    timestamp: str  # RFC 3339 UTC
    data: Mapping[str, Any] = field(default_factory=dict)

    def envelope(self) -> bytes:
        """The JSON body sent to webhooks; `data` keys sorted, `data` omitted when empty."""
        body: dict[str, Any] = {"id": self.id, "type": self.type, "timestamp": self.timestamp}
        if self.data:
            body["data"] = dict(sorted(self.data.items()))
        return orjson.dumps(body)


def event(
    kind: str, data: Mapping[str, Any], *, at: datetime | None = None, event_id: str = ""
) -> Event:
    """An event of `kind` happening `at` (default: now)."""
    return Event(event_id or new_id(), kind, rfc3339_nano(at or datetime.now(UTC)), dict(data))


def from_envelope(body: bytes) -> Event:
    """The event an envelope holds (the outbox and the inbound receiver read them back)."""
    parsed = orjson.loads(body)
    if not isinstance(parsed, dict) or not isinstance(parsed.get("id"), str):
        raise ValueError("not an event envelope")
    data = parsed.get("data") or {}
    return Event(parsed["id"], str(parsed.get("type", "")), str(parsed.get("timestamp", "")), data)


# ── signing ──────────────────────────────────────────────────────────────────────────────


def signature(key: str, body: bytes) -> str:
    """The `X-Webhook-Signature` value: `sha256=<hex HMAC-SHA256(key, body)>`."""
    return "sha256=" + hmac.new(key.encode(), body, hashlib.sha256).hexdigest()


def verify_signature(key: str, body: bytes, header: str) -> bool:
    return hmac.compare_digest(signature(key, body), header)


# ── filters ──────────────────────────────────────────────────────────────────────────────


def matches(filters: Sequence[str], kind: str) -> bool:
    """Empty: every type; an entry equal to `kind`; an entry ending in `*`: a prefix."""
    if not filters:
        return True
    for entry in filters:
        if entry.endswith("*"):
            if kind.startswith(entry[:-1]):
                return True
        elif entry == kind:
            return True
    return False


def any_matches(filter_sets: Sequence[Sequence[str]], kind: str) -> bool:
    """Whether any of several webhooks' filters wants `kind`."""
    return any(matches(filters, kind) for filters in filter_sets)


# ── builders (one per catalogue type, with its data keys) ────────────────────────────────


def _prefix(token_hash: str) -> str:
    return token_hash[:HASH_PREFIX]


def token_created(token_hash: str, expires_at: str | None, *, at: datetime | None = None) -> Event:
    data = {"token_hash": _prefix(token_hash), "expires_at": expires_at or ""}
    return event(TOKEN_CREATED, data, at=at)


def token_updated(token_hash: str, expires_at: str | None, *, at: datetime | None = None) -> Event:
    data = {"token_hash": _prefix(token_hash), "expires_at": expires_at or ""}
    return event(TOKEN_UPDATED, data, at=at)


def token_deleted(token_hash: str, *, at: datetime | None = None) -> Event:
    return event(TOKEN_DELETED, {"token_hash": _prefix(token_hash)}, at=at)


def token_expired(token_hash: str, expired_at: str, *, at: datetime | None = None) -> Event:
    data = {"token_hash": _prefix(token_hash), "expired_at": expired_at}
    return event(TOKEN_EXPIRED, data, at=at)


def rule_event(
    kind: str, token_hash: str, model: str, fields: Mapping[str, Any], *, at: datetime | None = None
) -> Event:
    """`rule.violation` (rule_name, message, + OpenClaw keys), `rule.warning` / `rule.match`
    (rule_name, action, message) and `rule.mask` (no more keys)."""
    return event(kind, {"token_hash": _prefix(token_hash), "model": model, **fields}, at=at)


def budget_exceeded(
    token_hash: str, model: str, used: float, requested: float, limit: float,
    *, at: datetime | None = None,
) -> Event:  # fmt: skip
    data = {"token_hash": _prefix(token_hash), "model": model, "used": used,
            "input": requested, "limit": limit}  # fmt: skip
    return event(BUDGET_EXCEEDED, data, at=at)


def budget_update(
    token_hash: str, model: str, input_tokens: int, *, at: datetime | None = None,
    event_id: str = "",
) -> Event:  # fmt: skip
    data = {"token_hash": _prefix(token_hash), "model": model, "input_tokens": input_tokens}
    return event(BUDGET_UPDATE, data, at=at, event_id=event_id)


def rate_exceeded(token_hash: str, model: str, error: str, *, at: datetime | None = None) -> Event:
    data = {"token_hash": _prefix(token_hash), "model": model, "error": error}
    return event(RATE_EXCEEDED, data, at=at)


@dataclass(frozen=True, slots=True)
class Completed:
    """What `request.completed` reports of a finished request."""

    token_hash: str
    model: str
    stream: bool
    status_code: int
    input_tokens: int
    output_tokens: int


def request_completed(done: Completed, *, at: datetime | None = None, event_id: str = "") -> Event:
    data: dict[str, Any] = {
        "token_hash": _prefix(done.token_hash), "model": done.model, "stream": done.stream,
        "status_code": done.status_code, "input_tokens": done.input_tokens,
        "output_tokens": done.output_tokens,
    }  # fmt: skip
    if not done.stream:
        data["error"] = done.status_code >= 400
    return event(REQUEST_COMPLETED, data, at=at, event_id=event_id)


def server_start(
    http_port: int, https_port: int, tls: bool, upstream: str, *, at: datetime | None = None
) -> Event:
    data = {"http_port": http_port, "https_port": https_port, "tls": tls, "upstream": upstream}
    return event(SERVER_START, data, at=at)


def openclaw_agent(
    kind: str, token_hash: str, model: str, status: int, metadata: Mapping[str, str],
    error: str = "", *, at: datetime | None = None, event_id: str = "",
) -> Event:  # fmt: skip
    """`openclaw.agent.request` (status 0), `.success` or `.error` (with `error`)."""
    data: dict[str, Any] = {"token_hash": _prefix(token_hash), "model": model, "status": status}
    data.update((key, value) for key, value in metadata.items() if value)
    if error:
        data["error"] = error
    return event(kind, data, at=at, event_id=event_id)
