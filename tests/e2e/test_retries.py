"""`proxy.md` §7 scenarios 49-55 and 57 (retries, fallbacks, timeouts) through the real server,
plus every way an upstream can misbehave: 5xx, 429 with `Retry-After`, garbage, a dropped
connection, no answer at all.

Retries follow D10 (backoff with jitter, `Retry-After` honoured; fallbacks after a retryable
outcome also when `max_retries` is 0, each re-resolved and model-checked), timeouts D8/D9 (504,
policy `timeout` bounds connect + headers, streams use the idle timeout). Timing runs on Trio's
autojump clock, so "within the bound" is checked on virtual time without waiting.
"""

from __future__ import annotations

import itertools
import re
import socket
from functools import partial
from pathlib import Path
from typing import Any

import httpx2
import pytest
import trio
import trio.testing
from tests.support.mock_upstream import GARBAGE, MockUpstream, mock_upstream
from tests.support.proxy import Proxy, openai_error_message, settled, start_proxy

OPENAI = {"base_key_env": "OPENAI_KEY"}


@pytest.fixture
def autojump_clock() -> trio.testing.MockClock:
    return trio.testing.MockClock(autojump_threshold=0)


def chat(model: str, content: str = "hello", **extra: Any) -> dict[str, Any]:
    return {"model": model, "messages": [{"role": "user", "content": content}], **extra}


def retrying(**retry: Any) -> dict[str, Any]:
    return {**OPENAI, "retry": retry}


async def post(proxy: Proxy, token: str, body: dict[str, Any]) -> httpx2.Response:
    async with proxy.client() as client:
        return await client.post("/v1/chat/completions", json=body, headers={"x-api-key": token})


def mock_error(status: int, kind: str, model: str) -> dict[str, Any]:
    """The mock's own OpenAI-style error body, which the proxy must relay verbatim."""
    message = f"mock failure {status} for model {model}"
    return {"error": {"message": message, "type": kind, "param": None, "code": kind}}


def models(mock: MockUpstream) -> list[str]:
    return [r.json["model"] for r in mock.requests]


def gaps(mock: MockUpstream) -> list[float]:
    times = [r.time for r in mock.requests]
    return [b - a for a, b in itertools.pairwise(times)]


def closed_port_url() -> str:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}"


# ── §7 scenarios ─────────────────────────────────────────────────────────────────────────────


async def test_429_is_retried_after_retry_after_then_the_fallback_answers(
    proxy: Proxy, mock_upstream_server: MockUpstream, autojump_clock: trio.abc.Clock
) -> None:
    token = proxy.token(retrying(max_retries=1, fallbacks=["gpt-4o-mini"], retry_on=[429]))
    start = trio.current_time()
    response = await post(proxy, token, chat("fail-429"))
    assert response.status_code == 200, response.text
    assert response.json()["model"] == "gpt-4o-mini"
    assert models(mock_upstream_server) == ["fail-429", "fail-429", "gpt-4o-mini"]
    assert all(gap >= 1 for gap in gaps(mock_upstream_server))  # retry-after: 1, both times
    assert trio.current_time() - start < 3


async def test_flaky_500_succeeds_on_the_retry_with_the_same_client_request_id(
    proxy: Proxy, mock_upstream_server: MockUpstream, autojump_clock: trio.abc.Clock
) -> None:
    token = proxy.token(retrying(max_retries=1, retry_on=[500]))
    response = await post(proxy, token, chat("flaky-500"))
    assert response.status_code == 200, response.text
    ids = [r.headers["x-client-request-id"] for r in mock_upstream_server.requests]
    assert len(ids) == 2 and ids[0] == ids[1]
    # `req_`, not the original's `tkn_`, which collides with wrapper tokens (core.md §9 #31)
    assert re.fullmatch(r"req_[0-9a-f]{32}", ids[0])


