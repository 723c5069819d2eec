"""Demo history for the analytics screenshot: two weeks of past sessions written in the ledger's
own format (`request_entry`, `session_json`, `session_bytes`), priced with the bundled price
table, so the charts have something to show next to the requests a test makes for real.

Deterministic (seeded); used by `test_screenshots.py` for `docs/admin-analytics.png`.
"""

from __future__ import annotations

import random
import secrets
from datetime import UTC, datetime, timedelta
from pathlib import Path

from tests.support.ledger_entries import EntryValues, request_entry

from tokenomics.config.prices import load_prices
from tokenomics.domain.ledger_session import session_json
from tokenomics.domain.pricing import PriceTable, cost_usd
from tokenomics.domain.usage import Usage
from tokenomics.services.ledger_files import session_bytes

MODELS = (  # (model, provider, weight, typical input, typical output)
    ("gpt-4o", "openai", 5, 2400, 500),
    ("gpt-4o-mini", "openai", 8, 1500, 300),
    ("claude-sonnet-4-5", "anthropic", 4, 3200, 700),
    ("gemini-2.5-flash", "gemini", 3, 1800, 400),
    ("o3-mini", "openai", 1, 1200, 1600),
)
BRANCHES = ("main", "main", "feat/streaming-budgets", "fix/retry-fallback")
WARN = {"name": "pii-email", "action": "mask", "message": "email address masked"}
BLOCK = {"name": "no-secrets", "action": "fail", "message": "request blocked: api_key"}


def _request(rng: random.Random, when: datetime, key: str, prices: PriceTable) -> dict[str, object]:
    model, provider, _w, inputs, outputs = rng.choices(MODELS, weights=[m[2] for m in MODELS])[0]
    usage = Usage(
        input_tokens=int(inputs * rng.uniform(0.3, 2.5)),
        output_tokens=int(outputs * rng.uniform(0.2, 2.0)),
    )
    status, matches, error = 200, [], ""
    roll = rng.random()
    if roll < 0.04:
        status, matches, error, usage = 403, [BLOCK], "request blocked by rule no-secrets", Usage()
    elif roll < 0.07:
        status, error, usage = 429, "rate limit exceeded", Usage()
    elif roll < 0.12:
        matches = [WARN]
    values = EntryValues(
        recorded_at=when, token_hash=key, model=model, provider=provider,
        input_tokens=usage.input_tokens, output_tokens=usage.output_tokens,
        duration_ms=rng.randint(300, 9000), status_code=status,
        cost_usd=cost_usd(usage, prices.lookup(model)), error=error, rule_matches=matches,
        path="/v1/chat/completions",
    )  # fmt: skip
    return request_entry(values)


def seed_history(data_dir: Path, keys: list[str], *, days: int = 14, seed: int = 17) -> int:
    """Write one finished session per past day; the number of requests written."""
    rng = random.Random(seed)
    prices = load_prices()
    sessions = data_dir / "sessions"
    sessions.mkdir(parents=True, exist_ok=True)
    today = datetime.now(UTC).replace(hour=9, minute=0, second=0, microsecond=0)
    written = 0
    for back in range(days, 0, -1):
        started = today - timedelta(days=back)
        weekday_load = 0.4 if started.weekday() >= 5 else 1.0
        count = int(rng.randint(25, 70) * weekday_load * (1 + (days - back) / days))
        requests = [
            _request(
                rng,
                started + timedelta(seconds=rng.randint(60, 8 * 3600)),
                rng.choice(keys),
                prices,
            )
            for _ in range(count)
        ]
        requests.sort(key=lambda r: str(r["timestamp"]))
        session_id = secrets.token_hex(4)
        git = {
            "branch": rng.choice(BRANCHES),
            "commit_start": secrets.token_hex(4)[:7],
            "repo_root": "/home/dev/app",
        }
        session = session_json(
            session_id=session_id, started_at=started, ended_at=started + timedelta(hours=9),
            git=git, requests=requests,
        )  # fmt: skip
        path = sessions / f"{started:%Y-%m-%d}_{session_id}.json"
        path.write_bytes(session_bytes(session))
        path.chmod(0o600)
        written += count
    return written
