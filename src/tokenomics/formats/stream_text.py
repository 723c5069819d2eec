"""Where the text is in the events of a streamed response, for every API family (D12).

Output rules on a stream (`pipeline/stream_guard.py`) hold back and rewrite the texts of
stream events; this module is the format knowledge they need, sans-I/O. A reader answers, for
one parsed event (its SSE event name and JSON payload, or the raw `data` string when it is not
JSON, such as OpenAI's `[DONE]`):

* `pieces`: the writable text deltas it carries, each on a *channel*, a tuple naming one text
  that grows over the stream (a choice's content, one tool call's arguments, an Anthropic
  content block, a Responses output part, a Gemini candidate);
* `closes`: the channels it ends, as channel prefixes (a channel closes when its tuple starts
  with one of them; `ALL` ends every channel) — the guard flushes held text before it;
* `snapshots`: full texts repeated at the end (Responses `*.done` events and the final
  `response`), which must carry what was actually sent;
* `synthetic`: a minimal delta event carrying `text` on `channel`, modelled on the last text
  event of that channel (`template`), for text flushed before a closing event. Only the text
  field is set, never ids, names or roles, which clients concatenate across deltas.

Channels, by family:

    OpenAI chat          (choice, "content" | "refusal" | "function_call"), and
                         (choice, "tool", tool_call_index) for `tool_calls[].function.arguments`
    legacy completions   (choice, "text")
    OpenAI Responses     ("text" | "refusal", output_index, content_index), ("args", output_index)
    Anthropic messages   (block index, "text" | "json")        thinking deltas are left alone:
                                                                they are signed
    Gemini               (candidate, "text" | "thought")       function calls arrive whole
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Hashable
from dataclasses import dataclass
from typing import Any

from tokenomics.formats.base import Slot

Channel = tuple[Hashable, ...]
ALL: tuple[Channel, ...] = ((),)  # the prefix of every channel
NONE: tuple[Channel, ...] = ()


@dataclass(frozen=True, slots=True)
class Piece:
    """One text inside an event: `slot` on `channel`."""

    channel: Channel
    slot: Slot


def closes(prefixes: tuple[Channel, ...], channel: Channel) -> bool:
    return any(channel[: len(prefix)] == prefix for prefix in prefixes)


def _piece(channel: Channel, container: Any, key: str) -> list[Piece]:
    """The piece for `container[key]` when it is a string (empty ones too: a flush may go
    into them)."""
    if isinstance(container, dict) and isinstance(container.get(key), str):
        return [Piece(channel, Slot(container, key))]
    return []


def _kind(name: str | None, payload: Any) -> str:
    kind = payload.get("type") if isinstance(payload, dict) else None
    return kind if isinstance(kind, str) else name or ""


def _get(payload: Any, key: str) -> Any:
    return payload.get(key) if isinstance(payload, dict) else None


def _dicts(value: Any) -> list[tuple[int, dict[str, Any]]]:
    """(position, item) of the dicts in a list; `index` fields win over positions."""
    found = []
    for position, item in enumerate(value if isinstance(value, list) else []):
        if isinstance(item, dict):
            index = item.get("index", position)
            found.append((index if isinstance(index, int) else position, item))
    return found


class StreamText(ABC):
    """A family's stream events. Every family can write a synthetic event (`synthetic`); the
    defaults of the others mean "no text here"."""

    has_snapshots = False  # True when `snapshots` can return anything

    def pieces(self, name: str | None, payload: Any) -> list[Piece]:
        return []

    def closes(self, name: str | None, payload: Any) -> tuple[Channel, ...]:
        return NONE

    def snapshots(self, name: str | None, payload: Any) -> list[Piece]:
        return []

    @abstractmethod
    def synthetic(self, template: dict[str, Any], channel: Channel, text: str) -> dict[str, Any]:
        """An event of this family carrying `text` on `channel`, shaped after `template`."""


# ── OpenAI chat completions and legacy completions ──────────────────────────────────────────


def _openai_closes(payload: Any) -> tuple[Channel, ...]:
    if payload == "[DONE]" or (isinstance(payload, dict) and "error" in payload):
        return ALL
    if not isinstance(payload, dict):
        return NONE
    choices = _dicts(payload.get("choices"))
    return tuple((i,) for i, choice in choices if choice.get("finish_reason"))


def _openai_chunk(template: dict[str, Any], choice: dict[str, Any]) -> dict[str, Any]:
    head = {k: v for k, v in template.items() if k not in ("choices", "usage", "obfuscation")}
    if "usage" in template:
        head["usage"] = None
    return {**head, "choices": [{**choice, "logprobs": None, "finish_reason": None}]}


class ChatText(StreamText):
    def pieces(self, name: str | None, payload: Any) -> list[Piece]:
        found: list[Piece] = []
        for i, choice in _dicts(_get(payload, "choices")):
            delta = choice.get("delta")
            found += _piece((i, "content"), delta, "content")
            found += _piece((i, "refusal"), delta, "refusal")
            function = delta.get("function_call") if isinstance(delta, dict) else None
            found += _piece((i, "function_call"), function, "arguments")  # deprecated form
            calls = delta.get("tool_calls") if isinstance(delta, dict) else None
            for k, call in _dicts(calls):
                found += _piece((i, "tool", k), call.get("function"), "arguments")
        return found

    def closes(self, name: str | None, payload: Any) -> tuple[Channel, ...]:
        return _openai_closes(payload)

    def synthetic(self, template: dict[str, Any], channel: Channel, text: str) -> dict[str, Any]:
        if channel[1] == "tool":
            delta: dict[str, Any] = {
                "tool_calls": [{"index": channel[2], "function": {"arguments": text}}]
            }
        elif channel[1] == "function_call":
            delta = {"function_call": {"arguments": text}}
        else:
            delta = {str(channel[1]): text}
        return _openai_chunk(template, {"index": channel[0], "delta": delta})


class CompletionText(StreamText):
    def pieces(self, name: str | None, payload: Any) -> list[Piece]:
        choices = _dicts(_get(payload, "choices"))
        return [p for i, choice in choices for p in _piece((i, "text"), choice, "text")]

    def closes(self, name: str | None, payload: Any) -> tuple[Channel, ...]:
        return _openai_closes(payload)

    def synthetic(self, template: dict[str, Any], channel: Channel, text: str) -> dict[str, Any]:
        return _openai_chunk(template, {"index": channel[0], "text": text})


# ── OpenAI Responses ────────────────────────────────────────────────────────────────────────

_RESPONSES_DELTAS = {
    "response.output_text.delta": "text",
    "response.refusal.delta": "refusal",
}
_RESPONSES_END = ("response.completed", "response.incomplete", "response.failed", "error")


def _at(payload: dict[str, Any]) -> tuple[Any, Any]:
    return payload.get("output_index", 0), payload.get("content_index", 0)


def _item_snapshots(output_index: Any, item: Any) -> list[Piece]:
    if not isinstance(item, dict):
        return []
    found = _piece(("args", output_index), item, "arguments")
    content = item.get("content")
    for ci, part in enumerate(content if isinstance(content, list) else []):
        found += _part_snapshots(output_index, ci, part)
    return found


def _part_snapshots(output_index: Any, content_index: Any, part: Any) -> list[Piece]:
    kind = part.get("type") if isinstance(part, dict) else None
    if kind == "output_text":
        return _piece(("text", output_index, content_index), part, "text")
    if kind == "refusal":
        return _piece(("refusal", output_index, content_index), part, "refusal")
    return []


class ResponsesText(StreamText):
    has_snapshots = True

    def pieces(self, name: str | None, payload: Any) -> list[Piece]:
        kind = _kind(name, payload)
        if kind in _RESPONSES_DELTAS:
            return _piece((_RESPONSES_DELTAS[kind], *_at(payload)), payload, "delta")
        if kind == "response.function_call_arguments.delta":
            return _piece(("args", payload.get("output_index", 0)), payload, "delta")
        return []

    def closes(self, name: str | None, payload: Any) -> tuple[Channel, ...]:
        kind = _kind(name, payload)
        if kind in _RESPONSES_END:
            return ALL
        if not isinstance(payload, dict):
            return NONE
        oi, ci = _at(payload)
        if kind == "response.output_text.done":
            return (("text", oi, ci),)
        if kind == "response.refusal.done":
            return (("refusal", oi, ci),)
        if kind == "response.content_part.done":
            return (("text", oi, ci), ("refusal", oi, ci))
        if kind == "response.function_call_arguments.done":
            return (("args", oi),)
        if kind == "response.output_item.done":
            return (("text", oi), ("refusal", oi), ("args", oi))
        return NONE

    def snapshots(self, name: str | None, payload: Any) -> list[Piece]:
        kind = _kind(name, payload)
        if not isinstance(payload, dict):
            return []
        oi, ci = _at(payload)
        if kind == "response.output_text.done":
            return _piece(("text", oi, ci), payload, "text")
        if kind == "response.refusal.done":
            return _piece(("refusal", oi, ci), payload, "refusal")
        if kind == "response.function_call_arguments.done":
            return _piece(("args", oi), payload, "arguments")
        if kind == "response.content_part.done":
            return _part_snapshots(oi, ci, payload.get("part"))
        if kind == "response.output_item.done":
            return _item_snapshots(oi, payload.get("item"))
        response = payload.get("response")
        if kind in _RESPONSES_END and isinstance(response, dict):
            output = response.get("output")
            items = output if isinstance(output, list) else []
            return [p for i, item in enumerate(items) for p in _item_snapshots(i, item)]
        return []

    def synthetic(self, template: dict[str, Any], channel: Channel, text: str) -> dict[str, Any]:
        event = {k: v for k, v in template.items() if k != "obfuscation"}
        event["delta"] = text
        if "logprobs" in event:
            event["logprobs"] = []
        return event


# ── Anthropic messages ──────────────────────────────────────────────────────────────────────

_ANTHROPIC_DELTAS = {"text_delta": ("text", "text"), "input_json_delta": ("json", "partial_json")}


class AnthropicText(StreamText):
    def pieces(self, name: str | None, payload: Any) -> list[Piece]:
        if _kind(name, payload) != "content_block_delta":
            return []
        delta = payload.get("delta")
        kind = delta.get("type") if isinstance(delta, dict) else None
        if kind not in _ANTHROPIC_DELTAS:
            return []
        channel, key = _ANTHROPIC_DELTAS[kind]
        return _piece((payload.get("index", 0), channel), delta, key)

    def closes(self, name: str | None, payload: Any) -> tuple[Channel, ...]:
        kind = _kind(name, payload)
        if kind in ("message_delta", "message_stop", "error"):
            return ALL
        if kind == "content_block_stop" and isinstance(payload, dict):
            return ((payload.get("index", 0),),)
        return NONE

    def synthetic(self, template: dict[str, Any], channel: Channel, text: str) -> dict[str, Any]:
        kind = "text_delta" if channel[1] == "text" else "input_json_delta"
        delta = {"type": kind, _ANTHROPIC_DELTAS[kind][1]: text}
        return {"type": "content_block_delta", "index": channel[0], "delta": delta}


# ── Gemini ──────────────────────────────────────────────────────────────────────────────────


class GeminiText(StreamText):
    def pieces(self, name: str | None, payload: Any) -> list[Piece]:
        found: list[Piece] = []
        for c, candidate in _dicts(_get(payload, "candidates")):
            content = candidate.get("content")
            parts = content.get("parts") if isinstance(content, dict) else None
            for part in parts if isinstance(parts, list) else []:
                if isinstance(part, dict):
                    found += _piece((c, "thought" if part.get("thought") else "text"), part, "text")
        return found

    def closes(self, name: str | None, payload: Any) -> tuple[Channel, ...]:
        if not isinstance(payload, dict):
            return NONE
        if "error" in payload:
            return ALL
        candidates = _dicts(payload.get("candidates"))
        return tuple((c,) for c, candidate in candidates if candidate.get("finishReason"))

    def synthetic(self, template: dict[str, Any], channel: Channel, text: str) -> dict[str, Any]:
        part: dict[str, Any] = {"text": text}
        if channel[1] == "thought":
            part["thought"] = True
        candidate = {"content": {"parts": [part], "role": "model"}, "index": channel[0]}
        head = {k: v for k, v in template.items() if k != "candidates"}
        return {"candidates": [candidate], **head}


_READERS: dict[str, StreamText] = {
    "openai_chat": ChatText(),
    "openai_completions": CompletionText(),
    "openai_responses": ResponsesText(),
    "anthropic_messages": AnthropicText(),
    "gemini_generate": GeminiText(),
}


def stream_text(kind: str) -> StreamText | None:
    """The reader for an adapter kind (`Adapter.kind`), None when its streams carry no text."""
    return _READERS.get(kind)
