"""`services.otlp` configuration and `services.otlp_spans` encoding (no I/O)."""

from __future__ import annotations

from datetime import UTC, datetime

import orjson
import pytest
from tests.support.finished import finished as make_finished
from tests.support.otlp_receiver import attributes

from tokenomics.config.settings import OtlpSettings
from tokenomics.domain.errors import ConfigError
from tokenomics.services.otlp import otlp_config
from tokenomics.services.otlp_spans import (
    MAX_TEXT,
    export_body,
    operation,
    run_attributes,
    span_of,
    trace_parent,
)


def test_the_endpoint_key_wins_and_a_base_url_gets_v1_traces() -> None:
    env = {"OTEL_EXPORTER_OTLP_ENDPOINT": "http://env:4318"}
    config = otlp_config(OtlpSettings(endpoint="https://collector:4318/otel/"), env)
    assert config is not None and config.url == "https://collector:4318/otel/v1/traces"
    kept = otlp_config(OtlpSettings(endpoint="http://c:4318/v1/traces"), {})
    assert kept is not None and kept.url == "http://c:4318/v1/traces"


def test_the_otel_variables_are_honoured() -> None:
    env = {
        "OTEL_EXPORTER_OTLP_ENDPOINT": "http://env:4318",
        "OTEL_EXPORTER_OTLP_HEADERS": "api-key=a%20b, x-team=ml",
        "OTEL_SERVICE_NAME": "gw",
    }
    config = otlp_config(OtlpSettings(), env)
    assert config is not None
    assert config.url == "http://env:4318/v1/traces"
    assert config.headers == (("api-key", "a b"), ("x-team", "ml"))
    assert config.service_name == "gw"
    traces = otlp_config(
        OtlpSettings(), {**env, "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "http://t/x"}
    )
    assert traces is not None and traces.url == "http://t/x"  # used as it is
    assert otlp_config(OtlpSettings(), {**env, "OTEL_SDK_DISABLED": "true"}) is None
    assert otlp_config(OtlpSettings(), {}) is None  # nothing configured: no exporter


@pytest.mark.parametrize(
    "settings",
    [
        OtlpSettings(endpoint="collector:4318"),
        OtlpSettings(endpoint="ftp://c/"),
        OtlpSettings(endpoint="http://c", headers={"bad header": "x"}),
        OtlpSettings(endpoint="http://c", headers={"x-k": "a\r\nb"}),
        OtlpSettings(endpoint="http://c", timeout=0),
    ],
)
def test_bad_settings_are_config_errors(settings: OtlpSettings) -> None:
    with pytest.raises(ConfigError):
        otlp_config(settings, {})


def test_operations_by_path() -> None:
    assert [
        operation(p)
        for p in (
            "/v1/chat/completions", "/v1/completions", "/v1/embeddings", "/v1/responses",
            "/v1/messages", "/v1beta/models/gemini-2.5-pro:streamGenerateContent",
            "/v1/messages/count_tokens", "/v1/models",
        )
    ] == [
        "chat", "text_completion", "embeddings", "chat", "chat", "generate_content",
        "count_tokens", "other",
    ]  # fmt: skip


@pytest.mark.parametrize(
    "value",
    [
        "",
        "01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",  # unknown version
        "00-00000000000000000000000000000000-00f067aa0ba902b7-01",  # all-zero trace id
        "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01",
        "00-4bf92f3577b34da6a3ce929d0e0e473-00f067aa0ba902b7-01",  # short
        "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-extra",
    ],
)
def test_invalid_traceparents_are_ignored(value: str) -> None:
    assert trace_parent([("traceparent", value)]) is None


def test_a_span_of_an_unpriced_hostile_request() -> None:
    record = make_finished(
        token_hash="f" * 64, model="x" * 5000, status=502, error="upstream broke",
        cost_usd=None, metadata={f"k{i}": "v" * 999 for i in range(50)},
        recorded_at=datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC), duration_ms=1500,
    )  # fmt: skip
    span = span_of(record)
    values = dict(span["attributes"])  # plain pairs until export_body encodes them
    assert values["tokenomics.token_hash"] == "f" * 16
    assert values["tokenomics.cost.unpriced"] is True and "tokenomics.cost_usd" not in values
    assert len(values["gen_ai.request.model"]) == MAX_TEXT
    assert sum(k.startswith("tokenomics.metadata.") for k in values) == 32
    assert span["status"] == {"code": 2, "message": "upstream broke"}
    assert int(span["endTimeUnixNano"]) - int(span["startTimeUnixNano"]) == 1_500_000_000
    assert span["endTimeUnixNano"] == "1767323045000000000"
    body = orjson.loads(
        export_body(
            [span], service_name="s", version="1",
            run=run_attributes("abcd", {"branch": "main", "commit_start": "1234567"}),
        )
    )  # fmt: skip
    exported = body["resourceSpans"][0]["scopeSpans"][0]["spans"][0]
    assert attributes(exported["attributes"])["vcs.ref.head.name"] == "main"
    assert attributes(exported["attributes"])["tokenomics.run.id"] == "abcd"
