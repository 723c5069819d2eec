"""The request-body slot finders as they were before they were made cheaper (int a780115):
the reference `test_slots_reference` compares the product's adapters with, kept verbatim
apart from names (functions in place of methods)."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import orjson

from tokenomics.formats.base import count_field
from tokenomics.formats.estimate import ENCODE_LIMIT, fallback_count, utf8_size

if TYPE_CHECKING:
    from collections.abc import Iterable

Body = dict[str, Any]


@dataclass(frozen=True, slots=True)
class Slot:
    container: Any
    key: Any

    @property
    def text(self) -> str:
        return str(self.container[self.key])


def string_slot(container: Any, key: Any) -> list[Slot]:
    try:
        value = container[key]
    except (KeyError, IndexError, TypeError):
        return []
    return [Slot(container, key)] if isinstance(value, str) and value else []


def leaf_slots(value: Any) -> list[Slot]:
    found: list[Slot] = []
    items = (
        value.items()
        if isinstance(value, dict)
        else enumerate(value)
        if isinstance(value, list)
        else ()
    )
    for key, item in items:
        if isinstance(item, str):
            found += string_slot(value, key)
        elif isinstance(item, dict | list):
            found += leaf_slots(item)
    return found


def content_slots(container: Any, key: Any) -> list[Slot]:
    value = container.get(key) if isinstance(container, dict) else None
    if isinstance(value, str):
        return string_slot(container, key)
    found: list[Slot] = []
    for part in value if isinstance(value, list) else []:
        if isinstance(part, dict):
            found += string_slot(part, "text")
            if part.get("type") == "tool_use":
                found += leaf_slots(part.get("input"))
            source = part.get("source") if part.get("type") == "document" else None
            if isinstance(source, dict) and source.get("type") == "text":
                found += string_slot(source, "data")
            elif isinstance(source, dict) and source.get("type") == "content":
                found += content_slots(source, "content")
            if "content" in part:
                found += content_slots(part, "content")
    return found


def texts(slots: list[Slot], body: Body) -> list[str]:
    found = [slot.text for slot in slots]
    tools = body.get("tools")
    if tools:
        found.append(orjson.dumps(tools).decode())
    return found


def _tool_call_slots(message: dict[str, Any]) -> list[Slot]:
    found: list[Slot] = []
    for call in message.get("tool_calls") or []:
        function = call.get("function") if isinstance(call, dict) else None
        found += string_slot(function, "arguments")
    return found + string_slot(message.get("function_call"), "arguments")


def chat_output_cap(body: Body, default: int) -> int:
    cap = count_field(body, "max_completion_tokens", "max_tokens") or default
    return cap * max(count_field(body, "n") or 1, count_field(body, "best_of") or 1)


def chat_slots(body: Body) -> list[Slot]:
    found: list[Slot] = []
    for message in body.get("messages") or []:
        if isinstance(message, dict):
            found += content_slots(message, "content") + _tool_call_slots(message)
    return found


def chat_response_slots(body: Body) -> list[Slot]:
    found: list[Slot] = []
    for choice in body.get("choices") or []:
        message = choice.get("message") if isinstance(choice, dict) else None
        if isinstance(message, dict):
            found += content_slots(message, "content") + _tool_call_slots(message)
        found += string_slot(choice, "text")
    return found


def completions_slots(body: Body) -> list[Slot]:
    return string_slot(body, "prompt") + leaf_slots(body.get("prompt"))


def responses_slots(body: Body) -> list[Slot]:
    found = string_slot(body, "instructions") + string_slot(body, "input")
    items = body.get("input")
    for item in items if isinstance(items, list) else []:
        if isinstance(item, dict):
            found += content_slots(item, "content")
            found += string_slot(item, "arguments") + string_slot(item, "output")
    return found


def responses_response_slots(body: Body) -> list[Slot]:
    found: list[Slot] = []
    for item in body.get("output") or []:
        if isinstance(item, dict):
            found += content_slots(item, "content") + string_slot(item, "arguments")
    return found


def embeddings_slots(body: Body) -> list[Slot]:
    value = body.get("input")
    if isinstance(value, list):
        return [Slot(value, i) for i, v in enumerate(value) if isinstance(v, str) and v]
    return string_slot(body, "input")


def anthropic_slots(body: Body) -> list[Slot]:
    found = content_slots(body, "system")
    for message in body.get("messages") or []:
        if isinstance(message, dict):
            found += content_slots(message, "content")
    return found


def anthropic_response_slots(body: Body) -> list[Slot]:
    return content_slots(body, "content")


def _parts_slots(parts: Any) -> list[Slot]:
    found: list[Slot] = []
    for part in parts if isinstance(parts, list) else []:
        if isinstance(part, dict):
            found += string_slot(part, "text")
            call = part.get("functionCall") or part.get("function_call")
            if isinstance(call, dict):
                found += leaf_slots(call.get("args"))
            result = part.get("functionResponse") or part.get("function_response")
            if isinstance(result, dict):
                found += leaf_slots(result.get("response"))
    return found


def gemini_slots(body: Body) -> list[Slot]:
    found: list[Slot] = []
    for key in ("systemInstruction", "system_instruction"):
        instruction = body.get(key)
        if isinstance(instruction, dict):
            found += _parts_slots(instruction.get("parts"))
    for content in body.get("contents") or []:
        if isinstance(content, dict):
            found += _parts_slots(content.get("parts"))
    return found


def gemini_response_slots(body: Body) -> list[Slot]:
    found: list[Slot] = []
    for candidate in body.get("candidates") or []:
        content = candidate.get("content") if isinstance(candidate, dict) else None
        if isinstance(content, dict):
            found += _parts_slots(content.get("parts"))
    return found


def gemini_count_slots(body: Body) -> list[Slot]:
    wrapped = body.get("generateContentRequest")
    return gemini_slots(body) + (gemini_slots(wrapped) if isinstance(wrapped, dict) else [])


def bound_texts(texts: Iterable[str], *, per_text: int = 3) -> int:
    """`estimate.bound_texts` before its one-sum fast path: `_total(utf8_size, ...)`."""
    total = tokens = chars = 0
    for text in texts:
        head = text[: max(ENCODE_LIMIT - chars, 0)]
        counted = utf8_size(head)
        tokens, chars = tokens + counted, chars + len(head)
        total += per_text + counted + _beyond(text[len(head) :], tokens, chars)
    return total


def _beyond(text: str, tokens: int, chars: int) -> int:
    if not text:
        return 0
    return max(fallback_count(text), math.ceil(tokens * len(text) / chars) if chars else 0)
