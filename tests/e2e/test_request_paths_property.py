"""Issue 12.1, property-based: no spelling of an LLM route escapes enforcement, and the path the
upstream receives is exactly the path the request was classified on.

Paths are the LLM routes with characters percent-encoded (either hex case, or twice), letters
swapped in case, and `?`, `#`, `%2F`, dot segments, control characters, doubled slashes, `;`,
backslashes and non-ASCII text injected anywhere, trailing slashes added. Each is sent byte for
byte three times: with a token whose policy refuses the model, with one whose budget is spent,
and with an open one. The first two must never get a 2xx nor reach the upstream; the third
must reach the upstream on exactly the classified path, or be refused with a 400.

The proxy and the mock upstream run on their own Trio loop in a thread for the whole test;
each example talks to them over loopback from a fresh `trio.run`.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import unquote

import orjson
import pytest
import trio
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from tests.support.mock_upstream import mock_upstream
from tests.support.proxy import start_proxy
from tests.support.raw_http import RawReply, raw_request

from tokenomics.domain.errors import RefusedPath
from tokenomics.formats.classify import route_request

ROUTES = [
    "/v1/chat/completions",
    "/v1/completions",
    "/v1/responses",
    "/v1/embeddings",
    "/v1/messages",
    "/v1beta/models/gemini-2.0-flash:generateContent",
    "/v1beta/models/gemini-2.0-flash:streamGenerateContent",
    "/openai/deployments/gpt-4o/chat/completions",
    "/openai/deployments/gpt-4o/embeddings",
]
INJECTIONS = [
    "?", "#", "%3F", "%3f", "%23", "%2F", "%2f", "/..", "/.", "/%2e%2e", "/%2E.", "//", "/",
    "%00", "%0A", "%0d", "%7F", "%C2%85", "%09", "%20", "\\", "%5C", "%5c", ";x=1", "%3B",
    "%25", "%2523", "%252F", "%C3%A9", "%E2%88%95", "%EF%BC%8F", "%C3", "%G1", "{model}", "..",
]  # fmt: skip
MODES = ["upper", "lower", "double", "swapcase"]
# Every API family's fields in one body, so that each route (and every passthrough) names
# a model: the refusing policies must refuse all of them.
BODY = {
    "model": "gpt-4o",
    "messages": [{"role": "user", "content": "hello there"}],
    "max_tokens": 16,
    "input": "hello there",
    "prompt": "hello there",
    "contents": [{"parts": [{"text": "hello there"}]}],
}
POLICIES = {
    "refusing": {"base_key_env": "OPENAI_KEY", "model_regex": "^allowed-"},
    "spent": {"base_key_env": "OPENAI_KEY", "max_tokens": 1},
    "open": {"base_key_env": "OPENAI_KEY"},
}


def spell(char: str, mode: str) -> str:
    """`char` percent-encoded (upper or lower hex, or twice), or in the other case."""
    if mode == "upper":
        return f"%{ord(char):02X}"
    if mode == "lower":
        return f"%{ord(char):02x}"
    if mode == "double":
        return f"%25{ord(char):02X}"
    return char.swapcase()


@st.composite
def hostile_paths(draw: st.DrawFn) -> str:
    route = draw(st.sampled_from(ROUTES))
    spelled = list(route)
    for _ in range(draw(st.integers(0, 4))):
        at = draw(st.integers(0, len(route) - 1))
        spelled[at] = spell(route[at], draw(st.sampled_from(MODES)))
    path = "".join(spelled)
    for _ in range(draw(st.sampled_from([0, 0, 1, 1, 2, 3]))):
        at = draw(st.integers(0, len(path)))
        path = path[:at] + draw(st.sampled_from(INJECTIONS)) + path[at:]
    return path + draw(st.sampled_from(["", "", "/", "//"]))


@dataclass
class Running:
    proxy_url: str
    mock_url: str
    tokens: dict[str, str]


@pytest.fixture(scope="module")
def running(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Running]:
    """The proxy and the mock upstream, served by a Trio loop in a thread until the end."""
    root = tmp_path_factory.mktemp("paths")
    started = threading.Event()
    box: dict[str, Any] = {}

    async def serve() -> None:
        async with mock_upstream() as mock, start_proxy(Path(root), mock.url) as proxy:
            tokens = {name: proxy.token(policy) for name, policy in POLICIES.items()}
            box["running"] = Running(proxy.url, mock.url, tokens)
            box["stop"] = trio.Event()
            box["loop"] = trio.lowlevel.current_trio_token()
            started.set()
            await box["stop"].wait()

    thread = threading.Thread(target=trio.run, args=(serve,))
    thread.start()
    assert started.wait(60), "the proxy did not start"
    try:
        yield box["running"]
    finally:
        trio.from_thread.run_sync(box["stop"].set, trio_token=box["loop"])
        thread.join(60)


async def send(running: Running, target: str, token: str) -> RawReply:
    headers = {"authorization": f"Bearer {token}", "content-type": "application/json"}
    return await raw_request(
        running.proxy_url, "POST", target.encode(), headers, orjson.dumps(BODY)
    )


async def upstream_paths(running: Running) -> list[str]:
    """The paths the mock received since the last call, as sent (then cleared)."""
    seen = await raw_request(running.mock_url, "GET", b"/_requests", {})
    await raw_request(running.mock_url, "DELETE", b"/_requests", {})
    records = seen.json()
    assert isinstance(records, list)
    return [str(record["path"]) for record in records]


async def check(running: Running, target: str) -> None:
    for name in ("refusing", "spent"):
        reply = await send(running, target, running.tokens[name])
        assert not 200 <= reply.status < 300, (name, target, reply.body)
        assert await upstream_paths(running) == [], (name, target)
    reply = await send(running, target, running.tokens["open"])
    if "#" in target:  # not a valid request-target (RFC 9112 §3.2): refused by the server
        assert reply.status == 400, (target, reply.body)
        assert await upstream_paths(running) == [], target
        return
    raw_path, _, query = target.partition("?")
    try:
        route = route_request("POST", raw_path, {"content-type": "application/json"})
    except RefusedPath:
        assert reply.status == 400, (target, reply.body)
        assert await upstream_paths(running) == [], target
        return
    (seen,) = await upstream_paths(running)
    seen_path, _, seen_query = seen.partition("?")
    assert unquote(seen_path) == route.path, (target, seen)  # what the upstream decodes
    assert seen_query == query, (target, seen)


@settings(
    max_examples=150,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(target=hostile_paths())
def test_no_spelling_of_an_llm_route_escapes_enforcement(running: Running, target: str) -> None:
    trio.run(check, running, target)


def test_the_strategy_reaches_the_llm_routes_and_the_refusals() -> None:
    """The generated paths cover both outcomes: classified LLM routes and refused paths."""
    kinds: set[str] = set()

    @settings(max_examples=300, database=None, derandomize=True)
    @given(target=hostile_paths())
    def collect(target: str) -> None:
        try:
            route = route_request("POST", target.partition("?")[0], {})
        except RefusedPath:
            kinds.add("refused")
            return
        kinds.add(route.kind)

    collect()
    assert {"refused", "openai_chat", "anthropic_messages", "gemini_generate"} <= kinds
