"""Hostile clients, generated: whatever path, auth form, header or body a token holder sends,
a request the policy refuses never gets a 2xx, no secret (the real upstream key, the wrapper
token) comes back in any reply, log, memory file or ledger record, and the server stays healthy.

One real server (in-process, on a thread of its own) and one in-process mock upstream serve
every generated example; hypothesis drives a plain synchronous HTTP client against them.
"""

from __future__ import annotations

import queue
import secrets
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx2
import pytest
import trio
import trio.lowlevel
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from tests.support.mock_upstream import MockUpstream, mock_upstream
from tests.support.proxy import Proxy, start_proxy

UPSTREAM_KEY = "sk-hostile-" + secrets.token_hex(16)
ALLOWED = "gpt-4o-mini"
REFUSED = "gpt-4.1"  # outside the policy's model_regex
POLICY = {
    "base_key_env": "OPENAI_KEY",
    "model_regex": f"^{ALLOWED}$",
    "rules": [{"type": "keyword", "keywords": ["forbidden-word"], "action": "fail"}],
}
CONFIG = "ledger:\n  memory: true\nlogging:\n  file:\n    enabled: true\n"


@dataclass(repr=False)  # a failing example prints the test's arguments: keep it short
class Live:
    proxy: Proxy
    mock: MockUpstream
    token: str
    root: Path
    trio_token: trio.lowlevel.TrioToken


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Live]:
    """The server runs in its own Trio loop on a thread until the module's tests are done."""
    root = tmp_path_factory.mktemp("hostile")
    ready: queue.Queue[Live | BaseException] = queue.Queue()
    stop = threading.Event()

    async def serve() -> None:
        async with (
            mock_upstream() as mock,
            start_proxy(root, mock.url, env={"OPENAI_KEY": UPSTREAM_KEY}, config=CONFIG) as proxy,
        ):
            token = proxy.token(POLICY)
            ready.put(Live(proxy, mock, token, root, trio.lowlevel.current_trio_token()))
            await trio.to_thread.run_sync(stop.wait)

    def main() -> None:
        try:
            trio.run(serve)
        except BaseException as exc:  # handed to the test thread, which raises it
            ready.put(exc)

    thread = threading.Thread(target=main, daemon=True)
    thread.start()
    started = ready.get(timeout=60)
    if isinstance(started, BaseException):
        raise started
    try:
        yield started
    finally:
        stop.set()
        thread.join(timeout=30)


# ── what a hostile client sends ─────────────────────────────────────────────────────────────

# Token counting routes are left out: they are served after auth and rate limit alone (D5).
ROUTES = (
    "/v1/chat/completions",
    "/v1/completions",
    "/v1/responses",
    "/v1/embeddings",
    "/v1/messages",
    f"/v1beta/models/{REFUSED}:generateContent",
    f"/v1beta/models/{REFUSED}:streamGenerateContent",
    f"/openai/deployments/{REFUSED}/chat/completions",
    "/v1/models",
    "/v1/some/passthrough",
)
# What may be spliced into a path, raw or percent-encoded in its several spellings.
SPLICES = ("?", "#", "/", "..", "%", "\x00", "\r\n", "\\", ";", " ", ".", "//", "é")


def _encodings(text: str) -> st.SearchStrategy[str]:
    once = quote(text, safe="")
    return st.sampled_from(
        [
            text,
            once,
            once.lower(),
            quote(once, safe=""),
            "".join(f"%{b:02X}" for b in text.encode()),
        ]
    )


@st.composite
def hostile_paths(draw: st.DrawFn) -> str:
    path = draw(st.sampled_from(ROUTES))
    for _ in range(draw(st.integers(0, 2))):
        at = draw(st.integers(0, len(path)))
        splice = draw(st.sampled_from(SPLICES).flatmap(_encodings))
        path = path[:at] + splice + path[at:]
    if draw(st.booleans()):
        path += draw(st.sampled_from(["/", "%2F", "%23", "%3F", "?beta=true", "//"]))
    return path if path.startswith("/") else "/" + path


