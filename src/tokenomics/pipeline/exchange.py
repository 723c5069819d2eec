"""The one mutable per-request object, and the reply the pipeline hands back to the server."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from collections.abc import AsyncGenerator

    from tokenomics.domain.budget import Spend
    from tokenomics.domain.counters import Claim
    from tokenomics.domain.policy import Policy
    from tokenomics.domain.resolve import Resolved
    from tokenomics.domain.run_budget import RunReservation
    from tokenomics.domain.usage import Family, ResponseMeta, Usage
    from tokenomics.formats.base import Route
    from tokenomics.pipeline.target import Target
    from tokenomics.upstream.client import UpstreamResponse

Headers = list[tuple[str, str]]


@dataclass(slots=True)
class Reply:
    """What goes back to the client: buffered `body`, or `stream` chunks relayed as they come."""

    status: int
    headers: Headers
    body: bytes = b""
    stream: AsyncGenerator[bytes, None] | None = None


@dataclass(frozen=True, slots=True)
class DeferredRate:
    """A rate-limit check left for the budget step (`pipeline.admission`), with what the
    stages in between changed, to be undone if the rate limit refuses the request after all."""

    events: int
    rule_matches: int
    error: str
    body: dict[str, Any] | None
    strip_usage: bool


@dataclass(slots=True)
class Exchange:
    """One request on its way through the stages; `finish` records it exactly once."""

    method: str
    path: str
    query: str
    raw_headers: Headers  # as received, lower-case names
    body_bytes: bytes
    peer: str
    started: float  # monotonic seconds
    started_at: str  # RFC 3339 UTC
    client_request_id: str
    headers: dict[str, str] = field(default_factory=dict)
    route: Route | None = None
    body: dict[str, Any] | None = None
    # The body as parsed from `body_bytes`. Stages replace `body` with a new dict when they
    # change it, so `body is parsed_body` means `body_bytes` can be sent as they came.
    parsed_body: dict[str, Any] | None = None
    token_hash: str = ""
    credential: str = field(default="", repr=False)  # the wrapper token, scrubbed from replies
    policy: Policy | None = None
    resolved: Resolved | None = None
    target: Target | None = None
    model: str = ""
    stream: bool = False
    strip_usage: bool = False
    permit: Claim | None = None  # the parallel slot (`Counters.acquire`)
    reservation: Claim | None = None  # the budget hold (`Counters.reserve`)
    deferred_rate: DeferredRate | None = None  # rate limit to check with the budget (one step)
    run_reservation: RunReservation | None = None  # of `tokenomics run --max-*`
    spend: Spend | None = None  # the token's settled budget counter once this one settled
    input_estimate: int = 0
    upstream: UpstreamResponse | None = None
    attempt_model: str = ""
    fallback_model: str = ""
    retry_count: int = 0
    status: int = 0
    error: str = ""
    usage: Usage | None = None
    meta: ResponseMeta | None = None
    cost_usd: float | None = None
    rule_matches: list[dict[str, str]] = field(default_factory=list)
    events: list[tuple[str, dict[str, Any]]] = field(default_factory=list)  # for the event sink
    metadata: dict[str, str] = field(default_factory=dict)
    reply: Reply | None = None
    # `capture`: memory or events will read the bodies exchanged (the record then carries the
    # body sent upstream, and the chunks of a streamed reply up to `BODY_LIMIT` bytes); the
    # total size and when the first byte went out are always kept.
    capture: bool = False
    sent_chunks: list[bytes] = field(default_factory=list)
    sent_bytes: int = 0
    first_byte_ms: int | None = None
    # The assistant text of an SSE reply no output rule touched, as the relay read it (text,
    # truncated): what the client received, so memory need not parse the stream again.
    relayed_text: tuple[str, bool] | None = None
    replied: bool = False  # the whole reply reached the server
    finished: bool = False

    @property
    def family(self) -> Family:
        """The API family of the request's route (OpenAI's before it is routed): it shapes the
        errors we answer and decides how the response's usage is read."""
        return self.route.family if self.route else "openai"

    @property
    def hash16(self) -> str:
        return self.token_hash[:16]
