"""Wrapper tokens (`tkn_` + UUIDv4) and their HMAC-SHA256 hashes (`core.md` §3.1)."""

from __future__ import annotations

import functools
import hashlib
import hmac
import re
import uuid
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from tokenomics.domain.errors import SecurityError

if TYPE_CHECKING:
    from collections.abc import Callable

TOKEN_PREFIX = "tkn_"
TOKEN_RE = re.compile(r"tkn_[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}")
HASH_RE = re.compile(r"[0-9a-f]{64}")
_MEMO_SIZE = 4096


def new_token() -> str:
    """A fresh wrapper token with 122 bits of randomness (uuid4 uses os.urandom)."""
    return TOKEN_PREFIX + str(uuid.uuid4())


@dataclass(frozen=True, slots=True)
class HashKey:
    """The HMAC key for token hashes, read from the variable named by `security.hash_key_env`."""

    secret: bytes = field(repr=False)  # never in a log line or a traceback
    # Credentials seen lately and their hashes: one HMAC per distinct credential, not per
    # request (~3 us each). Bounded; the raw tokens are in the process's memory anyway.
    _memo: Callable[[str], str] = field(init=False, compare=False, repr=False)

    def __post_init__(self) -> None:
        memo = functools.lru_cache(maxsize=_MEMO_SIZE)(functools.partial(hash_token, self.secret))
        object.__setattr__(self, "_memo", memo)

    @classmethod
    def from_env(cls, environ: dict[str, str] | None, var_name: str) -> HashKey:
        value = (environ or {}).get(var_name, "")
        if not value:
            raise SecurityError(
                f"the token hash key is not set: export {var_name} with a long random secret "
                f"(for example: export {var_name}=$(openssl rand -hex 32)) and keep it stable, "
                "because changing it invalidates every issued token"
            )
        return cls(value.encode("utf-8"))

    def hash(self, token: str) -> str:
        return self._memo(token)


def hash_token(key: bytes, token: str) -> str:
    """Lowercase hex HMAC-SHA256 of the raw token (64 chars)."""
    return hmac.new(key, token.encode("utf-8"), hashlib.sha256).hexdigest()
