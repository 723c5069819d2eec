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

from bisect import bisect_right
from itertools import accumulate
from typing import TYPE_CHECKING, Any

import orjson
import trio

from tokenomics.domain.errors import Blocked, ProxyError, UpstreamError
from tokenomics.domain.lazy_stream_usage import LazyStreamAccounting, marks
from tokenomics.domain.stream_usage import StreamAccounting
from tokenomics.domain.usage import meta_from_response, usage_from_body
from tokenomics.formats.errors import stream_error_event
from tokenomics.pipeline.exchange import Reply
from tokenomics.pipeline.headers import client_headers
from tokenomics.pipeline.rules import scan
from tokenomics.pipeline.stream_guard import StreamGuard, guard_for
from tokenomics.upstream.client import close_response, header, read_all
from tokenomics.upstream.sse import (
    EventFields,
    EventSplitter,
    SSETooLarge,
    all_event_fields,
    event_fields,
    split_events,
)

if TYPE_CHECKING:
    from collections.abc import AsyncGenerator

    from tokenomics.pipeline.deps import Deps
    from tokenomics.pipeline.exchange import Exchange
    from tokenomics.upstream.client import UpstreamResponse

MAX_RESPONSE_BYTES = 32 * 1024 * 1024


def _json(body: bytes) -> Any:
    """The body as JSON, invalid UTF-8 read as U+FFFD; None when it is not JSON. Read as bytes
    first: decoding a valid body to a str only to parse it copied and checked it twice."""
    try:
        return orjson.loads(body)
    except orjson.JSONDecodeError:
        try:
            return orjson.loads(body.decode("utf-8", "replace"))
        except orjson.JSONDecodeError:
            return None


def _usage_only(payload: Any) -> bool:
    return isinstance(payload, dict) and "usage" in payload and payload.get("choices") == []


def _read(raw: bytes, accounting: StreamAccounting) -> tuple[EventFields | None, Any]:
    """One whole event's fields, fed to the accounting, and its JSON when that was parsed."""
    fields = event_fields(raw)
    if fields is None:
        return None, None
    return fields, accounting.feed_data(*fields)


Span = tuple[int, int]  # an event's start and end in a block of whole events


def _to_read(block: bytes, meta: bool) -> list[Span] | None:
    """Where a block's events to read now are: those with marks, and while the response id
    and model are unknown (`meta`), the first ones up to one with data. Found around the
    marks, without cutting the whole block into events; None when its line ends are not the
    usual LF pairs (CR, or a run of three or more at an event found): `_spans_of_events`."""
    positions = marks(block)
    if not positions and not meta:
        return []
    if b"\r" in block:
        return None
    picked: set[Span] = set()
    for position in positions:
        start = block.rfind(b"\n\n", 0, position) + 2
        if start == 1:
            start = 0
        elif start >= 3 and block[start - 3] == 10:  # an odd run: `split_events` pairs them
            return None
        picked.add((start, _event_end(block, position)))
    at, size = 0, len(block)
    while meta and at < size:
        end = _event_end(block, at)
        picked.add((at, end))
        meta = block.find(b"data", at, end) < 0
        at = end
    spans = sorted(picked)
    for _, end in spans:
        if end < size and block[end] == 10:  # a run of three line ends: `split_events` pairs them
            return None
    return spans


def _event_end(block: bytes, position: int) -> int:
    """The end of the event at `position`: past the first blank line after it."""
    end = block.find(b"\n\n", position)
    return len(block) if end < 0 else end + 2


def _spans_of_events(block: bytes, events: list[bytes], meta: bool, eager: bool) -> list[Span]:
    """`_to_read` for any block, its events cut (`split_events`), or all of them (`eager`)."""
    ends = list(accumulate(map(len, events)))
    spans = [(end - len(raw), end) for raw, end in zip(events, ends, strict=True)]
    if eager:
        return spans
    picked = {bisect_right(ends, position) for position in marks(block)}
    if meta:
        first = next((i for i, raw in enumerate(events) if b"data" in raw), len(events) - 1)
        picked.update(range(first + 1))
    return [spans[index] for index in sorted(picked)]


