"""OpenTelemetry export (issue 20 part 3) through the real server: every request becomes a span
with the GenAI attributes and ours, received by an in-process OTLP/HTTP receiver; a collector
that is down, or answers 503 for a while, never affects the requests (drops and failures are
counted in `/metrics`); spans still queued at shutdown are sent by the final flush.
"""

from __future__ import annotations

import socket
import subprocess
from pathlib import Path
from typing import Any

import httpx2
import orjson
import pytest
import trio
import trio.testing
from tests.support.otlp_receiver import OtlpReceiver, attributes, otlp_receiver
from tests.support.proxy import Proxy, settled, start_proxy

from tokenomics.config.prices import load_prices

POLICY = {"base_key_env": "MOCK_KEY", "default_provider": "mock"}
TRACE, PARENT = "4bf92f3577b34da6a3ce929d0e0e4736", "00f067aa0ba902b7"


@pytest.fixture
def autojump_clock() -> trio.testing.MockClock:
    return trio.testing.MockClock(autojump_threshold=0)


def git_repo(work: Path, branch: str) -> str:
    work.mkdir(parents=True, exist_ok=True)
    git = ["git", "-c", "user.name=t", "-c", "user.email=t@example.com"]
    subprocess.run([*git, "init", "-q", "-b", branch], cwd=work, check=True)
    subprocess.run([*git, "commit", "-q", "--allow-empty", "-m", "x"], cwd=work, check=True)
    sha = subprocess.run(
        ["git", "rev-parse", "--short", "HEAD"],
        cwd=work,
        check=True,
        capture_output=True,
        text=True,
    )
    return sha.stdout.strip()


def chat(model: str, text: str = "hello there world") -> dict[str, Any]:
    return {"model": model, "messages": [{"role": "user", "content": text}]}


async def wait_for_spans(receiver: OtlpReceiver, count: int) -> list[dict[str, Any]]:
    with trio.fail_after(60):
        return await receiver.wait_for_spans(count)


def metric(proxy_metrics: str, name: str) -> int:
    line = next(x for x in proxy_metrics.splitlines() if x.startswith(name + " "))
    return int(line.split()[1])


async def get_metrics(proxy: Proxy) -> str:
    async with proxy.client() as client:
        response = await client.get("/metrics")
    assert response.status_code == 200
    return response.text


