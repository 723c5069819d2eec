"""/stats (`proxy.md` §5.4 + cost), /metrics (Prometheus text), their access rule (D21), and the
per-request log (§5.3 keys + provider and cost; D8: no secrets in any log line).
Scenarios 71 and 72."""

from __future__ import annotations

import hashlib
import hmac
import io
import json
import re
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import httpx2
import pytest
import trio
from tests.support.logs import request_lines
from tests.support.mock_upstream import MockUpstream
from tests.support.proxy import HASH_KEY, Proxy, start_proxy

from tokenomics.services.asgi import ProxyApp

CHAT = {"model": "gpt-4o", "messages": [{"role": "user", "content": "hi"}]}
MOCK_INPUT, MOCK_OUTPUT = 4, 4  # the mock's usage for CHAT
TOTAL_KEYS = {"request_count", "input_tokens", "output_tokens", "total_tokens", "error_count"}
MODEL_KEYS = {"model", "base_key_env", *TOTAL_KEYS}
TOKEN_KEYS = {"token_hash", *TOTAL_KEYS, "last_model", "base_key_env", "first_seen", "last_seen"}
RFC3339_UTC = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z$")


def openai_via(mock: MockUpstream, **extra: Any) -> dict[str, Any]:
    """A policy routed through the `openai` provider entry, at the mock."""
    return {
        "base_key_env": "OPENAI_KEY",
        "default_provider": "openai",
        "upstream_url": mock.url,
        **extra,
    }


async def eventually(condition: Callable[[], bool], seconds: float = 5) -> None:
    with trio.fail_after(seconds):
        while not condition():  # noqa: ASYNC110 - server state, no event to wait on
            await trio.sleep(0.01)


def recorded(proxy: Proxy, n: int) -> Callable[[], bool]:
    """True once `n` exchanges were finished (metrics count every one, even unauthenticated)."""
    return lambda: sum(t.request_count for t in proxy.server.stats.by_route.values()) >= n


async def post(client: httpx2.AsyncClient, token: str, body: dict[str, Any] = CHAT) -> int:
    response = await client.post("/v1/chat/completions", json=body, headers={"x-api-key": token})
    return response.status_code


# --- /stats ----------------------------------------------------------------------------------


async def test_stats_has_the_original_shape_plus_cost_sorted_by_total_tokens(
    proxy: Proxy, mock_upstream_server: MockUpstream
) -> None:
    light, heavy = (
        proxy.token({"base_key_env": "OPENAI_KEY"}),
        proxy.token(openai_via(mock_upstream_server)),
    )
    async with proxy.client() as client:
        assert await post(client, light) == 200
        for model in ("gpt-4o", "gpt-4o", "mock-model-without-price"):
            assert await post(client, heavy, {**CHAT, "model": model}) == 200
        await eventually(recorded(proxy, 4))
        response = await client.get("/stats")
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/json"
    assert response.text.startswith("{\n  ")  # pretty-printed, like the original
    stats = response.json()
    assert set(stats) == {"totals", "by_model_and_key", "by_token"}
    assert set(stats["totals"]) == TOTAL_KEYS | {"cost_usd", "unpriced_count"}
    assert stats["totals"]["request_count"] == 4 and stats["totals"]["error_count"] == 0
    assert stats["totals"]["total_tokens"] == 4 * (MOCK_INPUT + MOCK_OUTPUT)
    for row in stats["by_model_and_key"]:
        assert set(row) == MODEL_KEYS | {"cost_usd", "unpriced_count"}
    for row in stats["by_token"]:
        assert set(row) == TOKEN_KEYS | {"cost_usd", "unpriced_count"}
        assert RFC3339_UTC.match(row["first_seen"]) and RFC3339_UTC.match(row["last_seen"])
        assert row["total_tokens"] == row["input_tokens"] + row["output_tokens"]
    by_model = {(r["model"], r["base_key_env"]): r for r in stats["by_model_and_key"]}
    assert by_model[("gpt-4o", "OPENAI_KEY")]["request_count"] == 3
    assert by_model[("gpt-4o", "OPENAI_KEY")]["cost_usd"] > 0
    for rows in (stats["by_model_and_key"], stats["by_token"]):
        totals = [r["total_tokens"] for r in rows]
        assert totals == sorted(totals, reverse=True)
    first, second = stats["by_token"]
    assert first["token_hash"] == proxy.hash16(heavy) and first["request_count"] == 3
    assert first["last_model"] == "mock-model-without-price"
    assert second["token_hash"] == proxy.hash16(light)
    assert stats["totals"]["cost_usd"] == pytest.approx(
        sum(r["cost_usd"] for r in stats["by_token"])
    )


