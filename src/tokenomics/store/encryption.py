"""At-rest encryption of stored policies with AES-256-GCM (`core.md` §3.3).

Key = SHA-256 of the secret in `security.encryption_key_env`. Stored value = base64 of
nonce(12) || ciphertext || tag(16). Version 1 (the original's format) has no associated data;
version 2, which we write, binds the ciphertext to the token hash and its expiry, so a record
cannot be moved to another token or given a longer life by editing the database.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import os
from dataclasses import dataclass

from tokenomics.domain.errors import CryptoError

NONCE_SIZE = 12
WRITE_VERSION = 2


def associated_data(token_hash: str, expires_at: str | None) -> bytes:
    return f"tokenomics-v2|{token_hash}|{expires_at or ''}".encode()


@dataclass(frozen=True, slots=True)
class Cipher:
    key: bytes

    @classmethod
    def from_secret(cls, secret: str) -> Cipher:
        return cls(hashlib.sha256(secret.encode("utf-8")).digest())

    def encrypt(self, plaintext: str, aad: bytes | None, nonce: bytes | None = None) -> str:
        from cryptography.hazmat.primitives.ciphers.aead import AESGCM

        nonce = nonce if nonce is not None else os.urandom(NONCE_SIZE)
        sealed = AESGCM(self.key).encrypt(nonce, plaintext.encode("utf-8"), aad)
        return base64.b64encode(nonce + sealed).decode("ascii")

    def decrypt(self, stored: str, aad: bytes | None) -> str:
        from cryptography.exceptions import InvalidTag
        from cryptography.hazmat.primitives.ciphers.aead import AESGCM

        try:
            blob = base64.b64decode(stored, validate=True)
        except (binascii.Error, ValueError):
            raise CryptoError("decrypt policy: the stored value is not valid base64") from None
        if len(blob) < NONCE_SIZE + 16:
            raise CryptoError("decrypt policy: the stored value is too short")
        try:
            plain = AESGCM(self.key).decrypt(blob[:NONCE_SIZE], blob[NONCE_SIZE:], aad)
        except InvalidTag:
            raise CryptoError(
                "decrypt policy: wrong encryption key, or the record was altered"
            ) from None
        return plain.decode("utf-8")
