"""`core.md` §3 and §11 scenarios 45-52: the SQLite token store and at-rest encryption."""

import base64
import hashlib
import sqlite3
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from tokenomics.domain.errors import (
    ConflictError,
    CryptoError,
    NotFoundError,
    PolicyError,
    StoreError,
)
from tokenomics.store.db import SCHEMA_VERSION, Database
from tokenomics.store.encryption import Cipher, associated_data
from tokenomics.store.tokens import TokenStore

POLICY = '{"base_key_env":"OPENAI_API_KEY"}'
CREATED = "2026-01-01T00:00:00Z"
H1, H2 = "a" * 64, "b" * 64
VECTOR = "AAAAAAAAAAAAAAAALA9vxU/MEY6VaFytUA1QFJkd7AhJY5QGzg9xI4zlXjUcNO/NVtecWGUgCg=="


@pytest.fixture
def db_path(tmp_path: Path) -> Path:
    return tmp_path / "data" / "tokenomics.db"


def raw_row(path: Path, token_hash: str) -> tuple[object, ...]:
    with sqlite3.connect(path) as conn:
        row = conn.execute(
            "SELECT policy, encrypted, enc_version, expires_at FROM tokens WHERE hash = ?",
            (token_hash,),
        ).fetchone()
    assert row is not None
    return tuple(row)


def test_create_get_list_delete_round_trip(db_path: Path) -> None:
    store = TokenStore.open(db_path)
    store.create(H2, POLICY, None, CREATED)
    store.create(H1, '{"base_key_env":"K","max_tokens":5}', "2030-01-01T00:00:00Z", CREATED)
    record = store.get(H1)
    assert record.policy is not None and record.policy.max_tokens == 5
    assert record.expires_at == "2030-01-01T00:00:00Z" and record.created_at == CREATED
    assert [r.token_hash for r in store.list()] == [H1, H2]
    store.delete(H1)
    with pytest.raises(NotFoundError, match="^token not found$"):
        store.get(H1)
    with pytest.raises(NotFoundError, match="^token not found$"):
        store.delete(H1)
    assert store.count() == 1


def test_store_file_and_directory_are_private(db_path: Path) -> None:
    TokenStore.open(db_path).close()
    assert db_path.stat().st_mode & 0o777 == 0o600
    assert db_path.parent.stat().st_mode & 0o777 == 0o700


def test_duplicate_hash_and_bad_input_write_nothing(db_path: Path) -> None:
    store = TokenStore.open(db_path)
    store.create(H1, POLICY, None, CREATED)
    with pytest.raises(ConflictError, match="token hash already exists"):
        store.create(H1, POLICY, None, CREATED)
    with pytest.raises(PolicyError, match="base_key_env is required"):
        store.create(H2, "{}", None, CREATED)
    with pytest.raises(StoreError, match="invalid expires_at"):
        store.create(H2, POLICY, "not-a-date", CREATED)
    with pytest.raises(StoreError, match="invalid expires_at"):
        store.create(H2, POLICY, "clear", CREATED)
    assert store.count() == 1


def test_update_keeps_what_it_is_not_given(db_path: Path) -> None:
    store = TokenStore.open(db_path)
    store.create(H1, POLICY, "2030-01-01T00:00:00Z", CREATED)
    updated = store.update(H1, '{"base_key_env":"OTHER"}', None)
    assert updated.expires_at == "2030-01-01T00:00:00Z"
    assert updated.policy is not None and updated.policy.base_key_env == "OTHER"
    assert updated.created_at == CREATED
    assert (
        store.update(H1, None, "2031-01-01T00:00:00+02:00").policy_raw == '{"base_key_env":"OTHER"}'
    )
    assert store.update(H1, None, "clear").expires_at is None
    with pytest.raises(NotFoundError, match="^update token: token not found$"):
        store.update(H2, POLICY, None)
    with pytest.raises(PolicyError):
        store.update(H1, "{}", None)
    assert store.get(H1).policy_raw == '{"base_key_env":"OTHER"}'