async def test_one_call_counts_once_under_the_hmac_hash_prefix(proxy: Proxy) -> None:
    """71: request_count 1 and `token_hash` = first 16 hex of HMAC-SHA256(hash key, T)."""
    token = proxy.token({"base_key_env": "OPENAI_KEY"})
    async with proxy.client() as client:
        assert await post(client, token) == 200
        await eventually(recorded(proxy, 1))
        stats = (await client.get("/stats")).json()
    expected = hmac.new(HASH_KEY.encode(), token.encode(), hashlib.sha256).hexdigest()[:16]
    assert stats["totals"]["request_count"] == 1
    assert stats["by_token"][0]["token_hash"] == expected
    assert stats["by_token"][0]["last_model"] == "gpt-4o"
    assert stats["by_token"][0]["base_key_env"] == "OPENAI_KEY"


async def test_model_rejection_counts_as_an_error_under_the_rejected_model(
    proxy: Proxy, mock_upstream_server: MockUpstream
) -> None:
    """72: a 403 model rejection adds to error_count and lists the rejected model."""
    token = proxy.token({"base_key_env": "OPENAI_KEY", "model_regex": "^gpt-3"})
    async with proxy.client() as client:
        assert await post(client, token) == 403
        await eventually(recorded(proxy, 1))
        stats = (await client.get("/stats")).json()
    assert stats["totals"]["error_count"] == 1 and stats["totals"]["request_count"] == 1
    (row,) = stats["by_model_and_key"]
    assert (row["model"], row["error_count"], row["total_tokens"]) == ("gpt-4o", 1, 0)
    assert mock_upstream_server.requests == []


async def test_only_get_reaches_stats_other_methods_go_to_the_proxy(proxy: Proxy) -> None:
    async with proxy.client() as client:
        response = await client.post("/stats")
    assert response.status_code == 401  # the proxy's missing-token answer, as in the original


# --- /metrics --------------------------------------------------------------------------------

SAMPLE = re.compile(
    r'^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{([a-zA-Z_]+="[^"\\]*(\\.[^"\\]*)*",?)*\})? (\S+)$'
)


def parse_metrics(text: str) -> dict[str, float]:
    """`{'name{labels}': value}`; fails on any line that is not valid exposition format."""
    samples: dict[str, float] = {}
    typed: set[str] = set()
    for line in text.splitlines():
        if line.startswith("# TYPE "):
            typed.add(line.split()[2])
        elif not line.startswith("# HELP "):
            match = SAMPLE.match(line)
            assert match, f"not Prometheus text: {line!r}"
            name = match.group(1)
            assert name in typed or re.sub(r"_(bucket|sum|count)$", "", name) in typed, line
            samples[line.rsplit(" ", 1)[0]] = float(match.group(5))
    return samples


async def test_metrics_count_requests_tokens_cost_errors_and_latency_by_model_and_provider(
    proxy: Proxy, mock_upstream_server: MockUpstream
) -> None:
    token = proxy.token(openai_via(mock_upstream_server))
    strict = proxy.token(openai_via(mock_upstream_server, model_regex="^gpt-3"))
    async with proxy.client() as client:
        assert await post(client, token) == 200
        assert await post(client, token) == 200
        assert await post(client, token, {**CHAT, "model": "fail-500"}) == 500
        assert await post(client, strict) == 403
        assert await post(client, "tkn_unknown") == 401
        await eventually(recorded(proxy, 5))
        response = await client.get("/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain; version=0.0.4")
    m = parse_metrics(response.text)
    ok = 'model="gpt-4o",provider="openai",status="200"'
    failed = 'model="other",provider="openai",status="500"'  # not a model of the price table
    assert m[f"tokenomics_requests_total{{{ok}}}"] == 2
    assert m[f"tokenomics_requests_total{{{failed}}}"] == 1
    assert m['tokenomics_requests_total{model="gpt-4o",provider="openai",status="403"}'] == 1
    assert m['tokenomics_requests_total{model="",provider="",status="401"}'] == 1
    assert m[f'tokenomics_tokens_total{{{ok},direction="input"}}'] == 2 * MOCK_INPUT
    assert m[f'tokenomics_tokens_total{{{ok},direction="output"}}'] == 2 * MOCK_OUTPUT
    assert m[f"tokenomics_cost_usd_total{{{ok}}}"] > 0
    assert m[f"tokenomics_errors_total{{{ok}}}"] == 0
    assert m[f"tokenomics_errors_total{{{failed}}}"] == 1
    buckets = [
        (key, value)
        for key, value in m.items()
        if key.startswith('tokenomics_request_duration_seconds_bucket{provider="openai"')
    ]
    counts = [value for _, value in buckets]
    assert counts == sorted(counts) and buckets[-1][0].endswith('le="+Inf"}')
    assert counts[-1] == m['tokenomics_request_duration_seconds_count{provider="openai"}'] == 4
    assert m['tokenomics_request_duration_seconds_sum{provider="openai"}'] > 0
    assert m["tokenomics_in_flight"] == 0


