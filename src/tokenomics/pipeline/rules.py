"""Content rules in the pipeline (D12): input rules on every text of the request, output rules
on buffered responses. What a text *is* comes from the format adapter's slots; the engine
decides. Every match is recorded on the exchange (`rule_matches`, events); bodies are copied
before masking, so the client's parsed body is never changed in place."""

from __future__ import annotations

import copy
from typing import TYPE_CHECKING, Any

from tokenomics.domain.engine import Match, applies, check, mask
from tokenomics.domain.errors import Blocked

if TYPE_CHECKING:
    from collections.abc import Callable, Sequence

    from tokenomics.domain.rules import Rule
    from tokenomics.formats.base import Body, Slot
    from tokenomics.pipeline.exchange import Exchange

_EVENT_BY_ACTION = {"warn": "rule.warning", "log": "rule.match", "mask": "rule.match"}
# The `rule_matches` entry of a rewritten text (the input one is the original's wording).
_MASKED = {
    "input": "content redacted before forwarding",
    "output": "content redacted before returning",
}


def _event_data(ex: Exchange, **fields: Any) -> dict[str, Any]:
    return {"token_hash": ex.hash16, "model": ex.model, **fields}


def _record(ex: Exchange, matches: Sequence[Match], event: str | None = None) -> None:
    for match in matches:
        ex.rule_matches.append(
            {"name": match.name, "action": match.action, "message": match.message}
        )
        kind = event or _EVENT_BY_ACTION.get(match.action)
        if kind is not None:
            fields = {"rule_name": match.name, "action": match.action, "message": match.message}
            ex.events.append((kind, _event_data(ex, **fields)))


def scan(
    ex: Exchange,
    rules: Sequence[Rule],
    body: Body,
    slots: Callable[[Body], list[Slot]],
    scope: str,
) -> Body:
    """Check and mask every slot of `body`; the (possibly masked copy of the) body.

    Raises `Blocked` on a `fail` rule, after recording every match of that text as a
    violation."""
    if not any(applies(rule, scope) for rule in rules):
        return body
    masked: Body | None = None
    masked_slots: list[Slot] = []
    for index, slot in enumerate(slots(body)):
        text = slot.text
        try:
            matches = check(rules, text, scope)
        except Blocked as blocked:
            _record(ex, blocked.matches, "rule.violation")
            ex.error = blocked.log_message
            if scope == "output":
                ex.error = ex.error.replace("request", "response", 1)
            raise
        _record(ex, matches)
        redacted = mask(rules, text, scope)
        if redacted != text:
            if masked is None:
                masked = copy.deepcopy(body)
                masked_slots = slots(masked)
            masked_slots[index].set(redacted)
            ex.rule_matches.append({"name": "", "action": "mask", "message": _MASKED[scope]})
            ex.events.append(("rule.mask", _event_data(ex, scope=scope)))
    return masked if masked is not None else body


def record_matches(ex: Exchange, matches: Sequence[Match], event: str | None = None) -> None:
    """Record matches as `scan` does (`event` overrides the kind, e.g. `rule.violation`);
    streamed output rules (`stream_guard`) use it."""
    _record(ex, matches, event)


def record_mask(ex: Exchange, scope: str) -> None:
    """Record that a text of `scope` was rewritten, as `scan` does."""
    ex.rule_matches.append({"name": "", "action": "mask", "message": _MASKED[scope]})
    ex.events.append(("rule.mask", _event_data(ex, scope=scope)))
