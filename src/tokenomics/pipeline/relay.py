"""Relaying the accepted upstream response: buffered, or streamed as it arrives.

Streams are decided by the response content type. Bytes go to the client as they arrive;
SSE is parsed on the side for usage. When the proxy added `stream_options.include_usage`, the
usage-only chunk the client did not ask for is removed again (D13).

Under output rules (D12) an SSE stream goes out event by event through the `StreamGuard`
(each event parsed once, for the accounting and the guard); without them the guard is not on
the path at all. A Gemini JSON-array stream under output rules is read whole and sent as one
body, its chunks checked by the same guard.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import orjson
import trio

from tokenomics.domain.engine import Blocked
from tokenomics.domain.stream_usage import StreamAccounting
from tokenomics.domain.usage import meta_from_response, usage_from_body
from tokenomics.formats.errors import stream_error_event
from tokenomics.pipeline.exchange import ProxyError, Reply
from tokenomics.pipeline.headers import client_headers
from tokenomics.pipeline.rules import scan
from tokenomics.pipeline.stream_guard import StreamGuard, guard_for
from tokenomics.upstream.client import UpstreamError, header, read_all
from tokenomics.upstream.sse import (
    EventFields,
    EventSplitter,
    SSEParser,
    SSETooLarge,
    event_fields,
    split_events,
)

if TYPE_CHECKING:
    from collections.abc import AsyncGenerator

    from tokenomics.pipeline.deps import Deps
    from tokenomics.pipeline.exchange import Exchange
    from tokenomics.upstream.client import UpstreamResponse

MAX_RESPONSE_BYTES = 32 * 1024 * 1024


def _json(text: str) -> Any:
    try:
        return orjson.loads(text)
    except orjson.JSONDecodeError:
        return None


def _payload(data: bytes) -> Any:
    """An event's `data` as JSON (None for `[DONE]` and anything else that is not JSON)."""
    if data == b"[DONE]":
        return None
    try:
        return orjson.loads(data)
    except orjson.JSONDecodeError:  # not JSON, or invalid UTF-8 inside it: read as replaced
        return _json(data.decode("utf-8", "replace"))


def _usage_only(payload: Any) -> bool:
    return isinstance(payload, dict) and "usage" in payload and payload.get("choices") == []


def _read(raw: bytes, accounting: StreamAccounting) -> tuple[EventFields | None, Any]:
    """One whole event's fields and JSON payload (or None), fed to the accounting."""
    fields = event_fields(raw)
    if fields is None:
        return None, None
    payload = _payload(fields[1])
    if isinstance(payload, dict):
        accounting.feed(fields[0], payload)
    return fields, payload


class _Relayed:
    """Upstream bytes relayed as they arrive, each whole event parsed once on the side for the
    accounting; when the proxy asked for usage (D13) whole events go out, minus OpenAI's
    usage-only chunk."""

    blocked: Blocked | None = None

    def __init__(self, accounting: StreamAccounting, strip: bool) -> None:
        self._accounting, self._strip = accounting, strip
        self._split = EventSplitter()

    def feed(self, chunk: bytes) -> bytes:
        whole = self._split.whole(chunk)
        events = split_events(whole) if whole else []
        kept = [raw for raw in events if self._account(raw)]
        if not self._strip:
            return chunk  # as it came, whole events or not
        return whole if len(kept) == len(events) else b"".join(kept)

    def close(self) -> bytes:
        rest = self._split.flush()
        keep = self._account(rest) if rest else False
        return rest if self._strip and keep else b""

    def abort(self) -> bytes:
        return b""

    def _account(self, raw: bytes) -> bool:
        """Account for one event; return whether it goes to the client (when filtering)."""
        _, payload = _read(raw, self._accounting)
        return not (self._strip and _usage_only(payload))


class _Guarded:
    """Output rules on the stream: whole events, each parsed once for the accounting and the
    guard, which decides what goes out (`stream_guard`)."""

    def __init__(self, guard: StreamGuard, accounting: StreamAccounting, strip: bool) -> None:
        self._guard, self._accounting = guard, accounting
        self._split = EventSplitter()
        self._strip = strip

    @property
    def blocked(self) -> Blocked | None:
        return self._guard.blocked

    def feed(self, chunk: bytes) -> bytes:
        return b"".join(self._event(raw) for raw in self._split.feed(chunk))

    def close(self) -> bytes:
        rest = self._split.flush()
        tail = self._event(rest) if rest else b""
        return tail + self._guard.close()

    def abort(self) -> bytes:
        """The upstream broke: what was held goes out (checked and masked)."""
        return self._guard.close()

    def _event(self, raw: bytes) -> bytes:
        fields, payload = _read(raw, self._accounting)
        if fields is None or not fields[1]:  # comments and keep-alives
            return self._guard.feed(raw, None, None)
        name, data = fields
        if self._strip and _usage_only(payload):
            return b""
        text = data.decode("utf-8", "replace")
        return self._guard.feed(raw, name, text if payload is None else payload)


