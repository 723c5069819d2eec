"""The Lua scripts of the Redis counters: each check-and-take and each settle is one atomic
server-side step, so any number of proxies and workers share one budget and one set of rate
windows without a lock. Times are Redis's own clock (`TIME`, ms), the same for the whole fleet.

Keys of a token (`<h>` is the full 64-hex token hash):

    tokenomics:usage:<h>          tokens spent plus what open reservations hold (proxy.md §5.1)
    tokenomics:cost:<h>           the same in nano-dollars
    tokenomics:holds:<h>          hash: reservation id -> "tokens:nanos"; `_t`/`_n` their sums;
                                  `_p` when to look for lapsed ones next (ms)
    tokenomics:hold_expiry:<h>    zset: reservation id -> expiry (a crashed proxy's holds lapse)
    tokenomics:parallel:<h>       zset: slot id -> expiry (max_parallel across the fleet)
    tokenomics:rate:<h>:<ms>:<strategy>   one rate window; expires with the window
    tokenomics:applied:<stream>   the number of the last settle applied that was sent on a
                                  connection (`redis_calls.SettleCommand`): a replay of one
                                  after an outage applies once; one key per connection, not
                                  per request (kept 30 days after its last settle)
    tokenomics:settled:<id>       a settle applied, marked by an older version (its queued
                                  settles replay once)

`usage`/`cost` have no TTL (budgets persist, like the original); every other key expires.
"""

from __future__ import annotations

APPLIED_TTL_MS = 30 * 86_400_000  # a stream's last settle is remembered this long

_COMMON = """
local function now_ms()
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end
local function int(x)
  return string.format('%d', x)
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
  return #gone > 0
end
local function bucket_field(kind, b)
  return kind .. string.format('%d', b)
end
-- A sliding window's hash: 64 buckets ('r<b>' requests, 't<b>' tokens; b = floor(ms / grain))
-- and their running sums 'R', 'T' with 'o', the oldest bucket still kept. A call reads the
-- three, and drops only the buckets that left the window since 'o' (one a grain, amortised),
-- instead of reading all 64 each time. A hash without them (written by an older version,
-- which drops them as unknown fields) is summed again once.
local function sliding_sums(key, first)
  local all = redis.call('HGETALL', key)
  local r, t, gone = 0, 0, {}
  for j = 1, #all, 2 do
    local field, value = all[j], tonumber(all[j + 1]) or 0
    local kind, b = string.sub(field, 1, 1), tonumber(string.sub(field, 2))
    if b == nil or (kind ~= 'r' and kind ~= 't') or b < first then
      gone[#gone + 1] = field
    elseif kind == 'r' then r = r + value else t = t + value end
  end
  if #gone > 0 then redis.call('HDEL', key, unpack(gone)) end
  return r, t
end
local function sliding_state(key, len, now)
  local grain = len / 64
  local first = math.floor((now - len) / grain)  -- the oldest bucket inside the window
  local st = redis.call('HMGET', key, 'o', 'R', 'T')
  local o, r, t = tonumber(st[1]), tonumber(st[2]), tonumber(st[3])
  if o == nil or r == nil or t == nil or first - o > 64 then
    r, t = sliding_sums(key, first)
  elseif o < first then
    local fields = {}
    for b = o, first - 1 do
      fields[#fields + 1] = bucket_field('r', b)
      fields[#fields + 1] = bucket_field('t', b)
    end
    local values = redis.call('HMGET', key, unpack(fields))
    local gone = {}
    for j = 1, #fields, 2 do
      local rv, tv = tonumber(values[j]), tonumber(values[j + 1])
      if rv then r = r - rv; gone[#gone + 1] = fields[j] end
      if tv then t = t - tv; gone[#gone + 1] = fields[j + 1] end
    end
    if #gone > 0 then redis.call('HDEL', key, unpack(gone)) end
    r, t = math.max(r, 0), math.max(t, 0)
  else
    return {fixed = false, r = r, t = t, grain = grain, len = len, first = first, key = key}
  end
  redis.call('HSET', key, 'o', first, 'R', r, 'T', t)  -- made here: it expires too
  redis.call('PEXPIRE', key, math.ceil(len + grain))
  return {fixed = false, r = r, t = t, grain = grain, len = len, first = first, key = key}
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
  return sliding_state(key, len, now)
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
    -- the TTL is set when a bucket is started: from then on the hash outlives the newest
    -- bucket's stay in the window, so one PEXPIRE a bucket is enough
    local b, started = math.floor(now / w.grain), false
    if requests > 0 then
      started = redis.call('HINCRBY', key, bucket_field('r', b), requests) == requests
      redis.call('HINCRBY', key, 'R', requests)
    end
    if tokens > 0 then
      started = redis.call('HINCRBY', key, bucket_field('t', b), tokens) == tokens or started
      redis.call('HINCRBY', key, 'T', tokens)
    end
    if started then redis.call('PEXPIRE', key, math.ceil(w.len + w.grain)) end
  end
end
-- When a refused request may try again: a fixed window's end, or when enough of a sliding
-- window's oldest buckets have left it (read whole here: a refusal is the rare case).
local function retry_ms(w, kind, limit, now)
  if w.fixed then return w.start + w.len - now end
  local need = (kind == 1 and w.r or w.t) - limit + 1
  local all = redis.call('HGETALL', w.key)
  local prefix, found, order = kind == 1 and 'r' or 't', {}, {}
  for j = 1, #all, 2 do
    local field = all[j]
    local b = tonumber(string.sub(field, 2))
    if b and string.sub(field, 1, 1) == prefix and b >= w.first then
      if not found[b] then order[#order + 1] = b end
      found[b] = (found[b] or 0) + (tonumber(all[j + 1]) or 0)
    end
  end
  table.sort(order)
  local freed = 0
  for _, b in ipairs(order) do
    freed = freed + found[b]
    if freed >= need then return math.min((b + 1) * w.grain + w.len - now, w.len) end
  end
  return w.len
end
"""

