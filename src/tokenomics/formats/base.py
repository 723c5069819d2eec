"""What every API family adapter knows, and the request route it is chosen for.

An adapter reads the model, the stream flag and the texts of a parsed request body, inserts
policy prompts where its format wants them (D11), and prepares a body for a given model. Stages
never branch on provider or format names: they ask the adapter.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import orjson

if TYPE_CHECKING:
    from collections.abc import Sequence

    from tokenomics.domain.policy import Prompt
    from tokenomics.domain.usage import Family

Body = dict[str, Any]


class Adapter:
    """Base adapter: a JSON body with a string `model` and an optional `stream` flag."""

    kind = "generic"
    family: Family = "openai"
    budgeted = True  # False for count_tokens endpoints: rate-limited only, never charged
    model_checked = True

    def model(self, body: Body, route: Route) -> str:
        """The path's model when it names one (the upstream serves that), else the body's."""
        if route.path_model:
            return route.path_model
        value = body.get("model")
        return value if isinstance(value, str) else ""

    def stream(self, body: Body, route: Route) -> bool:
        return body.get("stream") is True

    def with_model(self, body: Body, route: Route, model: str) -> tuple[Body, Route]:
        """The body (and route) to send for `model`; the input is not mutated."""
        route = route.for_model(model)
        if body.get("model") == model:
            return body, route
        return {**body, "model": model}, route

    def add_prompts(self, body: Body, prompts: Sequence[Prompt]) -> Body:
        """The body with policy prompts inserted (a new dict when anything changes)."""
        return body

    def output_cap(self, body: Body, default: int) -> int:
        """The most output tokens the request lets the model produce (all choices together),
        `default` standing for a limit per choice the request does not set. Budgets hold this
        much until the actual usage is known."""
        return count_field(body, "max_tokens") or default

    def ask_for_usage(self, body: Body) -> tuple[Body, bool]:
        """For streams: make the upstream report usage; True when the client did not ask."""
        return body, False

    def slots(self, body: Body) -> list[Slot]:
        """Every text the model will see, as writable places in `body` (D12): content rules
        read and mask them; estimates count them. Policy prompts are added later, unscanned."""
        return []

    def response_slots(self, body: Body) -> list[Slot]:
        """The texts of a buffered response the client will see (output rules scan these)."""
        return []

    def texts(self, body: Body) -> list[str]:
        """The texts for token estimates: the slots, plus tool definitions as JSON."""
        texts = [str(slot.container[slot.key]) for slot in self.slots(body)]
        tools = body.get("tools")
        if tools:
            texts.append(orjson.dumps(tools).decode())
        return texts


def count_field(container: Any, *keys: str) -> int | None:
    """The first of `keys` in `container` holding a whole number >= 1 (a bool, a fraction, a
    string or a number < 1 counts as absent)."""
    if not isinstance(container, dict):
        return None
    for key in keys:
        value = container.get(key)
        if isinstance(value, int) and not isinstance(value, bool) and value >= 1:
            return value
    return None


class Slot:
    """One string inside a JSON body: `container[key]`. A plain slots class built positionally
    (a frozen dataclass cost several times as much per slot, and requests build several)."""

    __slots__ = ("container", "key")

    def __init__(self, container: Any, key: Any) -> None:
        self.container = container
        self.key = key

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Slot):
            return NotImplemented
        return (self.container, self.key) == (other.container, other.key)

    __hash__ = None  # type: ignore[assignment]  # a container is a mutable dict or list

    def __repr__(self) -> str:
        return f"Slot(container={self.container!r}, key={self.key!r})"

    @property
    def text(self) -> str:
        return str(self.container[self.key])

    def set(self, value: str) -> None:
        self.container[self.key] = value


def listed(value: Any) -> list[Any]:
    """`value` when it is a list, else none: a client's or an upstream's `messages`, `choices`
    and the like may be any JSON (`"messages": true` must not fail the request's record)."""
    return value if isinstance(value, list) else []


def string_slot(container: Any, key: Any) -> list[Slot]:
    """The slot for `container[key]` when it holds a non-empty string."""
    if isinstance(container, dict):
        value = container.get(key)  # keys are strings here: no exception path for a dict
    elif container is None:
        return []  # the common absent field, without raising and catching a TypeError
    else:
        try:
            value = container[key]
        except (KeyError, IndexError, TypeError):
            return []
    return [Slot(container, key)] if isinstance(value, str) and value else []


def leaf_slots(value: Any) -> list[Slot]:
    """Every string inside nested dicts/lists (tool-call arguments given as objects)."""
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
    """OpenAI/Anthropic content: a string, or a list of parts whose `text` (and nested tool
    result `content`, and an Anthropic document's text `source`) are texts."""
    value = container.get(key) if isinstance(container, dict) else None
    if isinstance(value, str):
        return [Slot(container, key)] if value else []
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


@dataclass(frozen=True, slots=True)
class Route:
    """What a request is: its adapter (None for plain passthrough) and its API family."""

    adapter: Adapter | None
    family: Family
    path: str
    path_model: str = ""  # the model a path names (Gemini `models/…:`, Azure `deployments/…/`)
    model_start: int = 0  # where `path_model` starts in `path`

    @property
    def kind(self) -> str:
        return self.adapter.kind if self.adapter is not None else "passthrough"

    def for_model(self, model: str) -> Route:
        """This route with `model` in its path in place of `path_model` (the same without)."""
        if not self.path_model or model == self.path_model:
            return self
        end = self.model_start + len(self.path_model)
        path = self.path[: self.model_start] + model + self.path[end:]
        return dataclasses.replace(self, path=path, path_model=model)


def prompt_texts(prompts: Sequence[Prompt]) -> list[str]:
    return [p.content for p in prompts if p.content]
