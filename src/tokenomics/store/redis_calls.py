"""How the Redis counters' script calls are built and their replies read (`redis_counters`):
the keys of a token, the KEYS and ARGV of each script, reservation and slot ids, and the
refusals a reply means. Pure functions, no I/O."""

from __future__ import annotations

import hashlib
import itertools
import os
import secrets
from typing import TYPE_CHECKING

from tokenomics.domain.budget import NANOS_PER_USD, format_usd
from tokenomics.domain.errors import BudgetExceeded, RateLimited
from tokenomics.domain.memo import remember
from tokenomics.store.redis_scripts import ADMIT, SETTLE
from tokenomics.store.resp_wire import Pre, Stamped

if TYPE_CHECKING:
    from tokenomics.domain.counters import Ask
    from tokenomics.domain.policy import RateLimit, RateRule
    from tokenomics.store.resp_wire import Arg, Reply

HOLD_TTL_MS = 3_600_000  # a reservation of a proxy that died lapses after an hour
SLOT_TTL_MS = 600_000  # its parallel slots after ten minutes (a longer stream frees its slot)
ADMIT_SHA = hashlib.sha1(ADMIT.encode()).hexdigest()  # what SCRIPT LOAD answers
SETTLE_SHA = hashlib.sha1(SETTLE.encode()).hexdigest()
APPLIED = "tokenomics:applied:"  # + a stream: the last settle applied of it (`SettleCommand`)


class RedisClaim:
    """A reservation (`hold`, with its amounts) or a parallel slot (`slot`) held in Redis."""

    __slots__ = ("hold", "key", "slot")

    def __init__(self, key: str, *, hold: str = "", slot: str = "") -> None:
        self.key = key
        self.hold = hold
        self.slot = slot


class _Ids:
    """Reservation and slot ids unique across the fleet without a syscall each (`uuid4` reads
    the OS's random source every time): a random 64-bit prefix per process, drawn again in a
    forked child, and a counter."""

    def __init__(self) -> None:
        self.reset()

    def reset(self) -> None:
        self.prefix = secrets.token_hex(8)
        self.counter = itertools.count()

    def new(self) -> str:
        return f"{self.prefix}{next(self.counter):x}"


IDS = _Ids()
if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=IDS.reset)


class SettleCommand(Stamped):
    """The EVALSHA of one SETTLE, marked with where it was sent so that a replay applies it
    once (`redis_scripts.SETTLE`): its marker key `tokenomics:applied:<stream>` and ARGV
    `z<seq>`. Redis runs one connection's commands in order, so the sorted set under that key
    holds the number of the last settle applied from it, and a settle was applied iff its
    number is not above it. One small key per connection, not one per request.

    `settle_call` gives each settle a stream of its own (its hold or a new id, number 1): what
    it keeps if it was never sent. Sending it stamps the connection's stream and number into
    its KEYS and ARGV (the lists are the call's: a settle kept for `replay` carries them)."""

    __slots__ = ("args", "keys", "sha")

    def __init__(self, sha: str, keys: list[str], args: list[Arg]) -> None:
        self.sha = sha
        self.keys = keys
        self.args = args

    def stamp(self, stream: str, seq: int) -> list[Arg]:
        keys, args = self.keys, self.args
        keys[5] = APPLIED + stream
        args[5] = f"z{seq}"
        if self.sha == SETTLE_SHA:  # EVALSHA, the SHA and the token's keys encoded once
            return [MEMO.settle_head(keys), *keys[5:], *args]
        return ["EVALSHA", self.sha, len(keys), *keys, *args]


def to_nanos(usd: float) -> int:
    return round(usd * NANOS_PER_USD)


def _window(rule: RateRule) -> tuple[int, str]:
    return max(int(rule.window_delta.total_seconds() * 1000), 1), rule.strategy


