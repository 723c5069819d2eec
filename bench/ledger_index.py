"""The ledger index on a year of data: N requests summarised by branch and by day (issue 20).

    python bench/ledger_index.py [--requests 1000000] [--per-session 1000] [--uniform]
                                 [--work DIR]

Writes N requests' worth of session JSON files (`{work}/sessions`, through the same
`request_entry`/`session_json` the ledger writes with: 365 days, 12 branches, 6 models,
40 tokens, 3 agents, 1 request in 10 unpriced; each session with 2 tokens, 3 models and one
agent like a `run`, or with `--uniform` every request drawn from all of them: the worst case
for the per-day sums, about one row of them per two requests), indexes them into
`{work}/tokenomics.db` the way `ledger` commands do (`LedgerIndexer.sync`), then times the
real CLI in-process: `ledger summary --by branch`, `--by day`, the default summary, a
`--since 30d` and `ledger top`, best of three runs each (each run includes the check that every
file is still indexed). The target: at most 2 s.
"""

from __future__ import annotations

import argparse
import io
import random
import sys
import tempfile
import time
from contextlib import redirect_stdout
from datetime import UTC, datetime, timedelta
from pathlib import Path

import orjson

from tokenomics.cli.main import run
from tokenomics.domain.ledger import EntryValues, request_entry
from tokenomics.domain.ledger_session import session_json
from tokenomics.services.ledger_index import LedgerIndexer
from tokenomics.store.db import Database
from tokenomics.store.ledger_index import LedgerIndex

START = datetime(2025, 12, 1, tzinfo=UTC)
BRANCHES = ["main", *(f"feature/f{i}" for i in range(8)), "fix/a", "fix/b", "release"]
MODELS = ["gpt-4o", "gpt-4o-mini", "claude-sonnet-4", "claude-haiku", "gemini-2.5-pro", "o3"]
TOKENS = [f"{i:02x}" * 32 for i in range(40)]
AGENTS = ["claude", "codex", "aider"]


def write_sessions(
    sessions: Path, total: int, per_session: int, rng: random.Random, *, uniform: bool
) -> int:
    sessions.mkdir(parents=True, exist_ok=True)
    count = (total + per_session - 1) // per_session
    for n in range(count):
        started = START + timedelta(seconds=n * 365 * 86_400 // count)
        size = min(per_session, total - n * per_session)
        # A session is one proxy process: like a `run`, a couple of tokens, one agent and a few
        # models; `--uniform` draws each request's token, model and agent from all of them.
        tokens = TOKENS if uniform else rng.sample(TOKENS, 2)
        models = MODELS if uniform else rng.sample(MODELS, 3)
        agents = AGENTS if uniform else [rng.choice(AGENTS)]
        requests = []
        for i in range(size):
            model = rng.choice(models)
            inp, out = rng.randint(100, 20_000), rng.randint(10, 2_000)
            requests.append(request_entry(EntryValues(
                recorded_at=started + timedelta(seconds=i * 3), token_hash=rng.choice(tokens),
                model=model, provider=model.split("-")[0], input_tokens=inp,
                output_tokens=out, duration_ms=rng.randint(50, 5_000), status_code=200,
                cost_usd=None if rng.random() < 0.1 else (inp * 3 + out * 15) / 1e6,
                metadata={"agent_id": rng.choice(agents)},
            )))  # fmt: skip
        git = {"branch": BRANCHES[n % len(BRANCHES)], "commit_start": f"{n:07x}",
               "repo_root": "/src/project"}  # fmt: skip
        session = session_json(
            session_id=f"{n:08x}", started_at=started,
            ended_at=started + timedelta(seconds=size * 3), git=git, requests=requests,
        )  # fmt: skip
        (sessions / f"{started:%Y-%m-%d}_{n:08x}.json").write_bytes(orjson.dumps(session))
    return count


def timed(argv: list[str], runs: int = 3) -> tuple[float, str]:
    best, text = float("inf"), ""
    for _ in range(runs):
        out = io.StringIO()
        started = time.perf_counter()
        with redirect_stdout(out):
            code = run(argv)
        best = min(best, time.perf_counter() - started)
        if code != 0:
            sys.exit(f"{argv}: exit {code}")
        text = out.getvalue()
    return best, text


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=1_000_000)
    parser.add_argument("--per-session", type=int, default=1_000)
    parser.add_argument("--work", default="")
    parser.add_argument("--uniform", action="store_true", help="every request a random mix")
    args = parser.parse_args()
    work = Path(args.work or tempfile.mkdtemp(prefix="ledger-bench-"))
    sessions, db = work / "sessions", work / "tokenomics.db"
    if not any(sessions.glob("*.json")):
        started = time.perf_counter()
        rng = random.Random(20)
        files = write_sessions(sessions, args.requests, args.per_session, rng, uniform=args.uniform)
        print(f"wrote {files} session files in {time.perf_counter() - started:.1f}s")
    started = time.perf_counter()
    indexer = LedgerIndexer(LedgerIndex(Database.open(db)), sessions)
    result = indexer.sync()
    indexer.close()
    print(f"indexed {result.files} files, {result.requests:,} requests in "
          f"{time.perf_counter() - started:.1f}s ({db.stat().st_size / 1e6:.0f} MB)")  # fmt: skip
    base = ["--db", str(db), "ledger"]
    for label, extra in (
        ("summary --by branch", ["summary", "--by", "branch"]),
        ("summary --by day", ["summary", "--by", "day"]),
        ("summary", ["summary"]),
        ("summary --by branch --since 30d", ["summary", "--by", "branch", "--since", "30d"]),
        ("top --by session", ["top"]),
    ):
        seconds, text = timed([*base, *extra, "--dir", str(work)])
        print(f"{label:<34} {seconds:6.3f}s  ({len(text.splitlines())} lines)")
    print(timed([*base, "summary", "--by", "branch", "--dir", str(work)], 1)[1])


if __name__ == "__main__":
    main()