async def test_each_request_is_a_span_with_the_genai_attributes(tmp_path: Path) -> None:
    # a real clock: git's calls are bounded in time, which an autojump clock would cut short
    commit = git_repo(tmp_path / "work", "feature/otlp")
    async with otlp_receiver() as receiver:
        config = (
            f"otlp:\n  endpoint: {receiver.url}\n  headers: {{x-collector-key: s3cret}}\n"
            "  service_name: agent-gateway\n"
        )
        async with start_proxy(tmp_path, config=config) as proxy:
            token = proxy.token(POLICY)
            headers = {"authorization": f"Bearer {token}"}
            async with proxy.client() as client:
                traced = {**headers, "traceparent": f"00-{TRACE}-{PARENT}-01",
                          "x-openclaw-agent-id": "coder-7"}  # fmt: skip
                ok = await client.post("/v1/chat/completions", json=chat("gpt-4"), headers=traced)
                streamed = await client.post(
                    "/v1/messages", headers=headers,
                    json={**chat("claude-sonnet-4-5"), "max_tokens": 100, "stream": True},
                )  # fmt: skip
                failed = await client.post(
                    "/v1/chat/completions", json=chat("fail-400-x"), headers=headers
                )
                anonymous = await client.post("/v1/chat/completions", json=chat("gpt-4"))
            assert (ok.status_code, streamed.status_code) == (200, 200)
            assert (failed.status_code, anonymous.status_code) == (400, 401)
            spans = await wait_for_spans(receiver, 3)
            session_id = proxy.server.session_id
            hash16 = proxy.hash16(token)
            metrics = await get_metrics(proxy)
    assert len(spans) == 3  # the unauthenticated request is not exported
    assert metric(metrics, "tokenomics_otlp_spans_dropped_total") == 0
    statistics = proxy.server.stats.otlp
    assert statistics is not None and statistics().exported == 3  # read after the shutdown
    assert all(r.path == "/v1/traces" and r.headers["x-collector-key"] == "s3cret"
               for r in receiver.requests)  # fmt: skip
    raw = b"".join(orjson.dumps(r.body) for r in receiver.requests)
    assert token.encode() not in raw and proxy.key.hash(token).encode() not in raw
    resource = attributes(receiver.requests[0].body["resourceSpans"][0]["resource"]["attributes"])
    assert resource["service.name"] == "agent-gateway"

    by_name = {span["name"]: span for span in spans}
    assert set(by_name) == {"chat gpt-4", "chat claude-sonnet-4-5", "chat fail-400-x"}
    first = by_name["chat gpt-4"]
    assert (first["traceId"], first["parentSpanId"], first["kind"]) == (TRACE, PARENT, 3)
    assert "status" not in first
    assert int(first["endTimeUnixNano"]) >= int(first["startTimeUnixNano"])
    values = attributes(first["attributes"])
    price = load_prices({}).lookup("gpt-4")
    assert price is not None
    # the mock: 3 words + 3 per message in; "Mock reply to: hello there world" out (6 words)
    assert values["tokenomics.cost_usd"] == pytest.approx(
        (6 * price.input + 6 * price.output) / 1e6
    )
    assert {k: v for k, v in values.items() if k != "tokenomics.cost_usd"} == {
        "gen_ai.operation.name": "chat",
        "gen_ai.system": "mock",
        "gen_ai.provider.name": "mock",
        "gen_ai.request.model": "gpt-4",
        "gen_ai.response.model": "gpt-4",
        "gen_ai.response.id": values["gen_ai.response.id"],
        "gen_ai.response.finish_reasons": ["stop"],
        "gen_ai.usage.input_tokens": 6,
        "gen_ai.usage.output_tokens": 6,
        "http.request.method": "POST",
        "http.response.status_code": 200,
        "tokenomics.token_hash": hash16,
        "tokenomics.provider": "mock",
        "tokenomics.stream": False,
        "tokenomics.estimated": False,
        "tokenomics.metadata.agent_id": "coder-7",
        "tokenomics.run.id": session_id,
        "vcs.ref.head.name": "feature/otlp",
        "vcs.ref.head.revision": commit,
        "tokenomics.git.branch": "feature/otlp",
        "tokenomics.git.commit": commit,
    }
    assert values["gen_ai.response.id"]
    second = attributes(by_name["chat claude-sonnet-4-5"]["attributes"])
    assert second["tokenomics.stream"] is True and second["gen_ai.usage.output_tokens"] == 6
    assert by_name["chat claude-sonnet-4-5"]["traceId"] != TRACE
    error = by_name["chat fail-400-x"]
    assert error["status"]["code"] == 2 and error["status"]["message"]
    assert attributes(error["attributes"])["error.type"] == "400"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def test_a_collector_that_is_down_never_affects_the_requests(
    tmp_path: Path, autojump_clock: trio.abc.Clock
) -> None:
    config = f"otlp:\n  endpoint: http://127.0.0.1:{free_port()}\n  queue_size: 2\n"
    async with start_proxy(tmp_path, config=config) as proxy:
        token = proxy.token(POLICY)
        headers = {"x-api-key": token}
        async with proxy.client() as client:
            first = await client.post("/v1/chat/completions", json=chat("gpt-4"), headers=headers)
            # the exporter takes it, waits a batch's second, fails and backs off (0.5 + 1 + 2 +
            # 4 s): meanwhile the queue of 2 fills and the rest is dropped, never waited for
            await trio.sleep(2)
            started = trio.current_time()
            statuses = [
                (
                    await client.post("/v1/chat/completions", json=chat("gpt-4"), headers=headers)
                ).status_code
                for _ in range(10)
            ]
            assert trio.current_time() - started < 0.5  # not slowed by the dead collector
        await settled(proxy)
        await trio.sleep(30)  # the two queued are tried (and given up) too
        metrics = await get_metrics(proxy)
    assert first.status_code == 200 and statuses == [200] * 10
    assert metric(metrics, "tokenomics_otlp_spans_dropped_total") == 8
    assert metric(metrics, "tokenomics_otlp_spans_failed_total") == 3
    assert metric(metrics, "tokenomics_otlp_spans_exported_total") == 0
    assert metric(metrics, "tokenomics_otlp_queue") == 0


