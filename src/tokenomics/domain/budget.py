"""Token and cost budgets (`proxy.md` §2.11, decisions D13-D15). Sans-I/O.

One counter per token key, shared by all models; a policy's `max_tokens` / `max_cost_usd` only
changes the limit compared against it. `Budgets.reserve` checks and reserves in one synchronous
step (W-C3), so concurrent requests cannot jointly overspend. A reservation is later settled
with the actual usage or released.

Admission compares `used + input` with the limit (reaching it exactly passes), where `used`
includes what open reservations hold; a reservation holds the input estimate *and* the
request's output cap. So every request admitted saw all earlier ones at their maximum, and the
spend can pass the limit by at most the output of the last request admitted, whatever the
concurrency (as long as a request's actual usage stays within its input estimate + output cap).

Input and output are always accounted, budget or not (D13). Costs are kept internally as whole
nano-dollars so that repeated reserve/release cycles never drift and `==` the limit passes.
`take_dirty()` hands the changed totals to the writer that persists them (`usage_writer`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from tokenomics.domain.errors import BudgetExceeded

if TYPE_CHECKING:
    from collections.abc import Iterable, Mapping
    from types import TracebackType

NANOS_PER_USD = 1_000_000_000
# The output a request is assumed to produce, per choice, when it sets no limit of its own
# (`max_tokens`, `max_completion_tokens`, `max_output_tokens`, `maxOutputTokens`).
DEFAULT_OUTPUT_TOKENS = 4096


def _nanos(usd: float) -> int:
    return round(usd * NANOS_PER_USD)


def _usd(nanos: int) -> float:
    return nanos / NANOS_PER_USD


def format_usd(value: float) -> str:
    """Dollars with up to 6 decimals, trailing zeros trimmed: 0.5 -> "0.5", 2.0 -> "2"."""
    text = f"{value:.6f}".rstrip("0").rstrip(".")
    return "0" if text in ("", "-0") else text


@dataclass(slots=True)
class Spend:
    """A key's counter: tokens and dollars. Built for every settled request and never changed
    after: a plain slots dataclass, as a frozen one's `__init__` costs ~5x."""

    tokens: int = 0
    cost_usd: float = 0.0


@dataclass(frozen=True, slots=True)
class BudgetStatistics:
    keys: int
    reservations: int
    dirty: int


class _Total:
    """A key's counter: `tokens`/`nanos` include the `held_*` part of its open reservations."""

    __slots__ = ("held_nanos", "held_tokens", "nanos", "tokens")

    def __init__(self, tokens: int, nanos: int) -> None:
        self.tokens = tokens
        self.nanos = nanos
        self.held_tokens = 0
        self.held_nanos = 0

    def spend(self) -> Spend:
        return Spend(self.tokens, _usd(self.nanos))

    def settled(self) -> tuple[int, int]:
        """Tokens and nanos spent, without what open reservations hold."""
        return max(self.tokens - self.held_tokens, 0), max(self.nanos - self.held_nanos, 0)


class Reservation:
    """Amounts held for one request. `settle` and `release` are idempotent and exclusive.

    As a context manager, leaving the block releases the reservation unless it was settled.
    """

    __slots__ = ("_budgets", "_nanos", "_open", "_tokens", "key")

    def __init__(self, budgets: Budgets, key: str, tokens: int, nanos: int) -> None:
        self._budgets = budgets
        self.key = key
        self._tokens = tokens
        self._nanos = nanos
        self._open = True

    @property
    def open(self) -> bool:
        return self._open

    def settle(self, tokens: int, cost_usd: float) -> None:
        """Replace the reserved amounts with the actual input+output tokens and cost."""
        if self._close():
            self._budgets._apply(self.key, tokens, _nanos(cost_usd), -self._tokens, -self._nanos)

    def release(self) -> None:
        """Give the reservation back (no upstream response was committed)."""
        if self._close():
            self._budgets._apply(self.key, 0, 0, -self._tokens, -self._nanos)

    def _close(self) -> bool:
        if not self._open:
            return False
        self._open = False
        self._budgets._reservations -= 1
        return True

    def __enter__(self) -> Reservation:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.release()


