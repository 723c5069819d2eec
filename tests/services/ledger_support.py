"""Finished records for the ledger tests."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from tokenomics.domain.usage import ResponseMeta, Usage
from tokenomics.services.finished import Finished

A = "a" * 64


def finished(n: int = 1, **overrides: Any) -> Finished:
    """A finished chat exchange; `n` varies the usage (input 10*n, output n)."""
    values: dict[str, Any] = {
        "recorded_at": datetime.now(UTC),
        "started_at": "2026-11-27T10:00:00.000Z",
        "duration_ms": 5,
        "client_request_id": f"tkn_{n:032x}",
        "method": "POST",
        "path": "/v1/chat/completions",
        "token_hash": A,
        "model": "gpt-4o",
        "provider": "openai",
        "status": 200,
        "stream": False,
        "error": "",
        "usage": Usage(input_tokens=10 * n, output_tokens=n),
        "meta": ResponseMeta(finish_reason="stop"),
        "cost_usd": 0.001 * n,
        "retry_count": 0,
        "fallback_model": "",
        "rule_matches": (),
        "metadata": {},
        "memory": None,
        "forwarded": True,
        "request_headers": (("content-type", "application/json"),),
        "request_content_type": "application/json",
        "request_body": b"{}",
        "request_bytes": 2,
        "response_headers": (),
        "response_content_type": "application/json",
    }
    values.update(overrides)
    return Finished(**values)
