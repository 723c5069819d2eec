"""Token usage as the providers report it, normalised across API families (decision D13).

`Usage.input_tokens` is always the TOTAL input, cache reads and writes included: OpenAI's
`prompt_tokens`/`input_tokens` already include cached tokens, Anthropic's `input_tokens` does not,
so Anthropic's figure is `input_tokens + cache_read_input_tokens + cache_creation_input_tokens`.
`output_tokens` includes reasoning (OpenAI counts it inside `completion_tokens`; Gemini reports
`thoughtsTokenCount` beside `candidatesTokenCount`, so the two are added).

Pure functions over parsed JSON, plus `StreamAccounting`, which follows one streamed response
event by event. Only non-negative ints count: bools, floats, strings and negatives are ignored.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from typing import Any

DEFAULT_MAX_TEXT_BYTES = 512 * 1024  # assistant text kept from a stream (for memory capture)
_ANTHROPIC_FIELDS = (
    "input_tokens",
    "output_tokens",
    "cache_read_input_tokens",
    "cache_creation_input_tokens",
)
# Response headers, first present wins; header names are compared in lower case.
_REQUEST_ID_HEADERS = ("x-request-id", "request-id", "apim-request-id", "mistral-correlation-id")
_REMAINING_REQUESTS = ("x-ratelimit-remaining-requests", "anthropic-ratelimit-requests-remaining")
_REMAINING_TOKENS = ("x-ratelimit-remaining-tokens", "anthropic-ratelimit-tokens-remaining")
_RESET = (
    "x-ratelimit-reset-requests",
    "anthropic-ratelimit-tokens-reset",
    "x-ratelimit-reset-tokens",
)


@dataclass(frozen=True, slots=True)
class Usage:
    input_tokens: int = 0  # total input, cached reads and cache writes included
    output_tokens: int = 0  # reasoning included
    cached_input_tokens: int = 0
    cache_creation_tokens: int = 0
    reasoning_tokens: int = 0
    estimated: bool = False  # some figure was estimated by us, not reported by the provider

    @property
    def total_tokens(self) -> int:
        return self.input_tokens + self.output_tokens


@dataclass(frozen=True, slots=True)
class ResponseMeta:
    """Provider metadata for the ledger (`provider_meta`)."""

    upstream_id: str = ""
    actual_model: str = ""
    finish_reason: str = ""
    rate_limit_remaining_requests: int | None = None
    rate_limit_remaining_tokens: int | None = None
    rate_limit_reset: str = ""
    upstream_request_id: str = ""

    @property
    def is_empty(self) -> bool:
        return self == _EMPTY_META


_EMPTY_META = ResponseMeta()


# ── small readers ────────────────────────────────────────────────────────────────────────────
# They read parsed JSON, so objects are `dict`s: `isinstance(x, dict)` is a C-level check, while
# `isinstance(x, Mapping)` goes through the ABC machinery (8% of a streamed request's CPU
# on the benchmark, where every chunk is read field by field).


def int_field(obj: Any, key: str) -> int | None:
    """`obj[key]` when `obj` is a mapping and the value is a non-negative int, else None."""
    if not isinstance(obj, dict):
        return None
    value = obj.get(key)
    if type(value) is int and value >= 0:
        return value
    return None


def str_field(obj: Any, key: str) -> str:
    """`obj[key]` when it is a string, else ""."""
    if isinstance(obj, dict):
        value = obj.get(key)
        if isinstance(value, str):
            return value
    return ""


def map_field(obj: Any, key: str) -> Mapping[str, Any] | None:
    """`obj[key]` when both are mappings, else None."""
    if isinstance(obj, dict):
        value = obj.get(key)
        if isinstance(value, dict):
            return value
    return None


def first_map(obj: Any, key: str) -> Mapping[str, Any] | None:
    """`obj[key][0]` when `obj[key]` is a non-empty list of mappings, else None."""
    items = obj.get(key) if isinstance(obj, dict) else None
    if isinstance(items, list) and items and isinstance(items[0], dict):
        return items[0]
    return None


# ── usage objects ────────────────────────────────────────────────────────────────────────────


def usage_from_usage(usage: Mapping[str, Any]) -> Usage | None:
    """A provider `usage` object (OpenAI chat/completions/embeddings, Responses, Anthropic)."""
    if "prompt_tokens" in usage or "completion_tokens" in usage:
        return _openai_chat(usage)
    if "input_tokens_details" in usage or "output_tokens_details" in usage:
        return _openai_responses(usage)
    return _anthropic(usage)


def _detail(usage: Mapping[str, Any], details: str, key: str) -> int:
    return int_field(map_field(usage, details), key) or 0


def _openai_chat(usage: Mapping[str, Any]) -> Usage | None:
    prompt = int_field(usage, "prompt_tokens")
    completion = int_field(usage, "completion_tokens")
    if prompt is None and completion is None:
        return None
    cached = int_field(map_field(usage, "prompt_tokens_details"), "cached_tokens")
    if cached is None:  # DeepSeek reports its cache hits beside prompt_tokens
        cached = int_field(usage, "prompt_cache_hit_tokens")
    return Usage(
        input_tokens=prompt or 0,
        output_tokens=completion or 0,
        cached_input_tokens=cached or 0,
        reasoning_tokens=_detail(usage, "completion_tokens_details", "reasoning_tokens"),
    )


def _openai_responses(usage: Mapping[str, Any]) -> Usage | None:
    given = int_field(usage, "input_tokens")
    output = int_field(usage, "output_tokens")
    if given is None and output is None:
        return None
    return Usage(
        input_tokens=given or 0,
        output_tokens=output or 0,
        cached_input_tokens=_detail(usage, "input_tokens_details", "cached_tokens"),
        reasoning_tokens=_detail(usage, "output_tokens_details", "reasoning_tokens"),
    )


def _anthropic(usage: Mapping[str, Any]) -> Usage | None:
    figures = [int_field(usage, key) for key in _ANTHROPIC_FIELDS]
    if all(value is None for value in figures):
        return None
    given, output, cache_read, cache_write = (value or 0 for value in figures)
    return Usage(
        input_tokens=given + cache_read + cache_write,
        output_tokens=output,
        cached_input_tokens=cache_read,
        cache_creation_tokens=cache_write,
    )


def usage_from_gemini(metadata: Mapping[str, Any]) -> Usage | None:
    """Gemini `usageMetadata`: thoughts are reported beside candidates, so they are added."""
    prompt = int_field(metadata, "promptTokenCount")
    candidates = int_field(metadata, "candidatesTokenCount")
    thoughts = int_field(metadata, "thoughtsTokenCount") or 0
    if prompt is None and candidates is None and not thoughts:
        return None
    return Usage(
        input_tokens=(prompt or 0) + (int_field(metadata, "toolUsePromptTokenCount") or 0),
        output_tokens=(candidates or 0) + thoughts,
        cached_input_tokens=int_field(metadata, "cachedContentTokenCount") or 0,
        reasoning_tokens=thoughts,
    )


def usage_from_body(body: Mapping[str, Any]) -> Usage | None:
    """Usage of a parsed JSON response of any family; None when it carries none.

    Looks at `usage`, Gemini `usageMetadata`, the `response.usage` of a Responses event, the
    `message.usage` of an Anthropic `message_start`, then a top-level `input_tokens`
    (Anthropic count_tokens).
    """
    usage = map_field(body, "usage")
    found = usage_from_usage(usage) if usage is not None else None
    if found is None and (metadata := map_field(body, "usageMetadata")) is not None:
        found = usage_from_gemini(metadata)
    for outer in ("response", "message"):
        if found is None and (nested := map_field(map_field(body, outer), "usage")) is not None:
            found = usage_from_usage(nested)
    if found is None and (given := int_field(body, "input_tokens")) is not None:
        found = Usage(input_tokens=given)
    return found


def merge_estimate(reported: Usage | None, input_estimate: int, output_estimate: int) -> Usage:
    """Fill what the provider did not report (a zero figure) with our estimates.

    `estimated` is set when an estimate was actually used (or the input was already estimated).
    """
    if reported is None:
        return Usage(
            input_tokens=max(input_estimate, 0),
            output_tokens=max(output_estimate, 0),
            estimated=True,
        )
    fill_input = reported.input_tokens == 0 and input_estimate > 0
    fill_output = reported.output_tokens == 0 and output_estimate > 0
    if not fill_input and not fill_output:
        return reported
    return Usage(
        input_tokens=input_estimate if fill_input else reported.input_tokens,
        output_tokens=output_estimate if fill_output else reported.output_tokens,
        cached_input_tokens=reported.cached_input_tokens,
        cache_creation_tokens=reported.cache_creation_tokens,
        reasoning_tokens=reported.reasoning_tokens,
        estimated=True,
    )


# ── metadata ─────────────────────────────────────────────────────────────────────────────────


def body_id(body: Mapping[str, Any]) -> str:
    """`id`, Gemini `responseId`, or the id of a nested Anthropic `message` / Responses object."""
    return (
        str_field(body, "id")
        or str_field(body, "responseId")
        or str_field(map_field(body, "message"), "id")
        or str_field(map_field(body, "response"), "id")
    )


def body_model(body: Mapping[str, Any]) -> str:
    return (
        str_field(body, "model")
        or str_field(body, "modelVersion")
        or str_field(map_field(body, "message"), "model")
        or str_field(map_field(body, "response"), "model")
    )


def body_finish_reason(body: Mapping[str, Any]) -> str:
    """OpenAI `finish_reason`, Anthropic `stop_reason`, Gemini `finishReason`, Responses status."""
    reason = str_field(first_map(body, "choices"), "finish_reason")
    reason = reason or str_field(body, "stop_reason")
    reason = reason or str_field(first_map(body, "candidates"), "finishReason")
    if not reason and str_field(body, "object") == "response":
        reason = str_field(body, "status")
    return reason


def _header_int(headers: Mapping[str, str], names: tuple[str, ...]) -> int | None:
    for name in names:
        try:
            return int(headers[name].strip())
        except (KeyError, ValueError):
            continue
    return None


def _header_text(headers: Mapping[str, str], names: tuple[str, ...]) -> str:
    return next((headers[name] for name in names if headers.get(name)), "")


def meta_with_headers(
    headers: Mapping[str, str], *, upstream_id: str, actual_model: str, finish_reason: str
) -> ResponseMeta:
    """Combine what the body said with the rate-limit and request-id headers (any case)."""
    lower = {name.lower(): value for name, value in headers.items()}
    return ResponseMeta(
        upstream_id=upstream_id,
        actual_model=actual_model,
        finish_reason=finish_reason,
        rate_limit_remaining_requests=_header_int(lower, _REMAINING_REQUESTS),
        rate_limit_remaining_tokens=_header_int(lower, _REMAINING_TOKENS),
        rate_limit_reset=_header_text(lower, _RESET),
        upstream_request_id=_header_text(lower, _REQUEST_ID_HEADERS),
    )


def meta_from_response(body: Mapping[str, Any] | None, headers: Mapping[str, str]) -> ResponseMeta:
    """Provider metadata of a buffered response (body may be None when it was not JSON)."""
    body = body if isinstance(body, Mapping) else {}
    return meta_with_headers(
        headers,
        upstream_id=body_id(body),
        actual_model=body_model(body),
        finish_reason=body_finish_reason(body),
    )


# ── streams ──────────────────────────────────────────────────────────────────────────────────


class _Capped:
    """Text pieces kept up to `cap` UTF-8 bytes; the size of what did not fit is still counted."""

    __slots__ = ("cap", "overflow", "parts", "size", "truncated")

    def __init__(self, cap: int) -> None:
        self.cap = cap
        self.parts: list[str] = []
        self.size = 0
        self.overflow = 0  # bytes seen but not kept
        self.truncated = False

    def add(self, piece: str) -> None:
        if not piece:
            return
        size = len(piece) if piece.isascii() else len(piece.encode())
        if self.size + size <= self.cap:
            self.parts.append(piece)
            self.size += size
            return
        self.truncated = True
        kept = piece.encode()[: self.cap - self.size].decode("utf-8", "ignore")
        if kept:
            self.parts.append(kept)
        kept_size = len(kept.encode())
        self.size += kept_size
        self.overflow += size - kept_size

    def text(self) -> str:
        return "".join(self.parts)


class StreamAccounting:
    """Usage, assistant text and metadata of one streamed response, whatever its API family.

    Feed it every parsed JSON payload of the stream with its SSE event name. Usage comes from
    OpenAI chat usage chunks, Responses `response.completed`, Anthropic `message_start` merged
    with `message_delta`, and Gemini `usageMetadata` (cumulative; the last non-zero one wins).
    """

    __slots__ = (
        "_anthropic",
        "_anthropic_final",
        "_extra",
        "_reported",
        "_text",
        "actual_model",
        "finish_reason",
        "upstream_id",
    )

    def __init__(self, max_text_bytes: int = DEFAULT_MAX_TEXT_BYTES) -> None:
        self._text = _Capped(max_text_bytes)  # the assistant text, for memory and estimates
        self._extra = _Capped(max_text_bytes)  # tool-call arguments and reasoning: estimates only
        self._reported: Usage | None = None
        self._anthropic: dict[str, int] = {}  # raw Anthropic usage fields, merged across events
        self._anthropic_final = False  # a message_delta carried the cumulative output
        self.upstream_id = ""
        self.actual_model = ""
        self.finish_reason = ""

    @property
    def text(self) -> str:
        return self._text.text()

    @property
    def text_truncated(self) -> bool:
        return self._text.truncated

    @property
    def usage_seen(self) -> bool:
        return self._reported is not None or bool(self._anthropic)

    def feed(self, event_name: str | None, data: Mapping[str, Any]) -> None:
        """Account for one parsed `data:` payload (`[DONE]` and non-JSON are the caller's)."""
        if not self.upstream_id:
            self.upstream_id = body_id(data)
        if not self.actual_model:
            self.actual_model = body_model(data)
        kind = str_field(data, "type") or event_name or ""
        if kind.startswith("response."):
            self._responses_event(kind, data)
        elif kind in ("message_start", "message_delta", "content_block_delta"):
            self._anthropic_event(kind, data)
        else:
            self._chunk(data)

    def result(self, estimate: Callable[[str], int]) -> Usage:
        """Reported usage if any was seen, else the output estimated from the text (input 0)."""
        reported = _anthropic(self._anthropic) if self._anthropic else self._reported
        if reported is not None and (self._anthropic_final or not self._anthropic):
            return reported
        guess = self._estimate_output(estimate)
        if reported is None:
            return Usage(output_tokens=guess, estimated=True)
        if guess > reported.output_tokens:  # cut off before message_delta: output is provisional
            return replace(reported, output_tokens=guess, estimated=True)
        return reported

    def meta(self, headers: Mapping[str, str]) -> ResponseMeta:
        return meta_with_headers(
            headers,
            upstream_id=self.upstream_id,
            actual_model=self.actual_model,
            finish_reason=self.finish_reason,
        )

    # ── per family ───────────────────────────────────────────────────────────────────────────

    def _report(self, usage: Usage | None) -> None:
        if usage is not None and (self._reported is None or usage.total_tokens > 0):
            self._reported = usage

    def _responses_event(self, kind: str, data: Mapping[str, Any]) -> None:
        if kind == "response.output_text.delta":
            self._text.add(str_field(data, "delta"))
        elif kind in ("response.function_call_arguments.delta", "response.reasoning_text.delta"):
            self._extra.add(str_field(data, "delta"))
        elif (response := map_field(data, "response")) is not None:
            self.finish_reason = str_field(response, "status") or self.finish_reason
            if (usage := map_field(response, "usage")) is not None:
                self._report(usage_from_usage(usage))

    def _anthropic_event(self, kind: str, data: Mapping[str, Any]) -> None:
        if kind == "content_block_delta":
            delta = map_field(data, "delta")
            sort = str_field(delta, "type")
            if sort == "text_delta":
                self._text.add(str_field(delta, "text"))
            else:
                self._extra.add(str_field(delta, "partial_json") or str_field(delta, "thinking"))
            return
        usage = map_field(map_field(data, "message"), "usage") or map_field(data, "usage")
        for key in _ANTHROPIC_FIELDS:
            if (value := int_field(usage, key)) is not None:
                self._anthropic[key] = value
        if kind == "message_delta":
            if int_field(usage, "output_tokens") is not None:
                self._anthropic_final = True
            stop = str_field(map_field(data, "delta"), "stop_reason")
            self.finish_reason = stop or self.finish_reason

    def _chunk(self, data: Mapping[str, Any]) -> None:
        """OpenAI chat/completions chunks and Gemini stream chunks."""
        for choice in _mappings(data, "choices"):
            delta = map_field(choice, "delta")
            self._text.add(str_field(delta, "content") or str_field(choice, "text"))
            self._extra.add(str_field(delta, "reasoning_content") or str_field(delta, "reasoning"))
            for call in _mappings(delta, "tool_calls"):
                self._add_call(map_field(call, "function"))
            self._add_call(map_field(delta, "function_call"))
            self.finish_reason = str_field(choice, "finish_reason") or self.finish_reason
        for candidate in _mappings(data, "candidates"):
            for part in _mappings(map_field(candidate, "content"), "parts"):
                thought = part.get("thought") is True
                (self._extra if thought else self._text).add(str_field(part, "text"))
                if (function_call := map_field(part, "functionCall")) is not None:
                    self._extra.add(json.dumps(function_call, ensure_ascii=False))
            self.finish_reason = str_field(candidate, "finishReason") or self.finish_reason
        self._report(_chunk_usage(data))

    def _add_call(self, function: Mapping[str, Any] | None) -> None:
        name = str_field(function, "name")
        self._extra.add(f"{name}\n" if name else "")
        self._extra.add(str_field(function, "arguments"))

    def _estimate_output(self, estimate: Callable[[str], int]) -> int:
        tokens = estimate(self._text.text()) + estimate(self._extra.text())
        return tokens + math.ceil((self._text.overflow + self._extra.overflow) / 4)


def _mappings(obj: Any, key: str) -> list[Mapping[str, Any]]:
    items = obj.get(key) if isinstance(obj, dict) else None
    if not isinstance(items, list):
        return []
    return [item for item in items if isinstance(item, dict)]


def _chunk_usage(data: Mapping[str, Any]) -> Usage | None:
    usage = map_field(data, "usage") or map_field(map_field(data, "x_groq"), "usage")
    if usage is not None:
        return usage_from_usage(usage)
    metadata = map_field(data, "usageMetadata")
    return usage_from_gemini(metadata) if metadata is not None else None
