"""The built-in `mock` provider (D25): deterministic OpenAI, Anthropic and Gemini answers, sans-I/O.

`MockProvider.respond(method, path, query, headers, body)` returns a `MockReply` (status,
headers, body chunks, delays). Paths match by suffix, so base paths work
(`/openai/v1/chat/completions`, `/v1beta/openai/chat/completions`):

    POST …/chat/completions   POST …/completions   POST …/responses   POST …/embeddings
    POST …/v1/messages        POST …/v1/messages/count_tokens
    POST …/models/{model}:generateContent | :streamGenerateContent (SSE with alt=sse, else a
         JSON array of chunks) | :countTokens
    GET  …/models             (OpenAI-style list of the mock models)

The answer is `Mock reply to: <first 12 words of the last user text>`; a request for JSON
(`response_format`, `text.format`, `output_format`, Gemini's `responseMimeType`) gets valid JSON
instead, shaped by its schema (`mock_json`). Usage is deterministic:
input = whitespace-separated words of every input text (system/instructions included) + 3 per
message (a top-level system prompt, a legacy prompt and an embedding input each count as one);
output = words of the answer. Streams send one delta per word; Gemini stream chunks each carry
cumulative `usageMetadata`, and Gemini SSE events end in CRLF like Google's.

Steering by model name — leading dash-separated words, combinable (`slow-200-nousage-x`):

    echo            the answer is the last user text verbatim
    fail-<code>     always that HTTP status (400-599), with an error body of the request's API
                    family (a 429 also carries `retry-after: 1`)
    flaky-<code>    odd-numbered calls of that model fail with <code>, even-numbered succeed
    slow-<ms>       wait <ms> before the first byte (errors included)
    pace-<ms>       wait <ms> between stream chunks
    nousage         no usage fields at all, buffered and streamed
    gzip, br, garbage, close_after_headers, reflect
                    recognised (so they combine) but acted on only by the test server

Any other model name answers normally. Every reply carries `x-request-id: req_mock_<n>`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import orjson

from tokenomics.upstream.mock_anthropic import anthropic, anthropic_count
from tokenomics.upstream.mock_call import (
    JSON_TYPE,
    SSE_TYPE,
    Call,
    Chunks,
    Json,
    Prompt,
    anthropic_prompt,
    chat_prompt,
    embedding_prompt,
    gemini_prompt,
    legacy_prompt,
    make_call,
    responses_prompt,
)
from tokenomics.upstream.mock_gemini import gemini, gemini_count, gemini_stream
from tokenomics.upstream.mock_openai import chat, embeddings, legacy, models, responses

if TYPE_CHECKING:
    from collections.abc import Callable, Mapping

_NUMBERED = frozenset({"fail", "flaky", "slow", "pace"})
_FLAGS = frozenset({"echo", "nousage", "gzip", "br", "garbage", "close_after_headers", "reflect"})
_GEMINI = re.compile(r"/models/([^/:]+):(generateContent|streamGenerateContent|countTokens)$")
_ERROR_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    403: "permission_error",
    404: "not_found_error",
    413: "request_too_large",
    429: "rate_limit_error",
    500: "api_error",
    503: "overloaded_error",
    529: "overloaded_error",
}
_GOOGLE_STATUS = {
    400: "INVALID_ARGUMENT",
    401: "UNAUTHENTICATED",
    403: "PERMISSION_DENIED",
    404: "NOT_FOUND",
    429: "RESOURCE_EXHAUSTED",
    500: "INTERNAL",
    503: "UNAVAILABLE",
    504: "DEADLINE_EXCEEDED",
}


@dataclass(frozen=True, slots=True)
class MockReply:
    """One upstream reply: a buffered reply is one chunk, a stream is one chunk per event."""

    status: int
    headers: tuple[tuple[str, str], ...]
    chunks: tuple[bytes, ...]
    first_byte_delay: float = 0.0
    chunk_interval: float = 0.0


@dataclass(frozen=True, slots=True)
class Steering:
    """What a model name asks of the mock (see the module docstring)."""

    flags: frozenset[str] = frozenset()
    fail: int | None = None
    flaky: int | None = None
    slow_ms: int = 0
    pace_ms: int = 0


@dataclass(frozen=True, slots=True)
class MockStatistics:
    """Replies given so far, and calls per flaky model."""

    replies: int
    calls_by_model: tuple[tuple[str, int], ...]


def parse_steering(model: str) -> Steering:
    """Read the leading steering words of a model name; the first other word ends them."""
    flags: set[str] = set()
    numbers: dict[str, int] = {}
    words = model.split("-")
    i = 0
    while i < len(words):
        word = words[i]
        if word in _FLAGS:
            flags.add(word)
        elif word in _NUMBERED and i + 1 < len(words) and words[i + 1].isdigit():
            numbers[word] = int(words[i + 1])
            i += 1
        else:
            break
        i += 1
    fail, flaky = (numbers.get(k) for k in ("fail", "flaky"))
    return Steering(
        frozenset(flags),
        _status(fail),
        _status(flaky),
        numbers.get("slow", 0),
        numbers.get("pace", 0),
    )


def _status(code: int | None) -> int | None:
    return code if code is not None and 400 <= code <= 599 else None


def request_model(path: str, body: Mapping[str, Any] | None) -> str:
    """The model a request names: Gemini in the path, everyone else in the body."""
    found = _GEMINI.search(path)
    if found:
        return found.group(1)
    model = body.get("model") if body is not None else None
    return model if isinstance(model, str) else ""


# --- routing ---------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Route:
    family: str  # openai | anthropic | gemini
    read: Callable[[Json], Prompt]
    render: Callable[[Call], tuple[str, Chunks]]


_SUFFIXES = (
    ("/chat/completions", _Route("openai", chat_prompt, chat)),
    ("/completions", _Route("openai", legacy_prompt, legacy)),
    ("/responses", _Route("openai", responses_prompt, responses)),
    ("/embeddings", _Route("openai", embedding_prompt, embeddings)),
    ("/v1/messages/count_tokens", _Route("anthropic", anthropic_prompt, anthropic_count)),
    ("/v1/messages", _Route("anthropic", anthropic_prompt, anthropic)),
)
_GEMINI_ROUTES = {
    "generateContent": _Route("gemini", gemini_prompt, gemini),
    "streamGenerateContent": _Route("gemini", gemini_prompt, gemini_stream),
    "countTokens": _Route("gemini", gemini_prompt, gemini_count),
}


def _route(path: str) -> _Route | None:
    found = _GEMINI.search(path)
    if found:
        return _GEMINI_ROUTES[found.group(2)]
    return next((route for suffix, route in _SUFFIXES if path.endswith(suffix)), None)


def error_body(family: str, status: int, message: str) -> bytes:
    """An error body in the shape the given API family's clients parse."""
    kind = _ERROR_TYPES.get(status, "api_error" if status >= 500 else "invalid_request_error")
    if family == "anthropic":
        return orjson.dumps({"type": "error", "error": {"type": kind, "message": message}})
    if family == "gemini":
        google = _GOOGLE_STATUS.get(status, "UNKNOWN")
        return orjson.dumps({"error": {"code": status, "message": message, "status": google}})
    error = {"message": message, "type": kind, "param": None, "code": kind}
    return orjson.dumps({"error": error})


