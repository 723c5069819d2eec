"""The built-in `mock` provider (D25): deterministic OpenAI, Anthropic and Gemini answers, sans-I/O.

`MockProvider.respond(method, path, query, headers, body)` returns a `MockReply` (status,
headers, body chunks, delays). Paths match by suffix, so base paths work
(`/openai/v1/chat/completions`, `/v1beta/openai/chat/completions`):

    POST …/chat/completions   POST …/completions   POST …/responses   POST …/embeddings
    POST …/v1/messages        POST …/v1/messages/count_tokens
    POST …/models/{model}:generateContent | :streamGenerateContent (SSE with alt=sse, else a
         JSON array of chunks) | :countTokens
    GET  …/models             (OpenAI-style list of the mock models)

The answer is `Mock reply to: <first 12 words of the last user text>`. Usage is deterministic:
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
    gzip, garbage, close_after_headers
                    recognised (so they combine) but acted on only by the test server

Any other model name answers normally. Every reply carries `x-request-id: req_mock_<n>`.
"""

from __future__ import annotations

import base64
import hashlib
import re
import struct
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs

import orjson

if TYPE_CHECKING:
    from collections.abc import Callable, Mapping

CREATED = 1_700_000_000
MOCK_MODELS = ("mock-gpt", "mock-claude", "mock-gemini", "echo")
JSON_TYPE = "application/json"
SSE_TYPE = "text/event-stream"
_NUMBERED = frozenset({"fail", "flaky", "slow", "pace"})
_FLAGS = frozenset({"echo", "nousage", "gzip", "garbage", "close_after_headers"})
_GEMINI = re.compile(r"/models/([^/:]+):(generateContent|streamGenerateContent|countTokens)$")
_WORD = re.compile(r"\s*\S+\s*$|\s*\S+")
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

Json = dict[str, Any]
Chunks = tuple[bytes, ...]


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


# --- reading requests ------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Prompt:
    texts: tuple[str, ...]
    messages: int
    last_user: str


def _text(content: Any) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        parts = (p.get("text") for p in content if isinstance(p, dict))
        return "\n".join(t for t in parts if isinstance(t, str))
    return ""


def _conversation(items: Any, system: str = "", content: str = "content") -> _Prompt:
    messages = [m for m in items if isinstance(m, dict)] if isinstance(items, list) else []
    texts = [_text(m.get(content)) for m in messages]
    users = [t for m, t in zip(messages, texts, strict=True) if m.get("role", "user") == "user"]
    extra = (system,) if system else ()
    return _Prompt((*extra, *texts), len(messages) + len(extra), users[-1] if users else "")


def _strings(value: Any) -> _Prompt:
    items = [value] if isinstance(value, str) else value if isinstance(value, list) else []
    texts = tuple(t for t in items if isinstance(t, str))
    return _Prompt(texts, len(texts), texts[-1] if texts else "")


def _chat_prompt(body: Json) -> _Prompt:
    return _conversation(body.get("messages"))


def _anthropic_prompt(body: Json) -> _Prompt:
    return _conversation(body.get("messages"), _text(body.get("system")))


def _responses_prompt(body: Json) -> _Prompt:
    instructions = body.get("instructions")
    system = instructions if isinstance(instructions, str) else ""
    given = body.get("input")
    items = [{"role": "user", "content": given}] if isinstance(given, str) else given
    return _conversation(items, system)


def _gemini_prompt(body: Json) -> _Prompt:
    request = body.get("generateContentRequest", body)
    request = request if isinstance(request, dict) else {}
    system = request.get("systemInstruction", request.get("system_instruction"))
    text = _text(system.get("parts")) if isinstance(system, dict) else ""
    return _conversation(request.get("contents"), text, content="parts")


def _legacy_prompt(body: Json) -> _Prompt:
    return _strings(body.get("prompt"))


def _embedding_prompt(body: Json) -> _Prompt:
    return _strings(body.get("input"))


# --- the answer ------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Call:
    n: int
    model: str
    body: Json
    query: str
    prompt: _Prompt
    text: str
    input_tokens: int
    output_tokens: int
    usage: bool

    @property
    def stream(self) -> bool:
        return self.body.get("stream") is True

    @property
    def pieces(self) -> list[str]:
        return _WORD.findall(self.text)


def _call(n: int, model: str, body: Json, query: str, prompt: _Prompt, steer: Steering) -> _Call:
    if "echo" in steer.flags:
        text = prompt.last_user
    else:
        text = " ".join(["Mock reply to:", *prompt.last_user.split()[:12]])
    words = sum(len(t.split()) for t in prompt.texts) + 3 * prompt.messages
    usage = "nousage" not in steer.flags
    return _Call(n, model, body, query, prompt, text, words, len(text.split()), usage)


def _json(value: Any) -> tuple[str, Chunks]:
    return JSON_TYPE, (orjson.dumps(value),)


