"""Per-token rate limiting (`proxy.md` §2.7, decisions D16). Sans-I/O; the clock is injected.

`RateLimiter.acquire` is synchronous, so the `max_parallel` check-and-acquire, the window checks
and the recording happen in one step that no other task can interleave with (W-C1). The limits
always come from the `RateLimit` passed in, so policy edits apply at once (W-C2): state is kept
per token key and per (window length, strategy), never frozen per first-seen configuration.

Sliding windows keep aggregated `(time, count)` buckets, at most ~64 per window, pruned on every
touch (W-C4). A bucket expires with its *latest* event, so coalescing can only make the limiter
stricter (by at most 1/64 of the window), never let more through than the limit.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

from tokenomics.domain.errors import RateLimited

if TYPE_CHECKING:
    from types import TracebackType

    from tokenomics.domain.policy import RateLimit, RateRule

Clock = Callable[[], float]
Kind = Literal["requests", "tokens"]

SUB_BUCKETS = 64
PARALLEL_RETRY_AFTER = 1.0
DEFAULT_IDLE_SECONDS = 600.0
DEFAULT_COLLECT_EVERY = 60.0


@dataclass(frozen=True, slots=True)
class RateLimiterStatistics:
    keys: int
    in_flight: int
    buckets: int


class _Bucket:
    __slots__ = ("first", "last", "requests", "tokens")

    def __init__(self, now: float, requests: int, tokens: int) -> None:
        self.first = now
        self.last = now
        self.requests = requests
        self.tokens = tokens


class _SlidingWindow:
    """Events within `(now - length, now]`, coalesced into buckets spanning length/64."""

    __slots__ = ("_buckets", "_grain", "length", "requests", "tokens")

    def __init__(self, length: float) -> None:
        self.length = length
        self._grain = length / SUB_BUCKETS
        self._buckets: deque[_Bucket] = deque()
        self.requests = 0
        self.tokens = 0

    def advance(self, now: float) -> None:
        buckets, horizon = self._buckets, now - self.length
        while buckets and buckets[0].last <= horizon:
            gone = buckets.popleft()
            self.requests -= gone.requests
            self.tokens -= gone.tokens

    def add(self, now: float, requests: int, tokens: int) -> None:
        buckets = self._buckets
        if buckets and now - buckets[-1].first < self._grain:
            bucket = buckets[-1]
            if now > bucket.last:  # `max`, without the builtin's call (once per request)
                bucket.last = now
            bucket.requests += requests
            bucket.tokens += tokens
        else:
            buckets.append(_Bucket(now, requests, tokens))
        self.requests += requests
        self.tokens += tokens

    def retry_after(self, now: float, kind: Kind, limit: int) -> float:
        """Time until enough old events leave the window for the count to drop below `limit`."""
        need = (self.requests if kind == "requests" else self.tokens) - limit + 1
        freed = 0
        for bucket in self._buckets:
            freed += bucket.requests if kind == "requests" else bucket.tokens
            if freed >= need:
                return bucket.last + self.length - now
        return self.length

    def expired(self, now: float) -> bool:
        self.advance(now)
        return not self._buckets

    @property
    def size(self) -> int:
        return len(self._buckets)


class _FixedWindow:
    """A counter that resets on the first touch once `now - start >= length` (not aligned)."""

    __slots__ = ("length", "requests", "start", "tokens")

    def __init__(self, length: float) -> None:
        self.length = length
        self.start: float | None = None
        self.requests = 0
        self.tokens = 0

    def advance(self, now: float) -> None:
        if self.start is None or now - self.start >= self.length:
            self.start = now
            self.requests = 0
            self.tokens = 0

    def add(self, now: float, requests: int, tokens: int) -> None:
        self.requests += requests
        self.tokens += tokens

    def retry_after(self, now: float, kind: Kind, limit: int) -> float:
        start = now if self.start is None else self.start
        return start + self.length - now

    def expired(self, now: float) -> bool:
        return self.start is None or now - self.start >= self.length

    @property
    def size(self) -> int:
        return 1


_Window = _SlidingWindow | _FixedWindow
_WindowKey = tuple[float, str]


def _window_key(rule: RateRule) -> _WindowKey:
    return (rule.window_delta.total_seconds(), rule.strategy)


def _new_window(strategy: str, length: float) -> _Window:
    return _FixedWindow(length) if strategy == "fixed" else _SlidingWindow(length)


class _KeyState:
    __slots__ = ("_limit", "in_flight", "last_seen", "rule_windows", "window_list", "windows")

    def __init__(self, now: float) -> None:
        self.in_flight = 0
        self.last_seen = now
        self.windows: dict[_WindowKey, _Window] = {}
        self.window_list: tuple[_Window, ...] = ()  # `windows`' values, iterated per request
        self.rule_windows: list[_Window] = []  # the window of each rule of `_limit`, in order
        self._limit: RateLimit | None = None

    def windows_for(self, limit: RateLimit, now: float) -> tuple[_Window, ...]:
        """The windows `limit` needs, advanced to `now`; windows no rule uses are dropped.

        They are chosen again only when another `RateLimit` object comes (a policy edit)."""
        if limit is not self._limit:
            wanted: dict[_WindowKey, _Window] = {}
            per_rule: list[_Window] = []
            for rule in limit.rules:
                key = _window_key(rule)
                window = wanted.get(key) or self.windows.get(key)
                if window is None:
                    window = _new_window(rule.strategy, key[0])
                wanted[key] = window
                per_rule.append(window)
            self.windows, self.rule_windows, self._limit = wanted, per_rule, limit
            self.window_list = tuple(wanted.values())
        for window in self.window_list:
            window.advance(now)
        return self.window_list

    def idle(self, now: float, idle_seconds: float) -> bool:
        if self.in_flight or now - self.last_seen < idle_seconds:
            return False
        return all(window.expired(now) for window in self.windows.values())


class Permit:
    """A parallel slot held by one request; `release()` is idempotent (also a context manager)."""

    __slots__ = ("_clock", "_released", "_state")

    def __init__(self, state: _KeyState, clock: Clock) -> None:
        self._state = state
        self._clock = clock
        self._released = False

    def release(self, now: float | None = None) -> None:
        """Give the slot back, `now` (the clock's time, read again when not given)."""
        if self._released:
            return
        self._released = True
        state = self._state
        state.in_flight -= 1
        state.last_seen = self._clock() if now is None else now

    def __enter__(self) -> Permit:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.release()


def _check(state: _KeyState, limit: RateLimit, now: float) -> None:
    if limit.max_parallel > 0 and state.in_flight >= limit.max_parallel:
        raise RateLimited(
            f"rate limit exceeded: {state.in_flight} concurrent requests "
            f"(max {limit.max_parallel})",
            PARALLEL_RETRY_AFTER,
        )
    for rule, window in zip(limit.rules, state.rule_windows, strict=True):
        if rule.requests > 0 and window.requests >= rule.requests:
            raise RateLimited(
                f"rate limit exceeded: {window.requests} requests in {rule.window} window "
                f"(max {rule.requests})",
                window.retry_after(now, "requests", rule.requests),
            )
        if rule.tokens > 0 and window.tokens >= rule.tokens:
            raise RateLimited(
                f"rate limit exceeded: {window.tokens} tokens in {rule.window} window "
                f"(max {rule.tokens})",
                window.retry_after(now, "tokens", rule.tokens),
            )


class RateLimiter:
    """In-process rate-limit state for every token key.

    Idle keys (nothing in flight, every window expired, untouched for `idle_seconds`) are
    dropped by `collect()`, which `acquire` also runs at most once per `collect_every` seconds.
    """

    def __init__(
        self,
        clock: Clock,
        *,
        idle_seconds: float = DEFAULT_IDLE_SECONDS,
        collect_every: float = DEFAULT_COLLECT_EVERY,
    ) -> None:
        self._clock = clock
        self._idle_seconds = idle_seconds
        self._collect_every = collect_every
        self._keys: dict[str, _KeyState] = {}
        self._last_collect = clock()

    def _state(self, key: str, now: float) -> _KeyState:
        state = self._keys.get(key)
        if state is None:
            state = self._keys[key] = _KeyState(now)
        state.last_seen = now
        return state

    def acquire(self, key: str, limit: RateLimit | None) -> Permit:
        """Check every limit and, if all pass, take a parallel slot and count the request.

        Raises `RateLimited` (nothing is counted then). Release the permit when the request ends.
        """
        now = self._clock()
        if now - self._last_collect >= self._collect_every:
            self.collect(self._idle_seconds)
        state = self._keys.get(key)  # `_state`, written out: once per request
        if state is None:
            state = self._keys[key] = _KeyState(now)
        state.last_seen = now
        if limit is not None:
            windows = state.windows_for(limit, now)
            _check(state, limit, now)
            for window in windows:
                window.add(now, 1, 0)
        state.in_flight += 1
        return Permit(state, self._clock)

    def record_tokens(self, key: str, limit: RateLimit | None, tokens: int) -> None:
        """Add actual usage (input at acceptance, output after the response) to the windows."""
        if limit is None or not limit.rules or tokens <= 0:
            return
        self._add_tokens(key, limit, tokens, self._clock())

    def finish(self, key: str, limit: RateLimit | None, tokens: int, permit: Permit | None) -> None:
        """A request's end: `record_tokens`, then its `permit` released, at one reading of the
        clock (both at once; a reading costs more than either's sums)."""
        now = self._clock()
        if limit is not None and limit.rules and tokens > 0:
            self._add_tokens(key, limit, tokens, now)
        if permit is not None:
            permit.release(now)

    def _add_tokens(self, key: str, limit: RateLimit, tokens: int, now: float) -> None:
        for window in self._state(key, now).windows_for(limit, now):
            window.add(now, 0, tokens)

    def collect(self, idle_seconds: float) -> int:
        """Forget keys idle for `idle_seconds` whose windows are all empty; returns how many."""
        now = self._clock()
        self._last_collect = now
        idle = [key for key, state in self._keys.items() if state.idle(now, idle_seconds)]
        for key in idle:
            del self._keys[key]
        return len(idle)

    def statistics(self) -> RateLimiterStatistics:
        states = self._keys.values()
        return RateLimiterStatistics(
            keys=len(self._keys),
            in_flight=sum(state.in_flight for state in states),
            buckets=sum(window.size for state in states for window in state.windows.values()),
        )
