"""Finished records for the ledger tests: the shared factory, numbered."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from tests.support.finished import finished as base_finished

from tokenomics.domain.usage import ResponseMeta, Usage
from tokenomics.services.finished import Finished

A = "a" * 64


def finished(n: int = 1, **overrides: Any) -> Finished:
    """A finished chat exchange; `n` varies the usage (input 10*n, output n) and the cost."""
    return base_finished(**{
        "recorded_at": datetime.now(UTC),
        "duration_ms": 5,
        "client_request_id": f"tkn_{n:032x}",
        "token_hash": A,
        "usage": Usage(input_tokens=10 * n, output_tokens=n),
        "meta": ResponseMeta(finish_reason="stop"),
        "cost_usd": 0.001 * n,
        **overrides,
    })  # fmt: skip