# --- access (D21) ----------------------------------------------------------------------------

ADMIN_AUTH = "admin:\n  auth:\n    username: ops\n    password: s3cret\n"


async def call_app(
    app: ProxyApp, path: str, client: tuple[str, int] | None, headers: list[tuple[bytes, bytes]]
) -> tuple[int, dict[bytes, bytes], bytes]:
    """Call the ASGI app directly, as hypercorn would for a peer at `client`."""
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: Any) -> None:
        sent.append(message)

    scope = {
        "type": "http", "method": "GET", "path": path, "raw_path": path.encode(),
        "query_string": b"", "headers": headers, "client": client, "server": ("10.0.0.1", 8080),
        "scheme": "http", "http_version": "1.1",
    }  # fmt: skip
    await app(scope, receive, send)
    start, body = sent[0], b"".join(m.get("body", b"") for m in sent[1:])
    return start["status"], dict(start["headers"]), body


SPOOFED = [(b"x-real-ip", b"127.0.0.1"), (b"x-forwarded-for", b"127.0.0.1"),
           (b"true-client-ip", b"127.0.0.1"), (b"forwarded", b"for=127.0.0.1")]  # fmt: skip


@pytest.mark.parametrize("path", ["/stats", "/metrics"])
async def test_a_non_loopback_peer_is_refused_whatever_the_forwarding_headers_say(
    proxy: Proxy, path: str
) -> None:
    app = ProxyApp(proxy.server.deps, proxy.server.stats, trio.current_time)
    for peer in (("10.1.2.3", 5000), ("::ffff:10.1.2.3", 5000), None):
        status, headers, body = await call_app(app, path, peer, SPOOFED)
        assert status == 403, peer
        assert json.loads(body) == {"error": "admin UI/API is local-only"}
        assert headers[b"content-type"] == b"application/json"
    for peer in (("127.0.0.1", 5000), ("::1", 5000), ("::ffff:127.0.0.1", 5000)):
        status, _, _ = await call_app(app, path, peer, [])
        assert status == 200, peer


@pytest.mark.parametrize("path", ["/stats", "/metrics"])
async def test_basic_auth_is_required_when_configured(
    mock_upstream_server: MockUpstream, tmp_path: Path, path: str
) -> None:
    async with start_proxy(tmp_path, mock_upstream_server.url, config=ADMIN_AUTH) as proxy:
        async with proxy.client() as client:
            missing = await client.get(path)
            wrong = await client.get(path, auth=("ops", "nope"))
            other_scheme = await client.get(path, headers={"authorization": "Bearer s3cret"})
            right = await client.get(path, auth=("ops", "s3cret"))
        app = ProxyApp(proxy.server.deps, proxy.server.stats, trio.current_time)
        basic = (b"authorization", b"Basic b3BzOnMzY3JldA==")  # ops:s3cret
        remote, _, _ = await call_app(app, path, ("10.1.2.3", 5000), [basic, *SPOOFED])
    for response in (missing, wrong, other_scheme):
        assert response.status_code == 401
        assert response.json() == {"error": "unauthorized"}
        assert response.headers["www-authenticate"] == 'Basic realm="tokenomics-admin"'
    assert right.status_code == 200
    assert remote == 403  # good credentials do not make a remote peer local


async def test_health_and_ping_stay_open_when_admin_auth_is_set(
    mock_upstream_server: MockUpstream, tmp_path: Path
) -> None:
    async with (
        start_proxy(tmp_path, mock_upstream_server.url, config=ADMIN_AUTH) as proxy,
        proxy.client() as client,
    ):
        assert (await client.get("/health")).status_code == 200
        assert (await client.get("/ping")).text == "."


# --- request log (§5.3, D8) ------------------------------------------------------------------

LOG_KEYS = {
    "timestamp", "method", "path", "token_hash", "model", "provider", "base_key_env",
    "upstream_url", "status_code", "duration_ms", "input_tokens", "output_tokens", "cost_usd",
    "remote_addr", "user_agent", "upstream_request_id", "upstream_id", "client_request_id",
}  # fmt: skip


@pytest.fixture
async def logging_proxy(
    mock_upstream_server: MockUpstream, tmp_path: Path, request: pytest.FixtureRequest
) -> AsyncIterator[Proxy]:
    config = "logging:\n  disable_request: false\n" + "".join(
        f"  {key}: true\n" for key in getattr(request, "param", ())
    )
    async with start_proxy(tmp_path, mock_upstream_server.url, config=config) as proxy:
        yield proxy