async def test_503_on_every_attempt_relays_the_last_upstream_answer(
    proxy: Proxy, mock_upstream_server: MockUpstream, autojump_clock: trio.abc.Clock
) -> None:
    token = proxy.token(retrying(max_retries=2))
    start = trio.current_time()
    response = await post(proxy, token, chat("fail-503"))
    assert response.status_code == 503
    assert response.json() == mock_error(503, "overloaded_error", "fail-503")
    assert models(mock_upstream_server) == ["fail-503"] * 3
    assert trio.current_time() - start < 2  # jittered backoff: at most 0.5 s + 1 s


async def test_400_is_not_retried_and_is_relayed_verbatim(
    proxy: Proxy, mock_upstream_server: MockUpstream
) -> None:
    token = proxy.token(retrying(max_retries=2, fallbacks=["gpt-4o-mini"]))
    response = await post(proxy, token, chat("fail-400"))
    assert response.status_code == 400
    assert response.json() == mock_error(400, "invalid_request_error", "fail-400")
    assert response.headers["x-request-id"] == "req_mock_1"
    assert models(mock_upstream_server) == ["fail-400"]


async def test_fallback_is_used_after_a_retryable_answer_even_without_retries(
    proxy: Proxy, mock_upstream_server: MockUpstream, autojump_clock: trio.abc.Clock
) -> None:
    token = proxy.token(retrying(max_retries=0, fallbacks=["gpt-4o-mini"]))  # D10
    response = await post(proxy, token, chat("fail-429"))
    assert response.status_code == 200, response.text
    assert response.json()["model"] == "gpt-4o-mini"
    assert models(mock_upstream_server) == ["fail-429", "gpt-4o-mini"]
    assert gaps(mock_upstream_server)[0] >= 1  # the 429's retry-after


async def test_unreachable_query_auth_upstream_error_never_shows_the_key(
    mock_upstream_server: MockUpstream, tmp_path: Path, autojump_clock: trio.abc.Clock
) -> None:
    config = (
        "providers:\n  keyed:\n    upstream_url: " + closed_port_url() + "\n"
        "    api_key_env: OPENAI_KEY\n    auth_scheme: query\n"
    )
    async with start_proxy(tmp_path, mock_upstream_server.url, config=config) as proxy:
        token = proxy.token({**retrying(max_retries=1), "default_provider": "keyed"})
        response = await post(proxy, token, chat("gpt-4o"))
    message = openai_error_message(response, 502)
    assert message.startswith("upstream request failed after 2 attempts: ")
    assert "sk-real" not in response.text and "key=" not in response.text
    assert "127.0.0.1" not in message


async def test_policy_timeout_ends_a_silent_upstream_with_504_in_time(
    proxy: Proxy, mock_upstream_server: MockUpstream, autojump_clock: trio.abc.Clock
) -> None:
    token = proxy.token({**OPENAI, "timeout": 1, "max_tokens": 1000})
    start = trio.current_time()
    response = await post(proxy, token, chat("slow-3000"))
    elapsed = trio.current_time() - start
    assert openai_error_message(response, 504).startswith(
        "upstream request failed after 1 attempts: "
    )
    assert 1 <= elapsed < 2
    assert len(mock_upstream_server.requests) == 1
    await settled(proxy)
    assert proxy.server.deps.budgets.used(proxy.key.hash(token)).tokens == 0  # released


async def test_policy_timeout_does_not_cap_a_stream_that_keeps_sending(
    proxy: Proxy, autojump_clock: trio.abc.Clock
) -> None:
    token = proxy.token({**OPENAI, "timeout": 1})  # D9: connect + headers only
    start = trio.current_time()
    response = await post(proxy, token, chat("pace-1500", stream=True))
    assert response.status_code == 200
    assert response.text.rstrip().endswith("data: [DONE]")
    assert "stream broken" not in response.text
    assert trio.current_time() - start >= 6  # seven events 1.5 s apart


async def test_fallback_refused_by_the_model_check_is_not_sent(
    proxy: Proxy, mock_upstream_server: MockUpstream, autojump_clock: trio.abc.Clock
) -> None:
    policy = {**retrying(max_retries=1, fallbacks=["gpt-4o-mini"]), "model_regex": "^fail-"}
    token = proxy.token(policy)
    response = await post(proxy, token, chat("fail-503"))
    assert response.status_code == 503
    assert response.json() == mock_error(503, "overloaded_error", "fail-503")
    assert models(mock_upstream_server) == ["fail-503", "fail-503"]


