"""A tiny OpenAI-style client with no dependencies: it knows nothing about Tokenomics and reads
only OPENAI_BASE_URL and OPENAI_API_KEY, the variables `tokenomics run` injects.

    tokenomics.pyz run --token tkn_... -- python3 examples/hello.py
"""

import json
import os
import sys
import urllib.request

BASE = os.environ["OPENAI_BASE_URL"].rstrip("/")
KEY = os.environ["OPENAI_API_KEY"]
MODEL = os.environ.get("HELLO_MODEL", "mock-gpt")


def post(body: dict) -> urllib.request.Request:
    return urllib.request.Request(
        BASE + "/chat/completions",
        data=json.dumps(body).encode(),
        headers={"Authorization": f"Bearer {KEY}", "Content-Type": "application/json"},
    )


def ask(prompt: str) -> None:
    body = {"model": MODEL, "messages": [{"role": "user", "content": prompt}]}
    with urllib.request.urlopen(post(body), timeout=30) as reply:
        answer = json.load(reply)
    usage = answer["usage"]
    print(f"{answer['choices'][0]['message']['content']!r}  ({usage['total_tokens']} tokens)")


def ask_streamed(prompt: str) -> None:
    body = {"model": MODEL, "stream": True, "messages": [{"role": "user", "content": prompt}]}
    pieces = []
    with urllib.request.urlopen(post(body), timeout=30) as reply:
        for line in reply:
            data = line.decode().strip().removeprefix("data:").strip()
            if data and data != "[DONE]" and line.startswith(b"data:"):
                for choice in json.loads(data).get("choices", []):
                    pieces.append(choice.get("delta", {}).get("content") or "")
    print(f"{''.join(pieces)!r}  (streamed in {len(pieces)} chunks)")


if __name__ == "__main__":
    print(f"client: talking to {BASE}", file=sys.stderr)
    ask("Hello from the quick start")
    ask_streamed("Hello again, streamed this time")
