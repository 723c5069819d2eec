"""The request stages before the upstream call. Each takes `(exchange, deps)` and either adds
to the exchange or raises an error with its HTTP status. The order lives in `HEAD_STAGES`
(run before the body is read) and `STAGES`."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Literal
from urllib.parse import parse_qsl, urlencode

import orjson

from tokenomics.domain.budget import DEFAULT_OUTPUT_TOKENS
from tokenomics.domain.counters import Ask
from tokenomics.domain.durations import is_expired
from tokenomics.domain.errors import BudgetExceeded, ProxyError, RateLimited, TokenomicsError
from tokenomics.formats.estimate import bound_bytes, bound_texts
from tokenomics.pipeline import admission
from tokenomics.pipeline.rules import scan
from tokenomics.pipeline.target import resolve_target
from tokenomics.store.local_counters import LocalCounters

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable

    from tokenomics.domain.counters import Counters
    from tokenomics.pipeline.deps import Deps
    from tokenomics.pipeline.exchange import Exchange

MISSING_TOKEN = "missing or invalid token (use x-api-key header or Authorization bearer token)"
# OpenClaw agent headers recorded as request metadata (`cli.md` §7.5).
OPENCLAW_HEADERS = {
    "x-openclaw-agent-id": "agent_id",
    "x-openclaw-agent-type": "agent_type",
    "x-openclaw-team": "team",
    "x-openclaw-channel": "channel",
    "x-openclaw-skill": "skill",
    "x-openclaw-environment": "environment",
}


def _credential(ex: Exchange) -> str:
    """D6: x-api-key, Authorization (Bearer or raw), api-key (Azure's clients), x-goog-api-key,
    then `?key=`.

    `key=` leaves the query even when a header carried the token: no client credential is
    ever forwarded (headers are dropped in `headers.py`).
    """
    pairs = parse_qsl(ex.query, keep_blank_values=True) if ex.query else []
    key = next((v for k, v in pairs if k == "key"), "")
    if any(k == "key" for k, _ in pairs):
        ex.query = urlencode([(k, v) for k, v in pairs if k != "key"])
    headers = ex.request.headers
    for name in ("x-api-key", "authorization", "api-key", "x-goog-api-key"):
        value = headers.get(name, "")
        if value:
            return value.removeprefix("Bearer ") if name == "authorization" else value
    return key


def authenticate(ex: Exchange, deps: Deps) -> None:
    headers = ex.request.headers
    openclaw = (
        {key: v for h, key in OPENCLAW_HEADERS.items() if (v := headers.get(h, ""))}
        if not headers.keys().isdisjoint(OPENCLAW_HEADERS)  # one C pass, no set; rarely any
        else {}
    )
    ex.metadata = openclaw  # also on rejected requests
    credential = ex.credential = _credential(ex).strip()
    if not credential:
        raise ProxyError(401, MISSING_TOKEN)
    ex.token_hash = deps.hash_key.hash(credential)
    record = deps.tokens.lookup(ex.token_hash)
    if (
        record is not None
        and record.expires_at
        and is_expired(record.expires_at, datetime.fromtimestamp(deps.now(), UTC))
    ):
        data = {"token_hash": ex.hash16, "expired_at": record.expires_at}
        ex.events.append(("token.expired", data))  # once per token: the outbox keeps count
        raise ProxyError(401, "invalid token")
    if record is None or record.policy is None:
        raise ProxyError(401, "invalid token")
    ex.policy = record.policy
    ex.capture = ex.capture or record.policy.memory.enabled
    if ex.route is None or ex.route.adapter is not None:  # passthrough: OpenClaw values only
        ex.metadata = {**openclaw, **record.policy.metadata}  # the policy wins on a clash


def _event_data(ex: Exchange, **fields: Any) -> dict[str, Any]:
    """An event's data on the request path: the hash prefix and model, never a raw token."""
    return {"token_hash": ex.hash16, "model": ex.model, **fields}


def _body_model(body: object) -> str:
    """The body's `model`: "" when there is none; a 400 when it is not a string."""
    if not isinstance(body, dict) or "model" not in body:
        return ""
    model = body["model"]
    if not isinstance(model, str):
        raise ProxyError(400, '"model" must be a string')
    return model


def check_framing(ex: Exchange, deps: Deps) -> None:
    """RFC 9112 §6.1: both Content-Length and Transfer-Encoding is how requests are smuggled
    past another proxy; such a request is refused (and its connection closed after)."""
    if "transfer-encoding" in ex.request.headers and "content-length" in ex.request.headers:
        raise ProxyError(400, "request has both Content-Length and Transfer-Encoding")


def parse_request(ex: Exchange, deps: Deps) -> None:
    """The body and model; a passthrough request that names a model, in its path or its JSON
    body, is model-checked and budgeted like an LLM route (`enforced`)."""
    route = ex.route
    assert route is not None  # routed by `run.admit`, on the decoded path
    try:
        body = orjson.loads(ex.body_bytes) if ex.body_bytes else None
    except orjson.JSONDecodeError:
        body = None
    if route.adapter is None:
        ex.body = body if isinstance(body, dict) else None
        ex.model = route.path_model or _body_model(body)
        return
    if not isinstance(body, dict):
        raise ProxyError(400, "invalid JSON body")
    _body_model(body)
    ex.body = ex.parsed_body = body
    ex.model = route.adapter.model(body, route)
    ex.stream = route.adapter.stream(body, route)


def enforced(ex: Exchange, check: Literal["model_checked", "budgeted"]) -> bool:
    """Whether the adapter's `check` (`model_checked`, `budgeted`) applies; a passthrough
    request gets every check when it names a model."""
    adapter = ex.route.adapter if ex.route else None
    return bool(getattr(adapter, check)) if adapter is not None else bool(ex.model)


def resolve(ex: Exchange, deps: Deps) -> None:
    assert ex.policy is not None and ex.route is not None
    ex.target = resolve_target(
        ex.policy,
        ex.route,
        ex.model,
        providers=deps.providers,
        default_provider=deps.settings.default_provider,
        server_upstream=deps.settings.server.upstream_url,
        environ=deps.environ,
    )
    ex.resolved = ex.target.resolved


def check_rate_limit(ex: Exchange, deps: Deps) -> Awaitable[None] | None:
    """Rate limits and `max_parallel`; left for `reserve_budget` when the backend can do both
    in one round trip (`pipeline.admission`). None when done without waiting."""
    if admission.defer(ex, counters(deps), enforced(ex, "budgeted")):
        return None
    return _acquire(ex, deps)


def _acquire(ex: Exchange, deps: Deps) -> Awaitable[None] | None:
    """The slot and the request's count in the rate windows: at once from the in-process
    counters (no coroutine per request), else what is left to await."""
    assert ex.policy is not None
    backend = counters(deps)
    if not isinstance(backend, LocalCounters):
        return _acquire_waiting(ex, backend)
    try:
        ex.permit = backend.acquire_now(ex.token_hash, ex.policy.rate_limit)
    except RateLimited as exc:
        _rate_exceeded(ex, exc)
        raise
    return None


async def _acquire_waiting(ex: Exchange, backend: Counters) -> None:
    assert ex.policy is not None
    try:
        ex.permit = await backend.acquire(ex.token_hash, ex.policy.rate_limit)
    except RateLimited as exc:
        _rate_exceeded(ex, exc)
        raise


def _rate_exceeded(ex: Exchange, exc: RateLimited) -> None:
    """The `rate.exceeded` event of a refusal by the rate limit (or `max_parallel`)."""
    ex.events.append(("rate.exceeded", _event_data(ex, error=exc.message)))


async def undefer(ex: Exchange, deps: Deps, error: TokenomicsError) -> TokenomicsError:
    """A stage refused the request while its rate limit was deferred: check it now, as it was
    before that stage; its refusal (or a 503) wins, as it did then."""
    if ex.deferred_rate is None:
        return error
    try:
        step = _acquire(ex, deps)
        if step is not None:
            await step
    except TokenomicsError as exc:
        admission.restore(ex)  # the event of a refusal goes too: recorded again just below
        if isinstance(exc, RateLimited):
            _rate_exceeded(ex, exc)
        return exc
    ex.deferred_rate = None
    return error


def check_model(ex: Exchange, deps: Deps) -> None:
    assert ex.resolved is not None
    if enforced(ex, "model_checked"):
        ex.resolved.check_model(ex.model)


def apply_rules(ex: Exchange, deps: Deps) -> None:
    """Input rules on every text the model will see (D12); prompts are added after, unscanned."""
    adapter = ex.route.adapter if ex.route else None
    if adapter is None or ex.body is None or ex.resolved is None or not ex.resolved.rules:
        return
    ex.body = scan(ex, ex.resolved.rules, ex.body, adapter.slots, "input")


def apply_prompts(ex: Exchange, deps: Deps) -> None:
    adapter = ex.route.adapter if ex.route else None
    if adapter is None or ex.body is None or ex.resolved is None:
        return
    ex.body = adapter.add_prompts(ex.body, ex.resolved.prompts)
    if ex.stream:
        ex.body, ex.strip_usage = adapter.ask_for_usage(ex.body)


def estimate_input(ex: Exchange, deps: Deps) -> int:
    """Our token estimate of the request body (3 per message plus the texts, like the original);
    a passthrough body that names a model counts as one text. On the event loop, await
    `exact_input` instead: this one loads the vocabulary in place if it is not loaded yet."""
    adapter = ex.route.adapter if ex.route else None
    model = ex.attempt_model or ex.model
    if adapter is None:
        return 3 + deps.estimator.count_bytes(model, ex.body_bytes) if ex.model else 0
    if ex.body is None:
        return 0
    return 3 + deps.estimator.count_texts(model, adapter.texts(ex.body))


async def exact_input(ex: Exchange, deps: Deps) -> int:
    """`estimate_input`, its vocabulary loaded first in a worker thread if need be."""
    await deps.estimator.prepare(ex.attempt_model or ex.model)
    return estimate_input(ex, deps)


def input_bound(ex: Exchange, deps: Deps) -> int:
    """Never less than `estimate_input`, for any model, and no vocabulary needed: the UTF-8
    size of the same texts (`estimate.bound_texts`)."""
    adapter = ex.route.adapter if ex.route else None
    if adapter is None:
        return 3 + bound_bytes(ex.body_bytes) if ex.model else 0
    if ex.body is None:
        return 0
    return 3 + bound_texts(adapter.texts(ex.body))


def reserve_budget(ex: Exchange, deps: Deps) -> Awaitable[None] | None:
    """Check and reserve in one step (D14); estimates are made only when a limit needs them.

    The reservation holds the input estimate and the request's output cap (its own, else
    `DEFAULT_OUTPUT_TOKENS` per choice), each at most the limit, until the actual usage settles
    it: concurrent requests see each other at their maximum. The input is first asked for at
    its bound (`input_bound`: no vocabulary, never less than the estimate), so a request far
    from its limit is admitted without counting; only when the bound is refused is the
    estimate counted and asked for, and a refusal then is the estimate's, with its numbers.
    A rate limit deferred into this step (one-step admission) is asked with both, the bound's
    refusal taking nothing (`Counters.admit`'s `bound`): the request is counted once.
    None when done without waiting (the in-process counters, the bound admitted)."""
    assert ex.resolved is not None
    budgeted = enforced(ex, "budgeted")
    max_tokens = ex.resolved.max_tokens if budgeted else 0
    max_cost = ex.resolved.max_cost_usd if budgeted else 0.0
    if not (max_tokens > 0 or max_cost > 0):
        return _reserve(ex, deps, Ask(max_tokens, max_cost, ex.input_estimate, 0.0))
    ask = _asker(ex, deps, max_tokens, max_cost)
    try:
        step = _reserve(ex, deps, ask(input_bound(ex, deps)), bound=True)
    except BudgetExceeded:
        return _reserve_estimate(ex, deps, ask)
    return None if step is None else _bound_or_estimate(ex, deps, ask, step)


async def _bound_or_estimate(
    ex: Exchange, deps: Deps, ask: Callable[[int], Ask], step: Awaitable[None]
) -> None:
    """The reservation at the bound, from a backend that waits; refused, the estimate's."""
    try:
        await step
    except BudgetExceeded:
        await _reserve_estimate(ex, deps, ask)


async def _reserve_estimate(ex: Exchange, deps: Deps, ask: Callable[[int], Ask]) -> None:
    """The bound was refused: the input counted (its vocabulary off the event loop), asked."""
    ex.input_estimate = await exact_input(ex, deps)
    try:
        step = _reserve(ex, deps, ask(ex.input_estimate))
        if step is not None:
            await step
    except BudgetExceeded as exc:
        fields = {"used": exc.used, "input": exc.requested, "limit": exc.limit}
        ex.events.append(("budget.exceeded", _event_data(ex, **fields)))
        raise


def _asker(ex: Exchange, deps: Deps, max_tokens: int, max_cost: float) -> Callable[[int], Ask]:
    """The ask for a given input count: the input and the output cap, with their prices."""
    price = deps.prices.lookup(ex.model)
    if price is None and max_cost > 0:
        raise ProxyError(
            403,
            f'model "{ex.model}" has no known price, so its cost budget cannot be enforced; '
            "add a price for it under prices: in providers.yaml",
        )
    adapter = ex.route.adapter if ex.route else None
    cap = (
        adapter.output_cap(ex.body or {}, DEFAULT_OUTPUT_TOKENS)
        if adapter is not None
        else DEFAULT_OUTPUT_TOKENS  # a passthrough that names a model: its cap is unknown
    )
    output = min(cap, max_tokens) if max_tokens > 0 else 0
    output_cost = 0.0
    if price is not None and max_cost > 0:
        output_cost = min(cap * price.output / 1e6, max_cost)

    def ask(input_tokens: int) -> Ask:
        cost = input_tokens * price.input / 1e6 if price is not None else 0.0
        return Ask(max_tokens, max_cost, input_tokens, cost, output, output_cost)

    return ask


def _reserve(ex: Exchange, deps: Deps, ask: Ask, *, bound: bool = False) -> Awaitable[None] | None:
    """The reservation: at once from the in-process counters (no coroutine per request), else
    what is left to await; with the deferred rate limit when there is one (`_admit`)."""
    if ex.deferred_rate is not None:
        return _admit(ex, deps, ask, bound)
    backend = counters(deps)
    if isinstance(backend, LocalCounters):
        ex.reservation = backend.reserve_now(ex.token_hash, ask)
        return None
    return _reserve_waiting(ex, backend, ask)


async def _reserve_waiting(ex: Exchange, backend: Counters, ask: Ask) -> None:
    ex.reservation = await backend.reserve(ex.token_hash, ask)


async def _admit(ex: Exchange, deps: Deps, ask: Ask, bound: bool) -> None:
    """The deferred rate limit and the budget, one step (`Counters.admit`). Refused at the
    `bound`, nothing was taken: the rate limit stays deferred to the ask with the estimate."""
    assert ex.policy is not None
    try:
        ex.permit, ex.reservation = await counters(deps).admit(
            ex.token_hash, ex.policy.rate_limit, ask, bound=bound
        )
    except RateLimited as exc:
        admission.restore(ex)
        _rate_exceeded(ex, exc)
        raise
    except BudgetExceeded:
        if not bound:
            ex.deferred_rate = None  # the rate limit passed (and counted the request)
        raise
    except TokenomicsError:
        admission.restore(ex)  # a 503: the early rate step would have raised it first
        raise
    ex.deferred_rate = None


def counters(deps: Deps) -> Counters:
    """The configured counters backend; the in-process one when none was passed in."""
    if deps.counters is not None:
        return deps.counters
    return LocalCounters(deps.budgets, deps.limiter)


# On the request's head alone, before any body byte is read (`run.admit`).
HEAD_STAGES: tuple[Callable[[Exchange, Deps], None], ...] = (check_framing, authenticate)
# Those that reach the counters backend return what is left to await, None when they finished
# without waiting (the in-process counters: no coroutine per request); `run.run_pipeline`
# awaits it.
STAGES: tuple[Callable[[Exchange, Deps], Awaitable[None] | None], ...] = (
    parse_request,
    resolve,
    check_rate_limit,
    check_model,
    apply_rules,
    apply_prompts,
    reserve_budget,
)
