"""The one per-request object (`Exchange`), and the reply the pipeline hands back.

An exchange is written in four parts, in this order, each by the step of a request's life
(`run.py`) named here; a part is only read after it was written:

1. `request` (`Incoming`, never changed): what the client sent, set once when its head is parsed
   (`Requests.exchange`); `body_bytes` once the body is read.
2. The route and the target, chosen by the stages (`run.admit`, `stages.py`, `target.py`,
   `forward.py` for the fallback): the route and the path and query that go upstream, the
   parsed body, token and policy, target and model, the counters' claims, the estimate, rule
   matches, events, metadata, `capture`.
3. The outcome: the upstream response and its attempts (`forward.py`), usage, meta and
   `error` as read by the relay (`relay.py`, `stream_guard.py`), then `status` and `reply`
   (`run.run_pipeline`) and what went to the client (`Requests._reply`).
4. `settled` (`Settled`, never changed): the final usage (estimated where the provider said
   nothing), the price and the token's budget after it, set once by `finish` (`settle`), and
   read by the recorder.
"""

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
    from tokenomics.pipeline.stream_capture import StreamCapture
    from tokenomics.pipeline.target import Target
    from tokenomics.upstream.client import UpstreamResponse

Headers = list[tuple[str, str]]
BODY_LIMIT = 512 * 1024  # bytes of a body kept for memory and events (`cli.md` §7.3, §7.6)


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
class Incoming:
    """Part 1: the request's head as the client sent it. Never changed; not frozen, as a frozen
    dataclass's `__init__` costs ~5x (`object.__setattr__` per field), once per request."""

    method: str
    raw_headers: Headers  # as received, lower-case names
    headers: dict[str, str]  # the same, by name (the last of repeated ones)
    peer: str
    started: float  # monotonic seconds
    started_at: str  # RFC 3339 UTC
    client_request_id: str


@dataclass(slots=True)
class Settled:
    """Part 4: what `finish` settled, once (never changed; not frozen, like `Incoming`)."""

    usage: Usage  # the provider's figures, estimates where it said nothing
    cost_usd: float | None  # None: the model has no price
    spend: Spend | None  # the token's settled budget counter once this one settled


@dataclass(slots=True)
class Exchange:
    """One request on its way through the stages; `finish` records it exactly once. The
    module's docstring says which step writes which part, and in which order."""

    # 1. the request
    request: Incoming
    path: str  # as received; `admit` makes it the path that goes upstream
    query: str  # as received; a stage removes a credential from it
    body_bytes: bytes = b""
    # 2. the route and the target (the stages)
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
    input_estimate: int = 0
    rule_matches: list[dict[str, str]] = field(default_factory=list)
    events: list[tuple[str, dict[str, Any]]] = field(default_factory=list)  # for the event sink
    metadata: dict[str, str] = field(default_factory=dict)
    # `capture`: memory or events will read the bodies exchanged (the record then carries the
    # body sent upstream, and what they show of a streamed reply, `sent`); the total size and
    # when the first byte went out are always kept.
    capture: bool = False
    # 3. the outcome (forward, relay, reply)
    upstream: UpstreamResponse | None = None
    attempt_model: str = ""
    fallback_model: str = ""
    retry_count: int = 0
    usage: Usage | None = None  # as the provider reported it (`settled` has the final one)
    meta: ResponseMeta | None = None
    error: str = ""
    status: int = 0
    reply: Reply | None = None
    sent: StreamCapture | None = None  # what memory and events keep of a streamed reply
    sent_bytes: int = 0
    first_byte_ms: int | None = None
    # The assistant text of an SSE reply no output rule touched, as the relay read it (text,
    # truncated): what the client received, so memory need not parse the stream again.
    relayed_text: tuple[str, bool] | None = None
    # 4. settled (`finish`, through `settle`)
    _settled: Settled | None = field(default=None, init=False, repr=False)

    def settle(self, settled: Settled) -> None:
        if self._settled is not None:
            raise RuntimeError(f"exchange {self.request.client_request_id} settled twice")
        self._settled = settled

    @property
    def is_settled(self) -> bool:
        return self._settled is not None

    @property
    def settled(self) -> Settled:
        """Part 4; raises before `finish` settled the exchange."""
        if self._settled is None:
            raise RuntimeError(f"exchange {self.request.client_request_id} not settled yet")
        return self._settled

    @property
    def family(self) -> Family:
        """The API family of the request's route (OpenAI's before it is routed): it shapes the
        errors we answer and decides how the response's usage is read."""
        return self.route.family if self.route else "openai"

    @property
    def hash16(self) -> str:
        return self.token_hash[:16]
