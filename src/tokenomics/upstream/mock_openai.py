"""The mock's OpenAI answers: chat completions, completions, embeddings, models, responses."""

from __future__ import annotations

import base64
import hashlib
import struct
from typing import Any

from tokenomics.upstream.mock_call import (
    CREATED,
    MOCK_MODELS,
    Call,
    Chunks,
    Json,
    json_reply,
    sse_reply,
    with_usage,
)


def _openai_usage(call: Call) -> Json:
    i, o = call.input_tokens, call.output_tokens
    return {"prompt_tokens": i, "completion_tokens": o, "total_tokens": i + o}


def _openai_stream(call: Call, head: Json, choices: list[Json]) -> tuple[str, Chunks]:
    include = (call.body.get("stream_options") or {}).get("include_usage") is True
    extra = {"usage": None} if include and call.usage else {}
    events: list[Any] = [{**head, "choices": [c], **extra} for c in choices]
    if include and call.usage:
        events.append({**head, "choices": [], "usage": _openai_usage(call)})
    content_type, chunks = sse_reply(events)
    return content_type, (*chunks, b"data: [DONE]\n\n")


def chat(call: Call) -> tuple[str, Chunks]:
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
        return json_reply(
            with_usage({**head, "choices": [choice]}, "usage", _openai_usage(call), call)
        )
    head["object"] = "chat.completion.chunk"
    deltas = [{"role": "assistant", "content": ""}, *({"content": p} for p in call.pieces), {}]
    last = len(deltas) - 1
    choices = [
        {"index": 0, "delta": d, "logprobs": None, "finish_reason": "stop" if i == last else None}
        for i, d in enumerate(deltas)
    ]
    return _openai_stream(call, head, choices)


def legacy(call: Call) -> tuple[str, Chunks]:
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
    return json_reply(with_usage({**head, "choices": choices}, "usage", _openai_usage(call), call))


def _vector(text: str, as_base64: bool) -> Any:
    digest = hashlib.sha256(text.encode()).digest()
    floats = [round(b / 127.5 - 1.0, 6) for b in digest[:8]]
    return base64.b64encode(struct.pack("<8f", *floats)).decode() if as_base64 else floats


def embeddings(call: Call) -> tuple[str, Chunks]:
    as_base64 = call.body.get("encoding_format") == "base64"
    data = [
        {"object": "embedding", "index": i, "embedding": _vector(t, as_base64)}
        for i, t in enumerate(call.prompt.texts)
    ]
    usage = {"prompt_tokens": call.input_tokens, "total_tokens": call.input_tokens}
    return json_reply(
        with_usage({"object": "list", "data": data, "model": call.model}, "usage", usage, call)
    )


def models() -> tuple[str, Chunks]:
    data = [
        {"id": m, "object": "model", "created": CREATED, "owned_by": "tokenomics-mock"}
        for m in MOCK_MODELS
    ]
    return json_reply({"object": "list", "data": data})


def responses(call: Call) -> tuple[str, Chunks]:
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
    done = with_usage(done, "usage", usage, call)
    if not call.stream:
        return json_reply(done)
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
    return sse_reply([{**e, "sequence_number": k} for k, e in enumerate(events)], named=True)