async def test_request_log_is_one_json_line_per_request_and_never_shows_secrets(
    logging_proxy: Proxy,
    mock_upstream_server: MockUpstream,
    log_capture: Callable[[Proxy], io.StringIO],
) -> None:
    proxy = logging_proxy
    buffer = log_capture(proxy)
    token = proxy.token(openai_via(mock_upstream_server))
    async with proxy.client(headers={"user-agent": "log-test/1.0"}) as client:
        ok = await client.post(f"/v1/chat/completions?key={token}&foo=bar", json=CHAT)
        streamed = await client.post(
            "/v1/chat/completions", json={**CHAT, "stream": True}, headers={"x-api-key": token}
        )
        unknown = await client.post(
            "/v1/chat/completions", json=CHAT, headers={"authorization": "Bearer tkn_guess-me"}
        )
        failed = await client.post(
            "/v1/chat/completions", json={**CHAT, "model": "fail-500"}, headers={"x-api-key": token}
        )
        await eventually(lambda: len(request_lines(buffer)) >= 4)
    assert [r.status_code for r in (ok, streamed, unknown, failed)] == [200, 200, 401, 500]
    entries = request_lines(buffer)
    assert len(entries) == 4
    first, stream, rejected, error = entries
    assert set(first) >= LOG_KEYS, LOG_KEYS - set(first)
    assert first["token_hash"] == proxy.hash16(token)
    assert (first["method"], first["path"], first["model"]) == (
        "POST",
        "/v1/chat/completions",
        "gpt-4o",
    )
    assert (first["provider"], first["base_key_env"]) == ("openai", "OPENAI_KEY")
    assert first["upstream_url"] == mock_upstream_server.url
    assert (first["input_tokens"], first["output_tokens"]) == (MOCK_INPUT, MOCK_OUTPUT)
    assert first["cost_usd"] > 0 and first["duration_ms"] >= 0
    assert (first["remote_addr"], first["user_agent"]) == ("127.0.0.1", "log-test/1.0")
    assert first["upstream_request_id"] == ok.headers["x-request-id"] == "req_mock_1"  # 70
    assert first["upstream_id"] == ok.json()["id"]
    assert RFC3339_UTC.match(first["timestamp"])
    assert first["status_code"] == 200 and "error" not in first and "stream" not in first
    assert stream["stream"] is True and stream["output_tokens"] == MOCK_OUTPUT
    assert (rejected["status_code"], rejected["error"]) == (401, "invalid token")
    assert (error["status_code"], error["model"]) == (500, "fail-500")
    assert "request_body" not in first and "response_body" not in first
    text = buffer.getvalue()
    for secret in (token, "tkn_guess-me", "sk-real", "key=", "foo=bar", proxy.key.hash(token)):
        assert secret not in text, secret


async def test_request_log_is_off_by_default(
    proxy: Proxy, log_capture: Callable[[Proxy], io.StringIO]
) -> None:
    buffer = log_capture(proxy)
    token = proxy.token({"base_key_env": "OPENAI_KEY"})
    async with proxy.client() as client:
        assert await post(client, token) == 200
        await eventually(recorded(proxy, 1))
    assert request_lines(buffer) == []


@pytest.mark.parametrize(
    "logging_proxy", [("hide_token_hash", "request_body", "response_body")], indirect=True
)
async def test_request_log_can_hide_the_hash_and_add_the_bodies(
    logging_proxy: Proxy,
    mock_upstream_server: MockUpstream,
    log_capture: Callable[[Proxy], io.StringIO],
) -> None:
    proxy = logging_proxy
    buffer = log_capture(proxy)
    token = proxy.token({"base_key_env": "OPENAI_KEY"})
    async with proxy.client() as client:
        ok = await client.post("/v1/chat/completions", json=CHAT, headers={"x-api-key": token})
        await client.post(
            "/v1/chat/completions", json={**CHAT, "stream": True}, headers={"x-api-key": token}
        )
        await eventually(lambda: len(request_lines(buffer)) >= 2)
    buffered, streamed = request_lines(buffer)
    assert buffered["token_hash"] == streamed["token_hash"] == "****"
    assert json.loads(buffered["request_body"]) == CHAT
    assert buffered["response_body"] == ok.text
    assert json.loads(streamed["request_body"])["stream"] is True
    text = buffer.getvalue()
    for secret in (token, "sk-real", proxy.hash16(token)):
        assert secret not in text, secret


async def test_a_model_without_a_price_is_counted_as_unpriced_not_free(proxy: Proxy) -> None:
    token = proxy.token({"base_key_env": "OPENAI_KEY"})
    async with proxy.client() as client:
        response = await client.post(
            "/v1/chat/completions",
            json={"model": "no-such-priced-model", "messages": [{"role": "user", "content": "hi"}]},
            headers={"x-api-key": token},
        )
    assert response.status_code == 200
    await trio.testing.wait_all_tasks_blocked()
    totals = proxy.server.stats.snapshot()["totals"]
    assert totals["unpriced_count"] == 1 and totals["cost_usd"] == 0
