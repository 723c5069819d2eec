"""How much of an exchange a memory entry keeps (sans-I/O): the headers that matter, and each
body section cut to `SECTION_LIMIT` characters.

Headers: only the names in `KEPT_HEADERS` (the OpenClaw ones by name: a prefix would let an
`X-OpenClaw-Token` through), with their values; credentials are never among them (and
`capture.header_lines` drops any that look like one). The transport and SDK telemetry headers
a client sends by the dozen (`x-stainless-*`, `accept-encoding`, `connection`, …) and a
provider's rate-limit and tracing headers are left out.

Bodies: a memory entry is for reading back what was said, so a section longer than
`SECTION_LIMIT` characters keeps its first quarter and its last three quarters of that limit
(a request's newest message is at its end), with a `[... <n> characters left out for memory
...]` line between. Before that, a JSON request body that is too long has its bulky standing
parts (`tools`, `system`, `instructions`, …: the same on every call of an agent) longer than
`STANDING_LIMIT` bytes replaced by a `[left out for memory: <n> items, <size> bytes]` note.

The sections are a request's or a buffered reply's body, a stream's list of events and the
assistant text it carried, and an event entry's body: an entry holds at most two, so it stays
under `2 * SECTION_LIMIT` characters plus its few header lines.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import orjson

from tokenomics.pipeline.stream_capture import SECTION_LIMIT as SECTION_LIMIT  # re-exported

if TYPE_CHECKING:
    from collections.abc import Callable, Iterable

    from tokenomics.pipeline.stream_capture import Clipped
KEPT_HEADERS = frozenset({
    "content-type", "user-agent", "anthropic-version", "anthropic-beta", "openai-beta",
    "x-request-id", "request-id", "x-client-request-id", "x-openclaw-agent-id",
    "x-openclaw-agent-type", "x-openclaw-team", "x-openclaw-channel", "x-openclaw-skill",
    "x-openclaw-environment",
})  # fmt: skip
# Top-level keys of a request body that repeat on every call (tool schemas, system prompts):
# noted when their JSON is longer than STANDING_LIMIT bytes.
STANDING_LIMIT = 1024
STANDING_KEYS = (
    "system", "tools", "functions", "instructions", "systemInstruction", "system_instruction",
)  # fmt: skip


def kept_headers(headers: Iterable[tuple[str, str]]) -> list[tuple[str, str]]:
    """The headers worth remembering, in their order."""
    return [(name, value) for name, value in headers if name.lower() in KEPT_HEADERS]


def clip(text: str, limit: int = SECTION_LIMIT) -> str:
    """`text` when it fits in `limit` characters, else its start and end around a note."""
    if len(text) <= limit:
        return text
    head, tail = limit // 4, limit - limit // 4
    return _around(text[:head], len(text) - head - tail, text[-tail:])


def clip_kept(kept: Clipped, sanitise: Callable[[str], str]) -> str:
    """`clip(sanitise(text))` of a text kept as a `Clipped`; `sanitise` maps characters one
    to one, so it may be applied to the kept parts alone."""
    if not kept.left_out:
        return sanitise(kept.head + kept.tail_text())
    return _around(sanitise(kept.head), kept.left_out, sanitise(kept.tail_text()))


def _around(head: str, left_out: int, tail: str) -> str:
    return f"{head}\n[... {left_out} characters left out for memory ...]\n{tail}"


def request_text(text: str) -> str:
    """A request body for memory: standing parts of a long JSON body noted, then clipped."""
    return clip(_without_standing_parts(text) if len(text) > SECTION_LIMIT else text)


def _without_standing_parts(text: str) -> str:
    try:
        body = orjson.loads(text)
    except orjson.JSONDecodeError:
        return text
    if not isinstance(body, dict) or not any(k in body for k in STANDING_KEYS):
        return text
    shortened = {k: _noted(v) if k in STANDING_KEYS else v for k, v in body.items()}
    return orjson.dumps(shortened).decode()


def _noted(value: Any) -> Any:
    """`value`, or a note of its size when its JSON is over `STANDING_LIMIT` bytes."""
    size = len(orjson.dumps(value))
    if size <= STANDING_LIMIT:
        return value
    count = f"{len(value)} items, " if isinstance(value, list) else ""
    return f"[left out for memory: {count}{size} bytes]"
