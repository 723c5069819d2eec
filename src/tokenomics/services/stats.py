"""Usage statistics for `/stats` (`proxy.md` §5.4 shape, plus cost) and `/metrics` (Prometheus).

The `model` label of `/metrics` (and the model of `/stats` rows) takes only names the operator
configured: a model of the price table (exact name, lower-cased) or the one the token's policy
pins; any other string a client sends folds into `OTHER_MODEL`, so clients cannot create series
without bound.
"""

from __future__ import annotations

import time
from bisect import bisect_left
from collections import defaultdict
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from tokenomics.domain.memo import remember

if TYPE_CHECKING:
    from collections.abc import Callable

    from tokenomics.pipeline.exchange import Exchange
    from tokenomics.services.ledger import LedgerStatistics
    from tokenomics.services.otlp import OtlpStatistics

OTHER_MODEL = "other"
LABELS_LIMIT = 1024  # model names whose label is remembered
BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300)


@dataclass(slots=True)
class _Tally:
    request_count: int = 0
    input_tokens: int = 0
    output_tokens: int = 0
    error_count: int = 0
    cost_usd: float = 0.0
    unpriced_count: int = 0  # requests whose model has no price: their cost is unknown, not 0

    def as_dict(self) -> dict[str, Any]:
        return {
            "request_count": self.request_count,
            "input_tokens": self.input_tokens,
            "output_tokens": self.output_tokens,
            "total_tokens": self.input_tokens + self.output_tokens,
            "error_count": self.error_count,
            "cost_usd": round(self.cost_usd, 10),
            "unpriced_count": self.unpriced_count,
        }


@dataclass(slots=True)
class _TokenTally(_Tally):
    last_model: str = ""
    base_key_env: str = ""
    first_seen: str = ""
    last_seen: str = ""


def _add(
    tallies: tuple[_Tally, ...], inputs: int, outputs: int, error: bool, cost: float | None
) -> None:
    """One request added to each of `tallies` (written out once for all of them: a method call
    per tally cost more than the sums)."""
    for tally in tallies:
        tally.request_count += 1
        tally.input_tokens += inputs
        tally.output_tokens += outputs
        tally.error_count += error  # a bool counts 1: no `int()` call
        if cost is None:
            tally.unpriced_count += 1
        else:
            tally.cost_usd += cost


@dataclass(slots=True)
class _Histogram:
    counts: list[int] = field(default_factory=lambda: [0] * (len(BUCKETS) + 1))  # per bucket
    total: float = 0.0
    n: int = 0

    def observe(self, seconds: float) -> None:
        self.n += 1
        self.total += seconds
        self.counts[bisect_left(BUCKETS, seconds)] += 1  # the first bucket with seconds <= le

    def cumulative(self) -> list[int]:
        """Prometheus' `le` counts: observations at or below each bound."""
        running, out = 0, []
        for count in self.counts[: len(BUCKETS)]:
            running += count
            out.append(running)
        return out


class _Cell:
    __slots__ = ("latency", "tallies", "token")

    def __init__(
        self, tallies: tuple[_Tally, ...], latency: _Histogram, token: _TokenTally | None
    ) -> None:
        self.tallies = tallies
        self.latency = latency
        self.token = token


_COUNTERS: tuple[tuple[str, str, Callable[[_Tally], list[tuple[str, object]]]], ...] = (
    ("tokenomics_requests_total", "Requests finished, by model, provider and status.",
     lambda t: [("", t.request_count)]),
    ("tokenomics_tokens_total", "Tokens accounted, by direction.",
     lambda t: [(',direction="input"', t.input_tokens), (',direction="output"', t.output_tokens)]),
    ("tokenomics_cost_usd_total", "Cost in US dollars.", lambda t: [("", f"{t.cost_usd:.10f}")]),
    ("tokenomics_errors_total", "Requests that ended in an error.",
     lambda t: [("", t.error_count)]),
)  # fmt: skip


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