async def test_a_collector_that_never_answers_costs_the_requests_and_the_shutdown_nothing(
    tmp_path: Path, autojump_clock: trio.abc.Clock
) -> None:
    async with otlp_receiver() as receiver:
        receiver.hang = True
        config = f"otlp:\n  endpoint: {receiver.url}\n  timeout: 3\n"
        async with start_proxy(tmp_path, config=config) as proxy:
            token = proxy.token(POLICY)
            async with proxy.client() as client:
                for _ in range(2):
                    response = await client.post(
                        "/v1/chat/completions", json=chat("gpt-4"), headers={"x-api-key": token}
                    )
                    assert response.status_code == 200
                await trio.sleep(1.5)  # the batch is out, its first attempt hangs
                response = await client.post(
                    "/v1/chat/completions", json=chat("gpt-4"), headers={"x-api-key": token}
                )
                assert response.status_code == 200
            statistics = proxy.server.stats.otlp
            assert statistics is not None
            stopping = trio.current_time()
        # shutdown: the batch in hand and the queued span get one more bounded attempt
        assert trio.current_time() - stopping <= 5 + 11  # final flush + the server's grace
    assert statistics().failed == 3 and statistics().exported == 0 and receiver.requests == []


async def test_a_collector_answering_503_for_a_while_gets_the_spans_after_retries(
    tmp_path: Path, autojump_clock: trio.abc.Clock
) -> None:
    async with otlp_receiver() as receiver:
        receiver.fail_with = [503, 503, 429]
        config = f"otlp:\n  endpoint: {receiver.url}/v1/traces\n"
        async with start_proxy(tmp_path, config=config) as proxy:
            token = proxy.token(POLICY)
            async with proxy.client() as client:
                for _ in range(3):
                    response = await client.post(
                        "/v1/chat/completions", json=chat("gpt-4"), headers={"x-api-key": token}
                    )
                    assert response.status_code == 200
            spans = await wait_for_spans(receiver, 3)
            await trio.testing.wait_all_tasks_blocked()  # the exporter has read the answer
            statistics = proxy.server.stats.otlp
            assert statistics is not None
            assert (statistics().exported, statistics().failed) == (3, 0)
    assert len(spans) == 3 and receiver.fail_with == []


async def test_spans_queued_at_shutdown_are_flushed(
    tmp_path: Path, autojump_clock: trio.abc.Clock
) -> None:
    async with otlp_receiver() as receiver:
        config = f"otlp:\n  endpoint: {receiver.url}\n"
        async with start_proxy(tmp_path, config=config) as proxy:
            token = proxy.token(POLICY)
            async with proxy.client() as client:
                response = await client.post(
                    "/v1/chat/completions", json=chat("gpt-4"), headers={"x-api-key": token}
                )
            assert response.status_code == 200
            await settled(proxy)
            assert receiver.spans() == []  # still gathering its batch
        assert len(receiver.spans()) == 1


async def test_no_endpoint_no_exporter(proxy: Proxy) -> None:
    assert proxy.server.stats.otlp is None
    async with httpx2.AsyncClient(base_url=proxy.url) as client:
        text = (await client.get("/metrics")).text
    assert "tokenomics_otlp" not in text
