"""Issue 18: instructions per request of the Redis backend, counted by valgrind's callgrind, on
both sides: redis-server's (the scripts, the calls they make, the I/O) and the proxy's client
(building the calls, encoding, parsing, the counters' bookkeeping). Deterministic within ~1%
where wall-clock and CPU-time figures on the shared VM swing by 30-100%.

    .venv/bin/python bench/redis_instructions.py [TREE...]     (N=1000 requests per count)

For each source tree (default: this checkout's src): a request is what the proxy does for the
policy of bench/run.sh at concurrency 1: an admission (rate limit and budget in one script) that
carries the previous request's settle (the flusher runs, `store/redis_settles.py`). Redis's count
is taken between `callgrind_control -z` and `-d` around N requests; the client's is the
difference between two whole runs of N and N/4 requests, divided by 3N/4 (start-up cancels).
Needs valgrind and redis-server.
"""

from __future__ import annotations

import glob
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve()
PYTHON = sys.executable
QUIET = subprocess.DEVNULL


async def client(port: int, requests: int, control_pid: int) -> None:
    """The requests (run in the tree under test: PYTHONPATH)."""
    from datetime import timedelta

    import trio
    from trio.testing import wait_all_tasks_blocked

    from tokenomics.domain.counters import Ask, Outcome
    from tokenomics.domain.policy import RateLimit, RateRule
    from tokenomics.services.redis_sync import flush_settles
    from tokenomics.store.redis_counters import RedisCounters
    from tokenomics.store.resp import RedisAddress, RedisClient

    limit = RateLimit((RateRule(requests=10**9, window="1m", window_delta=timedelta(minutes=1)),))
    ask = Ask(10**12, 0.0, 50, 0.0, 100, 0.0)
    counters = RedisCounters(RedisClient(RedisAddress("127.0.0.1", port), timeout=60))

    async def run(n: int) -> None:
        for _ in range(n):
            slot, hold = await counters.admit("ab" * 32, limit, ask)
            await counters.settle("ab" * 32, limit, slot, hold, Outcome(True, 120, 0.0))

    async with trio.open_nursery() as nursery:
        nursery.start_soon(lambda: flush_settles(counters, linger=3600))
        await wait_all_tasks_blocked()
        await run(200)
        if control_pid:
            await trio.run_process(
                ["callgrind_control", "-z", str(control_pid)], stdout=QUIET, stderr=QUIET
            )
        await run(requests)
        if control_pid:
            await trio.run_process(
                ["callgrind_control", "-d", str(control_pid)], stdout=QUIET, stderr=QUIET
            )
        nursery.cancel_scope.cancel()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def total(path: str) -> int:
    for line in Path(path).read_text().splitlines():
        if line.startswith(("summary:", "totals:")):
            return int(line.split()[1])
    raise SystemExit(f"no count in {path}")


def redis(port: int, workdir: str, valgrind: bool) -> subprocess.Popen[bytes]:
    command = ["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", "",
               "--appendonly", "no", "--dir", workdir]  # fmt: skip
    if valgrind:
        command = ["valgrind", "--tool=callgrind",
                   f"--callgrind-out-file={workdir}/redis.cg", *command]  # fmt: skip
    server = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    for _ in range(600):
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return server
        except OSError:
            time.sleep(0.1)
    raise SystemExit("redis-server did not start")


def run_client(tree: str, port: int, n: int, control_pid: int, cg_out: str = "") -> None:
    command = [PYTHON, str(HERE), "--client", str(port), str(n), str(control_pid)]
    if cg_out:
        command = ["valgrind", "--tool=callgrind", f"--callgrind-out-file={cg_out}", *command]
    env = {**os.environ, "PYTHONPATH": tree, "PYTHONHASHSEED": "0"}
    subprocess.run(
        command, env=env, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )


def measure(tree: str, n: int) -> tuple[float, float]:
    workdir = tempfile.mkdtemp()
    try:
        port = free_port()
        server = redis(port, workdir, valgrind=True)
        try:
            run_client(tree, port, n, server.pid)
            time.sleep(0.5)
            dumps = sorted(glob.glob(f"{workdir}/redis.cg.*"), key=os.path.getmtime)
            redis_side = total(dumps[-1]) / n
        finally:
            server.kill()
            server.wait()
        port = free_port()
        server = redis(port, workdir, valgrind=False)
        try:
            run_client(tree, port, n // 4, 0, f"{workdir}/small.cg")
            run_client(tree, port, n, 0, f"{workdir}/large.cg")
        finally:
            server.kill()
            server.wait()
        client_side = (total(f"{workdir}/large.cg") - total(f"{workdir}/small.cg")) / (n - n // 4)
        return redis_side, client_side
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


def main() -> None:
    if sys.argv[1:2] == ["--client"]:
        import trio

        port, n, control_pid = (int(x) for x in sys.argv[2:5])
        trio.run(client, port, n, control_pid)
        return
    for tool in ("valgrind", "redis-server", "callgrind_control"):
        if shutil.which(tool) is None:
            raise SystemExit(f"bench: {tool} is missing")
    n = int(os.environ.get("N", "1000"))
    trees = sys.argv[1:] or [str(HERE.parent.parent / "src")]
    print("tree\tredis_instructions/req\tclient_instructions/req")
    for tree in trees:
        redis_side, client_side = measure(tree, n)
        print(f"{tree}\t{redis_side:,.0f}\t{client_side:,.0f}", flush=True)


if __name__ == "__main__":
    main()
