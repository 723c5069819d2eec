"""The Lua scripts of the Redis counters: each check-and-take and each settle is one atomic
server-side step, so any number of proxies and workers share one budget and one set of rate
windows without a lock. Times are Redis's own clock (`TIME`, ms), the same for the whole fleet.

Keys of a token (`<h>` is the full 64-hex token hash):

    tokenomics:usage:<h>          tokens spent plus what open reservations hold (proxy.md §5.1)
    tokenomics:cost:<h>           the same in nano-dollars
    tokenomics:holds:<h>          hash: reservation id -> "tokens:nanos"; `_t`/`_n` their sums
    tokenomics:hold_expiry:<h>    zset: reservation id -> expiry (a crashed proxy's holds lapse)
    tokenomics:parallel:<h>       zset: slot id -> expiry (max_parallel across the fleet)
    tokenomics:rate:<h>:<ms>:<strategy>   one rate window; expires with the window
    tokenomics:settled:<id>       a settle applied (replays after an outage apply once)

`usage`/`cost` have no TTL (budgets persist, like the original); every other key expires.
"""

from __future__ import annotations

_COMMON = """
local function now_ms()
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end
local function floor0(key, value)
  if value < 0 then redis.call('SET', key, 0) end
end
local function drop_hold(U, C, H, Z, id)
  local amounts = redis.call('HGET', H, id)
  if not amounts then return end
  local sep = string.find(amounts, ':', 1, true)
  local t = string.sub(amounts, 1, sep - 1)
  local n = string.sub(amounts, sep + 1)
  redis.call('HDEL', H, id)
  redis.call('ZREM', Z, id)
  redis.call('HINCRBY', H, '_t', 0 - tonumber(t))
  redis.call('HINCRBY', H, '_n', 0 - tonumber(n))
  floor0(U, redis.call('DECRBY', U, t))
  floor0(C, redis.call('DECRBY', C, n))
end
local function prune_holds(U, C, H, Z, now)
  local gone = redis.call('ZRANGEBYSCORE', Z, '-inf', now, 'LIMIT', 0, 256)
  for _, id in ipairs(gone) do drop_hold(U, C, H, Z, id) end
end
local function window_state(key, len, strategy, now)
  if strategy == 'fixed' then
    local st = redis.call('HMGET', key, 's', 'r', 't')
    local start = tonumber(st[1])
    if not start or now - start >= len then
      return {fixed = true, start = now, r = 0, t = 0, reset = true, len = len}
    end
    return {fixed = true, start = start, r = tonumber(st[2]) or 0, t = tonumber(st[3]) or 0,
            len = len}
  end
  local grain = len / 64
  local horizon = now - len
  local all = redis.call('HGETALL', key)
  local buckets, order, r, t = {}, {}, 0, 0
  for j = 1, #all, 2 do
    local field, value = all[j], tonumber(all[j + 1]) or 0
    local b = tonumber(string.sub(field, 2))
    if b == nil or (b + 1) * grain <= horizon then
      redis.call('HDEL', key, field)
    else
      if not buckets[b] then buckets[b] = {0, 0}; order[#order + 1] = b end
      if string.sub(field, 1, 1) == 'r' then
        buckets[b][1] = buckets[b][1] + value; r = r + value
      else
        buckets[b][2] = buckets[b][2] + value; t = t + value
      end
    end
  end
  table.sort(order)
  return {fixed = false, r = r, t = t, buckets = buckets, order = order, grain = grain,
          len = len}
end
local function window_add(key, w, now, requests, tokens)
  if w.fixed then
    if w.reset then
      redis.call('HSET', key, 's', w.start, 'r', requests, 't', tokens)
      w.reset = false
    else
      if requests > 0 then redis.call('HINCRBY', key, 'r', requests) end
      if tokens > 0 then redis.call('HINCRBY', key, 't', tokens) end
    end
    redis.call('PEXPIRE', key, math.max(w.start + w.len - now, 1))
  else
    local b = string.format('%d', math.floor(now / w.grain))
    if requests > 0 then redis.call('HINCRBY', key, 'r' .. b, requests) end
    if tokens > 0 then redis.call('HINCRBY', key, 't' .. b, tokens) end
    redis.call('PEXPIRE', key, math.ceil(w.len + w.grain))
  end
end
local function retry_ms(w, kind, limit, now)
  if w.fixed then return w.start + w.len - now end
  local need = (kind == 1 and w.r or w.t) - limit + 1
  local freed = 0
  for _, b in ipairs(w.order) do
    freed = freed + w.buckets[b][kind]
    if freed >= need then return math.min((b + 1) * w.grain + w.len - now, w.len) end
  end
  return w.len
end
"""