# The two checks-and-takes as functions, shared by the one-step scripts and `ADMIT`.
# budget_reserve: R = max_tokens, max_nanos, input, estimate_nanos, hold_tokens, hold_nanos, id,
#   ttl_ms -> {0 | 1 (tokens) | 2 (cost), used tokens, used nanos} (used: before this reservation)
# rate_check: A = max_parallel, slot id, ttl_ms, n, (len_ms, strategy) * n, m,
#   (window index, requests, tokens, label) * m -> nil, windows or {1, "<what> (max <n>)", retry_ms}
_TAKE = """
local function budget_reserve(U, C, H, Z, R, now)
  -- lapsed holds (a proxy that died) are looked for at most once a second ('_p': when next)
  local held, prune = redis.call('HMGET', H, '_t', '_n', '_p'), {}
  if now >= (tonumber(held[3]) or 0) then
    if prune_holds(U, C, H, Z, now) then held = redis.call('HMGET', H, '_t', '_n') end
    prune = {'_p', int(now + 1000)}
  end
  local v = redis.call('MGET', U, C)
  local used, nanos = tonumber(v[1]) or 0, tonumber(v[2]) or 0
  local max_t, max_n = tonumber(R[1]), tonumber(R[2])
  if max_t > 0 and used + tonumber(R[3]) > max_t then return {1, used, nanos} end
  if max_n > 0 and nanos + tonumber(R[4]) > max_n then return {2, used, nanos} end
  -- written from what was read (one MSET, one HSET): each redis.call costs more than Lua
  redis.call('MSET', U, int(used + tonumber(R[5])), C, int(nanos + tonumber(R[6])))
  redis.call('HSET', H, R[7], R[5] .. ':' .. R[6],
             '_t', int((tonumber(held[1]) or 0) + tonumber(R[5])),
             '_n', int((tonumber(held[2]) or 0) + tonumber(R[6])), unpack(prune))
  redis.call('ZADD', Z, now + tonumber(R[8]), R[7])
  return {0, used, nanos}
end
local function rate_check(P, W, A, now)
  local maxp = tonumber(A[1])
  if maxp > 0 then
    redis.call('ZREMRANGEBYSCORE', P, '-inf', now)
    local n = redis.call('ZCARD', P)
    if n >= maxp then
      return {1, n .. ' concurrent requests (max ' .. maxp .. ')', 1000}
    end
  end
  local nwin = tonumber(A[4])
  local wins = {}
  for i = 1, nwin do
    wins[i] = window_state(W[i], tonumber(A[3 + 2 * i]), A[4 + 2 * i], now)
  end
  local at = 5 + 2 * nwin
  for k = 1, tonumber(A[at]) do
    local base = at + 4 * (k - 1)
    local w = wins[tonumber(A[base + 1])]
    local req, tok, label = tonumber(A[base + 2]), tonumber(A[base + 3]), A[base + 4]
    if req > 0 and w.r >= req then
      return {1, string.format('%d', w.r) .. ' requests in ' .. label .. ' window (max ' .. req
              .. ')', math.floor(retry_ms(w, 1, req, now))}
    end
    if tok > 0 and w.t >= tok then
      return {1, string.format('%d', w.t) .. ' tokens in ' .. label .. ' window (max ' .. tok
              .. ')', math.floor(retry_ms(w, 2, tok, now))}
    end
  end
  return nil, wins
end
local function count_request(W, wins, now)
  for i = 1, #wins do window_add(W[i], wins[i], now, 1, 0) end
end
local function take_slot(P, A, now)
  if tonumber(A[1]) > 0 then
    redis.call('ZADD', P, now + tonumber(A[3]), A[2])
    redis.call('PEXPIRE', P, A[3])
  end
end
-- A table built whole from `unpack` is sized once: filled item by item it grew by doubling,
-- which cost Redis more than the rest of a call (~900 instructions an item, callgrind)
local function slice(list, from)
  return {unpack(list, from)}
end
"""

