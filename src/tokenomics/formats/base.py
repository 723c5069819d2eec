"""What every API family adapter knows, and the request route it is chosen for.

An adapter reads the model, the stream flag and the texts of a parsed request body, inserts
policy prompts where its format wants them (D11), and prepares a body for a given model. Stages
never branch on provider or format names: they ask the adapter.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

if TYPE_CHECKING:
    from collections.abc import Sequence

    from tokenomics.domain.policy import Prompt

Family = Literal["openai", "anthropic", "gemini"]
Body = dict[str, Any]


class Adapter:
    """Base adapter: a JSON body with a string `model` and an optional `stream` flag."""

    kind = "generic"
    family: Family = "openai"
    budgeted = True  # False for count_tokens endpoints: rate-limited only, never charged
    model_checked = True

    def model(self, body: Body, route: Route) -> str:
        value = body.get("model")
        return value if isinstance(value, str) else ""

    def stream(self, body: Body, route: Route) -> bool:
        return body.get("stream") is True

    def with_model(self, body: Body, route: Route, model: str) -> tuple[Body, Route]:
        """The body (and route) to send for `model`; the input is not mutated."""
        if body.get("model") == model:
            return body, route
        return {**body, "model": model}, route

    def add_prompts(self, body: Body, prompts: Sequence[Prompt]) -> Body:
        """The body with policy prompts inserted (a new dict when anything changes)."""
        return body

    def ask_for_usage(self, body: Body) -> tuple[Body, bool]:
        """For streams: make the upstream report usage; True when the client did not ask."""
        return body, False

    def texts(self, body: Body) -> list[str]:
        """Every text the model will see, for token estimates (and content rules)."""
        return []


@dataclass(frozen=True, slots=True)
class Route:
    """What a request is: its adapter (None for plain passthrough) and its API family."""

    adapter: Adapter | None
    family: Family
    path: str
    path_model: str = ""  # Gemini native paths carry the model

    @property
    def kind(self) -> str:
        return self.adapter.kind if self.adapter is not None else "passthrough"


def text_of(content: Any) -> list[str]:
    """Texts of OpenAI/Anthropic message content: a string, or a list of text parts."""
    if isinstance(content, str):
        return [content]
    if not isinstance(content, list):
        return []
    texts = []
    for part in content:
        if isinstance(part, dict):
            text = part.get("text")
            if isinstance(text, str):
                texts.append(text)
            inner = part.get("content")  # tool results may nest content
            if inner is not None and inner is not content:
                texts += text_of(inner)
    return texts


def prompt_texts(prompts: Sequence[Prompt]) -> list[str]:
    return [p.content for p in prompts if p.content]
