"""One webhook delivery attempt over the upstream client layer, and what it means.

`post` signs and sends one envelope (`core.md` §4.4 headers), reads a bounded answer, and
returns an `Attempt`: delivered (2xx), permanent failure (4xx except 408/429: sending the same
bytes again cannot help), or retry, with the receiver's `Retry-After` when it gave one.
Redirects are not followed (the [fix] of §4.4). `backoff` is the exponential schedule with
jitter. Secrets go in headers only; errors carry no URL query or secret.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import TYPE_CHECKING, Protocol

import trio

from tokenomics.domain.errors import UpstreamError
from tokenomics.domain.events import signature
from tokenomics.upstream.client import UpstreamRequest, Upstreams, header, read_all
from tokenomics.upstream.fetch import unverified_context

if TYPE_CHECKING:
    from collections.abc import Callable

USER_AGENT = "Tokenomics-Webhook/1.0"
ANSWER_LIMIT = 64 * 1024  # bytes of a receiver's answer read (and dropped)
MAX_RETRY_AFTER = 3600.0


@dataclass(frozen=True, slots=True)
class WebhookTarget:
    """Where events go: a configured webhook, or (on `remote`) a registered proxy."""

    name: str  # identity of its position in the outbox; shown in metrics and `events list`
    url: str
    secret: str = field(default="", repr=False)  # X-Webhook-Secret
    signing_secret: str = field(default="", repr=False)  # HMAC key of X-Webhook-Signature
    events: tuple[str, ...] = ()  # filter; empty: every type
    timeout: float = 10.0
    insecure: bool = False


@dataclass(frozen=True, slots=True)
class Attempt:
    status: int  # 0: no HTTP answer (connect error, timeout)
    error: str = ""
    retry_after: float | None = None

    @property
    def delivered(self) -> bool:
        return 200 <= self.status < 300

    @property
    def permanent(self) -> bool:
        return 400 <= self.status < 500 and self.status not in (408, 429)


class Sender(Protocol):
    async def post(
        self, target: WebhookTarget, event_id: str, kind: str, body: bytes
    ) -> Attempt: ...


def request_headers(
    target: WebhookTarget, event_id: str, kind: str, body: bytes
) -> list[tuple[str, str]]:
    """Lower-case names (the client layer's convention; HTTP names are case-insensitive)."""
    headers = [
        ("content-type", "application/json"),
        ("user-agent", USER_AGENT),
        ("x-event-id", event_id),
        ("x-event-type", kind),
    ]
    if target.secret:
        headers.append(("x-webhook-secret", target.secret))
    if target.signing_secret:
        headers.append(("x-webhook-signature", signature(target.signing_secret, body)))
    return headers


def retry_after(value: str, now: datetime | None = None) -> float | None:
    """Seconds from a `Retry-After` (delta-seconds or HTTP-date), at most an hour; None if
    absent or unreadable."""
    value = value.strip()
    if not value:
        return None
    if value.isdigit():
        return min(float(value), MAX_RETRY_AFTER)
    try:
        moment = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    seconds = (moment - (now or datetime.now(UTC))).total_seconds()
    return min(max(seconds, 0.0), MAX_RETRY_AFTER)


@dataclass(frozen=True, slots=True)
class Backoff:
    """Delay before attempt n+1 after n failures: `base * 2**(n-1)`, at most `cap`, times a
    jitter in [0.5, 1); a receiver's `Retry-After` is honoured (never retried sooner)."""

    base: float = 2.0
    cap: float = 300.0

    def delay(self, failures: int, hint: float | None, random: Callable[[], float]) -> float:
        raw = min(self.cap, self.base * 2 ** max(0, failures - 1))
        jittered = raw * (0.5 + random() / 2)
        return max(jittered, hint) if hint is not None else float(jittered)


class HttpSender:
    """Posts through pooled `Upstreams` (one verifying, one for `insecure` targets)."""

    def __init__(self) -> None:
        self._verified = Upstreams(max_connections=256)
        self._insecure: Upstreams | None = None

    def _client(self, insecure: bool) -> Upstreams:
        if not insecure:
            return self._verified
        if self._insecure is None:
            self._insecure = Upstreams(max_connections=256, ssl_context=unverified_context())
        return self._insecure

    async def post(self, target: WebhookTarget, event_id: str, kind: str, body: bytes) -> Attempt:
        if not target.url.lower().startswith(("http://", "https://")):
            return Attempt(400, "webhook URL is not http(s)")  # unbuildable: never retried
        request = UpstreamRequest(
            "POST", target.url, request_headers(target, event_id, kind, body), body,
            secrets=tuple(s for s in (target.secret, target.signing_secret) if s),
        )  # fmt: skip
        try:
            response = await self._client(target.insecure).open(
                request, headers_timeout=target.timeout
            )
        except UpstreamError as exc:
            reason = exc.reason.replace("upstream", "webhook")
            # A request that cannot be built (bad URL or header) fails the same way every time.
            return Attempt(400 if reason.startswith("invalid") else 0, reason)
        try:
            hint = retry_after(header(response.headers, "retry-after"))
            with trio.move_on_after(target.timeout):
                await read_all(response, ANSWER_LIMIT, target.timeout)
        except UpstreamError:
            pass  # the status is the answer; an oversized or broken body does not change it
        finally:
            await response.aclose()
        error = "" if 200 <= response.status < 300 else f"HTTP {response.status}"
        return Attempt(response.status, error, hint)

    async def aclose(self) -> None:
        await self._verified.aclose()
        if self._insecure is not None:
            await self._insecure.aclose()
