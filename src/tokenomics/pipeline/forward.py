"""The upstream call: attempts, retries with backoff, and fallbacks (D9, D10, `proxy.md` §2.13).

The primary model gets `1 + max_retries` attempts; retryable outcomes are the policy's
`retry_on` statuses and transport errors. Each fallback is re-resolved and model-checked like
the primary; a disallowed one is skipped. The last attempt's response is relayed whatever its
status; when the last attempt failed in transport, the client gets a JSON 502/504.
"""

from __future__ import annotations

import random
import time
from dataclasses import dataclass
from email.utils import parsedate_to_datetime
from typing import TYPE_CHECKING

import orjson
import trio

from tokenomics.domain.errors import ProxyError, TokenomicsError, UpstreamError
from tokenomics.domain.policy import DEFAULT_RETRY_ON
from tokenomics.pipeline.headers import upstream_headers
from tokenomics.pipeline.target import Target, resolve_target
from tokenomics.upstream.client import UpstreamRequest, header
from tokenomics.upstream.urls import join_url, with_query

if TYPE_CHECKING:
    from tokenomics.formats.base import Body, Route
    from tokenomics.pipeline.deps import Deps
    from tokenomics.pipeline.exchange import Exchange

MAX_BACKOFF = 8.0


@dataclass(slots=True)
class Attempt:
    """One planned upstream call (never changed; not frozen, like `Target`)."""

    model: str
    target: Target
    route: Route
    body: Body | None


def _fallback(ex: Exchange, deps: Deps, model: str) -> Attempt | None:
    """A fallback's own target, or None when its provider or model check refuses it."""
    assert ex.policy is not None and ex.route is not None
    try:
        target = resolve_target(
            ex.policy, ex.route, model, providers=deps.providers,
            default_provider=deps.settings.default_provider,
            server_upstream=deps.settings.server.upstream_url, environ=deps.environ,
        )  # fmt: skip
        target.resolved.check_model(model)
    except TokenomicsError:
        return None
    return _attempt(ex, model, target)


def _attempt(ex: Exchange, model: str, target: Target) -> Attempt:
    assert ex.route is not None
    if ex.route.adapter is None or ex.body is None:
        return Attempt(model, target, ex.route, ex.body)
    body, route = ex.route.adapter.with_model(ex.body, ex.route, model)
    return Attempt(model, target, route, body)


def plan(ex: Exchange, deps: Deps) -> list[Attempt]:
    """Every attempt in order: the primary's, then each allowed fallback's."""
    assert ex.target is not None and ex.policy is not None
    retry = ex.policy.retry
    per_model = 1 + (retry.max_retries if retry else 0)
    attempts = [_attempt(ex, ex.model, ex.target)] * per_model
    if ex.route is not None and ex.route.adapter is not None and retry is not None:
        for model in retry.fallbacks:
            fallback = _fallback(ex, deps, model)
            if fallback is not None:
                attempts += [fallback] * per_model
    return attempts


def build_request(ex: Exchange, attempt: Attempt) -> UpstreamRequest:
    target, route = attempt.target, attempt.route
    provider = target.provider
    path = route.path
    if provider is not None and provider.chat_path and route.kind == "openai_chat":
        path = provider.chat_path
    url = join_url(target.base_url, path, ex.query, model=attempt.model)
    if provider is not None and (provider.query or provider.auth_scheme == "query"):
        forced = {"key": target.key} if provider.auth_scheme == "query" and target.key else {}
        url = with_query(url, {**provider.query, **forced}, override=tuple(forced))
    body = ex.body_bytes
    if (
        attempt.body is not None
        and route.adapter is not None
        and attempt.body is not ex.parsed_body
    ):
        body = orjson.dumps(attempt.body)  # a stage or the fallback model changed it
    request = ex.request
    content_type = request.headers.get("content-type", "application/json") if body else None
    headers = upstream_headers(request.raw_headers, target, request.client_request_id, content_type)
    return UpstreamRequest(request.method, url, headers, body, (target.key, ex.credential))


def _retry_after(value: str) -> float | None:
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        moment = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, moment.timestamp() - time.time())


def _backoff(retry_number: int, retry_after: float | None) -> float:
    if retry_after is not None:
        return min(retry_after, MAX_BACKOFF)
    return random.uniform(0, min(MAX_BACKOFF, 0.25 * 2**retry_number))


async def forward(ex: Exchange, deps: Deps) -> None:
    """Run the attempts; leaves the accepted response in `ex.upstream`."""
    assert ex.policy is not None
    attempts = plan(ex, deps)
    retry_on = ex.policy.retry.retry_on if ex.policy.retry else DEFAULT_RETRY_ON
    last_error: UpstreamError | None = None
    last_status = 0  # of the last retryable answer, named when a later attempt fails (W-D6)
    for index, attempt in enumerate(attempts):
        final = index == len(attempts) - 1
        if index:
            ex.retry_count += 1
        request = build_request(ex, attempt)
        ex.attempt_model = attempt.model
        ex.fallback_model = attempt.model if attempt.model != ex.model else ""
        try:
            response = await deps.upstreams.open(request, headers_timeout=attempt.target.timeout)
        except UpstreamError as exc:
            last_error = exc
            if not final:
                await trio.sleep(_backoff(ex.retry_count, None))
            continue
        if response.status in retry_on and not final:
            wait = _retry_after(header(response.headers, "retry-after"))
            await response.aclose()
            last_error = UpstreamError(f"upstream answered {response.status}")
            last_status = response.status
            await trio.sleep(_backoff(ex.retry_count, wait))
            continue
        ex.upstream, ex.target = response, attempt.target
        return
    assert last_error is not None
    detail = f"{last_error} (last upstream status {last_status})" if last_status else last_error
    raise ProxyError(
        last_error.status, f"upstream request failed after {len(attempts)} attempts: {detail}"
    )
