"""One finished request as an OpenTelemetry span, in the OTLP/HTTP JSON encoding (the protobuf
JSON mapping of `ExportTraceServiceRequest`: hex trace and span ids, 64-bit integers as
strings, enums as numbers). Pure functions, no I/O.

The attributes follow the GenAI semantic conventions (`gen_ai.operation.name`, `gen_ai.system`
and its successor `gen_ai.provider.name`, `gen_ai.request.model`, `gen_ai.response.model`,
`gen_ai.response.id`, `gen_ai.response.finish_reasons`, `gen_ai.usage.input_tokens`,
`gen_ai.usage.output_tokens`), the span is a CLIENT span named `{operation} {model}`, and a
failed request (status >= 400 or an error) has status ERROR with `error.type`. Ours:
`tokenomics.cost_usd` (absent when the model has no price: `tokenomics.cost.unpriced`),
`tokenomics.token_hash` (the 16-character prefix the ledger shows, never the whole HMAC),
`tokenomics.provider`, `tokenomics.stream`, `tokenomics.estimated`, `tokenomics.retry_count`,
`tokenomics.fallback_model` and the request's metadata as `tokenomics.metadata.<key>`.
The run's attributes (`tokenomics.run.id`, the git branch and commit as `vcs.ref.head.name`,
`vcs.ref.head.revision`, `tokenomics.git.branch`, `tokenomics.git.commit`) are added to every
span of a batch by `export_body`, which also encodes the attributes (off the request's task).

A client's W3C `traceparent` header puts the span in the client's trace, as its child.
Strings from clients are cut to `MAX_TEXT` characters; at most `MAX_METADATA` metadata keys.
"""

from __future__ import annotations

import random  # ids need to be unique, not secret (like the OpenTelemetry SDK's)
import re
from datetime import timedelta
from typing import TYPE_CHECKING, Any

import orjson

if TYPE_CHECKING:
    from collections.abc import Mapping, Sequence

    from tokenomics.services.finished import Finished

Attribute = dict[str, Any]
Pair = tuple[str, Any]
# A span as `span_of` makes it on the request's task: its attributes still plain (key, value)
# pairs, turned into `KeyValue`s by `export_body` on the exporter's task.
Span = dict[str, Any]
MAX_TEXT = 256
MAX_METADATA = 32
SPAN_KIND_CLIENT = 3
STATUS_ERROR = 2
SCOPE = "tokenomics"
_TRACEPARENT = re.compile(r"00-([0-9a-f]{32})-([0-9a-f]{16})-[0-9a-f]{2}")
# Our provider names -> the `gen_ai.system` values of the conventions; others as they are.
_SYSTEMS = {
    "gemini": "gcp.gemini",
    "vertex": "gcp.vertex_ai",
    "azure": "azure.ai.openai",
    "bedrock": "aws.bedrock",
    "mistral": "mistral_ai",
    "xai": "xai",
}
# Path endings -> `gen_ai.operation.name`, first match wins.
_OPERATIONS = (
    ("/chat/completions", "chat"),
    ("/completions", "text_completion"),
    ("/embeddings", "embeddings"),
    ("/responses", "chat"),
    ("/messages", "chat"),
    (":generatecontent", "generate_content"),
    (":streamgeneratecontent", "generate_content"),
    ("/count_tokens", "count_tokens"),
    (":counttokens", "count_tokens"),
    (":embedcontent", "embeddings"),
)


def operation(path: str) -> str:
    lowered = path.lower().rstrip("/")
    return next((name for end, name in _OPERATIONS if lowered.endswith(end)), "other")


def _text(value: str) -> str:
    return value[:MAX_TEXT]


def attribute(key: str, value: str | bool | int | float | Sequence[str]) -> Attribute:
    """One `KeyValue` of the JSON encoding."""
    if isinstance(value, bool):
        return {"key": key, "value": {"boolValue": value}}
    if isinstance(value, int):
        return {"key": key, "value": {"intValue": str(value)}}
    if isinstance(value, float):
        return {"key": key, "value": {"doubleValue": value}}
    if isinstance(value, str):
        return {"key": key, "value": {"stringValue": value}}
    values = [{"stringValue": item} for item in value]
    return {"key": key, "value": {"arrayValue": {"values": values}}}