class _Relayed:
    """Upstream bytes relayed as they arrive. The lazy accounting reads on the side only the
    events that may carry more than text (usage, finish reasons); the others wait, unread, in
    case the text is needed. When the proxy asked for usage (D13) whole events go out, minus
    OpenAI's usage-only chunk (read: it carries usage)."""

    blocked: Blocked | None = None

    def __init__(self, accounting: LazyStreamAccounting, strip: bool) -> None:
        self._accounting, self._strip = accounting, strip
        self._split = EventSplitter()

    def feed(self, chunk: bytes) -> bytes:
        whole = self._split.whole(chunk)
        out = self._account(whole, last=False) if whole else b""
        return out if self._strip else chunk  # unfiltered: as it came, whole events or not

    def close(self) -> bytes:
        rest = self._split.flush()
        out = self._account(rest, last=True) if rest else b""
        return out if self._strip else b""  # unfiltered: it went out as it came

    def abort(self) -> bytes:
        return b""

    def _account(self, block: bytes, last: bool) -> bytes:
        """Account for a block of whole events (`last`: the stream's unfinished last event);
        returns it minus what the client did not ask for."""
        accounting = self._accounting
        eager = accounting.eager
        spans = None if eager or last else _to_read(block, accounting.needs_meta)
        if spans is None:
            events = [block] if last else split_events(block)
            spans = _spans_of_events(block, events, accounting.needs_meta, eager)
        strip, kept, at = self._strip, [], 0  # what goes out: the block but usage-only chunks
        for start, end in spans:
            fields = event_fields(block[start:end])
            if fields is not None:
                payload = accounting.feed_data(*fields)
                if strip and _usage_only(payload):
                    kept.append(block[at:start])
                    at = end
        if not eager:
            accounting.keep(block)
        if not at:
            return block
        kept.append(block[at:])
        return b"".join(kept)


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
    guard = guard_for(ex)
    family = ex.family
    accounting: StreamAccounting | LazyStreamAccounting
    relayed: _Guarded | _Relayed
    if guard is not None:
        accounting = StreamAccounting(family)
        relayed = _Guarded(guard, accounting, ex.strip_usage)
    else:
        accounting = LazyStreamAccounting(family, all_event_fields)
        relayed = _Relayed(accounting, ex.strip_usage)
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
            held += stream_error_event(family, status, ex.error)
        yield held
    finally:
        if relayed.blocked is not None:
            ex.error = relayed.blocked.log_message.replace("request", "response", 1)
        if accounting.needs_estimate:  # no usage reported: its vocabulary, off the event loop
            with trio.CancelScope(shield=True):
                await deps.estimator.prepare(ex.attempt_model)
        ex.usage = accounting.result(lambda text: deps.estimator.count(ex.attempt_model, text))
        ex.meta = accounting.meta(dict(response.headers))
        if isinstance(accounting, LazyStreamAccounting):  # the text as relayed, if it was read
            ex.relayed_text = accounting.text()
        await close_response(response)


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
        parsed = _json(b"".join(captured))
        last = parsed[-1] if isinstance(parsed, list) and parsed else parsed
        body = last if isinstance(last, dict) else None
        ex.usage = usage_from_body(body, ex.family) if body else None
        ex.meta = meta_from_response(body, dict(response.headers))
        await close_response(response)


async def relay(ex: Exchange, deps: Deps) -> Reply:
    response = ex.upstream
    assert response is not None
    headers = client_headers(response.headers)
    content_type = header(response.headers, "content-type")
    if "text/event-stream" in content_type:
        return Reply(response.status, headers, b"", _sse(ex, deps, response))
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
        await close_response(response)
    parsed = _json(body) if "json" in content_type or body[:1] in b"{[" else None
    if guard is not None and isinstance(parsed, list):
        return Reply(response.status, headers, body=_guarded_array(ex, guard, parsed, response))
    parsed = parsed if isinstance(parsed, dict) else None
    ex.usage = usage_from_body(parsed, ex.family) if parsed else None
    ex.meta = meta_from_response(parsed, dict(response.headers))
    if parsed is not None and response.status < 400:
        body = _output_rules(ex, parsed, body)
    return Reply(response.status, headers, body)  # positional: cheaper


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
    ex.usage = usage_from_body(last, ex.family) if last else None
    ex.meta = meta_from_response(last, dict(response.headers))
    frames = [guard.feed(b"data: " + orjson.dumps(item) + b"\n\n", None, item) for item in items]
    frames.append(guard.close())
    if guard.blocked is not None:
        ex.error = guard.blocked.log_message.replace("request", "response", 1)
        raise ProxyError(403, guard.blocked.message.replace("request", "response", 1))
    return orjson.dumps([_json(data) for _, data in all_event_fields(b"".join(frames))])