# KEYS: usage, cost, holds, hold_expiry
# ARGV: max_tokens, max_nanos, input, estimate_nanos, hold_tokens, hold_nanos, id, ttl_ms
# -> {0 | 1 (tokens) | 2 (cost), used tokens, used nanos} (used: before this reservation)
RESERVE = (
    _COMMON
    + """
local U, C, H, Z = KEYS[1], KEYS[2], KEYS[3], KEYS[4]
local now = now_ms()
prune_holds(U, C, H, Z, now)
local used = tonumber(redis.call('GET', U) or '0') or 0
local nanos = tonumber(redis.call('GET', C) or '0') or 0
local max_t, max_n = tonumber(ARGV[1]), tonumber(ARGV[2])
if max_t > 0 and used + tonumber(ARGV[3]) > max_t then return {1, used, nanos} end
if max_n > 0 and nanos + tonumber(ARGV[4]) > max_n then return {2, used, nanos} end
redis.call('INCRBY', U, ARGV[5])
redis.call('INCRBY', C, ARGV[6])
redis.call('HSET', H, ARGV[7], ARGV[5] .. ':' .. ARGV[6])
redis.call('HINCRBY', H, '_t', ARGV[5])
redis.call('HINCRBY', H, '_n', ARGV[6])
redis.call('ZADD', Z, now + tonumber(ARGV[8]), ARGV[7])
return {0, used, nanos}
"""
)

# KEYS: parallel, window 1..n
# ARGV: max_parallel, slot id, ttl_ms, n, (len_ms, strategy) * n, m,
#       (window index, requests, tokens, label) * m
# -> {0} or {1, "<what> (max <n>)", retry_ms}
ACQUIRE = (
    _COMMON
    + """
local now = now_ms()
local maxp = tonumber(ARGV[1])
if maxp > 0 then
  redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
  local n = redis.call('ZCARD', KEYS[1])
  if n >= maxp then
    return {1, n .. ' concurrent requests (max ' .. maxp .. ')', 1000}
  end
end
local nwin = tonumber(ARGV[4])
local wins = {}
for i = 1, nwin do
  wins[i] = window_state(KEYS[1 + i], tonumber(ARGV[3 + 2 * i]), ARGV[4 + 2 * i], now)
end
local at = 5 + 2 * nwin
for k = 1, tonumber(ARGV[at]) do
  local base = at + 4 * (k - 1)
  local w = wins[tonumber(ARGV[base + 1])]
  local req, tok, label = tonumber(ARGV[base + 2]), tonumber(ARGV[base + 3]), ARGV[base + 4]
  if req > 0 and w.r >= req then
    return {1, string.format('%d', w.r) .. ' requests in ' .. label .. ' window (max ' .. req
            .. ')', math.floor(retry_ms(w, 1, req, now))}
  end
  if tok > 0 and w.t >= tok then
    return {1, string.format('%d', w.t) .. ' tokens in ' .. label .. ' window (max ' .. tok
            .. ')', math.floor(retry_ms(w, 2, tok, now))}
  end
end
for i = 1, nwin do window_add(KEYS[1 + i], wins[i], now, 1, 0) end
if maxp > 0 then
  redis.call('ZADD', KEYS[1], now + tonumber(ARGV[3]), ARGV[2])
  redis.call('PEXPIRE', KEYS[1], ARGV[3])
end
return {0}
"""
)

# KEYS: usage, cost, holds, hold_expiry, parallel, settled marker, window 1..n
# ARGV: hold id or "", committed "1"/"0", tokens, nanos, slot id or "", marker ttl_ms, n,
#       (len_ms, strategy) * n
# -> {settled tokens, settled nanos}
SETTLE = (
    _COMMON
    + """
local U, C, H, Z = KEYS[1], KEYS[2], KEYS[3], KEYS[4]
local now = now_ms()
if redis.call('SET', KEYS[6], '1', 'PX', ARGV[6], 'NX') then
  if ARGV[1] ~= '' then drop_hold(U, C, H, Z, ARGV[1]) end
  local tokens = tonumber(ARGV[3])
  if ARGV[2] == '1' then
    redis.call('INCRBY', U, ARGV[3])
    redis.call('INCRBY', C, ARGV[4])
  end
  if ARGV[5] ~= '' then redis.call('ZREM', KEYS[5], ARGV[5]) end
  if tokens > 0 then
    for i = 1, tonumber(ARGV[7]) do
      local key, len, strategy = KEYS[6 + i], tonumber(ARGV[6 + 2 * i]), ARGV[7 + 2 * i]
      window_add(key, window_state(key, len, strategy, now), now, 0, tokens)
    end
  end
end
local used = tonumber(redis.call('GET', U) or '0') or 0
local nanos = tonumber(redis.call('GET', C) or '0') or 0
local held = redis.call('HMGET', H, '_t', '_n')
return {math.max(used - (tonumber(held[1]) or 0), 0), math.max(nanos - (tonumber(held[2]) or 0), 0)}
"""
)