def windows_of(limit: RateLimit | None, *, tokens_only: bool = False) -> list[tuple[int, str]]:
    """The distinct (length in ms, strategy) windows of a limit's rules, in rule order (with
    `tokens_only`, of its rules with a token limit)."""
    seen: list[tuple[int, str]] = []
    for rule in limit.rules if limit else ():
        if tokens_only and rule.tokens <= 0:
            continue
        if (window := _window(rule)) not in seen:
            seen.append(window)
    return seen


def window_args(windows: list[tuple[int, str]]) -> list[Arg]:
    """ARGV of a window list: its length, then each window's length and strategy."""
    args: list[Arg] = [len(windows)]
    for length, strategy in windows:
        args += [length, strategy]
    return args


def ints(reply: list[Reply], count: int) -> list[int] | None:
    numbers = [v for v in reply if isinstance(v, int)]
    return numbers if len(numbers) == count == len(reply) else None


def rated(limit: RateLimit | None) -> bool:
    return limit is not None and (bool(limit.rules) or limit.max_parallel > 0)


# a limit, the token's own keys, its window keys, those of the windows a settle feeds, their
# `window_args`, and ADMIT's command head (`_Memo.admit_head`)
_Keys = tuple["RateLimit", list[str], list[str], list[str], list["Arg"], Pre]


class _Memo:
    """What a call takes from a limit or a token that does not change between requests (the
    windows, the rules' ARGV, the keys), built once: formatting them cost more than the rest
    of a call. Limits are remembered by identity (a policy's `RateLimit` lives as long as its
    token's snapshot; the entry holds it, so its id is not reused). Bounded: emptied when full."""

    MAX = 10_000

    def __init__(self) -> None:
        self.limits: dict[int, tuple[RateLimit, list[tuple[int, str]], list[Arg]]] = {}
        self.keys: dict[tuple[str, int], _Keys] = {}
        self.heads: dict[tuple[str, int], Pre] = {}

    def limit(self, limit: RateLimit) -> tuple[list[tuple[int, str]], list[Arg]]:
        """The limit's windows, and the ARGV of `ACQUIRE` after the slot's part."""
        hit = self.limits.get(id(limit))
        if hit is not None and hit[0] is limit:
            return hit[1], hit[2]
        windows = windows_of(limit)
        args = [*window_args(windows), len(limit.rules)]
        for rule in limit.rules:
            args += [windows.index(_window(rule)) + 1, rule.requests, rule.tokens, rule.window]
        encoded: list[Arg] = [Pre.of(*args)]  # sent as they are: encoded once
        remember(self.limits, id(limit), (limit, windows, encoded), self.MAX)
        return windows, encoded

    def admit_head(self, key: str, limit: RateLimit) -> Pre:
        """EVALSHA, ADMIT's SHA and all its KEYS, encoded once."""
        return self._keys(key, limit)[5]

    def settle_head(self, keys: list[str]) -> Pre:
        """EVALSHA, SETTLE's SHA, the number of `keys` and the token's five, encoded once."""
        found = self.heads.get((keys[0], len(keys)))
        if found is None:
            found = Pre.of("EVALSHA", SETTLE_SHA, len(keys), *keys[:5])
            remember(self.heads, (keys[0], len(keys)), found, self.MAX)
        return found

    def keys_of(self, key: str, limit: RateLimit) -> tuple[list[str], list[str]]:
        """The token's keys (`token_keys`, then its parallel key) and its window keys."""
        found = self._keys(key, limit)
        return found[1], found[2]

    def token_windows(self, key: str, limit: RateLimit) -> tuple[list[str], list[Arg]]:
        """The keys and the `window_args` of the windows a settle feeds: those of a rule
        with a token limit (the others are never read for tokens)."""
        found = self._keys(key, limit)
        return found[3], found[4]

    def _keys(self, key: str, limit: RateLimit) -> _Keys:
        hit = self.keys.get((key, id(limit)))
        if hit is not None and hit[0] is limit:
            return hit
        windows, _ = self.limit(limit)
        own = [*token_keys(key), f"tokenomics:parallel:{key}"]
        fed = windows_of(limit, tokens_only=True)
        window_keys = [window_key(key, w) for w in windows]
        head = Pre.of("EVALSHA", ADMIT_SHA, len(own) + len(window_keys), *own, *window_keys)
        found = (limit, own, window_keys, [window_key(key, w) for w in fed], window_args(fed),
                 head)  # fmt: skip
        remember(self.keys, (key, id(limit)), found, self.MAX)
        return found


