"""Gemini native API: `models/{model}:generateContent|streamGenerateContent|countTokens`.

The model lives in the path; prompts go into `systemInstruction.parts`.
"""

from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING, Any

from tokenomics.formats.base import Adapter, Body, Route, prompt_texts

if TYPE_CHECKING:
    from collections.abc import Sequence

    from tokenomics.domain.policy import Prompt


def _parts_texts(parts: Any) -> list[str]:
    if not isinstance(parts, list):
        return []
    return [p["text"] for p in parts if isinstance(p, dict) and isinstance(p.get("text"), str)]


class Gemini(Adapter):
    kind = "gemini_generate"
    family = "gemini"

    def model(self, body: Body, route: Route) -> str:
        return route.path_model

    def stream(self, body: Body, route: Route) -> bool:
        return route.path.endswith(":streamGenerateContent")

    def with_model(self, body: Body, route: Route, model: str) -> tuple[Body, Route]:
        if model == route.path_model:
            return body, route
        prefix, _, action = route.path.rpartition(":")
        head = prefix[: len(prefix) - len(route.path_model)]
        path = f"{head}{model}:{action}"
        return body, dataclasses.replace(route, path=path, path_model=model)

    def add_prompts(self, body: Body, prompts: Sequence[Prompt]) -> Body:
        texts = prompt_texts(prompts)
        if not texts:
            return body
        key = "system_instruction" if "system_instruction" in body else "systemInstruction"
        current = body.get(key)
        parts = current.get("parts") if isinstance(current, dict) else None
        existing = parts if isinstance(parts, list) else []
        instruction = {**(current if isinstance(current, dict) else {})}
        instruction["parts"] = [{"text": t} for t in texts] + existing
        return {**body, key: instruction}

    def texts(self, body: Body) -> list[str]:
        texts: list[str] = []
        for key in ("systemInstruction", "system_instruction"):
            instruction = body.get(key)
            if isinstance(instruction, dict):
                texts += _parts_texts(instruction.get("parts"))
        for content in body.get("contents") or []:
            if isinstance(content, dict):
                texts += _parts_texts(content.get("parts"))
        return texts


class GeminiCountTokens(Gemini):
    kind = "gemini_count_tokens"
    budgeted = False
    model_checked = False

    def stream(self, body: Body, route: Route) -> bool:
        return False
