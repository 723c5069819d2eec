"""Issue 12.1: the route is decided on exactly the path that goes upstream.

Request targets are sent byte for byte (`raw_request`): an encoded `#`, `?`, `/`, `..` or a
double encoding must never turn an LLM route into an unenforced passthrough that still reaches
the LLM endpoint upstream. Paths whose decoding is ambiguous are refused with 400 in the
client's API family; passthrough requests that name a model are model-checked and budgeted.
"""

from __future__ import annotations

from typing import Any

import orjson
import pytest
from tests.support.mock_upstream import MockUpstream
from tests.support.proxy import Proxy
from tests.support.raw_http import RawReply, raw_request

CHAT = {"model": "gpt-4o", "messages": [{"role": "user", "content": "hello there"}]}
MESSAGES = {**CHAT, "model": "claude-3-opus", "max_tokens": 64}
GEMINI = {"contents": [{"parts": [{"text": "hello there"}]}]}
REFUSING = {"base_key_env": "OPENAI_KEY", "model_regex": "^allowed-"}
EXHAUSTED = {"base_key_env": "OPENAI_KEY", "max_tokens": 1}


async def post(proxy: Proxy, target: str, token: str, body: Any) -> RawReply:
    headers = {"authorization": f"Bearer {token}", "content-type": "application/json"}
    return await raw_request(proxy.url, "POST", target.encode(), headers, orjson.dumps(body))


def error_shape(reply: RawReply) -> str:
    """The API family an error body is shaped for."""
    body = reply.json()
    assert isinstance(body, dict)
    if body.get("type") == "error":
        return "anthropic"
    return "gemini" if "status" in body["error"] else "openai"


REFUSED_PATHS = [
    ("/v1/chat/completions%23", CHAT, "openai"),
    ("/v1/chat/completions%3F", CHAT, "openai"),
    ("/v1/chat/completions%3f", CHAT, "openai"),
    ("/v1/chat/completions#", CHAT, "openai"),
    ("/v1/messages%3Fbeta=true", MESSAGES, "anthropic"),
    ("/v1beta/models/gemini-2.0-flash:generateContent%3F", GEMINI, "gemini"),
    ("/v1/chat%2Fcompletions", CHAT, "openai"),
    ("/v1/chat%2fcompletions", CHAT, "openai"),
    ("/v1/chat/completion%2573", CHAT, "openai"),  # double encoding of "s"
    ("/v1/x/%2e%2e/chat/completions", CHAT, "openai"),
    ("/v1/x/../chat/completions", CHAT, "openai"),
    ("/v1/x/./chat/completions", CHAT, "openai"),
    ("/v1/chat/completions%00", CHAT, "openai"),
    ("/v1/chat/completions%0A", CHAT, "openai"),
    ("/v1/chat/completions%20", CHAT, "openai"),
    ("/v1/chat\\completions", CHAT, "openai"),
    ("/v1/chat%5Ccompletions", CHAT, "openai"),
    ("/v1/chat/completions;x=1", CHAT, "openai"),
    ("/v1/chat/completions%3Bx=1", CHAT, "openai"),
    ("/v1/chat/completions%C3", CHAT, "openai"),  # not UTF-8
    ("/v1/chat/completions%zz", CHAT, "openai"),
    ("/v1/{model}/chat/completions", CHAT, "openai"),
    ("http://evil.example/v1/chat/completions", CHAT, "openai"),
]


@pytest.mark.parametrize(("target", "body", "family"), REFUSED_PATHS)
async def test_an_ambiguous_path_is_refused_in_the_clients_family(
    proxy: Proxy, mock_upstream_server: MockUpstream, target: str, body: Any, family: str
) -> None:
    token = proxy.token(REFUSING)
    reply = await post(proxy, target, token, {**body, "model": "gpt-4o"})
    assert reply.status == 400, reply.body
    assert error_shape(reply) == family
    assert mock_upstream_server.requests == []


