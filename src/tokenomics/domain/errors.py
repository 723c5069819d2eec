"""The one error tree of Tokenomics.

Every error we raise on purpose is a `TokenomicsError`. Each knows the HTTP status it maps to
when it reaches a client and carries a message that is safe to show (no secrets, no patterns).
Foreign errors (sqlite, httpx2, yaml) are translated into these at the module boundary.
"""

from __future__ import annotations


class TokenomicsError(Exception):
    """Base of all our errors. `str(err)` is one clear sentence for the user."""

    status: int = 500

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class ConfigError(TokenomicsError):
    """A configuration value is missing, malformed or of the wrong type."""


class PolicyError(TokenomicsError):
    """A policy document does not parse or does not validate."""

    status = 400


class DurationError(TokenomicsError):
    """An expiry or window duration cannot be parsed."""

    status = 400


class StoreError(TokenomicsError):
    """The token store cannot be opened, read or written."""

    status = 503


class NotFoundError(StoreError):
    """A token hash is not in the store."""

    status = 404


class ConflictError(StoreError):
    """A token hash already exists."""

    status = 409


class CryptoError(StoreError):
    """An encrypted record cannot be decrypted (missing or wrong key, tampering)."""


class SecurityError(TokenomicsError):
    """A required secret (hash key) is missing or unusable."""