class Budgets:
    """Usage totals per token key (reservations included), seeded from the persisted totals."""

    def __init__(self, totals: Mapping[str, Spend] | None = None) -> None:
        self._totals: dict[str, _Total] = {
            key: _Total(spend.tokens, _nanos(spend.cost_usd))
            for key, spend in (totals or {}).items()
        }
        self._dirty: set[str] = set()
        self._reservations = 0

    def used(self, key: str) -> Spend:
        """What the key spent plus what its open reservations hold (what admission sees)."""
        total = self._totals.get(key)
        return Spend() if total is None else total.spend()

    def settled(self, key: str) -> Spend:
        """What the key spent: settled requests only, without open reservations."""
        total = self._totals.get(key)
        if total is None:
            return Spend()
        tokens, nanos = total.tokens - total.held_tokens, total.nanos - total.held_nanos
        return Spend(tokens if tokens > 0 else 0, (nanos if nanos > 0 else 0) / NANOS_PER_USD)

    def reserve(
        self,
        key: str,
        *,
        max_tokens: int,
        max_cost_usd: float,
        input_tokens: int,
        cost_estimate_usd: float,
        output_tokens: int = 0,
        output_cost_usd: float = 0.0,
    ) -> Reservation:
        """Check the limits that are > 0 and reserve, atomically, the input and its cost
        estimate plus the output cap (`output_tokens`) and its cost.

        Raises `BudgetExceeded` when `used + input > max_tokens` or `used + estimate >
        max_cost_usd` (reaching a limit exactly passes); nothing is reserved then. The output
        is held but not checked: the last request admitted may pass the limit by its output.
        """
        total = self._totals.get(key)
        if total is None:
            total = _Total(0, 0)
        estimate = _nanos(cost_estimate_usd)
        if max_tokens > 0 and total.tokens + input_tokens > max_tokens:
            raise BudgetExceeded(
                f"budget exceeded: used {total.tokens} + input {input_tokens} > limit {max_tokens}",
                kind="tokens",
                used=total.tokens,
                requested=input_tokens,
                limit=max_tokens,
            )
        if max_cost_usd > 0 and total.nanos + estimate > _nanos(max_cost_usd):
            used = _usd(total.nanos)
            raise BudgetExceeded(
                f"cost budget exceeded: used ${format_usd(used)} + estimated "
                f"${format_usd(cost_estimate_usd)} > limit ${format_usd(max_cost_usd)}",
                kind="cost",
                used=used,
                requested=cost_estimate_usd,
                limit=max_cost_usd,
            )
        tokens, nanos = input_tokens + output_tokens, estimate + _nanos(output_cost_usd)
        self._apply(key, 0, 0, tokens, nanos)
        self._reservations += 1
        return Reservation(self, key, tokens, nanos)

    def reset(self, key: str) -> None:
        """Start the key's usage again from zero (open reservations settle against zero)."""
        if key in self._totals:
            self._totals[key] = _Total(0, 0)
            self._dirty.add(key)

    def restore(self, totals: Mapping[str, Spend]) -> None:
        """Raise each key's settled spend to at least the given one (crash recovery: what the
        ledger journal proves was spent); a key already at or above it is left alone."""
        for key, spend in totals.items():
            total = self._totals.get(key)
            tokens, nanos = (0, 0) if total is None else total.settled()
            tokens, nanos = max(spend.tokens - tokens, 0), max(_nanos(spend.cost_usd) - nanos, 0)
            if tokens or nanos:
                self._apply(key, tokens, nanos, 0, 0)

    def take_dirty(self) -> dict[str, Spend]:
        """The settled totals (open reservations left out) of every key changed since the last
        call: what is persisted, so a crash never turns a reservation into spend."""
        dirty = {key: self.settled(key) for key in self._dirty}
        self._dirty.clear()
        return dirty

    def mark_dirty(self, keys: Iterable[str]) -> None:
        """Put keys back after a failed save; the next `take_dirty` returns their newest totals."""
        self._dirty.update(key for key in keys if key in self._totals)

    def statistics(self) -> BudgetStatistics:
        return BudgetStatistics(
            keys=len(self._totals), reservations=self._reservations, dirty=len(self._dirty)
        )

    def _apply(self, key: str, tokens: int, nanos: int, held: int, held_nanos: int) -> None:
        """Add spent amounts and held ones (negative: given back); never below zero."""
        total = self._totals.get(key)
        if total is None:
            total = self._totals[key] = _Total(0, 0)
        # `max(x, 0)` written out: four builtin calls, twice per request.
        value = total.tokens + tokens + held
        total.tokens = value if value > 0 else 0
        value = total.nanos + nanos + held_nanos
        total.nanos = value if value > 0 else 0
        value = total.held_tokens + held
        total.held_tokens = value if value > 0 else 0
        value = total.held_nanos + held_nanos
        total.held_nanos = value if value > 0 else 0
        if tokens or nanos:  # what is held is never persisted
            self._dirty.add(key)
