"""Bodies whose lists are not lists (`"messages": true`, `"input": 5`): the request is answered
whole, in its API family, and recorded. The format readers once iterated such a value when
the record estimated the input (no usage reported), raised after the reply's head had gone
out, and the client got a cut reply while the request went unrecorded."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import orjson
import pytest
from tests.support.proxy import start_proxy

CASES = [
    ("/v1/chat/completions", "OPENAI_KEY", {"model": "gpt-4o", "messages": True}),
    ("/v1/chat/completions", "OPENAI_KEY", {"model": "gpt-4o", "messages": 5}),
    ("/v1/chat/completions", "OPENAI_KEY",
     {"model": "gpt-4o", "messages": [{"role": "assistant", "tool_calls": 7}]}),
    ("/v1/responses", "OPENAI_KEY", {"model": "gpt-4o", "input": 5}),
    ("/v1/messages", "ANTHROPIC_KEY",
     {"model": "claude-sonnet-4-5", "max_tokens": 10, "messages": True}),
]  # fmt: skip


@pytest.mark.parametrize(("path", "key", "body"), CASES)
async def test_a_body_with_a_non_list_is_answered_whole_and_recorded(
    tmp_path: Path, path: str, key: str, body: dict[str, Any]
) -> None:
    async with start_proxy(tmp_path) as proxy, proxy.client() as client:
        token = proxy.token({"base_key_env": key})
        headers = {"authorization": f"Bearer {token}", "x-api-key": token}
        response = await client.post(path, json=body, headers=headers)
        assert response.status_code < 500, response.text
        assert isinstance(orjson.loads(response.content), dict)  # whole: it parses
        stats = (await client.get("/stats")).json()
    assert stats["totals"]["request_count"] == 1, stats
