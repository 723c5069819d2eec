"""The budget of one `tokenomics run` (`--max-cost`, `--max-tokens`, `--max-requests`,
`--max-duration`), consulted by the pipeline on top of the token's policy. Sans-I/O.

It follows the rule of the policy budgets (`domain.budget`): `reserve` checks and reserves in
one synchronous step; admission compares `used + input estimate` with the limit (reaching it
exactly passes), `used` including what open reservations hold, and a reservation also holds
the request's output cap until its actual usage settles it. So the run's spend passes a limit
by at most the output of the last request admitted. A request counts against `max_requests`
from admission; one released without an upstream response gives its count back.

`max_duration` is measured on the given clock from `start()` (`run` calls it just before it
starts its child; until then, from the budget's creation); once it has passed, every request
is refused.

A refusal is a `RunBudgetExceeded` (429) whose message names the run budget; `capped` keeps
the first one's reason for the summary line of `run`, and `refused` how many were refused.
A run without limits has no `RunBudget` at all (`serve` never has one).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from tokenomics.domain.errors import RunBudgetExceeded
from tokenomics.domain.money import format_dollars

if TYPE_CHECKING:
    from collections.abc import Callable

NANOS_PER_USD = 1_000_000_000


def _nanos(usd: float) -> int:
    return round(usd * NANOS_PER_USD)


def format_seconds(seconds: float) -> str:
    """`30m`, `1h30m`, `90s` -> `1m30s`, `0.5s`: a duration as the flag takes it."""
    whole = int(seconds)
    if whole != seconds or whole < 60:
        return f"{seconds:g}s"
    hours, rest = divmod(whole, 3600)
    minutes, secs = divmod(rest, 60)
    parts = [(hours, "h"), (minutes, "m"), (secs, "s")]
    return "".join(f"{n}{unit}" for n, unit in parts if n)


@dataclass(frozen=True, slots=True)
class RunLimits:
    """Zero: no limit of that kind."""

    max_cost_usd: float = 0.0
    max_tokens: int = 0
    max_requests: int = 0
    max_duration: float = 0.0  # seconds

    @property
    def any(self) -> bool:
        return any((self.max_cost_usd, self.max_tokens, self.max_requests, self.max_duration))

    def describe(self) -> str:
        """`$2.50 max cost, 500,000 max tokens`: the limits set, for messages."""
        parts = [
            (self.max_cost_usd, f"{format_dollars(self.max_cost_usd)} max cost"),
            (self.max_tokens, f"{self.max_tokens:,} max tokens"),
            (self.max_requests, f"{self.max_requests:,} max requests"),
            (self.max_duration, f"{format_seconds(self.max_duration)} max duration"),
        ]
        return ", ".join(text for value, text in parts if value)


class RunReservation:
    """What one request holds of the run budget; `settle` and `release` are idempotent and
    exclusive (the first one wins)."""

    __slots__ = ("_budget", "_nanos", "_open", "_tokens")

    def __init__(self, budget: RunBudget, tokens: int, nanos: int) -> None:
        self._budget, self._tokens, self._nanos = budget, tokens, nanos
        self._open = True

    def settle(self, tokens: int, cost_usd: float) -> None:
        """Replace the held amounts with the request's actual tokens and cost."""
        if self._open:
            self._open = False
            self._budget._apply(tokens - self._tokens, _nanos(cost_usd) - self._nanos, 0)

    def release(self) -> None:
        """No upstream response: the amounts and the request's count go back."""
        if self._open:
            self._open = False
            self._budget._apply(-self._tokens, -self._nanos, -1)


class RunBudget:
    """The run's counters (tokens, nano-dollars, requests), open reservations included."""

    def __init__(self, limits: RunLimits, clock: Callable[[], float]) -> None:
        self.limits = limits
        self._clock = clock
        self._deadline = clock() + limits.max_duration if limits.max_duration > 0 else None
        self.tokens = self.nanos = self.requests = 0
        self.capped = ""  # the limit that refused the first request, "" until one was refused
        self.refused = 0

    def start(self) -> None:
        """`max_duration` counts from now."""
        if self.limits.max_duration > 0:
            self._deadline = self._clock() + self.limits.max_duration

    @property
    def cost_usd(self) -> float:
        return self.nanos / NANOS_PER_USD

    def check_time(self) -> None:
        """Refuse once `max_duration` has passed (every request, budgeted or not)."""
        if self._deadline is not None and self._clock() >= self._deadline:
            limit = self.limits.max_duration
            self._refuse(
                RunBudgetExceeded(
                    f"{format_seconds(limit)} max duration",
                    "no more requests after that time",
                    kind="duration", used=limit, requested=0, limit=limit,
                )
            )  # fmt: skip

    def reserve(
        self, *, input_tokens: int, output_tokens: int, cost_estimate_usd: float,
        output_cost_usd: float,
    ) -> RunReservation:  # fmt: skip
        """Check every limit and reserve the input estimate, the output cap and their costs
        plus one request, atomically; raises `RunBudgetExceeded` (nothing reserved) instead."""
        self.check_time()
        limits, estimate = self.limits, _nanos(cost_estimate_usd)
        if limits.max_requests > 0 and self.requests + 1 > limits.max_requests:
            self._refuse(
                RunBudgetExceeded(
                    f"{limits.max_requests:,} max requests", f"{self.requests:,} made",
                    kind="requests", used=self.requests, requested=1, limit=limits.max_requests,
                )
            )  # fmt: skip
        if limits.max_tokens > 0 and self.tokens + input_tokens > limits.max_tokens:
            self._refuse(
                RunBudgetExceeded(
                    f"{limits.max_tokens:,} max tokens",
                    f"used {self.tokens:,} + input {input_tokens:,}",
                    kind="tokens", used=self.tokens, requested=input_tokens,
                    limit=limits.max_tokens,
                )
            )  # fmt: skip
        if limits.max_cost_usd > 0 and self.nanos + estimate > _nanos(limits.max_cost_usd):
            self._refuse(
                RunBudgetExceeded(
                    f"{format_dollars(limits.max_cost_usd)} max cost",
                    f"used {format_dollars(self.cost_usd)} + estimated "
                    f"{format_dollars(cost_estimate_usd)}",
                    kind="cost", used=self.cost_usd, requested=cost_estimate_usd,
                    limit=limits.max_cost_usd,
                )
            )  # fmt: skip
        tokens, nanos = input_tokens + output_tokens, estimate + _nanos(output_cost_usd)
        self._apply(tokens, nanos, 1)
        return RunReservation(self, tokens, nanos)

    def _refuse(self, error: RunBudgetExceeded) -> None:
        self.refused += 1
        self.capped = self.capped or error.limit_text
        raise error

    def _apply(self, tokens: int, nanos: int, requests: int) -> None:
        self.tokens = max(self.tokens + tokens, 0)
        self.nanos = max(self.nanos + nanos, 0)
        self.requests = max(self.requests + requests, 0)

    def summary(self) -> str:
        """`, capped by the run budget ($2.50 max cost; 3 requests refused)`, or "" when
        nothing was refused: the end of `run`'s summary line."""
        if not self.capped:
            return ""
        count = f"{self.refused:,} request{'s' * (self.refused != 1)} refused"
        return f", capped by the run budget ({self.capped}; {count})"
