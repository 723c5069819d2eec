"""The mock's Anthropic answers: messages (buffered and streamed) and count_tokens."""

from __future__ import annotations

from tokenomics.upstream.mock_call import Call, Chunks, Json, json_reply, sse_reply, with_usage


def anthropic(call: Call) -> tuple[str, Chunks]:
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
        return json_reply(with_usage(message, "usage", usage, call))
    opening = {**message, "content": [], "stop_reason": None}
    opening = with_usage(opening, "usage", {**usage, "output_tokens": 1}, call)
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
        with_usage(
            {"type": "message_delta", "delta": stop},
            "usage",
            {"output_tokens": call.output_tokens},
            call,
        ),
        {"type": "message_stop"},
    ]
    return sse_reply(events, named=True)


def anthropic_count(call: Call) -> tuple[str, Chunks]:
    return json_reply({"input_tokens": call.input_tokens})