MEMO = _Memo()


def acquire_call(key: str, limit: RateLimit | None) -> tuple[list[str], list[Arg], str]:
    """KEYS and ARGV of `ACQUIRE` (the `A` part of `ADMIT`), and the slot id ("" for none)."""
    assert limit is not None
    slot = IDS.new() if limit.max_parallel > 0 else ""
    _, rest = MEMO.limit(limit)
    own, windows = MEMO.keys_of(key, limit)
    return [own[4], *windows], [limit.max_parallel, slot or "-", SLOT_TTL_MS, *rest], slot


def reserve_args(ask: Ask) -> tuple[list[Arg], str]:
    """ARGV of `RESERVE` (the `R` part of `ADMIT`) and the reservation id."""
    tokens = ask.input_tokens + ask.output_tokens
    nanos = to_nanos(ask.cost_estimate_usd) + to_nanos(ask.output_cost_usd)
    hold = IDS.new()
    args: list[Arg] = [ask.max_tokens, to_nanos(ask.max_cost_usd) if ask.max_cost_usd > 0 else 0,
                       ask.input_tokens, to_nanos(ask.cost_estimate_usd), tokens, nanos, hold,
                       HOLD_TTL_MS]  # fmt: skip
    return args, hold


def settles_could_free(script: str, reply: list[Reply]) -> bool:
    """Whether settles applied first could have admitted what `reply` refuses: a refusal of
    a parallel slot or of the budget that took nothing (`RESERVE`'s 1 and 2, `ADMIT`'s 3).
    A rate window never: settles do not take requests off it, and add tokens to it."""
    code = reply[0] if reply else None
    if script == "reserve":
        return code in (1, 2)
    if script == "admit" and code == 3:
        return True
    what = reply[1] if code == 1 and len(reply) == 3 else None
    return isinstance(what, bytes) and b" concurrent requests (max " in what


def raise_rate_limited(reply: list[Reply]) -> None:
    if reply and reply[0] == 1 and len(reply) == 3:
        what, retry = reply[1], reply[2]
        text = what.decode("utf-8", "replace") if isinstance(what, bytes) else "limit"
        seconds = max(retry, 1) / 1000 if isinstance(retry, int) else 1.0
        raise RateLimited(f"rate limit exceeded: {text}", seconds)


def raise_budget_exceeded(numbers: list[int], ask: Ask) -> None:
    verdict, used, used_nanos = numbers
    if verdict == 1:
        raise BudgetExceeded(
            f"budget exceeded: used {used} + input {ask.input_tokens} > limit {ask.max_tokens}",
            kind="tokens", used=used, requested=ask.input_tokens, limit=ask.max_tokens,
        )  # fmt: skip
    if verdict == 2:
        spent = used_nanos / NANOS_PER_USD
        raise BudgetExceeded(
            f"cost budget exceeded: used ${format_usd(spent)} + estimated "
            f"${format_usd(ask.cost_estimate_usd)} > limit ${format_usd(ask.max_cost_usd)}",
            kind="cost", used=spent, requested=ask.cost_estimate_usd, limit=ask.max_cost_usd,
        )  # fmt: skip


def usage_key(key: str) -> str:
    return f"tokenomics:usage:{key}"


def token_keys(key: str) -> list[str]:
    return [usage_key(key), f"tokenomics:cost:{key}", f"tokenomics:holds:{key}",
            f"tokenomics:hold_expiry:{key}"]  # fmt: skip


def window_key(key: str, window: tuple[int, str]) -> str:
    return f"tokenomics:rate:{key}:{window[0]}:{window[1]}"
