"""The inbound webhook of a proxy (`remote.webhook.*`, `core.md` §5.7 with its FIX items):
the central server pushes `token.*` events here and the proxy syncs at once instead of
waiting for its next poll.

Order of checks: POST only (405); body at most 1 MiB (413, never cut); `X-Webhook-Secret`
(401) and `X-Webhook-Signature` (403), both compared in constant time; JSON (400); the event's
timestamp within `replay_window` seconds and its id not seen before (409), so a captured
delivery cannot be replayed; non-`token.*` events are ignored. Accepted events poke a
trailing-edge `Debouncer`: a burst ends in exactly one sync, `debounce_ms` after its last event.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
from collections import OrderedDict
from typing import TYPE_CHECKING, Any

import orjson
import trio

from tokenomics.domain.durations import parse_rfc3339
from tokenomics.domain.errors import ApiError
from tokenomics.services.remote_api import read_body

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable, MutableMapping

    from tokenomics.config.settings import RemoteWebhookSettings

log = logging.getLogger("tokenomics.remote")
MAX_BODY = 1024 * 1024
MAX_SEEN = 10_000


class Debouncer:
    """`poke()` any number of times; `run` calls `action` once `delay` seconds have passed
    without a poke (trailing edge). Pokes during the action lead to one more action."""

    def __init__(self, delay: float, clock: Callable[[], float] = trio.current_time) -> None:
        self.delay, self._clock = delay, clock
        self._deadline: float | None = None
        self._poked = trio.Event()
        self.runs = 0

    def poke(self) -> None:
        self._deadline = self._clock() + self.delay
        self._poked.set()

    async def run(self, action: Callable[[], Awaitable[object]]) -> None:
        while True:
            await self._poked.wait()
            while True:  # until `delay` passed since the last poke
                deadline = self._deadline or self._clock()
                await trio.sleep_until(deadline)
                if deadline == (self._deadline or deadline):
                    break
            self._poked, self._deadline = trio.Event(), None
            self.runs += 1
            await action()


def signature_ok(key: bytes, body: bytes, header: str) -> bool:
    """`sha256=<hex, either case>` that is the HMAC-SHA256 of the raw body."""
    if not header.startswith("sha256="):
        return False
    try:
        given = bytes.fromhex(header[7:])
    except ValueError:
        return False
    return hmac.compare_digest(given, hmac.new(key, body, hashlib.sha256).digest())


class WebhookReceiver:
    def __init__(
        self, settings: RemoteWebhookSettings, poke: Callable[[], None], now: Callable[[], float]
    ) -> None:
        self.path = settings.path
        self._secret = settings.secret.encode()
        self._key = settings.signing_key.encode()
        self._window = settings.replay_window
        self._poke, self._now = poke, now
        self._seen: OrderedDict[str, float] = OrderedDict()

    async def __call__(self, scope: MutableMapping[str, Any], receive: Any, send: Any) -> None:
        try:
            status, body = await self._handle(scope, receive)
        except ApiError as exc:
            status, body = exc.status, {"error": exc.message}
        data = orjson.dumps(body)
        headers = [(b"content-type", b"application/json"),
                   (b"content-length", str(len(data)).encode())]  # fmt: skip
        if status == 413:
            headers.append((b"connection", b"close"))
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": data})

    async def _handle(self, scope: MutableMapping[str, Any], receive: Any) -> tuple[int, Any]:
        if scope["method"] != "POST":
            raise ApiError(405, "method not allowed")
        headers = {k.lower(): v for k, v in scope["headers"]}
        length = headers.get(b"content-length", b"0")
        if length.isdigit() and int(length) > MAX_BODY:
            raise ApiError(413, "payload too large")
        if self._secret and not hmac.compare_digest(  # before a byte of the body is read
            headers.get(b"x-webhook-secret", b""), self._secret
        ):
            raise ApiError(401, "unauthorized")
        try:
            body = await read_body(receive, MAX_BODY)
        except ApiError as exc:
            raise ApiError(413, "payload too large") if exc.status == 413 else exc from None
        signature = headers.get(b"x-webhook-signature", b"").decode("latin-1")
        if self._key and not signature_ok(self._key, body, signature):
            raise ApiError(403, "invalid signature")
        try:
            event = orjson.loads(body)
        except orjson.JSONDecodeError:
            raise ApiError(400, "invalid json") from None
        if not isinstance(event, dict):
            raise ApiError(400, "invalid json")
        self._check_replay(event)
        event_type = event.get("type")
        if not isinstance(event_type, str) or not event_type.startswith("token."):
            return 200, {"status": "ignored", "reason": "not a token event"}
        self._poke()
        return 200, {"status": "accepted"}

    def _check_replay(self, event: dict[str, Any]) -> None:
        """Refuse an event outside the time window or seen before (after its signature was
        checked, so a forged event cannot fill the cache)."""
        event_id, stamp = event.get("id"), event.get("timestamp")
        if not isinstance(event_id, str) or not event_id or len(event_id) > 100:
            raise ApiError(400, "event id missing")
        moment = parse_rfc3339(stamp) if isinstance(stamp, str) else None
        now = self._now()
        if moment is None or abs(now - moment.timestamp()) > self._window:
            raise ApiError(409, "stale event: timestamp outside the accepted window")
        while self._seen and next(iter(self._seen.values())) < now - self._window:
            self._seen.popitem(last=False)
        if event_id in self._seen:
            raise ApiError(409, "replayed event")
        if len(self._seen) >= MAX_SEEN:
            self._seen.popitem(last=False)
        self._seen[event_id] = now
