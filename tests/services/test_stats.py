"""`/metrics` labels and `/stats` rows are bounded (issue 12 item 11): a model name a client
makes up folds into "other"; models of the price table (any case) and the model a policy pins keep their name.
The figures are those of every tally added to one by one per request (generated requests)."""

from __future__ import annotations

import re
from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from tokenomics.domain.policy import MemoryPolicy, Policy
from tokenomics.domain.resolve import Resolved
from tokenomics.domain.usage import Usage
from tokenomics.pipeline.exchange import Exchange, Incoming, Settled
from tokenomics.pipeline.target import Target
from tokenomics.services.stats import OTHER_MODEL, Stats, _Tally, _TokenTally

PRICED = frozenset({"gpt-4o", "claude-sonnet-4"})


def resolved_for(pinned: str) -> Resolved:
    return Resolved(
        provider_name="", base_key_env="K", upstream_url="", max_tokens=0, max_cost_usd=0,
        model=pinned, model_regex="", model_pattern=None, prompts=(), rules=(), timeout=0,
        default_provider="", memory=MemoryPolicy(), rate_limit=None, retry=None,
    )  # fmt: skip


def unsettled(model: str) -> Exchange:
    ex = Exchange(Incoming("POST", [], {}, "peer", 0.0, "", "id"), "/v1/chat/completions", "")
    ex.model = model
    return ex


def exchange(model: str, pinned: str = "") -> Exchange:
    ex = unsettled(model)
    ex.settle(Settled(Usage(), 0.0, None))
    ex.status, ex.token_hash = 200, "a" * 64
    if pinned:
        ex.resolved = resolved_for(pinned)
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


# ── the same figures as the tallies added one by one per request (the first `record`) ──────────


class Clock:
    now = 1_800_000_000.0

    def __call__(self) -> float:
        return self.now


class ReferenceStats(Stats):
    """`Stats.record` as first written: every tally looked up and added to, one by one."""

    def record(self, ex: Exchange, seconds: float) -> None:
        def add(tally: _Tally) -> None:
            tally.request_count += 1
            tally.input_tokens += inputs
            tally.output_tokens += outputs
            tally.error_count += error
            if cost is None:
                tally.unpriced_count += 1
            else:
                tally.cost_usd += cost

        settled = ex.settled
        usage, cost = settled.usage, settled.cost_usd
        inputs, outputs = usage.input_tokens, usage.output_tokens
        error = ex.status >= 400 or bool(ex.error)
        model = ex.attempt_model or ex.model
        provider = ex.target.provider_name if ex.target else ""
        label = self.reference_label(ex, model)
        add(self.by_route[(label, provider, ex.status)])
        self.latency[provider].observe(seconds)
        if not ex.token_hash:
            return
        key_env = ex.target.key_env if ex.target else (ex.policy.base_key_env if ex.policy else "")
        add(self.totals)
        add(self.by_model_and_key[(label, key_env)])
        now = self._now_text()
        token = self.by_token.get(ex.hash16)
        if token is None:
            token = self.by_token[ex.hash16] = _TokenTally(base_key_env=key_env, first_seen=now)
        add(token)
        token.last_model, token.last_seen = model, now

    def reference_label(self, ex: Exchange, model: str) -> str:
        if not model:
            return ""
        if model.lower() in PRICED:
            return model.lower()
        pinned = ex.resolved.model if ex.resolved is not None else ""
        return model if model == pinned else OTHER_MODEL


TOKENS = ["", "a" * 64, "b" * 64, "a" * 16 + "c" * 48]  # the last shares the first's hash16
REQUEST = st.fixed_dictionaries({
    "model": st.sampled_from(["", "gpt-4o", "GPT-4o", "made-up", "mine"]),
    "attempt": st.sampled_from(["", "claude-sonnet-4", "other-made-up"]),
    "pinned": st.sampled_from([None, "", "mine", "other-made-up"]),
    "target": st.none() | st.tuples(st.sampled_from(["", "openai", "mock"]), st.sampled_from(["", "K1"])),
    "policy_key": st.none() | st.sampled_from(["", "K2"]),
    "token": st.sampled_from(TOKENS),
    "status": st.sampled_from([0, 200, 400, 429, 502]),
    "error": st.sampled_from(["", "boom"]),
    "usage": st.tuples(st.integers(0, 10**6), st.integers(0, 10**6)),
    "cost": st.none() | st.floats(0, 10, allow_subnormal=False) | st.just(1e-10),
    "seconds": st.floats(0, 400),
    "later": st.floats(0, 3),
})  # fmt: skip


def generated(request: dict[str, Any]) -> Exchange:
    ex = unsettled(request["model"])
    ex.attempt_model, ex.status, ex.error = request["attempt"], request["status"], request["error"]
    ex.token_hash = request["token"]
    resolved = None if request["pinned"] is None else resolved_for(request["pinned"])
    ex.resolved = resolved
    if request["target"] is not None:
        name, key_env = request["target"]
        ex.target = Target(resolved or resolved_for(""), name, None, "http://u", key_env, "k")
    if request["policy_key"] is not None:
        ex.policy = Policy(base_key_env=request["policy_key"])
    ex.settle(Settled(Usage(*request["usage"]), request["cost"], None))
    return ex


@given(st.lists(REQUEST, max_size=40))
def test_the_figures_are_the_ones_added_one_by_one(requests: list[dict[str, Any]]) -> None:
    clock = Clock()
    stats, reference = (
        cls(lambda model: model.lower() in PRICED, clock) for cls in (Stats, ReferenceStats)
    )
    for request in requests:
        clock.now += request["later"]
        for each in (stats, reference):
            each.record(generated(request), request["seconds"])
    assert stats.snapshot() == reference.snapshot()
    assert stats.prometheus() == reference.prometheus()
    assert list(stats.by_token) == list(reference.by_token)
