"""OpenAI families: chat completions, legacy completions, Responses, embeddings."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from tokenomics.formats.base import (
    Adapter,
    Body,
    Slot,
    content_slots,
    count_field,
    leaf_slots,
    listed,
    prompt_texts,
    string_slot,
)

if TYPE_CHECKING:
    from collections.abc import Sequence

    from tokenomics.domain.policy import Prompt


def _tool_call_slots(message: dict[str, Any]) -> list[Slot]:
    """`tool_calls[].function.arguments`, and the deprecated single `function_call`'s."""
    found: list[Slot] = []
    for call in listed(message.get("tool_calls")):
        function = call.get("function") if isinstance(call, dict) else None
        found += string_slot(function, "arguments")
    if "function_call" in message:  # deprecated, nearly always absent
        found += string_slot(message["function_call"], "arguments")
    return found


class OpenAIChat(Adapter):
    kind = "openai_chat"

    def output_cap(self, body: Body, default: int) -> int:
        """`max_completion_tokens` (reasoning included) or `max_tokens`, per choice: times `n`
        (and legacy completions' `best_of`, whose candidates are all billed)."""
        cap = count_field(body, "max_completion_tokens", "max_tokens") or default
        if "n" not in body and "best_of" not in body:
            return cap  # both absent: one choice, without two more lookups
        return cap * max(count_field(body, "n") or 1, count_field(body, "best_of") or 1)

    def add_prompts(self, body: Body, prompts: Sequence[Prompt]) -> Body:
        if not prompts:
            return body
        messages = body.get("messages")
        existing = (
            [m for m in messages if isinstance(m, dict)] if isinstance(messages, list) else []
        )
        injected = [{"role": p.role, "content": p.content} for p in prompts]
        return {**body, "messages": injected + existing}

    def ask_for_usage(self, body: Body) -> tuple[Body, bool]:
        options = body.get("stream_options")
        if isinstance(options, dict) and options.get("include_usage") is True:
            return body, False
        merged = {**(options if isinstance(options, dict) else {}), "include_usage": True}
        return {**body, "stream_options": merged}, True

    def slots(self, body: Body) -> list[Slot]:
        found: list[Slot] = []
        for message in listed(body.get("messages")):
            if isinstance(message, dict):
                found += content_slots(message, "content")
                if "tool_calls" in message or "function_call" in message:
                    found += _tool_call_slots(message)  # none without either key
        return found

    def response_slots(self, body: Body) -> list[Slot]:
        found: list[Slot] = []
        for choice in listed(body.get("choices")):
            message = choice.get("message") if isinstance(choice, dict) else None
            if isinstance(message, dict):
                found += content_slots(message, "content") + _tool_call_slots(message)
            found += string_slot(choice, "text")
        return found


class OpenAICompletions(OpenAIChat):
    kind = "openai_completions"

    def add_prompts(self, body: Body, prompts: Sequence[Prompt]) -> Body:
        prompt = body.get("prompt")
        if not prompts or not isinstance(prompt, str):
            return body
        return {**body, "prompt": "\n\n".join([*prompt_texts(prompts), prompt])}

    def slots(self, body: Body) -> list[Slot]:
        return string_slot(body, "prompt") + leaf_slots(body.get("prompt"))


class OpenAIResponses(Adapter):
    kind = "openai_responses"

    def output_cap(self, body: Body, default: int) -> int:
        return count_field(body, "max_output_tokens") or default

    def add_prompts(self, body: Body, prompts: Sequence[Prompt]) -> Body:
        if not prompts:
            return body
        current = body.get("instructions")
        parts = prompt_texts(prompts) + ([current] if isinstance(current, str) and current else [])
        return {**body, "instructions": "\n\n".join(parts)}

    def slots(self, body: Body) -> list[Slot]:
        found = string_slot(body, "instructions") + string_slot(body, "input")
        items = body.get("input")
        for item in items if isinstance(items, list) else []:
            if isinstance(item, dict):
                found += content_slots(item, "content")
                found += string_slot(item, "arguments") + string_slot(item, "output")
        return found

    def response_slots(self, body: Body) -> list[Slot]:
        found: list[Slot] = []
        for item in listed(body.get("output")):
            if isinstance(item, dict):
                found += content_slots(item, "content") + string_slot(item, "arguments")
        return found


class OpenAIEmbeddings(Adapter):
    kind = "openai_embeddings"

    def output_cap(self, body: Body, default: int) -> int:
        return 0  # embeddings produce no output tokens

    def stream(self, body: Body, route: Any) -> bool:
        return False

    def slots(self, body: Body) -> list[Slot]:
        value = body.get("input")
        if isinstance(value, list):
            return [Slot(value, i) for i, v in enumerate(value) if isinstance(v, str) and v]
        return string_slot(body, "input")
