"""The provider key we inject never comes back out (issue 12, item 3): an upstream that echoes
the request (the mock's `reflect` model: path and headers in the body and in `x-echo-*`
headers) has every form of the key scrubbed before the client, the memory files, the session
ledger and the log see it: buffered, streamed (one byte per chunk: the key is split at every
position), error replies (retried or relayed), `?key=` auth, and the client's own token."""

from __future__ import annotations

import io
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx2
import pytest
import trio
import trio.testing
from tests.support.mock_upstream import MockUpstream
from tests.support.proxy import Proxy, start_proxy

KEY = "sk-proj-Ab3+d/e=F_0123456789xyz"  # `+`, `/`, `=`: percent-encoded, it changes
FORMS = (KEY, quote(KEY, safe=""), quote(KEY, safe="").lower(), KEY.replace("/", "\\/"))
CONFIG = """providers:
  querykey:
    upstream_url: {url}
    api_key_env: OPENAI_KEY
    auth_scheme: query
"""


def policy(root: Path, **extra: Any) -> dict[str, Any]:
    memory = {"enabled": True, "file_path": str(root / "mem"), "file_name": "{token_hash}.md"}
    return {"base_key_env": "OPENAI_KEY", "memory": memory, **extra}


def chat(model: str, *, stream: bool = False) -> dict[str, Any]:
    return {"model": model, "stream": stream, "messages": [{"role": "user", "content": "hi"}]}


def assert_clean(text: str) -> None:
    for form in FORMS:
        assert form not in text


def written(root: Path) -> str:
    """Every file the stopped server wrote: session ledger (with its communication events),
    memory files."""
    files = [p for p in root.rglob("*") if p.is_file() and "work" not in p.parts]
    return "".join(p.read_text("utf-8", "replace") for p in files)


async def through_proxy(
    root: Path,
    mock: MockUpstream,
    log_capture: Callable[[Proxy], io.StringIO],
    body: dict[str, Any],
    *,
    policy_extra: dict[str, Any] | None = None,
    headers: dict[str, str] | None = None,
) -> tuple[httpx2.Response, str, str]:
    """One request through a proxy that then stops: (response, what it wrote, its log)."""
    env = {"OPENAI_KEY": KEY, "TOKENOMICS_LEDGER_EVENT_LEDGER": "true"}
    async with start_proxy(root, mock.url, env=env, config=CONFIG.format(url=mock.url)) as proxy:
        log = log_capture(proxy)
        token = proxy.token(policy(root, **(policy_extra or {})))
        async with proxy.client() as client:
            response = await client.post(
                "/v1/chat/completions", json=body, headers={"x-api-key": token, **(headers or {})}
            )
        await trio.testing.wait_all_tasks_blocked()
    return response, written(root), log.getvalue()


def assert_reflected_and_scrubbed(response: httpx2.Response, files: str, log: str) -> None:
    assert "[REDACTED]" in response.text
    assert_clean(response.text)
    assert_clean(repr(response.headers.multi_items()))
    assert response.headers["x-echo-authorization"] == "Bearer [REDACTED]"
    if response.status_code == 200:
        assert "| response |" in files  # memory has the reply, scrubbed
        assert "Bearer [REDACTED]" in files
    assert_clean(files)
    assert_clean(log)


@pytest.mark.parametrize("model", ["reflect-gpt-4o", "reflect-fail-400", "reflect-fail-503"])
async def test_an_echoed_key_is_scrubbed_from_a_buffered_reply(
    tmp_path: Path,
    mock_upstream_server: MockUpstream,
    log_capture: Callable[[Proxy], io.StringIO],
    autojump_clock: trio.abc.Clock,
    model: str,
) -> None:
    retry = {"retry": {"max_retries": 1}}  # a 503 is retried, then relayed
    response, files, log = await through_proxy(
        tmp_path, mock_upstream_server, log_capture, chat(model), policy_extra=retry
    )
    assert response.status_code == int(model.rpartition("-")[2] if "fail" in model else 200)
    assert '"authorization":"Bearer [REDACTED]"' in response.text
    assert_reflected_and_scrubbed(response, files, log)


async def test_a_key_echoed_one_byte_per_chunk_is_scrubbed_from_a_stream(
    tmp_path: Path, mock_upstream_server: MockUpstream, log_capture: Callable[[Proxy], io.StringIO]
) -> None:
    response, files, log = await through_proxy(
        tmp_path, mock_upstream_server, log_capture, chat("reflect-gpt-4o", stream=True)
    )
    assert response.status_code == 200
    assert response.text.startswith('data: {"path":')
    assert response.text.rstrip().endswith("data: [DONE]")
    assert '"authorization":"Bearer [REDACTED]"' in response.text
    assert_reflected_and_scrubbed(response, files, log)


async def test_a_percent_encoded_query_key_is_scrubbed(
    tmp_path: Path, mock_upstream_server: MockUpstream, log_capture: Callable[[Proxy], io.StringIO]
) -> None:
    response, files, log = await through_proxy(
        tmp_path, mock_upstream_server, log_capture, chat("reflect-gpt-4o"),
        policy_extra={"default_provider": "querykey"},
    )  # fmt: skip
    (seen,) = mock_upstream_server.requests
    assert seen.path.endswith("?key=" + quote(KEY, safe=""))  # what an echo would show
    assert response.status_code == 200
    assert response.headers["x-echo-path"] == "/v1/chat/completions?key=[REDACTED]"
    assert "[REDACTED]" in response.json()["path"]
    assert_clean(response.text + files + log)


async def test_the_clients_own_token_is_scrubbed_if_an_upstream_saw_it(
    tmp_path: Path, mock_upstream_server: MockUpstream, log_capture: Callable[[Proxy], io.StringIO]
) -> None:
    async with start_proxy(tmp_path, mock_upstream_server.url, env={"OPENAI_KEY": KEY}) as proxy:
        token = proxy.token(policy(tmp_path))
        async with proxy.client() as client:
            headers = {"authorization": f"Bearer {token}", "x-my-copy": token}
            response = await client.post(
                "/v1/chat/completions", json=chat("reflect-gpt-4o"), headers=headers
            )
    assert mock_upstream_server.requests[0].headers["x-my-copy"] == token
    assert response.headers["x-echo-x-my-copy"] == "[REDACTED]"
    assert token not in response.text and "[REDACTED]" in response.text


async def test_a_body_in_a_coding_we_do_not_undo_keeps_its_content_encoding(
    proxy: Proxy, mock_upstream_server: MockUpstream
) -> None:
    token = proxy.token({"base_key_env": "OPENAI_KEY"})
    async with (
        proxy.client() as client,
        client.stream(
            "POST", "/v1/chat/completions", json=chat("br-gpt-4o"), headers={"x-api-key": token}
        ) as response,
    ):
        raw = b"".join([chunk async for chunk in response.aiter_raw()])
    assert response.status_code == 200
    assert response.headers["content-encoding"] == "br"
    assert raw.startswith(b'{"id":')  # the mock's bytes, as sent
    assert int(response.headers["content-length"]) == len(raw)
