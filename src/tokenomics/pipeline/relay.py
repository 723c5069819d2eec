"""Relaying the accepted upstream response: buffered, or streamed as it arrives.

Streams are decided by the response content type. Bytes go to the client as they arrive;
SSE is parsed on the side for usage. When the proxy added `stream_options.include_usage`, the
usage-only chunk the client did not ask for is removed again (D13).
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any

import orjson
import trio

from tokenomics.domain.engine import Blocked
from tokenomics.domain.usage import StreamAccounting, meta_from_response, usage_from_body
from tokenomics.formats.errors import stream_error_event
from tokenomics.pipeline.exchange import ProxyError, Reply
from tokenomics.pipeline.headers import client_headers
from tokenomics.pipeline.rules import scan
from tokenomics.upstream.client import UpstreamError, header, read_all
from tokenomics.upstream.sse import SSEEvent, SSEParser, SSETooLarge

if TYPE_CHECKING:
    from collections.abc import AsyncGenerator

    from tokenomics.pipeline.deps import Deps
    from tokenomics.pipeline.exchange import Exchange
    from tokenomics.upstream.client import UpstreamResponse

MAX_RESPONSE_BYTES = 32 * 1024 * 1024
_EVENT_END = re.compile(rb"(?:\r\n|\r|\n)(?:\r\n|\r|\n)")


def _json(text: str) -> Any:
    try:
        return orjson.loads(text)
    except orjson.JSONDecodeError:
        return None


class _UsageChunkFilter:
    """Splits a byte stream into whole SSE events and drops OpenAI's usage-only chunk."""

    def __init__(self) -> None:
        self._pending = b""

    def feed(self, chunk: bytes) -> bytes:
        data = self._pending + chunk
        kept: list[bytes] = []
        start = 0
        for match in _EVENT_END.finditer(data):
            event = data[start : match.end()]
            start = match.end()
            if not self._usage_only(event):
                kept.append(event)
        self._pending = data[start:]
        return b"".join(kept)

    def flush(self) -> bytes:
        rest, self._pending = self._pending, b""
        return rest

    @staticmethod
    def _usage_only(event: bytes) -> bool:
        if b'"usage"' not in event:
            return False
        for line in event.splitlines():
            if line.startswith(b"data:"):
                payload = _json(line[5:].strip().decode("utf-8", "replace"))
                return isinstance(payload, dict) and payload.get("choices") == []
        return False


def _account(accounting: StreamAccounting, events: list[SSEEvent]) -> None:
    for event in events:
        if event.data and event.data != "[DONE]":
            payload = _json(event.data)
            if isinstance(payload, dict):
                accounting.feed(event.event, payload)


async def _sse(ex: Exchange, deps: Deps, response: UpstreamResponse) -> AsyncGenerator[bytes, None]:
    parser, accounting = SSEParser(), StreamAccounting()
    strip = _UsageChunkFilter() if ex.strip_usage else None
    idle = float(deps.settings.server.stream_idle_timeout)
    try:
        async for chunk in response.chunks(idle):
            _account(accounting, parser.feed(chunk))
            out = strip.feed(chunk) if strip else chunk
            if out:
                yield out
        _account(accounting, parser.close())
        if strip and (rest := strip.flush()):
            yield rest
    except (UpstreamError, SSETooLarge) as exc:
        ex.error = f"stream broken: {exc}"
        status = exc.status if isinstance(exc, UpstreamError) else 502
        yield stream_error_event(ex.route.family if ex.route else "openai", status, ex.error)
    finally:
        ex.usage = accounting.result(lambda text: deps.estimator.count(ex.attempt_model, text))
        ex.meta = accounting.meta(dict(response.headers))
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
    if ex.stream and response.status == 200:
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