@dataclass(slots=True)
class MockProvider:
    """Answers requests deterministically; counts calls (for ids and flaky models)."""

    _replies: int = 0
    _calls: dict[str, int] = field(default_factory=dict)

    def statistics(self) -> MockStatistics:
        return MockStatistics(self._replies, tuple(sorted(self._calls.items())))

    def respond(
        self, method: str, path: str, query: str, headers: Mapping[str, str], body: bytes
    ) -> MockReply:
        self._replies += 1
        n = self._replies
        route = _route(path) if method.upper() == "POST" else None
        if method.upper() == "GET" and path.endswith("/models"):
            return _reply(n, 200, models())
        if route is None:
            return _error(n, "openai", 404, f"the mock has no route for {method} {path}")
        try:
            parsed = orjson.loads(body)
        except orjson.JSONDecodeError:
            parsed = None
        if not isinstance(parsed, dict):
            return _error(n, route.family, 400, "the request body is not a JSON object")
        model = request_model(path, parsed)
        steer = parse_steering(model)
        delay = steer.slow_ms / 1000
        status = self._failure(model, steer)
        if status is not None:
            message = f"mock failure {status} for model {model}"
            return _error(n, route.family, status, message, delay)
        call = make_call(n, model, parsed, query, route.read(parsed), steer.flags)
        return _reply(n, 200, route.render(call), delay, steer.pace_ms / 1000)

    def _failure(self, model: str, steer: Steering) -> int | None:
        if steer.fail is not None:
            return steer.fail
        if steer.flaky is None:
            return None
        self._calls[model] = self._calls.get(model, 0) + 1
        return steer.flaky if self._calls[model] % 2 == 1 else None


def _reply(
    n: int, status: int, rendered: tuple[str, Chunks], delay: float = 0.0, pace: float = 0.0
) -> MockReply:
    content_type, chunks = rendered
    headers = [("content-type", content_type), ("x-request-id", f"req_mock_{n}")]
    if content_type == SSE_TYPE:
        headers.append(("cache-control", "no-cache"))
    if status == 429:
        headers.append(("retry-after", "1"))
    return MockReply(status, tuple(headers), chunks, delay, pace)


def _error(n: int, family: str, status: int, message: str, delay: float = 0.0) -> MockReply:
    return _reply(n, status, (JSON_TYPE, (error_body(family, status, message),)), delay)