# KEYS: usage, cost, holds, hold_expiry; ARGV: R of budget_reserve -> its reply
RESERVE = (
    _COMMON
    + _TAKE
    + """
return budget_reserve(KEYS[1], KEYS[2], KEYS[3], KEYS[4], ARGV, now_ms())
"""
)

# KEYS: parallel, window 1..n; ARGV: A of rate_check -> {0} or its refusal
ACQUIRE = (
    _COMMON
    + _TAKE
    + """
local now = now_ms()
local W = slice(KEYS, 2)
local refused, wins = rate_check(KEYS[1], W, ARGV, now)
if refused then return refused end
count_request(W, wins, now)
take_slot(KEYS[1], ARGV, now)
return {0}
"""
)

# Admission in one step, for a policy with a rate limit and a budget: ACQUIRE then RESERVE,
# with what the in-process backend leaves behind when they run one after the other: a rate
# refusal takes nothing; a budget refusal leaves the request counted in the rate windows (as
# `RateLimiter.acquire` counts it) but takes no parallel slot (the in-process one is given back
# when the refused request ends). With the bound flag set, the input asked for is a bound of
# the estimate: a budget refusal then takes nothing either (3: ask again with the estimate).
# KEYS: usage, cost, holds, hold_expiry, parallel, window 1..n; ARGV: R (8 values), bound
# "1"/"0", then A
# -> {0} | {1, what, retry_ms} (rate limited) | {2, 1 | 2, used tokens, used nanos} (budget)
#    | {3, 1 | 2, used tokens, used nanos} (budget, at the bound: nothing taken)
ADMIT = (
    _COMMON
    + _TAKE
    + """
local now = now_ms()
local W, A = slice(KEYS, 6), slice(ARGV, 10)
local refused, wins = rate_check(KEYS[5], W, A, now)
if refused then return refused end
local budget = budget_reserve(KEYS[1], KEYS[2], KEYS[3], KEYS[4], ARGV, now)
if budget[1] ~= 0 and ARGV[9] == '1' then return {3, budget[1], budget[2], budget[3]} end
count_request(W, wins, now)
if budget[1] ~= 0 then return {2, budget[1], budget[2], budget[3]} end
take_slot(KEYS[5], A, now)
return {0}
"""
)

