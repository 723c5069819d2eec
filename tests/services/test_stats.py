"""`/metrics` labels and `/stats` rows are bounded (issue 12 item 11): a model name a client
makes up folds into "other"; models of the price table (any case) and the model a policy pins keep their name."""

from __future__ import annotations

import re

from tokenomics.domain.policy import MemoryPolicy
from tokenomics.domain.resolve import Resolved
from tokenomics.domain.usage import Usage
from tokenomics.pipeline.exchange import Exchange, Incoming, Settled
from tokenomics.services.stats import OTHER_MODEL, Stats

PRICED = frozenset({"gpt-4o", "claude-sonnet-4"})


def exchange(model: str, pinned: str = "") -> Exchange:
    ex = Exchange(Incoming("POST", [], {}, "peer", 0.0, "", "id"), "/v1/chat/completions", "")
    ex.settle(Settled(Usage(), 0.0, None))
    ex.model, ex.status, ex.token_hash = model, 200, "a" * 64
    if pinned:
        ex.resolved = Resolved(
            provider_name="", base_key_env="K", upstream_url="", max_tokens=0, max_cost_usd=0,
            model=pinned, model_regex="", model_pattern=None, prompts=(), rules=(), timeout=0,
            default_provider="", memory=MemoryPolicy(), rate_limit=None, retry=None,
        )  # fmt: skip
    return ex


def series(stats: Stats) -> set[str]:
    found = re.findall(r'^tokenomics_requests_total\{model="([^"]*)"', stats.prometheus(), re.M)
    return set(found)


def test_made_up_models_fold_into_one_label() -> None:
    stats = Stats(lambda model: model.lower() in PRICED)
    for n in range(1000):
        stats.record(exchange(f"attack-{n}"), 0.01)
    stats.record(exchange("GPT-4o"), 0.01)
    stats.record(exchange("gpt-4o"), 0.01)
    stats.record(exchange("my-fine-tune", pinned="my-fine-tune"), 0.01)
    stats.record(exchange("", pinned=""), 0.01)
    assert series(stats) == {OTHER_MODEL, "gpt-4o", "my-fine-tune", ""}
    assert len(stats.by_route) == 4


def test_made_up_models_fold_in_the_stats_snapshot_too() -> None:
    stats = Stats(lambda model: model.lower() in PRICED)
    for n in range(1000):
        stats.record(exchange(f"attack-{n}"), 0.01)
    stats.record(exchange("gpt-4o"), 0.01)
    models = {entry["model"] for entry in stats.snapshot()["by_model_and_key"]}
    assert models == {OTHER_MODEL, "gpt-4o"}