def test_policy_text_is_stored_verbatim(db_path: Path) -> None:
    text = '{ "max_tokens": 7,\n  "base_key_env": "K" }'
    store = TokenStore.open(db_path)
    store.create(H1, text, None, CREATED)
    assert store.get(H1).policy_raw == text
    assert raw_row(db_path, H1)[0] == text


def test_encrypted_records_hide_the_policy_and_bind_hash_and_expiry(db_path: Path) -> None:
    store = TokenStore.open(db_path, Cipher.from_secret("secret-key-1"))
    store.create(H1, POLICY, "2030-01-01T00:00:00Z", CREATED)
    plain, encrypted, version, _expires = raw_row(db_path, H1)
    assert plain == "" and version == 2 and isinstance(encrypted, str)
    assert "OPENAI_API_KEY" not in encrypted
    blob = base64.b64decode(encrypted)
    assert len(blob) >= 28
    key = hashlib.sha256(b"secret-key-1").digest()
    aad = associated_data(H1, "2030-01-01T00:00:00Z")
    assert AESGCM(key).decrypt(blob[:12], blob[12:], aad).decode() == POLICY
    assert store.get(H1).policy_raw == POLICY
    # Moving the ciphertext to another token, or extending the expiry in the file, breaks it.
    with sqlite3.connect(db_path) as conn:
        conn.execute("UPDATE tokens SET expires_at = '2099-01-01T00:00:00Z' WHERE hash = ?", (H1,))
    with pytest.raises(CryptoError, match="wrong encryption key, or the record was altered"):
        store.get(H1)


def test_legacy_vector_of_the_original_decrypts(db_path: Path) -> None:
    assert Cipher.from_secret("secret-key-1").decrypt(VECTOR, None) == '{"base_key_env":"TEST_KEY"}'
    TokenStore.open(db_path).close()
    with sqlite3.connect(db_path) as conn:
        conn.execute(
            "INSERT INTO tokens (hash, policy, encrypted, enc_version, created_at) VALUES (?, '', ?, 1, ?)",
            (H1, VECTOR, CREATED),
        )
    record = TokenStore.open(db_path, Cipher.from_secret("secret-key-1")).get(H1)
    assert record.policy is not None and record.policy.base_key_env == "TEST_KEY"


def test_reading_without_or_with_the_wrong_key_fails_clearly(db_path: Path) -> None:
    TokenStore.open(db_path, Cipher.from_secret("A")).create(H1, POLICY, None, CREATED)
    TokenStore.open(db_path).create(H2, POLICY, None, CREATED)  # a plaintext record
    without = TokenStore.open(db_path, None, "TOKENOMICS_ENCRYPTION_KEY")
    with pytest.raises(
        CryptoError, match="no encryption key configured: set TOKENOMICS_ENCRYPTION_KEY"
    ):
        without.get(H1)
    wrong = TokenStore.open(db_path, Cipher.from_secret("B"))
    listed = {r.token_hash: r for r in wrong.list()}
    assert listed[H1].policy is None and "wrong encryption key" in listed[H1].error
    assert listed[H2].policy is not None  # plaintext stays readable with a key configured
    with pytest.raises(CryptoError):
        wrong.update(H1, None, "clear")


def test_schema_is_versioned_and_a_newer_store_is_refused(db_path: Path) -> None:
    db = Database.open(db_path)
    assert db.schema_version == SCHEMA_VERSION
    db.close()
    with sqlite3.connect(db_path) as conn:
        conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    with pytest.raises(StoreError, match="newer than this Tokenomics understands"):
        Database.open(db_path)


def test_not_a_database_is_a_clear_error(db_path: Path) -> None:
    db_path.parent.mkdir(parents=True)
    db_path.write_bytes(b"this is not sqlite" * 100)
    with pytest.raises(StoreError, match="not a Tokenomics token store"):
        TokenStore.open(db_path)


def test_data_version_reveals_writes_from_another_connection(db_path: Path) -> None:
    watcher = TokenStore.open(db_path)
    before = watcher.db.data_version()
    writer = TokenStore.open(db_path)
    writer.create(H1, POLICY, None, CREATED)
    assert watcher.db.data_version() != before
    assert [r.token_hash for r in watcher.list()] == [H1]
