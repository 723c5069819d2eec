"""Communication events of one finished exchange (`cli.md` §7.3 CommunicationEvent), sans-I/O.

`communication_events(f)` returns, in order:

* `request.received` — method, path, content type, headers (credentials removed), the body as
  sent upstream (a sample up to 512 KiB, or `[binary]`) and its full size;
* `response.started` — status, content type, headers, `stream`;
* streamed replies: one `response.chunk` per SSE event (`body` = its `data:` payload) or, for a
  stream that is not SSE, per relayed chunk, with a 1-based `chunk_index`. At most
  `max_chunks` (256) chunk events are listed; the final event then carries `chunks_omitted`
  (how many were left out) next to `chunk_count` (all chunks captured);
* buffered replies: `response.body` with the body sample;
* `response.error` when the exchange failed (an error text or a status ≥ 400), else
  `response.completed`, with `body_bytes` = what the client received in full.

Timestamps (RFC 3339 UTC, milliseconds): the request at `started_at`, the response's start and
its chunks at `started_at + first_byte_ms` (chunks are not timed one by one), the body and the
final event at `recorded_at`. Empty optional fields are omitted, like the original's
`omitempty`. The contents are what the client and the upstream saw: masked by rules.
"""

from __future__ import annotations

from datetime import timedelta
from typing import TYPE_CHECKING, Any

from tokenomics.domain.durations import format_rfc3339_ms
from tokenomics.pipeline.stream_capture import EVENT_BODIES
from tokenomics.services.capture import (
    parse_time,
    safe_headers,
    sanitise,
    text_of,
)

if TYPE_CHECKING:
    from tokenomics.pipeline.stream_capture import StreamCapture
    from tokenomics.services.finished import Finished

MAX_CHUNK_EVENTS = EVENT_BODIES
BINARY = "[binary]"
Event = dict[str, Any]


def communication_events(f: Finished, *, max_chunks: int = MAX_CHUNK_EVENTS) -> list[Event]:
    started = parse_time(f.started_at, f.recorded_at)
    first_byte = (
        started + timedelta(milliseconds=f.first_byte_ms)
        if f.first_byte_ms is not None
        else f.recorded_at
    )
    events = [_request(f, format_rfc3339_ms(started))]
    events.append(_event(f, "response.started", format_rfc3339_ms(first_byte), _response_start(f)))
    done = format_rfc3339_ms(f.recorded_at)
    final: Event = {}
    captured = f.response_stream
    if f.stream and captured is not None and captured.kept_bytes:
        bodies, count = chunk_bodies(captured, f.response_content_type)
        for index, body in enumerate(bodies[:max_chunks], start=1):
            fields = {"chunk_index": index, "body": body, "stream": True}
            events.append(_event(f, "response.chunk", format_rfc3339_ms(first_byte), fields))
        final = {"chunk_count": count, "chunks_omitted": max(0, count - max_chunks)}
    elif f.response_body:
        fields = {
            "status_code": f.status,
            "content_type": f.response_content_type,
            "body": _sample(f.response_body, f.response_bytes, f.response_content_type),
            "body_bytes": f.response_bytes,
        }
        events.append(_event(f, "response.body", done, fields))
    events.append(_final(f, done, final))
    return events


def chunk_bodies(captured: StreamCapture, content_type: str) -> tuple[list[str], int]:
    """The first `data:` payloads of an SSE stream (`[DONE]` included), else each chunk as
    text; and how many there were in all."""
    if not captured.sse:  # nothing to read: the chunks as they were
        chunks = captured.chunks
        return [_sample(chunk, len(chunk), content_type) for chunk in chunks], len(chunks)
    captured.close()  # what the request left unread (a no-op once closed)
    # Invalid UTF-8 is decoded as U+FFFD; memory and events show it as `?`.
    return [sanitise(body.replace("\ufffd", "?")) for body in captured.bodies], captured.payloads


def _request(f: Finished, timestamp: str) -> Event:
    fields: Event = {
        "method": f.method,
        "path": f.path,
        "content_type": f.request_content_type,
        "headers": safe_headers(f.request_headers),
        "stream": f.stream,
    }
    if f.request_body:
        fields["body"] = _sample(f.request_body, f.request_bytes, f.request_content_type)
    fields["body_bytes"] = f.request_bytes
    return _event(f, "request.received", timestamp, fields)


def _response_start(f: Finished) -> Event:
    return {
        "status_code": f.status,
        "content_type": f.response_content_type,
        "headers": safe_headers(f.response_headers),
        "stream": f.stream,
    }


def _final(f: Finished, timestamp: str, extra: Event) -> Event:
    failed = bool(f.error) or f.status >= 400
    fields: Event = {
        "status_code": f.status,
        "stream": f.stream,
        "retry_count": f.retry_count,
        "error": f.error,
        "body_bytes": f.response_bytes,
        **extra,
    }
    return _event(f, "response.error" if failed else "response.completed", timestamp, fields)


def _event(f: Finished, kind: str, timestamp: str, fields: Event) -> Event:
    """Key order: timestamp, type, then the common fields and this event's, empties omitted."""
    event: Event = {"timestamp": timestamp, "type": kind}
    common = {"token_hash": f.hash16, "model": f.model, "provider": f.provider}
    for key, value in (*common.items(), *fields.items()):
        if value not in ("", 0, None, False, {}, []):
            event[key] = value
    return event


def _sample(body: bytes, total: int, content_type: str) -> str:
    text = text_of(body, total, content_type)
    return BINARY if text is None else text
