"""A bug in a request's finish (pricing, settling, recording) after its reply's head went out:
the client still gets the whole reply, the parallel slot is let go, the exchange is recorded
with its error where that can still be done, and the bug is logged. Once, such a bug cut the
reply short and left the request unrecorded (and its `max_parallel` slot taken for good)."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any, NoReturn

import orjson
import pytest
from tests.support.proxy import start_proxy

import tokenomics.pipeline.finish
import tokenomics.services.recorder

CHAT = {"model": "gpt-4o", "messages": [{"role": "user", "content": "hi"}]}
POLICY = {"base_key_env": "OPENAI_KEY", "rate_limit": {"max_parallel": 1}}


def _bug(*args: Any) -> NoReturn:
    raise ZeroDivisionError("a bug of ours")


async def _two_requests(tmp_path: Path, stream: bool) -> tuple[list[bytes], dict[str, Any]]:
    """Two requests in turn on a `max_parallel: 1` token: the second is admitted only if the
    first let its slot go. Their bodies and the stats after."""
    async with start_proxy(tmp_path) as proxy, proxy.client() as client:
        headers = {"authorization": f"Bearer {proxy.token(POLICY)}"}
        bodies = []
        for _ in range(2):
            response = await client.post(
                "/v1/chat/completions", json={**CHAT, "stream": stream}, headers=headers
            )
            assert response.status_code == 200, response.text
            bodies.append(response.content)
        stats = (await client.get("/stats")).json()
    return bodies, stats


@pytest.mark.parametrize("stream", [False, True])
async def test_a_bug_before_the_settle_leaves_the_reply_whole_and_the_request_recorded(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture,
    stream: bool,
) -> None:  # fmt: skip
    monkeypatch.setattr(tokenomics.pipeline.finish, "cost_usd", _bug)
    with caplog.at_level(logging.ERROR, "tokenomics.server"):
        bodies, stats = await _two_requests(tmp_path, stream)
    for body in bodies:
        if stream:
            assert body.rstrip().endswith(b"data: [DONE]"), body
        else:
            assert orjson.loads(body)["choices"], body  # whole: it parses
    assert stats["totals"]["request_count"] == 2, stats
    assert stats["totals"]["error_count"] == 2, stats  # recorded with their error
    failures = [r for r in caplog.records if "finishing it failed" in r.getMessage()]
    assert len(failures) == 2 and failures[0].exc_info is not None


async def test_a_bug_in_the_record_is_logged_and_not_recorded_twice(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setattr(tokenomics.services.recorder, "from_exchange", _bug)
    with caplog.at_level(logging.ERROR, "tokenomics.server"):
        bodies, stats = await _two_requests(tmp_path, stream=False)
    assert all(orjson.loads(body)["choices"] for body in bodies)
    # The statistics took each request before the record failed: counted once, not again.
    assert stats["totals"]["request_count"] == 2, stats
    assert len([r for r in caplog.records if "finishing it failed" in r.getMessage()]) == 2