@pytest.mark.parametrize(
    "target",
    [
        "/v1/chat/%63ompletions",  # an encoded letter is the same path
        "//v1/chat/completions",
        "/v1//chat//completions",
        "/v1/chat/completions/",
        "/v1/chat/completions//",
    ],
)
async def test_an_equivalent_spelling_of_a_chat_path_is_still_enforced(
    proxy: Proxy, mock_upstream_server: MockUpstream, target: str
) -> None:
    token = proxy.token(REFUSING)
    reply = await post(proxy, target, token, CHAT)
    assert reply.status == 403, reply.body
    assert b"does not match policy regex" in reply.body
    assert mock_upstream_server.requests == []


async def test_a_decoded_path_is_what_goes_upstream(
    proxy: Proxy, mock_upstream_server: MockUpstream
) -> None:
    token = proxy.token({"base_key_env": "OPENAI_KEY"})
    reply = await post(proxy, "/v1//chat/%63ompletions/", token, CHAT)
    assert reply.status == 200, reply.body
    (seen,) = mock_upstream_server.requests
    assert seen.path == "/v1/chat/completions"


async def test_passthrough_naming_a_refused_model_is_403(
    proxy: Proxy, mock_upstream_server: MockUpstream
) -> None:
    token = proxy.token(REFUSING)
    reply = await post(proxy, "/v1/fine_tuning/jobs", token, {"model": "gpt-4o"})
    assert reply.status == 403, reply.body
    assert mock_upstream_server.requests == []


async def test_passthrough_naming_a_model_is_budgeted(
    proxy: Proxy, mock_upstream_server: MockUpstream
) -> None:
    token = proxy.token(EXHAUSTED)
    reply = await post(proxy, "/v1/fine_tuning/jobs", token, {"model": "gpt-4o"})
    assert reply.status == 429, reply.body
    assert b"budget exceeded" in reply.body
    assert mock_upstream_server.requests == []


async def test_passthrough_naming_a_model_by_its_path_is_model_checked(
    proxy: Proxy, mock_upstream_server: MockUpstream
) -> None:
    """Gemini's other model actions (`:embedContent`) name the model in the path."""
    token = proxy.token(REFUSING)
    reply = await post(proxy, "/v1beta/models/gemini-x:embedContent", token, GEMINI)
    assert reply.status == 403, reply.body
    assert error_shape(reply) == "gemini"
    assert mock_upstream_server.requests == []


async def test_passthrough_without_a_model_still_passes(
    proxy: Proxy, mock_upstream_server: MockUpstream
) -> None:
    token = proxy.token(REFUSING)
    reply = await raw_request(proxy.url, "GET", b"/v1/models", {"authorization": f"Bearer {token}"})
    assert reply.status == 200, reply.body
    assert [r.path for r in mock_upstream_server.requests] == ["/v1/models"]


async def test_a_non_string_model_is_400(proxy: Proxy, mock_upstream_server: MockUpstream) -> None:
    token = proxy.token({"base_key_env": "OPENAI_KEY"})
    for target in ("/v1/chat/completions", "/v1/fine_tuning/jobs"):
        reply = await post(proxy, target, token, {**CHAT, "model": ["gpt-4o"]})
        assert reply.status == 400, reply.body
        assert reply.json() == {
            "error": {
                "message": '"model" must be a string',
                "type": "tokenomics_error",
                "code": 400,
            }
        }
    assert mock_upstream_server.requests == []


async def test_a_tuned_gemini_model_is_model_checked(
    proxy: Proxy, mock_upstream_server: MockUpstream
) -> None:
    token = proxy.token(REFUSING)
    for action in ("generateContent", "embedContent"):
        reply = await post(proxy, f"/v1beta/tunedModels/my-tune:{action}", token, GEMINI)
        assert reply.status == 403, reply.body
    assert mock_upstream_server.requests == []
