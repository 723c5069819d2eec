"""The rows of `tokenomics ledger show <id> --requests`: one per request, in arrival order.

TIME is the request's recording time (UTC, to the second), PATH its path, MODEL the model
attempted, STATUS what the client got, INPUT/OUTPUT its tokens, COST (formatted by the caller,
like every cost of the `ledger` command), DURATION its latency, RULES the content rules that
matched (`name:action`, or the action alone for an unnamed rule).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from tokenomics.domain.ledger_session import format_duration

if TYPE_CHECKING:
    from collections.abc import Callable, Mapping, Sequence

REQUESTS_HEADER = (
    "TIME", "PATH", "MODEL", "STATUS", "INPUT", "OUTPUT", "COST", "DURATION", "RULES",
)  # fmt: skip


def _text(entry: Mapping[str, Any], key: str) -> str:
    value = entry.get(key)
    return value if isinstance(value, str) else ""


def _int(entry: Mapping[str, Any], key: str) -> int:
    value = entry.get(key)
    return value if isinstance(value, int) and not isinstance(value, bool) else 0


def latency(duration_ms: int) -> str:
    """`350ms` under a second, `2.4s` under a minute, else like session durations (`3m5s`)."""
    if duration_ms < 1000:
        return f"{max(0, duration_ms)}ms"
    if duration_ms < 60_000:
        return f"{duration_ms / 1000:.1f}s"
    return format_duration(duration_ms)


def rules(entry: Mapping[str, Any]) -> str:
    matches = entry.get("rule_matches")
    shown = []
    for match in matches if isinstance(matches, list) else ():
        if isinstance(match, dict):
            name, action = _text(match, "name"), _text(match, "action")
            shown.append(f"{name}:{action}" if name else action)
    return ", ".join(shown)


def request_rows(
    requests: Sequence[Mapping[str, Any]], cost: Callable[[Mapping[str, Any]], str]
) -> list[tuple[str, ...]]:
    """The header and one row per request."""
    rows: list[tuple[str, ...]] = [REQUESTS_HEADER]
    for entry in requests:
        rows.append((
            _text(entry, "timestamp")[:19], _text(entry, "path") or "-",
            _text(entry, "model") or "-", str(_int(entry, "status_code")),
            str(_int(entry, "input_tokens")), str(_int(entry, "output_tokens")), cost(entry),
            latency(_int(entry, "duration_ms")), rules(entry),
        ))  # fmt: skip
    return rows
