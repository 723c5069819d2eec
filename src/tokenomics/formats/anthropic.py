"""Anthropic Messages API: messages and count_tokens. Prompts go into top-level `system`."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from tokenomics.formats.base import Adapter, Body, Slot, content_slots, listed, prompt_texts

if TYPE_CHECKING:
    from collections.abc import Sequence

    from tokenomics.domain.policy import Prompt


class AnthropicMessages(Adapter):
    kind = "anthropic_messages"
    family = "anthropic"

    def add_prompts(self, body: Body, prompts: Sequence[Prompt]) -> Body:
        texts = prompt_texts(prompts)
        if not texts:
            return body
        system = body.get("system")
        if isinstance(system, list):
            blocks: list[Any] = [{"type": "text", "text": t} for t in texts]
            return {**body, "system": blocks + system}
        existing = [system] if isinstance(system, str) and system else []
        return {**body, "system": "\n\n".join(texts + existing)}

    def slots(self, body: Body) -> list[Slot]:
        found = content_slots(body, "system")
        for message in listed(body.get("messages")):
            if isinstance(message, dict):
                found += content_slots(message, "content")
        return found

    def response_slots(self, body: Body) -> list[Slot]:
        return content_slots(body, "content")


class AnthropicCountTokens(AnthropicMessages):
    kind = "anthropic_count_tokens"
    budgeted = False
    model_checked = False

    def stream(self, body: Body, route: Any) -> bool:
        return False
