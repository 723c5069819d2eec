"""Token writes shared by the CLI (`tokenomics token …`) and the admin API, so both validate
the same way and say the same thing (`cli.md` §6.4, §8.3). Blocking: the store is SQLite.

Every write goes through `TokenStore`, which emits the write's `token.*` event.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from tokenomics.domain.durations import format_rfc3339, parse_expires
from tokenomics.domain.errors import DurationError, PolicyError
from tokenomics.domain.policy import parse_policy
from tokenomics.domain.tokens import new_token

if TYPE_CHECKING:
    from datetime import datetime

    from tokenomics.domain.tokens import HashKey
    from tokenomics.store.tokens import TokenRecord, TokenStore

CLEAR_ON_CREATE = 'create token: invalid expires_at: "clear" only removes an expiry on update'


def validated_policy(text: str) -> str:
    """`text` when it is a valid policy, else `PolicyError("invalid policy: <reason>")`."""
    try:
        parse_policy(text)
    except PolicyError as exc:
        raise PolicyError(f"invalid policy: {exc}") from None
    return text


def create_expiry(value: str, now: datetime) -> str | None:
    """The expiry of a new token (`7d`, RFC 3339, "" for none); "clear" is refused."""
    expires_at = parse_expires(value, now)
    if expires_at == "clear":
        raise DurationError(CLEAR_ON_CREATE)
    return expires_at


def update_expiry(value: str, now: datetime) -> str | None:
    """The expiry change of an update: None keeps it, "clear" removes it."""
    return parse_expires(value, now) if value else None


def mint(
    store: TokenStore, key: HashKey, text: str, expires_at: str | None, now: datetime
) -> tuple[str, TokenRecord]:
    """Store a new token for a validated policy; the raw token (shown once) and its record."""
    token = new_token()
    record = store.create(key.hash(token), text, expires_at, format_rfc3339(now))
    return token, record