async def _sse(ex: Exchange, deps: Deps, response: UpstreamResponse) -> AsyncGenerator[bytes, None]:
    accounting = StreamAccounting()
    guard = guard_for(ex)
    relayed = (
        _Guarded(guard, accounting, ex.strip_usage)
        if guard is not None
        else _Relayed(accounting, ex.strip_usage)
    )
    idle = float(deps.settings.server.stream_idle_timeout)
    try:
        async for chunk in response.chunks(idle):
            if out := relayed.feed(chunk):
                yield out
            if relayed.blocked is not None:
                return
        if out := relayed.close():
            yield out
    except (UpstreamError, SSETooLarge) as exc:
        ex.error = f"stream broken: {exc}"
        status = exc.status if isinstance(exc, UpstreamError) else 502
        held = relayed.abort()
        if relayed.blocked is None:
            held += stream_error_event(ex.route.family if ex.route else "openai", status, ex.error)
        yield held
    finally:
        if relayed.blocked is not None:
            ex.error = relayed.blocked.log_message.replace("request", "response", 1)
        ex.usage = accounting.result(lambda text: deps.estimator.count(ex.attempt_model, text))
        ex.meta = accounting.meta(dict(response.headers))
        if guard is None:
            ex.relayed_text = (accounting.text, accounting.text_truncated)
        with trio.CancelScope(shield=True):
            await response.aclose()


async def _raw(ex: Exchange, deps: Deps, response: UpstreamResponse) -> AsyncGenerator[bytes, None]:
    """A streamed body that is not SSE (Gemini's JSON array): relayed, parsed at the end."""
    captured: list[bytes] = []
    size = 0
    try:
        async for chunk in response.chunks(float(deps.settings.server.stream_idle_timeout)):
            size += len(chunk)
            if size <= MAX_RESPONSE_BYTES:
                captured.append(chunk)
            yield chunk
    except UpstreamError as exc:
        ex.error = f"stream broken: {exc}"
    finally:
        parsed = _json(b"".join(captured).decode("utf-8", "replace"))
        last = parsed[-1] if isinstance(parsed, list) and parsed else parsed
        body = last if isinstance(last, dict) else None
        ex.usage = usage_from_body(body) if body else None
        ex.meta = meta_from_response(body, dict(response.headers))
        with trio.CancelScope(shield=True):
            await response.aclose()


async def relay(ex: Exchange, deps: Deps) -> Reply:
    response = ex.upstream
    assert response is not None
    headers = client_headers(response.headers)
    content_type = header(response.headers, "content-type")
    if "text/event-stream" in content_type:
        return Reply(response.status, headers, stream=_sse(ex, deps, response))
    guard = guard_for(ex) if ex.stream and response.status == 200 else None
    if ex.stream and response.status == 200 and guard is None:
        return Reply(response.status, headers, stream=_raw(ex, deps, response))
    try:
        body = await read_all(
            response, MAX_RESPONSE_BYTES, float(ex.target.timeout if ex.target else 30)
        )
    except UpstreamError as exc:
        raise ProxyError(exc.status, f"failed to read upstream response: {exc}") from None
    finally:
        with trio.CancelScope(shield=True):
            await response.aclose()
    parsed = (
        _json(body.decode("utf-8", "replace"))
        if "json" in content_type or body[:1] in b"{["
        else None
    )
    if guard is not None and isinstance(parsed, list):
        return Reply(response.status, headers, body=_guarded_array(ex, guard, parsed, response))
    parsed = parsed if isinstance(parsed, dict) else None
    ex.usage = usage_from_body(parsed) if parsed else None
    ex.meta = meta_from_response(parsed, dict(response.headers))
    if parsed is not None and response.status < 400:
        body = _output_rules(ex, parsed, body)
    return Reply(response.status, headers, body=body)


def _output_rules(ex: Exchange, parsed: dict[str, Any], body: bytes) -> bytes:
    """Output rules on a buffered response: a `fail` replaces it with an error in the
    client's API family, a `mask` rewrites the texts (D12)."""
    adapter = ex.route.adapter if ex.route else None
    if adapter is None or ex.resolved is None or not ex.resolved.rules:
        return body
    try:
        masked = scan(ex, ex.resolved.rules, parsed, adapter.response_slots, "output")
    except Blocked as blocked:
        raise ProxyError(403, blocked.message.replace("request", "response", 1)) from None
    return body if masked is parsed else orjson.dumps(masked)


def _guarded_array(
    ex: Exchange, guard: StreamGuard, items: list[Any], response: UpstreamResponse
) -> bytes:
    """A stream that is a JSON array (Gemini without `alt=sse`) under output rules: read
    whole, its chunks go through the stream guard all the same (a secret split across two
    chunks is still masked), and the array is sent as one body."""
    last = items[-1] if items and isinstance(items[-1], dict) else None
    ex.usage = usage_from_body(last) if last else None
    ex.meta = meta_from_response(last, dict(response.headers))
    frames = [guard.feed(b"data: " + orjson.dumps(item) + b"\n\n", None, item) for item in items]
    frames.append(guard.close())
    if guard.blocked is not None:
        ex.error = guard.blocked.log_message.replace("request", "response", 1)
        raise ProxyError(403, guard.blocked.message.replace("request", "response", 1))
    return orjson.dumps([_json(e.data) for e in SSEParser().feed(b"".join(frames))])
