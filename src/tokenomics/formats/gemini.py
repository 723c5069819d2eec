"""Gemini native API: `models/{model}:generateContent|streamGenerateContent|countTokens`.

The model lives in the path; prompts go into `systemInstruction.parts`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from tokenomics.formats.base import (
    Adapter,
    Body,
    Route,
    Slot,
    count_field,
    leaf_slots,
    listed,
    prompt_texts,
    string_slot,
)

if TYPE_CHECKING:
    from collections.abc import Sequence

    from tokenomics.domain.policy import Prompt


def _parts_slots(parts: Any) -> list[Slot]:
    """Text parts, and the string leaves of function call `args` and function `response`s."""
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


class Gemini(Adapter):
    kind = "gemini_generate"
    family = "gemini"

    def stream(self, body: Body, route: Route) -> bool:
        return route.path.endswith(":streamGenerateContent")

    def with_model(self, body: Body, route: Route, model: str) -> tuple[Body, Route]:
        """The model is the path's only: the body stays as it is."""
        return body, route.for_model(model)

    def output_cap(self, body: Body, default: int) -> int:
        """`generationConfig.maxOutputTokens` (either spelling), times `candidateCount`."""
        config = body.get("generationConfig", body.get("generation_config"))
        cap = count_field(config, "maxOutputTokens", "max_output_tokens") or default
        return cap * (count_field(config, "candidateCount", "candidate_count") or 1)

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

    def slots(self, body: Body) -> list[Slot]:
        found: list[Slot] = []
        for key in ("systemInstruction", "system_instruction"):
            instruction = body.get(key)
            if isinstance(instruction, dict):
                found += _parts_slots(instruction.get("parts"))
        for content in listed(body.get("contents")):
            if isinstance(content, dict):
                found += _parts_slots(content.get("parts"))
        return found

    def response_slots(self, body: Body) -> list[Slot]:
        found: list[Slot] = []
        for candidate in listed(body.get("candidates")):
            content = candidate.get("content") if isinstance(candidate, dict) else None
            if isinstance(content, dict):
                found += _parts_slots(content.get("parts"))
        return found


class GeminiCountTokens(Gemini):
    kind = "gemini_count_tokens"
    budgeted = False
    model_checked = False

    def stream(self, body: Body, route: Route) -> bool:
        return False

    def slots(self, body: Body) -> list[Slot]:
        """The request's texts, also when it is wrapped as `generateContentRequest`."""
        wrapped = body.get("generateContentRequest")
        return super().slots(body) + (super().slots(wrapped) if isinstance(wrapped, dict) else [])
