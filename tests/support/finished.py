"""`Finished` records built directly, for the record consumers' tests (memory, events, ledger)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import orjson

from tokenomics.domain.usage import ResponseMeta, Usage
from tokenomics.pipeline.stream_capture import EVENT_BODIES, StreamCapture, is_event_stream
from tokenomics.services.finished import Finished

TOKEN_HASH = "0123456789abcdef" + "f" * 48
RECORDED_AT = datetime(2026, 11, 27, 10, 0, 2, 500_000, tzinfo=UTC)
STARTED_AT = "2026-11-27T10:00:01.250Z"
REQUEST_BODY = b'{"model":"gpt-4o","messages":[{"role":"user","content":"hi"}]}'
REPLY_BODY = b'{"choices":[{"message":{"role":"assistant","content":"hello"}}]}'


def sse(*payloads: str) -> tuple[bytes, ...]:
    """One chunk per `data:` payload, each a complete SSE event."""
    return tuple(f"data: {payload}\n\n".encode() for payload in payloads)


def openai_deltas(*words: str) -> tuple[bytes, ...]:
    """An OpenAI chat stream of `words` as content deltas, ended by `[DONE]`."""
    deltas = [
        orjson.dumps({"choices": [{"index": 0, "delta": {"content": word}}]}).decode()
        for word in words
    ]
    return sse(*deltas, "[DONE]")


def finished(**overrides: Any) -> Finished:
    """A forwarded, successful, buffered chat completion; override any field."""
    fields: dict[str, Any] = {
        "recorded_at": RECORDED_AT,
        "started_at": STARTED_AT,
        "duration_ms": 1250,
        "client_request_id": "req_1",
        "method": "POST",
        "path": "/v1/chat/completions",
        "token_hash": TOKEN_HASH,
        "model": "gpt-4o",
        "provider": "openai",
        "status": 200,
        "stream": False,
        "error": "",
        "usage": Usage(input_tokens=3, output_tokens=1),
        "meta": ResponseMeta(),
        "cost_usd": None,
        "retry_count": 0,
        "fallback_model": "",
        "rule_matches": (),
        "metadata": {},
        "memory": None,
        "forwarded": True,
        "request_headers": (("content-type", "application/json"), ("user-agent", "sdk/1.0")),
        "request_content_type": "application/json",
        "request_body": REQUEST_BODY,
        "request_bytes": len(REQUEST_BODY),
        "response_headers": (("content-type", "application/json"), ("x-request-id", "r1")),
        "response_content_type": "application/json",
        "response_body": REPLY_BODY,
        "response_bytes": len(REPLY_BODY),
        "first_byte_ms": 1000,
    }
    fields.update(overrides)
    return Finished(**fields)


def streamed(chunks: tuple[bytes, ...], **overrides: Any) -> Finished:
    """A forwarded, successful SSE stream that sent `chunks` to the client, read as the
    proxy reads them for memory and events (any content type may be given)."""
    fields: dict[str, Any] = {
        "stream": True,
        "response_headers": (("content-type", "text/event-stream"),),
        "response_content_type": "text/event-stream",
        "response_body": b"",
        "response_bytes": sum(len(chunk) for chunk in chunks),
    }
    fields.update(overrides)
    sse = is_event_stream(fields["response_content_type"])
    fields.setdefault("response_stream", StreamCapture.of(chunks, sse, EVENT_BODIES))
    return finished(**fields)