def _sse(events: list[Any], *, named: bool = False, end: str = "\n\n") -> tuple[str, Chunks]:
    def one(event: Any) -> bytes:
        head = f"event: {event['type']}\n" if named else ""
        return f"{head}data: ".encode() + orjson.dumps(event) + end.encode()

    return SSE_TYPE, tuple(one(e) for e in events)


def _with_usage(value: Json, key: str, usage: Json, call: _Call) -> Json:
    return {**value, key: usage} if call.usage else value


# --- OpenAI ----------------------------------------------------------------------------------


def _openai_usage(call: _Call) -> Json:
    i, o = call.input_tokens, call.output_tokens
    return {"prompt_tokens": i, "completion_tokens": o, "total_tokens": i + o}


def _openai_stream(call: _Call, head: Json, choices: list[Json]) -> tuple[str, Chunks]:
    include = (call.body.get("stream_options") or {}).get("include_usage") is True
    extra = {"usage": None} if include and call.usage else {}
    events: list[Any] = [{**head, "choices": [c], **extra} for c in choices]
    if include and call.usage:
        events.append({**head, "choices": [], "usage": _openai_usage(call)})
    content_type, chunks = _sse(events)
    return content_type, (*chunks, b"data: [DONE]\n\n")


def _chat(call: _Call) -> tuple[str, Chunks]:
    head = {
        "id": f"chatcmpl-mock-{call.n}",
        "object": "chat.completion",
        "created": CREATED,
        "model": call.model,
        "system_fingerprint": "fp_mock",
    }
    if not call.stream:
        message = {"role": "assistant", "content": call.text, "refusal": None}
        choice = {"index": 0, "message": message, "logprobs": None, "finish_reason": "stop"}
        return _json(_with_usage({**head, "choices": [choice]}, "usage", _openai_usage(call), call))
    head["object"] = "chat.completion.chunk"
    deltas = [{"role": "assistant", "content": ""}, *({"content": p} for p in call.pieces), {}]
    last = len(deltas) - 1
    choices = [
        {"index": 0, "delta": d, "logprobs": None, "finish_reason": "stop" if i == last else None}
        for i, d in enumerate(deltas)
    ]
    return _openai_stream(call, head, choices)


def _legacy(call: _Call) -> tuple[str, Chunks]:
    head = {
        "id": f"cmpl-mock-{call.n}",
        "object": "text_completion",
        "created": CREATED,
        "model": call.model,
    }
    texts = [*call.pieces, ""] if call.stream else [call.text]
    last = len(texts) - 1
    choices = [
        {"index": 0, "text": t, "logprobs": None, "finish_reason": "stop" if i == last else None}
        for i, t in enumerate(texts)
    ]
    if call.stream:
        return _openai_stream(call, head, choices)
    return _json(_with_usage({**head, "choices": choices}, "usage", _openai_usage(call), call))


def _vector(text: str, as_base64: bool) -> Any:
    digest = hashlib.sha256(text.encode()).digest()
    floats = [round(b / 127.5 - 1.0, 6) for b in digest[:8]]
    return base64.b64encode(struct.pack("<8f", *floats)).decode() if as_base64 else floats


def _embeddings(call: _Call) -> tuple[str, Chunks]:
    as_base64 = call.body.get("encoding_format") == "base64"
    data = [
        {"object": "embedding", "index": i, "embedding": _vector(t, as_base64)}
        for i, t in enumerate(call.prompt.texts)
    ]
    usage = {"prompt_tokens": call.input_tokens, "total_tokens": call.input_tokens}
    return _json(
        _with_usage({"object": "list", "data": data, "model": call.model}, "usage", usage, call)
    )


def _models() -> tuple[str, Chunks]:
    data = [
        {"id": m, "object": "model", "created": CREATED, "owned_by": "tokenomics-mock"}
        for m in MOCK_MODELS
    ]
    return _json({"object": "list", "data": data})


def _responses(call: _Call) -> tuple[str, Chunks]:
    i, o = call.input_tokens, call.output_tokens
    usage = {
        "input_tokens": i,
        "input_tokens_details": {"cached_tokens": 0, "cache_write_tokens": 0},
        "output_tokens": o,
        "output_tokens_details": {"reasoning_tokens": 0},
        "total_tokens": i + o,
    }
    item_id = f"msg_mock_{call.n}"
    part = {"type": "output_text", "text": call.text, "annotations": [], "logprobs": []}
    item = {
        "id": item_id,
        "type": "message",
        "role": "assistant",
        "status": "completed",
        "content": [part],
    }
    done = {
        "id": f"resp_mock_{call.n}",
        "object": "response",
        "created_at": CREATED,
        "status": "completed",
        "model": call.model,
        "output": [item],
        "error": None,
        "incomplete_details": None,
        "instructions": None,
        "metadata": {},
        "parallel_tool_calls": True,
        "tool_choice": "auto",
        "tools": [],
        "temperature": None,
        "top_p": None,
        "text": {"format": {"type": "text"}},
    }
    done = _with_usage(done, "usage", usage, call)
    if not call.stream:
        return _json(done)
    started = {**done, "status": "in_progress", "output": []}
    if call.usage:
        started["usage"] = None
    at = {"item_id": item_id, "output_index": 0, "content_index": 0}
    events: list[Json] = [
        {"type": "response.created", "response": started},
        {"type": "response.in_progress", "response": started},
        {
            "type": "response.output_item.added",
            "output_index": 0,
            "item": {**item, "status": "in_progress", "content": []},
        },
        {"type": "response.content_part.added", **at, "part": {**part, "text": ""}},
        *(
            {"type": "response.output_text.delta", **at, "delta": p, "logprobs": []}
            for p in call.pieces
        ),
        {"type": "response.output_text.done", **at, "text": call.text, "logprobs": []},
        {"type": "response.content_part.done", **at, "part": part},
        {"type": "response.output_item.done", "output_index": 0, "item": item},
        {"type": "response.completed", "response": done},
    ]
    return _sse([{**e, "sequence_number": k} for k, e in enumerate(events)], named=True)


