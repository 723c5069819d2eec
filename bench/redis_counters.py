"""Issue 18: the counters' own cost per request at concurrency 1, memory vs Redis backend.

    python bench/redis_counters.py [--port P] [--requests N] [--rounds R]

Starts a redis-server on a free port (unless --port names a running one), then, round after
round, runs N requests' worth of counter steps (admission of a policy with a rate limit and a
budget, settle) through `LocalCounters` and through `RedisCounters`, and prints the median
time per request of each: admission (what the client waits for: `admit`, one round trip; the
old acquire-then-reserve, two round trips, is measured too for the ratio) and settle (one
round trip here; in the proxy it is queued off the request's path and carried by the next
admission, `store/redis_settles.py`). Then Redis's own side of a request, which wall-clock
figures on a shared machine hide: the commands the scripts run and Redis's CPU time, with a
new one-minute window and with a full one (63 buckets, as after a minute of traffic).
"""

from __future__ import annotations

import argparse
import shutil
import socket
import statistics
import subprocess
import tempfile
import time
from datetime import timedelta

import trio

from tokenomics.domain.budget import Budgets
from tokenomics.domain.counters import Ask, Counters, Outcome
from tokenomics.domain.policy import RateLimit, RateRule
from tokenomics.domain.ratelimit import RateLimiter
from tokenomics.store.local_counters import LocalCounters
from tokenomics.store.redis_counters import RedisCounters
from tokenomics.store.resp import RedisAddress, RedisClient

LIMIT = RateLimit((RateRule(requests=10**9, window="1m", window_delta=timedelta(minutes=1)),))
ASK = Ask(10**12, 0.0, 50, 0.0, 100, 0.0)


async def per_request(
    counters: Counters, requests: int, two_steps: bool = False
) -> tuple[float, float]:
    """Median microseconds of (admission, settle) over `requests` requests."""
    key = "ab" * 32
    admit, settle = [], []
    for _ in range(requests):
        started = time.perf_counter()
        if two_steps:
            slot = await counters.acquire(key, LIMIT)
            hold = await counters.reserve(key, ASK)
        else:
            slot, hold = await counters.admit(key, LIMIT, ASK)
        admitted = time.perf_counter()
        await counters.settle(key, LIMIT, slot, hold, Outcome(True, 120, 0.0))
        admit.append(admitted - started)
        settle.append(time.perf_counter() - admitted)
    return statistics.median(admit) * 1e6, statistics.median(settle) * 1e6


async def main(port: int, requests: int, rounds: int) -> None:
    local = LocalCounters(Budgets(), RateLimiter(trio.current_time))
    redis = RedisCounters(RedisClient(RedisAddress("127.0.0.1", port), timeout=2))
    await per_request(redis, 50)  # scripts loaded, connection open
    await per_request(redis, 50, two_steps=True)
    mem: list[tuple[float, float]] = []
    red: list[tuple[float, float]] = []
    two: list[tuple[float, float]] = []
    for _ in range(rounds):
        mem.append(await per_request(local, requests))
        red.append(await per_request(redis, requests))
        two.append(await per_request(redis, requests, two_steps=True))
    for name, runs in (("memory", mem), ("redis", red), ("redis, acquire+reserve", two)):
        admit = statistics.median(a for a, _ in runs)
        settle = statistics.median(s for _, s in runs)
        print(f"{name:6} backend: admission p50 {admit:7.1f} us, settle p50 {settle:7.1f} us")
    one_step = statistics.median(a for a, _ in red)
    two_step = statistics.median(a for a, _ in two)
    added = one_step - statistics.median(a for a, _ in mem)
    print(f"latency the Redis backend adds before the upstream call: {added / 1000:.3f} ms")
    print(f"admission, two round trips / one: {two_step / one_step:.2f}x")
    for full in (False, True):
        calls, cpu_us = await server_side(redis, requests, full)
        print(
            f"Redis per request (admit + settle), {'full' if full else 'new'} one-minute "
            f"window: {calls:.1f} commands in the scripts, {cpu_us:.1f} us of Redis CPU"
        )
    await redis.client.aclose()


async def redis_stats(client: RedisClient) -> tuple[int, float]:
    """Commands run so far (EVALSHA's own and INFO's excluded), and Redis's CPU seconds."""
    calls = 0
    info = await client.call("INFO", "commandstats")
    for line in info.decode().splitlines() if isinstance(info, bytes) else ():
        name, _, rest = line.partition(":")
        if name.startswith("cmdstat_") and name not in ("cmdstat_evalsha", "cmdstat_info"):
            calls += int(rest.split("calls=")[1].split(",")[0])
    cpu = await client.call("INFO", "cpu")
    assert isinstance(cpu, bytes)
    fields = dict(x.split(":") for x in cpu.decode().splitlines() if ":" in x)
    return calls, float(fields["used_cpu_user"]) + float(fields["used_cpu_sys"])


async def server_side(redis: RedisCounters, requests: int, full: bool) -> tuple[float, float]:
    """Redis's side of one request (admission then settle): the commands its scripts run and
    its CPU time (wall-clock free: what the sliding-window and call-count changes save, on
    a busy machine too). `full`: the window holds 63 buckets, as after a minute of traffic."""
    key = f"{time.monotonic_ns():064x}"[-64:]
    if full:
        seconds, micros = await redis.client.call("TIME")  # type: ignore[misc]  (a list)
        bucket = int((int(seconds) * 1000 + int(micros) // 1000) // (60_000 / 64))
        fields = [x for b in range(bucket - 62, bucket + 1) for x in (f"r{b}", 1)]
        await redis.client.call("HSET", f"tokenomics:rate:{key}:60000:sliding", *fields)
    calls0, cpu0 = await redis_stats(redis.client)
    for _ in range(requests):
        slot, hold = await redis.admit(key, LIMIT, ASK)
        await redis.settle(key, LIMIT, slot, hold, Outcome(True, 120, 0.0))
    calls1, cpu1 = await redis_stats(redis.client)
    return (calls1 - calls0) / requests, (cpu1 - cpu0) / requests * 1e6


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    server = None
    port = args.port
    if not port:
        binary = shutil.which("redis-server")
        if binary is None:
            raise SystemExit("redis-server is not installed")
        port = free_port()
        workdir = tempfile.mkdtemp()
        server = subprocess.Popen(
            [binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly",
             "no", "--dir", workdir], stdout=subprocess.DEVNULL,
        )  # fmt: skip
        time.sleep(0.3)
    try:
        trio.run(main, port, args.requests, args.rounds)
    finally:
        if server is not None:
            server.kill()
            server.wait()