async def test_fallback_is_re_resolved_to_its_own_provider_key_and_upstream(
    proxy: Proxy, mock_upstream_server: MockUpstream, autojump_clock: trio.abc.Clock
) -> None:
    async with mock_upstream() as second:
        provider = {"model_regex": "^llama", "base_key_env": "GROQ_KEY", "upstream_url": second.url}
        policy = {
            **retrying(fallbacks=["llama-3"]),
            "providers": {"second": [provider]},
        }
        token = proxy.token(policy)
        response = await post(proxy, token, chat("fail-502"))
    assert response.status_code == 200, response.text
    assert models(mock_upstream_server) == ["fail-502"]
    assert mock_upstream_server.requests[0].headers["authorization"] == "Bearer sk-real"
    assert models(second) == ["llama-3"]
    assert second.requests[0].headers["authorization"] == "Bearer gsk-real"


# ── every way an upstream can misbehave ─────────────────────────────────────────────────────


async def test_500_without_a_retry_policy_is_relayed_after_one_call(
    proxy: Proxy, mock_upstream_server: MockUpstream
) -> None:
    response = await post(proxy, proxy.token(OPENAI), chat("fail-500"))
    assert response.status_code == 500
    assert response.json() == mock_error(500, "api_error", "fail-500")
    assert models(mock_upstream_server) == ["fail-500"]


async def test_500_is_retried_with_backoff_then_falls_back(
    proxy: Proxy, mock_upstream_server: MockUpstream, autojump_clock: trio.abc.Clock
) -> None:
    token = proxy.token(retrying(max_retries=2, fallbacks=["echo"]))
    start = trio.current_time()
    response = await post(proxy, token, chat("fail-500", "say this"))
    assert response.status_code == 200, response.text
    assert response.json()["choices"][0]["message"]["content"] == "say this"
    assert models(mock_upstream_server) == ["fail-500"] * 3 + ["echo"]
    assert trio.current_time() - start < 4  # jitter caps: 0.5 + 1 + 2 s


async def test_garbage_200_is_relayed_unchanged_and_not_retried(
    proxy: Proxy, mock_upstream_server: MockUpstream
) -> None:
    token = proxy.token(retrying(max_retries=2, fallbacks=["gpt-4o-mini"]))
    response = await post(proxy, token, chat("garbage-gpt"))
    assert response.status_code == 200
    assert response.content == GARBAGE
    assert models(mock_upstream_server) == ["garbage-gpt"]
    await settled(proxy)
    used = proxy.server.deps.budgets.used(proxy.key.hash(token)).tokens
    assert used > 0  # no usage in the body: our input estimate is charged (D13)


async def test_connection_dropped_after_headers_is_a_502_json_error(
    proxy: Proxy, mock_upstream_server: MockUpstream, autojump_clock: trio.abc.Clock
) -> None:
    token = proxy.token({**OPENAI, "timeout": 5})
    start = trio.current_time()
    response = await post(proxy, token, chat("close_after_headers-gpt"))
    message = openai_error_message(response, 502)
    assert message.startswith("failed to read upstream response: ")
    assert trio.current_time() - start < 5
    assert len(mock_upstream_server.requests) == 1


async def test_connection_dropped_mid_stream_ends_the_stream_with_an_error_event(
    proxy: Proxy, mock_upstream_server: MockUpstream, autojump_clock: trio.abc.Clock
) -> None:
    token = proxy.token(OPENAI)
    response = await post(proxy, token, chat("close_after_headers-gpt", stream=True))
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/event-stream")
    last = response.text.strip().splitlines()[-1]
    assert last.startswith("data: ")
    error = httpx2.Response(200, content=last.removeprefix("data: ")).json()["error"]
    assert (error["type"], error["code"]) == ("tokenomics_error", 502)
    assert error["message"].startswith("stream broken: ")