# --- Anthropic -------------------------------------------------------------------------------


def _anthropic(call: _Call) -> tuple[str, Chunks]:
    usage = {
        "input_tokens": call.input_tokens,
        "output_tokens": call.output_tokens,
        "cache_read_input_tokens": 0,
        "cache_creation_input_tokens": 0,
    }
    message = {
        "id": f"msg_mock_{call.n}",
        "type": "message",
        "role": "assistant",
        "model": call.model,
        "content": [{"type": "text", "text": call.text}],
        "stop_reason": "end_turn",
        "stop_sequence": None,
    }
    if not call.stream:
        return _json(_with_usage(message, "usage", usage, call))
    opening = {**message, "content": [], "stop_reason": None}
    opening = _with_usage(opening, "usage", {**usage, "output_tokens": 1}, call)
    stop = {"stop_reason": "end_turn", "stop_sequence": None}
    events: list[Json] = [
        {"type": "message_start", "message": opening},
        {"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}},
        {"type": "ping"},
        *(
            {"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": p}}
            for p in call.pieces
        ),
        {"type": "content_block_stop", "index": 0},
        _with_usage(
            {"type": "message_delta", "delta": stop},
            "usage",
            {"output_tokens": call.output_tokens},
            call,
        ),
        {"type": "message_stop"},
    ]
    return _sse(events, named=True)


def _anthropic_count(call: _Call) -> tuple[str, Chunks]:
    return _json({"input_tokens": call.input_tokens})


# --- Gemini ----------------------------------------------------------------------------------


def _gemini_chunk(call: _Call, text: str, output: int, final: bool) -> Json:
    candidate: Json = {"content": {"parts": [{"text": text}], "role": "model"}, "index": 0}
    if final:
        candidate["finishReason"] = "STOP"
    usage = {
        "promptTokenCount": call.input_tokens,
        "candidatesTokenCount": output,
        "totalTokenCount": call.input_tokens + output,
    }
    chunk = {
        "candidates": [candidate],
        "modelVersion": call.model,
        "responseId": f"gemini_mock_{call.n}",
    }
    return _with_usage(chunk, "usageMetadata", usage, call)


def _gemini(call: _Call) -> tuple[str, Chunks]:
    return _json(_gemini_chunk(call, call.text, call.output_tokens, final=True))


def _gemini_stream(call: _Call) -> tuple[str, Chunks]:
    pieces = call.pieces or [""]
    last = len(pieces) - 1
    chunks = [_gemini_chunk(call, p, i + 1 if p else 0, i == last) for i, p in enumerate(pieces)]
    if "sse" in parse_qs(call.query).get("alt", []):
        return _sse(chunks, end="\r\n\r\n")
    encoded = [orjson.dumps(c) for c in chunks]
    return JSON_TYPE, (b"[" + encoded[0], *(b",\r\n" + c for c in encoded[1:]), b"]")


def _gemini_count(call: _Call) -> tuple[str, Chunks]:
    return _json({"totalTokens": call.input_tokens})


# --- routing ---------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Route:
    family: str  # openai | anthropic | gemini
    read: Callable[[Json], _Prompt]
    render: Callable[[_Call], tuple[str, Chunks]]


_SUFFIXES = (
    ("/chat/completions", _Route("openai", _chat_prompt, _chat)),
    ("/completions", _Route("openai", _legacy_prompt, _legacy)),
    ("/responses", _Route("openai", _responses_prompt, _responses)),
    ("/embeddings", _Route("openai", _embedding_prompt, _embeddings)),
    ("/v1/messages/count_tokens", _Route("anthropic", _anthropic_prompt, _anthropic_count)),
    ("/v1/messages", _Route("anthropic", _anthropic_prompt, _anthropic)),
)
_GEMINI_ROUTES = {
    "generateContent": _Route("gemini", _gemini_prompt, _gemini),
    "streamGenerateContent": _Route("gemini", _gemini_prompt, _gemini_stream),
    "countTokens": _Route("gemini", _gemini_prompt, _gemini_count),
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
            return _reply(n, 200, _models())
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
        call = _call(n, model, parsed, query, route.read(parsed), steer)
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
