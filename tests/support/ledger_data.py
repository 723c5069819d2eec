"""Generated ledger and token store contents at scale, for the admin API's tests and benchmark.

Sessions are built with the ledger's own functions (`request_entry`, `session_json`), so they
have exactly the shape the proxy writes; tokens are inserted in one transaction.
"""

from __future__ import annotations

import json
import random
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import orjson
from tests.support.ledger_entries import EntryValues, request_entry

from tokenomics.domain.durations import format_rfc3339
from tokenomics.domain.ledger_session import session_json
from tokenomics.store.tokens import TokenStore

MODELS = ("gpt-4o", "gpt-4o-mini", "claude-sonnet-4", "gemini-2.5-pro", "local-unpriced")
PROVIDERS = {"gpt-4o": "openai", "gpt-4o-mini": "openai", "claude-sonnet-4": "anthropic",
             "gemini-2.5-pro": "gemini", "local-unpriced": ""}  # fmt: skip
BRANCHES = ("main", "feature/x", "<img src=x onerror=alert(1)>", "")
START = datetime(2026, 11, 1, tzinfo=UTC)


@dataclass(frozen=True)
class Generated:
    sessions: int
    requests: int
    token_hashes: list[str]


def token_hashes(count: int, seed: int = 7) -> list[str]:
    rng = random.Random(seed)
    return [f"{rng.getrandbits(256):064x}" for _ in range(count)]


def _entry(rng: random.Random, moment: datetime, token: str) -> dict[str, object]:
    model = rng.choice(MODELS)
    status = rng.choice((200,) * 17 + (400, 429, 502))
    inputs, outputs = (rng.randint(1, 4000), rng.randint(0, 2000)) if status == 200 else (0, 0)
    cost = None if model == "local-unpriced" else round((inputs * 2.5 + outputs * 10) / 1e6, 10)
    matches = [{"rule": "pii", "action": "fail"}] if rng.random() < 0.02 else []
    return request_entry(
        EntryValues(
            recorded_at=moment, token_hash=token, model=model, provider=PROVIDERS[model],
            input_tokens=inputs, output_tokens=outputs, duration_ms=rng.randint(50, 5000),
            status_code=status, cost_usd=cost, stream=rng.random() < 0.5,
            retry_count=rng.choice((0, 0, 0, 1)), rule_matches=matches,
            provider_meta={"cached_input_tokens": rng.choice((0, 0, 128))},
            estimated=rng.random() < 0.1, path="/v1/chat/completions",
        )
    )  # fmt: skip


def write_sessions(
    directory: Path, *, sessions: int, requests: int, tokens: list[str], seed: int = 1
) -> Generated:
    """`requests` requests spread over `sessions` session files and 30 days, each request from
    one of `tokens`."""
    rng = random.Random(seed)
    directory.mkdir(parents=True, exist_ok=True)
    per = max(1, requests // sessions)
    for n in range(sessions):
        started = START + timedelta(days=30 * n / sessions)
        count = per if n < sessions - 1 else requests - per * (sessions - 1)
        entries = [
            _entry(rng, started + timedelta(seconds=i * 2), rng.choice(tokens))
            for i in range(count)
        ]
        session_id = f"{rng.getrandbits(64):016x}"
        session = session_json(
            session_id=session_id, started_at=started,
            ended_at=started + timedelta(seconds=count * 2 + 1),
            git={"branch": BRANCHES[n % len(BRANCHES)], "commit": "abc1234"}, requests=entries,
        )  # fmt: skip
        name = f"{started:%Y-%m-%d}_{session_id}.json"
        (directory / name).write_bytes(orjson.dumps(session))
    return Generated(sessions, requests, tokens)


def insert_tokens(db_path: Path, hashes: list[str], seed: int = 3) -> None:
    """One token per hash with a small varied policy, in one transaction."""
    rng = random.Random(seed)
    store = TokenStore.open(db_path)
    try:
        rows = []
        for i, token_hash in enumerate(hashes):
            policy = {"base_key_env": "OPENAI_KEY", "max_tokens": rng.choice((0, 100000)),
                      "metadata": {"team": f"team-{i % 50}"}}  # fmt: skip
            created = format_rfc3339(START + timedelta(seconds=i))
            rows.append((token_hash, json.dumps(policy), "", 0, created, None))
        with store.db.write() as conn:
            conn.executemany(
                "INSERT INTO tokens (hash, policy, encrypted, enc_version, created_at, expires_at)"
                " VALUES (?, ?, ?, ?, ?, ?)",
                rows,
            )
    finally:
        store.close()
