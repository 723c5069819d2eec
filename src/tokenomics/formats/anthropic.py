"""Anthropic Messages API: messages and count_tokens. Prompts go into top-level `system`."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import orjson

from tokenomics.formats.base import Adapter, Body, prompt_texts, text_of

if TYPE_CHECKING:
    from collections.abc import Sequence

    from tokenomics.domain.policy import Prompt


def _block_texts(block: Any) -> list[str]:
    if not isinstance(block, dict):
        return []
    if block.get("type") == "tool_use" and "input" in block:
        return [orjson.dumps(block["input"]).decode()]
    return text_of([block])


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

    def texts(self, body: Body) -> list[str]:
        system = body.get("system")
        texts = text_of(system)
        for message in body.get("messages") or []:
            if not isinstance(message, dict):
                continue
            content = message.get("content")
            if isinstance(content, str):
                texts.append(content)
            elif isinstance(content, list):
                for block in content:
                    texts += _block_texts(block)
        if body.get("tools"):
            texts.append(orjson.dumps(body["tools"]).decode())
        return texts


class AnthropicCountTokens(AnthropicMessages):
    kind = "anthropic_count_tokens"
    budgeted = False
    model_checked = False

    def stream(self, body: Body, route: Any) -> bool:
        return False