def _auth(token: str, form: str) -> tuple[dict[str, str], str]:
    return {
        "x-api-key": ({"x-api-key": token}, ""),
        "bearer": ({"authorization": f"Bearer {token}"}, ""),
        "raw": ({"authorization": token}, ""),
        "goog": ({"x-goog-api-key": token}, ""),
        "api-key": ({"api-key": token}, ""),
        "query": ({}, f"key={token}"),
    }[form]


AUTH_FORMS = st.sampled_from(["x-api-key", "bearer", "raw", "goog", "api-key", "query"])
TEXTS = st.sampled_from(["hello", "say forbidden-word now", "FORBIDDEN-WORD", "x" * 10])


@st.composite
def refused_bodies(draw: st.DrawFn) -> dict[str, Any]:
    """A body that names the refused model, in one of the families' shapes."""
    text = draw(TEXTS)
    shape = draw(st.sampled_from(["chat", "responses", "anthropic", "gemini", "embeddings"]))
    body: dict[str, Any] = {
        "chat": {"model": REFUSED, "messages": [{"role": "user", "content": text}]},
        "responses": {"model": REFUSED, "input": text},
        "anthropic": {
            "model": REFUSED,
            "max_tokens": 16,
            "messages": [{"role": "user", "content": text}],
        },
        "gemini": {"model": REFUSED, "contents": [{"parts": [{"text": text}]}]},
        "embeddings": {"model": REFUSED, "input": text},
    }[shape]
    if draw(st.booleans()):
        body["stream"] = True
    return body


EXTRA_HEADERS = st.dictionaries(
    st.sampled_from(
        [
            "x-forwarded-for",
            "x-real-ip",
            "anthropic-version",
            "x-http-method-override",
            "transfer-encoding",
            "content-encoding",
            "host",
            "x-tokenomics-model",
        ]
    ),
    st.sampled_from(["127.0.0.1", "2023-06-01", "GET", "gzip", "chunked", "localhost", ALLOWED]),
    max_size=3,
)


# ── the properties ──────────────────────────────────────────────────────────────────────────


def _secrets(live: Live) -> tuple[str, ...]:
    return (UPSTREAM_KEY, live.token)


def _assert_no_secret(text: str, live: Live, where: str) -> None:
    for secret in _secrets(live):
        assert secret not in text, f"a secret reached {where}"


@settings(
    max_examples=150,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    path=hostile_paths(),
    form=AUTH_FORMS,
    body=refused_bodies(),
    extra=EXTRA_HEADERS,
)
def test_refused_request_never_succeeds_nor_leaks(
    live: Live, path: str, form: str, body: dict[str, Any], extra: dict[str, str]
) -> None:
    headers, query = _auth(live.token, form)
    headers = {**extra, **headers, "content-type": "application/json"}
    headers.pop("transfer-encoding", None)  # the client frames the body itself
    headers.pop("content-encoding", None)
    url = live.proxy.url + path + ("?" + query if query else "")
    with httpx2.Client(timeout=30) as client:
        try:
            response = client.post(url, json=body, headers=headers)
        except httpx2.InvalidURL:
            return  # the client itself refused to send it
    assert not 200 <= response.status_code < 300, (path, response.status_code, response.text)
    _assert_no_secret(response.text, live, "a reply body")
    _assert_no_secret(repr(response.headers.multi_items()), live, "a reply header")


def test_after_the_hostile_run_the_server_is_healthy_and_nothing_leaked(live: Live) -> None:
    with httpx2.Client(base_url=live.proxy.url, timeout=30) as client:
        assert client.get("/health").status_code == 200
        allowed = {"model": ALLOWED, "messages": [{"role": "user", "content": "hello"}]}
        ok = client.post("/v1/chat/completions", json=allowed, headers={"x-api-key": live.token})
        assert ok.status_code == 200, ok.text
    # No refused request reached the upstream, and no wrapper token in any form did.
    assert live.mock.requests, "the allowed request reached the upstream"
    for request in live.mock.requests:
        assert REFUSED not in request.path
        assert not isinstance(request.json, dict) or request.json.get("model") != REFUSED
        assert live.token not in request.path
        assert live.token not in repr(request.headers)
    for file in live.root.rglob("*"):
        if file.is_file() and ".venv" not in file.parts:
            _assert_no_secret(file.read_bytes().decode("utf-8", "replace"), live, str(file))