class Stats:
    """Counters fed by every finished exchange; read by `/stats`, `/metrics` and `status`."""

    def __init__(
        self, known_model: Callable[[str], bool], wall: Callable[[], float] = time.time
    ) -> None:
        """`known_model`: the model is in the price table (exact name, any case); its answers
        never change (the table is fixed when the server starts): they are remembered. `wall`:
        the time of day (`first_seen`, `last_seen`)."""
        self._known_model = known_model
        self._wall = wall
        self.totals = _Tally()
        self.by_model_and_key: dict[tuple[str, str], _Tally] = defaultdict(_Tally)
        self.by_token: dict[str, _TokenTally] = {}
        self.by_route: dict[tuple[str, str, int], _Tally] = defaultdict(
            _Tally
        )  # model, provider, status
        self.latency: dict[str, _Histogram] = defaultdict(_Histogram)
        self.in_flight = 0
        # Set by the composition root when the session ledger runs: its `statistics()`.
        self.ledger: Callable[[], LedgerStatistics] | None = None
        # Other parts' sections of /stats and lines of /metrics (the remote syncer's).
        self.sections: dict[str, Callable[[], Any]] = {}
        self.metric_lines: list[Callable[[], list[str]]] = []
        # Set by the composition root: the webhook dispatcher's metric lines.
        self.webhooks: Callable[[], list[str]] | None = None
        # Set by the composition root when spans are exported: the exporter's `statistics()`.
        self.otlp: Callable[[], OtlpStatistics] | None = None
        self._second = -1
        self._now = ""
        # Each kind of request (label, provider, status, key env, token) and its tallies.
        self._cells: dict[tuple[str, str, int, str, str], _Cell] = {}
        self._labels: dict[str, str] = {}  # model name -> its price-table label ("": none)

    def _now_text(self) -> str:
        """The wall-clock time to the second (RFC 3339 UTC), formatted once per second."""
        now = self._wall()
        if int(now) != self._second:
            self._second = int(now)
            self._now = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(now))
        return self._now

    def record(self, ex: Exchange, seconds: float) -> None:
        settled = ex.settled
        usage = settled.usage
        status, target, policy = ex.status, ex.target, ex.policy
        model = ex.attempt_model or ex.model
        provider = target.provider_name if target is not None else ""
        key_env = target.key_env if target else (policy.base_key_env if policy else "")
        label = self._model_label(ex, model)
        hash16 = ex.token_hash[:16]
        key = (label, provider, status, key_env, hash16)
        cell = self._cells.get(key)
        if cell is None:
            cell = self._cells[key] = self._cell(label, provider, status, key_env, hash16)
        error = status >= 400 or bool(ex.error)
        _add(cell.tallies, usage.input_tokens, usage.output_tokens, error, settled.cost_usd)
        cell.latency.observe(seconds)
        token = cell.token
        if token is not None:
            token.last_model, token.last_seen = model, self._now_text()

    def _cell(self, label: str, provider: str, status: int, key_env: str, hash16: str) -> _Cell:
        """The tallies a request of this kind adds to: its route's and its provider's latency;
        when authenticated (`hash16`), also the totals, its model and key's, and its token's
        (created with the token's first request, as its `first_seen`). The model is folded like
        the `/metrics` label: a client's made-up model names never grow the tables."""
        route, latency = self.by_route[(label, provider, status)], self.latency[provider]
        if not hash16:
            return _Cell((route,), latency, None)  # unauthenticated: metrics only
        token = self.by_token.get(hash16)
        if token is None:
            token = self.by_token[hash16] = _TokenTally(
                base_key_env=key_env, first_seen=self._now_text()
            )
        tallies = (route, self.totals, self.by_model_and_key[(label, key_env)], token)
        return _Cell(tallies, latency, token)

    def _model_label(self, ex: Exchange, model: str) -> str:
        if not model:
            return ""
        known = self._labels.get(model)  # the price table's name, "" when it has none
        if known is None:
            label = model.lower() if self._known_model(model) else ""
            known = remember(self._labels, model, label, LABELS_LIMIT)
        if known:
            return known
        pinned = ex.resolved.model if ex.resolved is not None else ""
        return model if model == pinned else OTHER_MODEL

    def snapshot(self) -> dict[str, Any]:
        def by_total(item: dict[str, Any]) -> int:
            return -int(item["total_tokens"])

        models = [
            {"model": m, "base_key_env": k, **t.as_dict()}
            for (m, k), t in self.by_model_and_key.items()
        ]
        tokens = [
            {"token_hash": h, **t.as_dict(), "last_model": t.last_model,
             "base_key_env": t.base_key_env, "first_seen": t.first_seen, "last_seen": t.last_seen}
            for h, t in self.by_token.items()
        ]  # fmt: skip
        return {
            "totals": self.totals.as_dict(),
            "by_model_and_key": sorted(models, key=by_total),
            "by_token": sorted(tokens, key=by_total),
        } | {name: section() for name, section in self.sections.items()}

    def prometheus(self) -> str:
        lines: list[str] = []
        series = sorted(self.by_route.items())
        for name, text, values in _COUNTERS:
            lines += [f"# HELP {name} {text}", f"# TYPE {name} counter"]
            for (model, provider, status), tally in series:
                labels = (
                    f'model="{_escape(model)}",provider="{_escape(provider)}",status="{status}"'
                )
                lines += [f"{name}{{{labels}{extra}}} {value}" for extra, value in values(tally)]
        lines += self._latency_lines()
        lines += [
            "# HELP tokenomics_in_flight Requests being served.",
            "# TYPE tokenomics_in_flight gauge",
            f"tokenomics_in_flight {self.in_flight}",
        ]
        lines += self._ledger_lines()
        for more in self.metric_lines:
            lines += more()
        lines += self.webhooks() if self.webhooks is not None else []
        lines += self._otlp_lines()
        return "\n".join(lines) + "\n"

    def _otlp_lines(self) -> list[str]:
        if self.otlp is None:
            return []
        otlp = self.otlp()
        lines = []
        for name, kind, text, value in (
            ("spans_exported_total", "counter", "Spans the OpenTelemetry collector accepted.",
             otlp.exported),
            ("spans_dropped_total", "counter", "Spans dropped because the export queue was full.",
             otlp.dropped),
            ("spans_failed_total", "counter", "Spans given up after failed exports.",
             otlp.failed),
            ("queue", "gauge", "Spans waiting for export.", otlp.queued),
        ):  # fmt: skip
            metric = f"tokenomics_otlp_{name}"
            lines += [f"# HELP {metric} {text}", f"# TYPE {metric} {kind}", f"{metric} {value}"]
        return lines

    def _ledger_lines(self) -> list[str]:
        if self.ledger is None:
            return []
        ledger = self.ledger()
        lines = []
        for name, kind, text, value in (
            ("recorded", "counter", "Requests written to the session journal.",
             ledger.requests_recorded),
            ("pending", "gauge", "Requests waiting for the journal (a failing disk keeps them).",
             ledger.pending),
            ("write_errors", "counter", "Failed journal or session writes.", ledger.write_errors),
        ):  # fmt: skip
            metric = f"tokenomics_ledger_{name}"
            lines += [f"# HELP {metric} {text}", f"# TYPE {metric} {kind}", f"{metric} {value}"]
        return lines

    def _latency_lines(self) -> list[str]:
        lines = [
            "# HELP tokenomics_request_duration_seconds Time from request to last byte.",
            "# TYPE tokenomics_request_duration_seconds histogram",
        ]
        for provider, hist in sorted(self.latency.items()):
            label = f'provider="{_escape(provider)}"'
            for bound, count in zip(BUCKETS, hist.cumulative(), strict=True):
                lines.append(
                    f'tokenomics_request_duration_seconds_bucket{{{label},le="{bound}"}} {count}'
                )
            lines.append(
                f'tokenomics_request_duration_seconds_bucket{{{label},le="+Inf"}} {hist.n}'
            )
            lines.append(f"tokenomics_request_duration_seconds_sum{{{label}}} {hist.total:.6f}")
            lines.append(f"tokenomics_request_duration_seconds_count{{{label}}} {hist.n}")
        return lines
