"""The `--max-cost`, `--max-tokens`, `--max-requests` and `--max-duration` options of
`tokenomics run`: checked and turned into the run's `RunLimits` (`domain.run_budget`).

Only the proxy that `run` starts itself can enforce them: with `--proxy-url`, or a proxy
already running on `--port`, they are an error rather than silently ignored.

`--max-duration` refuses the run's requests once it has passed; the command itself is not
signalled. An agent sees the 429 naming the run budget and stops on its own, where a signal
could cut it off in the middle of writing a file. Wrap the run in `timeout(1)` to also stop the
process: `run` forwards the SIGTERM to it.
"""

from __future__ import annotations

import math

from tokenomics.domain.durations import parse_go_duration
from tokenomics.domain.errors import CommandError
from tokenomics.domain.run_budget import RunLimits


def limits(
    max_cost: float, max_tokens: int, max_requests: int, max_duration: str
) -> RunLimits | None:
    """The run's limits, None when no option was given; a `CommandError` for a bad value."""
    if not math.isfinite(max_cost) or max_cost < 0:
        raise CommandError(f"--max-cost {max_cost}: use an amount of US dollars above 0")
    for flag, value in (("--max-tokens", max_tokens), ("--max-requests", max_requests)):
        if value < 0:
            raise CommandError(f"{flag} {value}: use a whole number above 0")
    seconds = 0.0
    if max_duration.strip():
        parsed = parse_go_duration(max_duration.strip())
        if parsed is None or parsed.total_seconds() <= 0:
            raise CommandError(
                f'--max-duration "{max_duration}": use a duration such as 90s, 30m or 1h30m'
            )
        seconds = parsed.total_seconds()
    found = RunLimits(max_cost, max_tokens, max_requests, seconds)
    return found if found.any else None


def check_own_proxy(found: RunLimits | None, proxy: str) -> None:
    if found is not None:
        raise CommandError(
            f"run budgets ({found.describe()}) are enforced by the proxy `run` starts itself; "
            f"they cannot apply to {proxy}"
        )
