"""The fixed upstream answers nginx serves: one chat completion, and the same as an SSE stream."""

import json

MODEL = "gpt-4o-mini"
ANSWER = "Hello benchmark, this is a fixed answer from the upstream used to measure overhead."
WORDS = ANSWER.split(" ")
USAGE = {"prompt_tokens": 14, "completion_tokens": len(WORDS), "total_tokens": 14 + len(WORDS)}


def completion() -> str:
    return json.dumps(
        {
            "id": "chatcmpl-bench",
            "object": "chat.completion",
            "created": 1700000000,
            "model": MODEL,
            "choices": [
                {
                    "index": 0,
                    "message": {"role": "assistant", "content": ANSWER},
                    "finish_reason": "stop",
                }
            ],
            "usage": USAGE,
        }
    )


def stream() -> str:
    events = []
    for i, word in enumerate(WORDS):
        delta = {"content": (" " if i else "") + word}
        chunk = {
            "id": "chatcmpl-bench",
            "object": "chat.completion.chunk",
            "created": 1700000000,
            "model": MODEL,
            "choices": [{"index": 0, "delta": delta, "finish_reason": None}],
        }
        events.append("data: " + json.dumps(chunk))
    usage = {
        "id": "chatcmpl-bench",
        "object": "chat.completion.chunk",
        "created": 1700000000,
        "model": MODEL,
        "choices": [],
        "usage": USAGE,
    }
    events.append("data: " + json.dumps(usage))
    events.append("data: [DONE]")
    return "\n\n".join(events) + "\n\n"


def request_body(stream: bool) -> str:
    """The request bench/post.lua sends."""
    prefix = '{"model":"gpt-4o-mini",' + ('"stream":true,' if stream else "")
    return prefix + '"messages":[{"role":"user","content":"Say hello to the benchmark."}]}'


def nginx_literal(text: str) -> str:
    """Quote a string for an nginx `return` directive."""
    return "'" + text.replace("\\", "\\\\").replace("'", "\\'").replace("\n", "\\n") + "'"


if __name__ == "__main__":
    import sys

    print(nginx_literal(stream() if sys.argv[1:] == ["stream"] else completion()))
