"""The token store: wrapper-token hashes bound to policies, with optional encrypted policies.

Operations and messages follow `core.md` §3.4. Only hashes are stored, never raw tokens.
Every write appends its `token.*` event to the outbox in the same transaction (decision D19),
so whoever writes (CLI, server, admin API, remote sync) reaches the webhooks.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from tokenomics.domain import events
from tokenomics.domain.durations import parse_rfc3339
from tokenomics.domain.errors import (
    ConflictError,
    CryptoError,
    NotFoundError,
    PolicyError,
    StoreError,
    TokenomicsError,
)
from tokenomics.domain.policy import Policy, parse_policy
from tokenomics.store.db import Database
from tokenomics.store.encryption import WRITE_VERSION, Cipher, associated_data
from tokenomics.store.outbox import append_in

if TYPE_CHECKING:
    from pathlib import Path

_COLUMNS = "hash, policy, encrypted, enc_version, created_at, expires_at"
_Row = tuple[object, ...]


@dataclass(frozen=True, slots=True)
class TokenRecord:
    """A stored token. `policy` is None and `error` says why when the record cannot be read."""

    token_hash: str
    policy_raw: str
    created_at: str
    expires_at: str | None
    policy: Policy | None = None
    error: str = ""


def _check_expires(expires_at: str | None) -> None:
    if expires_at and parse_rfc3339(expires_at) is None:
        raise StoreError(f'invalid expires_at: "{expires_at}" is not an RFC 3339 timestamp')


class TokenStore:
    def __init__(self, db: Database, cipher: Cipher | None, key_env: str = "") -> None:
        self._db = db
        self._cipher = cipher
        self._key_env = key_env or "the encryption key variable"

    @classmethod
    def open(cls, path: Path, cipher: Cipher | None = None, key_env: str = "") -> TokenStore:
        return cls(Database.open(path), cipher, key_env)

    @property
    def db(self) -> Database:
        return self._db

    def close(self) -> None:
        self._db.close()

    # ── reading ──────────────────────────────────────────────────────────────────────────

    def _policy_text(self, row: _Row) -> str:
        token_hash, plain, encrypted, version, _, expires_at = row
        if not encrypted:
            return str(plain)
        if self._cipher is None:
            raise CryptoError(
                f"encrypted record but no encryption key configured: set {self._key_env}"
            )
        aad = associated_data(str(token_hash), expires_at) if version == 2 else None  # type: ignore[arg-type]
        return self._cipher.decrypt(str(encrypted), aad)

    def _record(self, row: _Row) -> TokenRecord:
        token_hash, created_at, expires_at = str(row[0]), str(row[4]), row[5]
        expires = str(expires_at) if expires_at else None
        try:
            raw = self._policy_text(row)
            policy = parse_policy(raw)
        except CryptoError as exc:
            return TokenRecord(token_hash, "", created_at, expires, error=exc.message)
        except PolicyError as exc:
            return TokenRecord(token_hash, raw, created_at, expires, error=f"parse policy: {exc}")
        return TokenRecord(token_hash, raw, created_at, expires, policy)

    def get(self, token_hash: str) -> TokenRecord:
        """The record, expired or not. Raises `NotFoundError`, or the read error of the record."""
        rows = self._db.query(f"SELECT {_COLUMNS} FROM tokens WHERE hash = ?", (token_hash,))
        if not rows:
            raise NotFoundError("token not found")
        record = self._record(rows[0])
        if record.error:
            raise CryptoError(record.error) if record.policy_raw == "" else StoreError(record.error)
        return record

    def list(self) -> list[TokenRecord]:
        """All records in hash order, expired ones included; unreadable ones carry `error`."""
        rows = self._db.query(f"SELECT {_COLUMNS} FROM tokens ORDER BY hash")
        return [self._record(row) for row in rows]

    def hashes_starting_with(self, prefix: str, limit: int = 10) -> tuple[str, ...]:
        """Up to `limit` stored hashes that start with `prefix`, in order."""
        rows = self._db.query(
            "SELECT hash FROM tokens WHERE substr(hash, 1, ?) = ? ORDER BY hash LIMIT ?",
            (len(prefix), prefix, limit),
        )
        return tuple(str(row[0]) for row in rows)

    def generation(self) -> int:
        """A number that changes whenever any token is created, updated or deleted."""
        return int(self._db.query("SELECT value FROM meta WHERE key = 'tokens_generation'")[0][0])

    def count(self) -> int:
        return int(self._db.query("SELECT count(*) FROM tokens")[0][0])

    # ── writing ──────────────────────────────────────────────────────────────────────────

    def _sealed(self, token_hash: str, text: str, expires_at: str | None) -> tuple[str, str, int]:
        if self._cipher is None:
            return text, "", 0
        aad = associated_data(token_hash, expires_at)
        return "", self._cipher.encrypt(text, aad), WRITE_VERSION

    def create(
        self, token_hash: str, policy_text: str, expires_at: str | None, created_at: str
    ) -> TokenRecord:
        """Validate, then insert if absent (one transaction)."""
        policy = parse_policy(policy_text)
        _check_expires(expires_at)
        plain, encrypted, version = self._sealed(token_hash, policy_text, expires_at)
        with self._db.write() as conn:
            if conn.execute("SELECT 1 FROM tokens WHERE hash = ?", (token_hash,)).fetchone():
                raise ConflictError("create token: token hash already exists")
            conn.execute(
                f"INSERT INTO tokens ({_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?)",
                (token_hash, plain, encrypted, version, created_at, expires_at),
            )
            append_in(conn, [events.token_created(token_hash, expires_at)])
        return TokenRecord(token_hash, policy_text, created_at, expires_at, policy)

    def update(self, token_hash: str, policy_text: str | None, expires: str | None) -> TokenRecord:
        """Replace the policy (None keeps it) and/or the expiry (None keeps, "clear" removes)."""
        if policy_text is not None:
            parse_policy(policy_text)
        if expires not in (None, "clear"):
            _check_expires(expires)
        with self._db.write() as conn:
            row = conn.execute(
                f"SELECT {_COLUMNS} FROM tokens WHERE hash = ?", (token_hash,)
            ).fetchone()
            if row is None:
                raise NotFoundError("update token: token not found")
            text = policy_text if policy_text is not None else self._policy_text(row)
            new_expiry = row[5] if expires is None else (None if expires == "clear" else expires)
            plain, encrypted, version = self._sealed(token_hash, text, new_expiry)
            conn.execute(
                "UPDATE tokens SET policy = ?, encrypted = ?, enc_version = ?, expires_at = ?"
                " WHERE hash = ?",
                (plain, encrypted, version, new_expiry, token_hash),
            )
            if new_expiry != row[5]:  # announced again when the new expiry passes
                conn.execute("DELETE FROM expiry_notices WHERE hash = ?", (token_hash,))
            append_in(conn, [events.token_updated(token_hash, new_expiry)])
        return self.get(token_hash)

    def delete(self, token_hash: str) -> None:
        with self._db.write() as conn:
            if conn.execute("DELETE FROM tokens WHERE hash = ?", (token_hash,)).rowcount == 0:
                raise NotFoundError("token not found")
            conn.execute("DELETE FROM expiry_notices WHERE hash = ?", (token_hash,))
            append_in(conn, [events.token_deleted(token_hash)])


__all__ = ["TokenRecord", "TokenStore", "TokenomicsError"]
