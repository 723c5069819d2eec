"""Memory markdown entries of one finished exchange (`cli.md` §7.6, §7.7), sans-I/O.

An entry is `## <RFC 3339 UTC> | <key> | <role> | <model>`, a blank line, the content, a blank
line, `---` and a blank line. The key is the ledger session id (ledger memory) or the first 16
hex characters of the token hash (policy memory). Roles: `request`, `response`, `event`.

Headers are the few that matter and each body section is cut to a size (`memory_limits`).
Only exchanges that went upstream are written: a request rejected locally sent nothing, and a
request blocked by a `fail` rule must not leave its blocked text on disk (D12). What is written
is what was sent upstream and what the client received, both masked by rules. Buffered replies
with a status ≥ 400 are left out; streamed ones are written (`cli.md` §7.6).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import orjson

from tokenomics.domain.durations import format_rfc3339
from tokenomics.domain.memo import remember
from tokenomics.pipeline.stream_capture import StreamCapture, is_event_stream
from tokenomics.services.capture import (
    header_lines,
    parse_time,
    sanitise,
    text_of,
)
from tokenomics.services.memory_limits import clip, clip_kept, kept_headers, request_text

if TYPE_CHECKING:
    from collections.abc import Callable, Iterable
    from datetime import datetime

    from tokenomics.services.finished import Finished, Headers

TRUNCATED = "[assistant content truncated for memory]"
_EVENT_FIELDS = (
    ("status_code", "Status"),
    ("content_type", "Content-Type"),
    ("stream", "Stream"),
    ("chunk_index", "Chunk-Index"),
    ("retry_count", "Retry-Count"),
    ("error", "Error"),
)


def entry(moment: datetime | str, key: str, role: str, model: str, content: str) -> str:
    """One entry; `moment` as a datetime or already formatted (`format_rfc3339`)."""
    when = moment if isinstance(moment, str) else format_rfc3339(moment)
    header = f"## {when} | {key} | {role} | {sanitise(model)}"
    return f"{header}\n\n{content.rstrip(chr(10))}\n\n---\n\n"


def exchange_entries(f: Finished, key: str, events: Iterable[dict[str, Any]] = ()) -> str:
    """The request entry, the response entry (when kept), then one entry per event."""
    if not f.forwarded:
        return ""
    parts = [entry(_started(f), key, "request", f.model, request_content(f))]
    response = response_content(f)
    if response is not None:
        parts.append(entry(f.recorded_at, key, "response", f.model, response))
    for event in events:
        moment = parse_time(str(event.get("timestamp", "")), f.recorded_at)
        parts.append(entry(moment, key, "event", f.model, event_content(event)))
    return "".join(parts)


def _started(f: Finished) -> datetime | str:
    """When the exchange started, to the second: `Requests` writes `started_at` in UTC with
    milliseconds (`2025-01-02T03:04:05.678Z`), whose first 19 characters are that (a parse and
    a format per record otherwise); anything else is parsed."""
    text = f.started_at
    if len(text) == 24 and text[19] == "." and text[23] == "Z" and text[:19].isascii():
        return f"{text[:19]}Z"
    return parse_time(text, f.recorded_at)


def redis_entries(f: Finished) -> list[str]:
    """The exchange's policy-memory entries for Redis (`cli.md` §7.7): `## <ts> | <role> |
    <model>`, a blank line, the content; request then response (when kept)."""
    if not f.forwarded:
        return []
    started = parse_time(f.started_at, f.recorded_at)
    model = sanitise(f.model)
    items = [(started, "request", request_content(f))]
    response = response_content(f)
    if response is not None:
        items.append((f.recorded_at, "response", response))
    return [f"## {format_rfc3339(t)} | {role} | {model}\n\n{text}" for t, role, text in items]


def request_content(f: Finished) -> str:
    body = body_text(f.request_body, f.request_bytes, f.request_content_type, request_text)
    return _message(f.request_content_type, "Request-Headers:", f.request_headers, body)


def response_content(f: Finished) -> str | None:
    """The response's content; None for a buffered reply with a status ≥ 400."""
    captured = f.response_stream
    if f.stream and is_event_stream(f.response_content_type):
        captured = captured or StreamCapture(sse=True)
        body = stream_text(captured, f.response_bytes, f.response_text)
    elif f.stream:  # a stream that is not SSE (a Gemini JSON array): its bytes in order
        kept = b"".join(captured.chunks) if captured is not None else b""
        body = body_text(kept, f.response_bytes, f.response_content_type)
    elif f.status >= 400:
        return None
    else:
        body = body_text(f.response_body, f.response_bytes, f.response_content_type)
    return _message(f.response_content_type, "Response-Headers:", f.response_headers, body)


def body_text(
    body: bytes, total: int, content_type: str, shorten: Callable[[str], str] = clip
) -> str:
    """The body as text (`shorten`ed for memory), `(empty)`, or `[binary, <n> bytes]`; a body
    cut at the capture limit says so."""
    if not body:
        return "(empty)"
    text = text_of(body, total, content_type)
    if text is None:
        return f"[binary, {total} bytes]"
    text = shorten(text)
    if total > len(body):
        text += f"\n[body truncated for memory: {total} bytes in full]"
    return text


def stream_text(captured: StreamCapture, total: int, known: tuple[str, bool] | None = None) -> str:
    """`[streaming sse]`, the numbered `data:` payloads and the assistant text they carry.

    The capture is of what the client received, so the text is the masked one; `known` is
    that text (and whether it was cut) when the relay already read it.
    """
    captured.close()  # what the request left unread (a no-op once closed)
    text, truncated = known or (captured.text.text, captured.text.text_truncated)
    lines = ["[streaming sse]", "", "SSE events:"]
    numbered = captured.numbered
    lines.append(clip_kept(numbered, _sanitise_payloads) if numbered.length else "(none captured)")
    lines += ["", "Captured assistant text:", clip(sanitise(text)) or "(none)"]
    if truncated or total > captured.kept_bytes:
        lines += ["", TRUNCATED]
    return "\n".join(lines)


def _sanitise_payloads(text: str) -> str:
    """Payloads as shown: invalid UTF-8 (decoded as U+FFFD) as `?`, like every other text."""
    return sanitise(text.replace("\ufffd", "?"))


def event_content(event: dict[str, Any]) -> str:
    """`Event: <type>`, the event's fields one a line, its headers (sorted), and its body."""
    lines = [f"Event: {event.get('type', '')}"]
    if event.get("method"):
        lines.append(f"Request: {event['method']} {sanitise(str(event.get('path', '')))}")
    for key, label in _EVENT_FIELDS:
        value = event.get(key)
        if value:
            lines.append(f"{label}: {'true' if value is True else sanitise(str(value))}")
    headers = event.get("headers") or {}
    if headers:
        pairs = [(name, value) for name, values in headers.items() for value in values]
        lines += ["Headers:", *header_lines(kept_headers(pairs))]
    body = event.get("body")
    lines += ["", "Body:", clip(sanitise(body)) if body else "(empty)"]
    return "\n".join(lines)


def _message(content_type: str, title: str, headers: Headers, body: str) -> str:
    lines = [f"Content-Type: {sanitise(content_type) or '(none)'}", title]
    lines += _header_lines(tuple(kept_headers(headers)))
    return "\n".join([*lines, "", "Body:", body])


# The header lines of the kept headers, which repeat from one request to the next.
_LINES: dict[Headers, list[str]] = {}
LINES_LIMIT = 256


def _header_lines(kept: Headers) -> list[str]:
    lines = _LINES.get(kept)
    if lines is None:
        lines = remember(_LINES, kept, header_lines(kept) or ["  (none)"], LINES_LIMIT)
    return lines


def _json(text: str) -> Any:
    try:
        return orjson.loads(text)
    except orjson.JSONDecodeError:
        return None
