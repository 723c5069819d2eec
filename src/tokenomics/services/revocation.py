"""Fleet-wide revocation (issue 18): a token deleted or edited through one proxy's store is
refused by every proxy sharing the Redis at once, not only after their stores sync.

Each proxy publishes the changes its token snapshot saw (`TokenCache.take_changes`): the token
hash and its new fingerprint ("-" when deleted) go to the `tokenomics:tokens:prints` hash and
the `tokenomics:tokens` channel. The hash keeps a change for `PRINTS_KEEP_MS` (a day: every
store has caught up by then), then it is dropped by the next publication (the
`tokenomics:tokens:changed` sorted set dates each entry), so it does not grow for ever.
A print without a date (written before the dates existed, or by such a proxy still running in
the fleet) is dated when a publication finds the hash longer than the dates, and so dropped a
day later like the others.
Every proxy subscribes; what it hears goes to the snapshot's `fleet` view, so `lookup` refuses
a token whose local record differs (one dict lookup per request), and a reload of the local
store is asked for at once (a shared store catches up in milliseconds). After (re)connecting,
the whole hash is read again: nothing missed while away.
"""

from __future__ import annotations

import logging
import re
from typing import TYPE_CHECKING

import trio

from tokenomics.domain.errors import RedisUnavailable, StoreError
from tokenomics.store.resp import BACKOFF_MAX
from tokenomics.store.resp_wire import encode

if TYPE_CHECKING:
    from tokenomics.services.token_cache import TokenCache
    from tokenomics.store.resp import Connection, RedisClient
    from tokenomics.store.resp_wire import Arg

CHANNEL = "tokenomics:tokens"
PRINTS = "tokenomics:tokens:prints"
CHANGED = "tokenomics:tokens:changed"  # sorted set: token hash -> ms of its last change
PRINTS_KEEP_MS = 86_400_000
PRUNE_BATCH = 1000
# KEYS: prints, changed; ARGV: keep_ms, batch, then (hash, print) pairs -> how many dropped
_RECORD = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
for i = 3, #ARGV, 2 do
  redis.call('HSET', KEYS[1], ARGV[i], ARGV[i + 1])
  redis.call('ZADD', KEYS[2], now, ARGV[i])
end
if redis.call('HLEN', KEYS[1]) > redis.call('ZCARD', KEYS[2]) then  -- undated prints
  local names, dates = redis.call('HKEYS', KEYS[1]), {}
  for i = 1, #names do
    dates[#dates + 1] = now
    dates[#dates + 1] = names[i]
    if #dates >= 2 * tonumber(ARGV[2]) or i == #names then
      redis.call('ZADD', KEYS[2], 'NX', unpack(dates))  -- NX: a dated one keeps its date
      dates = {}
    end
  end
end
local old = redis.call('ZRANGEBYSCORE', KEYS[2], '-inf', now - tonumber(ARGV[1]),
                       'LIMIT', 0, tonumber(ARGV[2]))
if #old > 0 then
  redis.call('HDEL', KEYS[1], unpack(old))
  redis.call('ZREM', KEYS[2], unpack(old))
end
return #old
"""
KEEPALIVE = 5.0  # seconds of silence on the subscription before it is PINGed
PUBLISH_EVERY = 0.1
_VALID = re.compile(r"^[0-9a-f]{64}$")
_PRINT = re.compile(r"^([0-9a-f]{16}|-)$")

log = logging.getLogger("tokenomics.tokens")


async def publish(
    client: RedisClient, changes: dict[str, str], *, keep_ms: int = PRINTS_KEEP_MS
) -> int:
    """Record the changes (dropping those older than `keep_ms`) and announce them; returns
    how many old ones were dropped. Rare (only when tokens change): the script is sent whole."""
    pairs = [x for pair in changes.items() for x in pair]
    commands: list[list[Arg]] = [
        ["EVAL", _RECORD, 2, PRINTS, CHANGED, keep_ms, PRUNE_BATCH, *pairs]
    ]
    commands += [["PUBLISH", CHANNEL, f"{h} {p}"] for h, p in changes.items()]
    recorded = (await client.execute(commands))[0]
    if not isinstance(recorded, int):
        raise RedisUnavailable(f"token changes not recorded in Redis: {recorded!r}")
    return recorded


def _heard(cache: TokenCache, token_hash: str, print_: str) -> bool:
    """Take one (hash, fingerprint) from Redis, untrusted: malformed entries are ignored."""
    if not _VALID.match(token_hash) or not _PRINT.match(print_):
        return False
    cache.fleet[token_hash] = print_
    return True


async def _publisher(cache: TokenCache, client: RedisClient) -> None:
    pending: dict[str, str] = {}
    while True:
        await trio.sleep(PUBLISH_EVERY)
        pending.update(cache.take_changes())
        if not pending:
            continue
        try:
            await publish(client, pending)
        except RedisUnavailable as exc:
            log.warning("token changes not published yet: %s", exc.message)
        else:
            pending.clear()


async def _listen(cache: TokenCache, client: RedisClient, conn: Connection) -> None:
    with trio.fail_after(client.timeout):
        await conn.execute([["SUBSCRIBE", CHANNEL]])
    snapshot = await client.call("HGETALL", PRINTS)
    if isinstance(snapshot, list):
        for i in range(0, len(snapshot) - 1, 2):
            h, p = snapshot[i], snapshot[i + 1]
            if isinstance(h, bytes) and isinstance(p, bytes):
                _heard(cache, h.decode("ascii", "replace"), p.decode("ascii", "replace"))
    while True:
        with trio.move_on_after(KEEPALIVE) as quiet:
            await _message(cache, await conn.read())
        if quiet.cancelled_caught:  # a half-open connection stays quiet forever: ask it
            await conn.send(encode("PING"))
            with trio.fail_after(client.timeout):
                await _message(cache, await conn.read())


async def _message(cache: TokenCache, message: object) -> None:
    """A message of the subscription: a token's new print refreshes the cache (a PING's
    answer and anything else is ignored)."""
    if not (isinstance(message, list) and len(message) == 3 and message[0] == b"message"):
        return
    payload = message[2]
    if not isinstance(payload, bytes):
        return
    token_hash, _, print_ = payload.decode("ascii", "replace").partition(" ")
    if _heard(cache, token_hash, print_):
        try:
            await trio.to_thread.run_sync(cache.refresh_if_changed)
        except StoreError as exc:
            log.warning("could not refresh tokens: %s", exc)


async def _subscriber(cache: TokenCache, client: RedisClient) -> None:
    backoff = 0.05
    while True:
        conn = None
        try:
            conn = await client.open_connection()
            backoff = 0.05
            await _listen(cache, client, conn)
        except (OSError, trio.TooSlowError, trio.BrokenResourceError, RedisUnavailable) as exc:
            log.debug("token change subscription lost: %s", exc)
        finally:
            if conn is not None:
                with trio.CancelScope(shield=True):
                    await conn.aclose()
        await trio.sleep(backoff)
        backoff = min(backoff * 2, BACKOFF_MAX)


async def run(
    cache: TokenCache,
    client: RedisClient,
    *,
    task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Publish this proxy's token changes and apply the fleet's, until cancelled."""
    async with trio.open_nursery() as nursery:
        nursery.start_soon(_publisher, cache, client)
        nursery.start_soon(_subscriber, cache, client)
        task_status.started()
