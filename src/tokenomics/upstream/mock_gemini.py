"""The mock's Gemini answers: generateContent, streamGenerateContent (SSE or JSON array),
countTokens."""

from __future__ import annotations

from urllib.parse import parse_qs

import orjson

from tokenomics.upstream.mock_call import (
    JSON_TYPE,
    Call,
    Chunks,
    Json,
    json_reply,
    sse_reply,
    with_usage,
)


def _gemini_chunk(call: Call, text: str, output: int, final: bool) -> Json:
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
    return with_usage(chunk, "usageMetadata", usage, call)


def gemini(call: Call) -> tuple[str, Chunks]:
    return json_reply(_gemini_chunk(call, call.text, call.output_tokens, final=True))


def gemini_stream(call: Call) -> tuple[str, Chunks]:
    pieces = call.pieces or [""]
    last = len(pieces) - 1
    chunks = [_gemini_chunk(call, p, i + 1 if p else 0, i == last) for i, p in enumerate(pieces)]
    if "sse" in parse_qs(call.query).get("alt", []):
        return sse_reply(chunks, end="\r\n\r\n")
    encoded = [orjson.dumps(c) for c in chunks]
    return JSON_TYPE, (b"[" + encoded[0], *(b",\r\n" + c for c in encoded[1:]), b"]")


def gemini_count(call: Call) -> tuple[str, Chunks]:
    return json_reply({"totalTokens": call.input_tokens})
