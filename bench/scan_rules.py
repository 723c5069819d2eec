"""Benchmark: scanning a realistic 4 KB prompt with the content rules (check + mask).

Policy: one `pii` mask rule detecting all eleven kinds, a `jailbreak` fail rule, a keyword
warn rule and a regex log rule. The prompt holds a few PII values (an email, a phone number,
a card, an IP address, an API key) in ordinary prose and code. Prints the median time of
one scan (`check` then `mask`, as the proxy does per message) over many runs, on one CPU.

Run: `.venv/bin/python bench/scan_rules.py` (issue #4 budget: under 1 ms).
"""

from __future__ import annotations

import statistics
import timeit

from tokenomics.domain.engine import check, mask
from tokenomics.domain.pii import PII_LABELS
from tokenomics.domain.rules import compile_rule

RULES = [
    compile_rule({"name": "pii", "type": "pii", "detect": list(PII_LABELS), "action": "mask"}),
    compile_rule({"name": "jailbreak", "type": "jailbreak", "action": "fail"}),
    compile_rule(
        {"type": "keyword", "keywords": ["confidential", "internal only"], "action": "warn"}
    ),
    compile_rule({"type": "regex", "pattern": r"(?i)project\s+(?:falcon|osprey)", "action": "log"}),
]

PARAGRAPHS = [
    "Hi! I'm working on the billing service for our shop and need a hand with a refactor. "
    "The service is written in Python 3.11 with FastAPI and talks to Postgres through "
    "SQLAlchemy 2.0. Customers reach support at support-team@example.com or by phone on "
    "+1 (415) 555-0132, and the on-call engineer rotates weekly.",
    "Here is the function that worries me. It validates a payment before it is captured, "
    "but the error handling is messy and the retries are not idempotent:\n\n"
    "```python\n"
    "async def capture(payment_id: str, amount_cents: int) -> Receipt:\n"
    "    payment = await repo.get(payment_id)\n"
    "    if payment.status != Status.AUTHORIZED:\n"
    "        raise InvalidState(f'payment {payment_id} is {payment.status}')\n"
    "    for attempt in range(3):\n"
    "        try:\n"
    "            return await gateway.capture(payment.token, amount_cents)\n"
    "        except GatewayTimeout:\n"
    "            await asyncio.sleep(2 ** attempt)\n"
    "    raise CaptureFailed(payment_id)\n"
    "```\n",
    "In the failing test the card 4111 1111 1111 1111 is authorized, the capture times "
    "out twice, and on the third attempt the gateway answers 409 because the first request "
    "actually succeeded. Order 2024-118-55731 ended up charged twice. The gateway sandbox "
    "sits at 10.20.30.40 behind the VPN, and our client is configured with the key "
    "sk-proj-Tq8vX2mN4pL6rS9wK1yB3dF5hJ7c in the staging environment (I will rotate it).",
    "What I would like: make the capture idempotent with an idempotency key derived from "
    "the payment id and attempt, keep the exponential backoff but cap it at 8 seconds, and "
    "log each attempt with structured fields (payment_id, attempt, latency_ms). Version "
    "1.4.2 of our logging wrapper supports `bind()`, and the service runs on build "
    "2.7.0.1534 in production. Please also suggest how to test the race where the gateway "
    "succeeded but we never saw the response, ideally with pytest and a fake gateway.",
    "Some context on constraints: the capture endpoint must answer within 1.5 s at p99, "
    "traffic peaks around 300 requests per second on weekdays between 12:00 and 14:00 UTC, "
    "and we cannot change the gateway's API. The team prefers small, readable functions, "
    "type hints everywhere, and no global state. Our style guide asks for docstrings on "
    "public functions and forbids bare `except:` clauses. Thanks a lot for the help!",
]


def prompt(size: int = 4096) -> str:
    text = "\n\n".join(PARAGRAPHS)
    while len(text) < size:
        text += "\n\n" + PARAGRAPHS[len(text) % len(PARAGRAPHS)]
    return text[:size]


def scan(text: str) -> str:
    check(RULES, text, "input")
    return mask(RULES, text, "input")


def main() -> None:
    text = prompt()
    masked = scan(text)
    number = 200
    runs = timeit.repeat(lambda: scan(text), number=number, repeat=25)
    per_scan_ms = statistics.median(runs) / number * 1000
    best_ms = min(runs) / number * 1000
    print(f"prompt: {len(text)} chars, {masked.count('[REDACTED]')} values redacted")
    print("rules: pii (11 kinds, mask) + jailbreak (fail) + keyword (warn) + regex (log)")
    print(f"scan (check + mask): median {per_scan_ms:.3f} ms, best {best_ms:.3f} ms per scan")


if __name__ == "__main__":
    main()
