"""How fast the admin API answers with a large ledger and token store (issue 17: < 200 ms with
10,000 tokens and 100,000 ledger requests).

    PYTHONPATH=src:. python bench/admin_api.py [REQUESTS] [TOKENS] [SESSIONS]

Generates the ledger (`tests/support/ledger_data.py`) and the tokens in a temporary directory,
starts the real server in-process, and times each page's API call over loopback: the first
call once the start-up read is done,
then the median and worst of 20 warm calls, and a call after one more session file was written
(the incremental path). The start-up read (`health.ready`) is timed first, and again after
a restart (the ledger index then already holds the files).
"""

from __future__ import annotations

import statistics
import sys
import tempfile
import time
from pathlib import Path

import trio
from tests.support.ledger_data import insert_tokens, token_hashes, write_sessions
from tests.support.proxy import start_proxy

PAGES = (
    "/admin/api/analytics/summary",
    "/admin/api/keys?limit=100",
    "/admin/api/keys",
    "/admin/api/sessions",
    "/admin/api/health",
)


async def timed(client: object, path: str) -> float:
    started = time.perf_counter()
    response = await client.get(path)  # type: ignore[attr-defined]
    assert response.status_code == 200, response.text
    return (time.perf_counter() - started) * 1000


async def main(requests: int, tokens: int, sessions: int) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        hashes = token_hashes(tokens)
        started = time.perf_counter()
        write_sessions(root / "data" / "sessions", sessions=sessions, requests=requests,
                       tokens=hashes)  # fmt: skip
        insert_tokens(root / "data" / "tokenomics.db", hashes)
        print(f"generated {requests} requests in {sessions} sessions, {tokens} tokens "
              f"in {time.perf_counter() - started:.1f} s")  # fmt: skip
        async with start_proxy(root) as proxy, proxy.client() as client:
            started = time.perf_counter()
            while not (await client.get("/admin/api/health")).json()["ready"]:  # noqa: ASYNC110
                await trio.sleep(0.05)
            print(f"start-up read of ledger and tokens: {time.perf_counter() - started:.1f} s")
            listed = (await client.get("/admin/api/sessions?limit=2")).json()["sessions"]
            ended = next(x["session_id"] for x in listed if not x["running"])
            for path in (*PAGES, f"/admin/api/sessions/{ended}"):
                first = await timed(client, path)
                warm = [await timed(client, path) for _ in range(20)]
                print(f"{path:34} first {first:7.1f} ms   warm median "
                      f"{statistics.median(warm):6.1f} ms   max {max(warm):6.1f} ms")  # fmt: skip
            write_sessions(root / "data" / "sessions", sessions=1, requests=1000, tokens=hashes,
                           seed=99)  # fmt: skip
            after = await timed(client, PAGES[0])
            print(f"analytics after one more 1000-request session: {after:.1f} ms")
            proxy.server.shutdown()
        # a restart: the ledger index in the store is already level with the files
        async with start_proxy(root) as proxy, proxy.client() as client:
            started = time.perf_counter()
            while not (await client.get("/admin/api/health")).json()["ready"]:  # noqa: ASYNC110
                await trio.sleep(0.05)
            print(f"start-up read after a restart: {time.perf_counter() - started:.1f} s")
            first = await timed(client, PAGES[0])
            print(f"{PAGES[0]:34} first {first:7.1f} ms after the restart")
            proxy.server.shutdown()


if __name__ == "__main__":
    args = [int(a) for a in sys.argv[1:]]
    trio.run(main, *(args + [100_000, 10_000, 200][len(args) :]))