def trace_parent(headers: Sequence[tuple[str, str]]) -> tuple[str, str] | None:
    """The trace and parent span ids of a valid W3C `traceparent` header (all-zero ids are
    invalid), else None."""
    value = next((v for k, v in headers if k == "traceparent"), "").strip().lower()
    found = _TRACEPARENT.fullmatch(value)
    if found is None or set(found.group(1)) == {"0"} or set(found.group(2)) == {"0"}:
        return None
    return found.group(1), found.group(2)


def _attributes(f: Finished, op: str) -> list[Pair]:
    usage, meta = f.usage, f.meta
    system = _SYSTEMS.get(f.provider, f.provider)
    pairs: list[tuple[str, Any]] = [
        ("gen_ai.operation.name", op),
        ("gen_ai.system", system),
        ("gen_ai.provider.name", system),
        ("gen_ai.request.model", _text(f.model)),
        ("gen_ai.response.model", _text(meta.actual_model or f.model)),
        ("gen_ai.response.id", _text(meta.upstream_id)),
        ("gen_ai.usage.input_tokens", usage.input_tokens),
        ("gen_ai.usage.output_tokens", usage.output_tokens),
        ("http.request.method", f.method),
        ("http.response.status_code", f.status),
        ("tokenomics.token_hash", f.hash16),
        ("tokenomics.provider", f.provider),
        ("tokenomics.stream", f.stream),
        ("tokenomics.estimated", f.estimated),
        ("tokenomics.retry_count", f.retry_count),
        ("tokenomics.fallback_model", _text(f.fallback_model)),
    ]
    if meta.finish_reason:
        pairs.append(("gen_ai.response.finish_reasons", [_text(meta.finish_reason)]))
    if f.cost_usd is None:
        pairs.append(("tokenomics.cost.unpriced", True))
    else:
        pairs.append(("tokenomics.cost_usd", float(f.cost_usd)))
    if f.status >= 400 or f.error:
        pairs.append(("error.type", str(f.status) if f.status >= 400 else "error"))
    for key, value in list(f.metadata.items())[:MAX_METADATA]:
        pairs.append((f"tokenomics.metadata.{_text(key)}", _text(value)))
    return [(k, v) for k, v in pairs if v != "" and not (k.endswith("count") and v == 0)]


def span_of(f: Finished) -> Span:
    """The span of a finished request, without the run's attributes (`export_body` adds them)."""
    end = f.recorded_at
    start = end - timedelta(milliseconds=f.duration_ms)
    parent = trace_parent(f.request_headers)
    model, op = _text(f.model), operation(f.path)
    span: Span = {
        "traceId": parent[0] if parent else f"{random.getrandbits(128):032x}",
        "spanId": f"{random.getrandbits(64):016x}",
        "name": f"{op} {model}".strip(),
        "kind": SPAN_KIND_CLIENT,
        "startTimeUnixNano": str(_nanos(start.timestamp())),
        "endTimeUnixNano": str(_nanos(end.timestamp())),
        "attributes": _attributes(f, op),
    }
    if parent:
        span["parentSpanId"] = parent[1]
    if f.status >= 400 or f.error:
        span["status"] = {"code": STATUS_ERROR, "message": _text(f.error or f"HTTP {f.status}")}
    return span


def _nanos(seconds: float) -> int:
    return round(seconds * 1_000_000) * 1000  # microsecond precision, no float drift below


def run_attributes(run_id: str, git: Mapping[str, Any]) -> list[Pair]:
    """What every span of this process carries: the run (ledger session) and its git context."""
    branch, commit = str(git.get("branch") or ""), str(git.get("commit_start") or "")
    pairs = [
        ("tokenomics.run.id", run_id),
        ("vcs.ref.head.name", branch),
        ("vcs.ref.head.revision", commit),
        ("tokenomics.git.branch", branch),
        ("tokenomics.git.commit", commit),
    ]
    return [(k, v) for k, v in pairs if v]


def export_body(
    spans: Sequence[Span], *, service_name: str, version: str, run: Sequence[Pair]
) -> bytes:
    """The JSON body of one `POST /v1/traces`."""
    resource = [
        attribute("service.name", service_name),
        attribute("service.version", version),
        attribute("telemetry.sdk.name", SCOPE),
        attribute("telemetry.sdk.language", "python"),
    ]
    with_run = [
        {**span, "attributes": [attribute(k, v) for k, v in (*span["attributes"], *run)]}
        for span in spans
    ]
    scope = {"scope": {"name": SCOPE, "version": version}, "spans": with_run}
    return orjson.dumps(
        {"resourceSpans": [{"resource": {"attributes": resource}, "scopeSpans": [scope]}]}
    )
