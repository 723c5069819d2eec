"""The mock's view of a request: its prompt texts and deterministic usage (`Call`), and the
helpers every family's answer is built with (see `mock.py` for the behaviour)."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

import orjson

from tokenomics.upstream.mock_json import json_request, shaped

CREATED = 1_700_000_000
MOCK_MODELS = ("mock-gpt", "mock-claude", "mock-gemini", "echo")
JSON_TYPE = "application/json"
SSE_TYPE = "text/event-stream"
_WORD = re.compile(r"\s*\S+\s*$|\s*\S+")

Json = dict[str, Any]
Chunks = tuple[bytes, ...]


# --- reading requests ------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Prompt:
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


def _conversation(items: Any, system: str = "", content: str = "content") -> Prompt:
    messages = [m for m in items if isinstance(m, dict)] if isinstance(items, list) else []
    texts = [_text(m.get(content)) for m in messages]
    users = [t for m, t in zip(messages, texts, strict=True) if m.get("role", "user") == "user"]
    extra = (system,) if system else ()
    return Prompt((*extra, *texts), len(messages) + len(extra), users[-1] if users else "")


def _strings(value: Any) -> Prompt:
    items = [value] if isinstance(value, str) else value if isinstance(value, list) else []
    texts = tuple(t for t in items if isinstance(t, str))
    return Prompt(texts, len(texts), texts[-1] if texts else "")


def chat_prompt(body: Json) -> Prompt:
    return _conversation(body.get("messages"))


def anthropic_prompt(body: Json) -> Prompt:
    return _conversation(body.get("messages"), _text(body.get("system")))


def responses_prompt(body: Json) -> Prompt:
    instructions = body.get("instructions")
    system = instructions if isinstance(instructions, str) else ""
    given = body.get("input")
    items = [{"role": "user", "content": given}] if isinstance(given, str) else given
    return _conversation(items, system)


def gemini_prompt(body: Json) -> Prompt:
    request = body.get("generateContentRequest", body)
    request = request if isinstance(request, dict) else {}
    system = request.get("systemInstruction", request.get("system_instruction"))
    text = _text(system.get("parts")) if isinstance(system, dict) else ""
    return _conversation(request.get("contents"), text, content="parts")


def legacy_prompt(body: Json) -> Prompt:
    return _strings(body.get("prompt"))


def embedding_prompt(body: Json) -> Prompt:
    return _strings(body.get("input"))


# --- the answer ------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Call:
    n: int
    model: str
    body: Json
    query: str
    prompt: Prompt
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


def make_call(
    n: int, model: str, body: Json, query: str, prompt: Prompt, flags: frozenset[str]
) -> Call:
    """The call to answer; `flags` are the model name's steering flags (`echo`, `nousage`).
    A request for JSON gets JSON (`mock_json`), unless `echo` asks for the text verbatim."""
    if "echo" in flags:
        text = prompt.last_user
    else:
        text = " ".join(["Mock reply to:", *prompt.last_user.split()[:12]])
        if (schema := json_request(body)) is not None:
            text = orjson.dumps(shaped(schema, text)).decode()
    words = sum(len(t.split()) for t in prompt.texts) + 3 * prompt.messages
    usage = "nousage" not in flags
    return Call(n, model, body, query, prompt, text, words, len(text.split()), usage)


def json_reply(value: Any) -> tuple[str, Chunks]:
    return JSON_TYPE, (orjson.dumps(value),)


def sse_reply(events: list[Any], *, named: bool = False, end: str = "\n\n") -> tuple[str, Chunks]:
    def one(event: Any) -> bytes:
        head = f"event: {event['type']}\n" if named else ""
        return f"{head}data: ".encode() + orjson.dumps(event) + end.encode()

    return SSE_TYPE, tuple(one(e) for e in events)


def with_usage(value: Json, key: str, usage: Json, call: Call) -> Json:
    return {**value, key: usage} if call.usage else value
