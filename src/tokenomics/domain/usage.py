"""Token usage as the providers report it, normalised across API families (decision D13).

The route's API family (`Family`, from the format adapter) decides how usage is read. Every
field of every family, and the price each bucket gets: docs/ACCOUNTING.md.

`Usage.input_tokens` is always the TOTAL input, cache reads and writes included: OpenAI's
`prompt_tokens`/`input_tokens` already include cached tokens and cache writes, Anthropic's
`input_tokens` does not, so Anthropic's figure is `input_tokens + cache_read_input_tokens +
cache_creation_input_tokens`. `output_tokens` includes reasoning (OpenAI counts it inside
`completion_tokens`, Anthropic its `thinking_tokens` inside `output_tokens`; Gemini reports
`thoughtsTokenCount` beside `candidatesTokenCount`, so the two are added).

Pure functions over parsed JSON (`stream_usage.StreamAccounting` follows a streamed response
event by event with them). Only non-negative ints count: bools, floats, strings and negatives
are ignored.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

Family = Literal["openai", "anthropic", "gemini"]  # the API family of a route
ANTHROPIC_FIELDS = (
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


# `Usage` and `ResponseMeta` are built for every response and never changed after: plain slots
# dataclasses, as a frozen one's `__init__` costs ~5x (`object.__setattr__` per field).
@dataclass(slots=True)
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


@dataclass(slots=True)
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
# The route's API family decides how a usage object is read (never the keys it happens to
# hold: Anthropic's usage has `output_tokens_details` too, like a Responses usage).


def usage_from_usage(usage: Mapping[str, Any], family: Family) -> Usage | None:
    """A provider `usage` object (Gemini: `usageMetadata`) of the given API family."""
    if family == "anthropic":
        return anthropic_usage(usage)
    if family == "gemini":
        return usage_from_gemini(usage)
    return openai_usage(usage)


def openai_usage(usage: Mapping[str, Any]) -> Usage | None:
    """OpenAI: chat, completions and embeddings name the figures `prompt_tokens` and
    `completion_tokens`; the Responses API `input_tokens` and `output_tokens`. DeepSeek reports
    its cache hits beside `prompt_tokens` (`prompt_cache_hit_tokens`).

    Every stream with usage ends with one of these: the field reads are written out here
    (`int_field`'s rule, a non-negative int, inline), a call apiece cost ~4x."""
    if not isinstance(usage, dict):
        return None
    get = usage.get
    given, output = get("prompt_tokens"), get("completion_tokens")
    chat = (type(given) is int and given >= 0) or (type(output) is int and output >= 0)
    if chat:
        inner, outer = get("prompt_tokens_details"), get("completion_tokens_details")
    else:
        given, output = get("input_tokens"), get("output_tokens")
        if not ((type(given) is int and given >= 0) or (type(output) is int and output >= 0)):
            return None
        inner, outer = get("input_tokens_details"), get("output_tokens_details")
    given = given if type(given) is int and given >= 0 else 0
    output = output if type(output) is int and output >= 0 else 0
    inner = inner if isinstance(inner, dict) else _NO_DETAILS
    cached = inner.get("cached_tokens")
    if chat and not (type(cached) is int and cached >= 0):
        cached = get("prompt_cache_hit_tokens")
    written = inner.get("cache_write_tokens")
    reasoning = outer.get("reasoning_tokens") if isinstance(outer, dict) else None
    return _openai(
        given,
        output,
        cached if type(cached) is int and cached >= 0 else 0,
        written if type(written) is int and written >= 0 else 0,
        reasoning if type(reasoning) is int and reasoning >= 0 else 0,
    )


_NO_DETAILS: dict[str, Any] = {}


def _detail(usage: Mapping[str, Any], details: str, key: str) -> int:
    return int_field(map_field(usage, details), key) or 0


def _openai(given: int, output: int, cached: int, written: int, reasoning: int) -> Usage:
    """OpenAI's input includes the cache reads and writes, its output the reasoning: the
    parts are kept within their totals (a hostile upstream cannot make the cost grow)."""
    cached = min(cached, given)
    return Usage(given, output, cached, min(written, given - cached), min(reasoning, output))


def anthropic_usage(usage: Mapping[str, Any]) -> Usage | None:
    """Anthropic's `input_tokens` leaves out the cache reads and writes: they are added. Its
    `output_tokens` includes the thinking (`output_tokens_details.thinking_tokens`)."""
    figures = [int_field(usage, key) for key in ANTHROPIC_FIELDS]
    if all(value is None for value in figures):
        return None
    given, output, cache_read, cache_write = (value or 0 for value in figures)
    return Usage(
        input_tokens=given + cache_read + cache_write,
        output_tokens=output,
        cached_input_tokens=cache_read,
        cache_creation_tokens=cache_write,
        reasoning_tokens=min(_detail(usage, "output_tokens_details", "thinking_tokens"), output),
    )


def usage_from_gemini(metadata: Mapping[str, Any]) -> Usage | None:
    """Gemini `usageMetadata`: thoughts are reported beside candidates, so they are added."""
    prompt = int_field(metadata, "promptTokenCount")
    candidates = int_field(metadata, "candidatesTokenCount")
    thoughts = int_field(metadata, "thoughtsTokenCount") or 0
    if prompt is None and candidates is None and not thoughts:
        return None
    given = (prompt or 0) + (int_field(metadata, "toolUsePromptTokenCount") or 0)
    return Usage(
        input_tokens=given,
        output_tokens=(candidates or 0) + thoughts,
        cached_input_tokens=min(int_field(metadata, "cachedContentTokenCount") or 0, given),
        reasoning_tokens=thoughts,
    )


def usage_from_body(body: Mapping[str, Any], family: Family) -> Usage | None:
    """Usage of a parsed JSON response of `family`; None when it carries none.

    OpenAI: `usage`, else the `response.usage` of a Responses event (or stored response).
    Anthropic: `usage`, else the `message.usage` of a `message_start`, else a top-level
    `input_tokens` (count_tokens). Gemini: `usageMetadata`.
    """
    if family == "gemini":
        metadata = map_field(body, "usageMetadata")
        return usage_from_gemini(metadata) if metadata is not None else None
    outer = "message" if family == "anthropic" else "response"
    for usage in (map_field(body, "usage"), map_field(map_field(body, outer), "usage")):
        if usage is not None and (found := usage_from_usage(usage, family)) is not None:
            return found
    if family == "anthropic" and (given := int_field(body, "input_tokens")) is not None:
        return Usage(input_tokens=given)
    return None


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
        value = headers.get(name)  # not `headers[name]`: a raised KeyError costs ~1 µs
        if value is not None:
            try:
                return int(value.strip())
            except ValueError:
                continue
    return None


def _header_text(headers: Mapping[str, str], names: tuple[str, ...]) -> str:
    for name in names:
        if value := headers.get(name):
            return value
    return ""


# Every header name `meta_with_headers` reads.
_META_HEADERS = frozenset((*_REQUEST_ID_HEADERS, *_REMAINING_REQUESTS, *_REMAINING_TOKENS, *_RESET))


def meta_with_headers(
    headers: Mapping[str, str], *, upstream_id: str, actual_model: str, finish_reason: str
) -> ResponseMeta:
    """Combine what the body said with the rate-limit and request-id headers (any case; of
    names that differ only in case, the last). One pass keeps only the names read here."""
    found: dict[str, str] = {}
    for name, value in headers.items():
        if name in _META_HEADERS:
            found[name] = value
        elif not name.islower() and (lower := name.lower()) in _META_HEADERS:
            found[lower] = value
    if not found:  # none of them (a mock upstream, a bare server)
        return ResponseMeta(upstream_id, actual_model, finish_reason)
    return ResponseMeta(
        upstream_id,
        actual_model,
        finish_reason,
        _header_int(found, _REMAINING_REQUESTS),
        _header_int(found, _REMAINING_TOKENS),
        _header_text(found, _RESET),
        _header_text(found, _REQUEST_ID_HEADERS),
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
