"""`admit`: the stages on the request's head, before its body is read; `run_pipeline`: the
other stages, the upstream call and the relay, with errors answered in the client's API
family. The caller sends the reply and then calls `finish` (shielded)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from tokenomics.domain.errors import BudgetExceeded, TokenomicsError
from tokenomics.formats.classify import route_request
from tokenomics.formats.errors import error_body
from tokenomics.pipeline.exchange import Reply
from tokenomics.pipeline.forward import forward
from tokenomics.pipeline.relay import relay
from tokenomics.pipeline.run_budget import reserve_run_budget
from tokenomics.pipeline.stages import HEAD_STAGES, STAGES, undefer

if TYPE_CHECKING:
    from tokenomics.pipeline.deps import Deps
    from tokenomics.pipeline.exchange import Exchange

JSON = ("content-type", "application/json")
# The body stages, then the run's own budget on top of the policy's (`tokenomics run --max-*`).
BODY_STAGES = (*STAGES, reserve_run_budget)


def error_reply(ex: Exchange, error: TokenomicsError) -> Reply:
    family = error.family or ex.family
    headers = [JSON]
    if error.retry_after is not None:
        headers.append(("retry-after", str(max(1, round(error.retry_after + 0.499)))))
    if isinstance(error, BudgetExceeded):  # not transient: the SDKs need not retry it
        headers.append(("x-should-retry", "false"))
    ex.error = ex.error or error.message
    return Reply(error.status, headers, body=error_body(family, error.status, error.message))


def admit(ex: Exchange, deps: Deps) -> None:
    """Route the request and run the head stages (framing, token); raises their error.
    `ex.path` comes as the client sent it and becomes the path that goes upstream."""
    ex.route = route_request(ex.method, ex.path, ex.headers)
    ex.path = ex.route.path
    for stage in HEAD_STAGES:
        stage(ex, deps)


async def run_pipeline(ex: Exchange, deps: Deps) -> Reply:
    """The rest, once `admit` passed and the body was read."""
    try:
        for stage in BODY_STAGES:
            step = stage(ex, deps)
            if step is not None:
                await step
        await forward(ex, deps)
        reply = await relay(ex, deps)
    except TokenomicsError as exc:
        reply = error_reply(ex, await undefer(ex, deps, exc))
    ex.status, ex.reply = reply.status, reply
    return reply