async def test_unreachable_upstream_gives_502_after_every_attempt(
    proxy: Proxy, autojump_clock: trio.abc.Clock
) -> None:
    token = proxy.token({**retrying(max_retries=2), "upstream_url": closed_port_url()})
    start = trio.current_time()
    response = await post(proxy, token, chat("gpt-4o"))
    message = openai_error_message(response, 502)
    assert message == "upstream request failed after 3 attempts: could not connect to upstream"
    assert trio.current_time() - start < 2


async def test_retryable_answer_then_unreachable_fallback_is_a_502_naming_the_last_status(
    proxy: Proxy, mock_upstream_server: MockUpstream, autojump_clock: trio.abc.Clock
) -> None:
    provider = {
        "model_regex": "^llama",
        "base_key_env": "GROQ_KEY",
        "upstream_url": closed_port_url(),
    }
    policy = {**retrying(fallbacks=["llama-3"]), "providers": {"down": [provider]}}
    response = await post(proxy, proxy.token(policy), chat("fail-503"))
    message = openai_error_message(response, 502)  # not the 503's headers with an empty body (W-D6)
    assert message.startswith("upstream request failed after 2 attempts: ")
    assert "could not connect to upstream" in message and "503" in message
    assert models(mock_upstream_server) == ["fail-503"]


async def test_upstream_that_accepts_and_never_answers_times_out_every_attempt(
    proxy: Proxy, autojump_clock: trio.abc.Clock
) -> None:
    accepted: list[trio.SocketStream] = []

    async def hold(stream: trio.SocketStream) -> None:
        accepted.append(stream)
        await trio.sleep_forever()

    async with trio.open_nursery() as nursery:
        [listener] = await nursery.start(partial(trio.serve_tcp, hold, 0, host="127.0.0.1"))
        port = listener.socket.getsockname()[1]
        token = proxy.token(
            {**retrying(max_retries=1), "upstream_url": f"http://127.0.0.1:{port}", "timeout": 2}
        )
        start = trio.current_time()
        response = await post(proxy, token, chat("gpt-4o"))
        elapsed = trio.current_time() - start
        nursery.cancel_scope.cancel()
    assert openai_error_message(response, 504).startswith(
        "upstream request failed after 2 attempts: "
    )
    assert len(accepted) >= 1
    assert 4 <= elapsed < 5  # two 2 s attempts and at most 0.5 s of backoff


async def test_buffered_body_that_stops_mid_way_ends_after_the_policy_timeout(
    proxy: Proxy, autojump_clock: trio.abc.Clock
) -> None:
    async def stall(stream: trio.SocketStream) -> None:
        await stream.receive_some()
        head = b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: 100\r\n\r\n"
        await stream.send_all(head + b'{"id": "cut')
        await trio.sleep_forever()

    async with trio.open_nursery() as nursery:
        [listener] = await nursery.start(partial(trio.serve_tcp, stall, 0, host="127.0.0.1"))
        port = listener.socket.getsockname()[1]
        token = proxy.token({**OPENAI, "upstream_url": f"http://127.0.0.1:{port}", "timeout": 2})
        start = trio.current_time()
        response = await post(proxy, token, chat("gpt-4o"))
        elapsed = trio.current_time() - start
        nursery.cancel_scope.cancel()
    message = openai_error_message(response, 504)
    assert message == "failed to read upstream response: no data from upstream for 2s"
    assert 2 <= elapsed < 3


async def test_stream_that_stops_sending_ends_after_the_idle_timeout(
    mock_upstream_server: MockUpstream, tmp_path: Path, autojump_clock: trio.abc.Clock
) -> None:
    config = "server:\n  stream_idle_timeout: 2\n"
    async with start_proxy(tmp_path, mock_upstream_server.url, config=config) as proxy:
        token = proxy.token(OPENAI)
        start = trio.current_time()
        response = await post(proxy, token, chat("pace-10000", stream=True))
        elapsed = trio.current_time() - start
    assert response.status_code == 200
    assert "stream broken: no data from upstream for 2s" in response.text
    assert 2 <= elapsed < 3
