"""OpenAI families: chat completions, legacy completions, Responses, embeddings."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import orjson

from tokenomics.formats.base import Adapter, Body, prompt_texts, text_of

if TYPE_CHECKING:
    from collections.abc import Sequence

    from tokenomics.domain.policy import Prompt


def _tool_call_texts(message: dict[str, Any]) -> list[str]:
    texts = []
    for call in message.get("tool_calls") or []:
        function = call.get("function") if isinstance(call, dict) else None
        if isinstance(function, dict) and isinstance(function.get("arguments"), str):
            texts.append(function["arguments"])
    return texts


class OpenAIChat(Adapter):
    kind = "openai_chat"

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

    def texts(self, body: Body) -> list[str]:
        texts: list[str] = []
        for message in body.get("messages") or []:
            if isinstance(message, dict):
                texts += text_of(message.get("content")) + _tool_call_texts(message)
        tools = body.get("tools")
        if tools:
            texts.append(orjson.dumps(tools).decode())
        return texts


class OpenAICompletions(OpenAIChat):
    kind = "openai_completions"

    def add_prompts(self, body: Body, prompts: Sequence[Prompt]) -> Body:
        prompt = body.get("prompt")
        if not prompts or not isinstance(prompt, str):
            return body
        return {**body, "prompt": "\n\n".join([*prompt_texts(prompts), prompt])}

    def texts(self, body: Body) -> list[str]:
        prompt = body.get("prompt")
        if isinstance(prompt, str):
            return [prompt]
        return [p for p in prompt if isinstance(p, str)] if isinstance(prompt, list) else []


class OpenAIResponses(Adapter):
    kind = "openai_responses"

    def add_prompts(self, body: Body, prompts: Sequence[Prompt]) -> Body:
        if not prompts:
            return body
        current = body.get("instructions")
        parts = prompt_texts(prompts) + ([current] if isinstance(current, str) and current else [])
        return {**body, "instructions": "\n\n".join(parts)}

    def texts(self, body: Body) -> list[str]:
        texts: list[str] = []
        if isinstance(body.get("instructions"), str):
            texts.append(body["instructions"])
        items = body.get("input")
        if isinstance(items, str):
            return [*texts, items]
        for item in items if isinstance(items, list) else []:
            if isinstance(item, dict):
                texts += text_of(item.get("content"))
                if isinstance(item.get("arguments"), str):
                    texts.append(item["arguments"])
                if isinstance(item.get("output"), str):
                    texts.append(item["output"])
        return texts


class OpenAIEmbeddings(Adapter):
    kind = "openai_embeddings"

    def stream(self, body: Body, route: Any) -> bool:
        return False

    def texts(self, body: Body) -> list[str]:
        value = body.get("input")
        if isinstance(value, str):
            return [value]
        return [v for v in value if isinstance(v, str)] if isinstance(value, list) else []