# KEYS: usage, cost, holds, hold_expiry, parallel, marker (applied:<stream>), window 1..n
# ARGV: hold id or "", committed "1"/"0", tokens, nanos, slot id or "", "z<number>" (or, queued
#       by an older version, the marker's ttl_ms), n,
#       (len_ms, strategy) * n (the windows fed the tokens: those of a rule with a token limit)
# -> {settled tokens, settled nanos}
# The usual settle (a hold, committed) replaces the hold by the spend with one INCRBY per
# counter and reads its reply from what the calls return: each `redis.call` costs more than
# the Lua around it, so the script makes as few as it can (TIME only for windows).
SETTLE = (
    _COMMON
    + """
local U, C, H, Z = KEYS[1], KEYS[2], KEYS[3], KEYS[4]
local function settled(u, c, ht, hn)
  if not ht then
    local held = redis.call('HMGET', H, '_t', '_n')
    ht, hn = tonumber(held[1]) or 0, tonumber(held[2]) or 0
  end
  return {math.max(u - ht, 0), math.max(c - hn, 0)}
end
-- Whether this settle runs for the first time: its number above the last applied of its
-- stream (one SET ... GET; put back in the rare replay of one that got through), or, queued by
-- an older version, its own marker key set now.
local function first_time(marker, stamp)
  if string.sub(stamp, 1, 1) ~= 'z' then
    return redis.call('SET', marker, '1', 'PX', stamp, 'NX')
  end
  local seq = tonumber(string.sub(stamp, 2))
  local last = redis.call('SET', marker, seq, 'PX', @APPLIED_TTL_MS@, 'GET')
  if last and tonumber(last) and tonumber(last) >= seq then
    redis.call('SET', marker, last, 'PX', @APPLIED_TTL_MS@)
    return false
  end
  return true
end
if not first_time(KEYS[6], ARGV[6]) then  -- applied before
  local v = redis.call('MGET', U, C)
  return settled(tonumber(v[1]) or 0, tonumber(v[2]) or 0)
end
local t, n = 0, 0
local held = redis.call('HMGET', H, ARGV[1] ~= '' and ARGV[1] or '_t', '_t', '_n')
local ht, hn = tonumber(held[2]) or 0, tonumber(held[3]) or 0
if ARGV[1] ~= '' and held[1] then
  local sep = string.find(held[1], ':', 1, true)
  t, n = tonumber(string.sub(held[1], 1, sep - 1)), tonumber(string.sub(held[1], sep + 1))
  ht, hn = ht - t, hn - n
  redis.call('HDEL', H, ARGV[1])
  redis.call('HSET', H, '_t', int(ht), '_n', int(hn))
  redis.call('ZREM', Z, ARGV[1])
end
local spent_t, spent_n = 0, 0
if ARGV[2] == '1' then spent_t, spent_n = tonumber(ARGV[3]), tonumber(ARGV[4]) end
-- max(old - hold, 0) + spend: what DECRBY, a floor at 0, then INCRBY left, in one call
local function add(key, by, floor)
  if by == 0 then return tonumber(redis.call('GET', key) or '0') or 0 end  -- no key made
  local v = redis.call('INCRBY', key, by)
  if v < floor then redis.call('SET', key, floor); v = floor end
  return v
end
local u, c = add(U, spent_t - t, spent_t), add(C, spent_n - n, spent_n)
if ARGV[5] ~= '' then redis.call('ZREM', KEYS[5], ARGV[5]) end
local tokens, nwin = tonumber(ARGV[3]), tonumber(ARGV[7])
if tokens > 0 and nwin > 0 then
  local now = now_ms()
  for i = 1, nwin do
    local key, len, strategy = KEYS[6 + i], tonumber(ARGV[6 + 2 * i]), ARGV[7 + 2 * i]
    window_add(key, window_state(key, len, strategy, now), now, 0, tokens)
  end
end
return settled(u, c, ht, hn)
"""
)

SETTLE = SETTLE.replace("@APPLIED_TTL_MS@", str(APPLIED_TTL_MS))

# Raise a token's settled spend (usage minus what its holds reserve) to at least ARGV[1]
# tokens and ARGV[2] nano-dollars: what a crashed worker's journal proves it spent, some of
# which its last settles may not have brought to Redis (`RedisCounters.raise_to`).
RAISE = """
local U, C, H = KEYS[1], KEYS[2], KEYS[3]
local held = redis.call('HMGET', H, '_t', '_n')
local want_t = tonumber(ARGV[1]) + (tonumber(held[1]) or 0)
local want_n = tonumber(ARGV[2]) + (tonumber(held[2]) or 0)
local raised = 0
if (tonumber(redis.call('GET', U) or '0') or 0) < want_t then
  redis.call('SET', U, want_t)
  raised = 1
end
if (tonumber(redis.call('GET', C) or '0') or 0) < want_n then
  redis.call('SET', C, want_n)
  raised = 1
end
return {raised}
"""
