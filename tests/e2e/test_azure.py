"""Azure OpenAI through the proxy (issue 21, issue 12 items 2 and 9).

Azure serves the deployment named in the path (`/openai/deployments/{name}/…`), so that name is
the model for the policy check, routing, budget and ledger. Its clients send their key in an
`api-key` header: the wrapper token is accepted there and never forwarded. The real
`AzureOpenAI` client runs in-process against the mock upstream, and as the child of `run`.
"""

from __future__ import annotations

import json
import os
import textwrap
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import openai
import pytest
from tests.cli.test_run import MOCK_POLICY, PY, summary, tokenomics
from tests.conftest import Result
from tests.support.mock_upstream import MockUpstream
from tests.support.proxy import Proxy, openai_error_message, settled, start_proxy

VERSION = "2024-10-21"
HI: Any = [{"role": "user", "content": "hi"}]
AZURE_KEY = "azure-real-key"
# One deployment family allowed; the other provider's models would go elsewhere.
POLICY = {"providers": {"azure_openai": [{"model_regex": "^gpt-4o", "base_key_env": "AZURE_KEY"}]}}


def chat_path(deployment: str) -> str:
    return f"/openai/deployments/{deployment}/chat/completions?api-version={VERSION}"


@pytest.fixture
async def azure(tmp_path: Path, mock_upstream_server: MockUpstream) -> AsyncIterator[Proxy]:
    """The proxy with the `azure_openai` provider pointed at the mock upstream."""
    config = f"providers:\n  azure_openai:\n    upstream_url: {mock_upstream_server.url}\n"
    config += "    api_key_env: AZURE_KEY\n    auth_scheme: header\n    auth_header: api-key\n"
    async with start_proxy(
        tmp_path, mock_upstream_server.url, env={"AZURE_KEY": AZURE_KEY}, config=config
    ) as proxy:
        yield proxy


async def test_the_token_in_an_api_key_header_is_accepted_and_not_forwarded(
    azure: Proxy, mock_upstream_server: MockUpstream
) -> None:
    token = azure.token(POLICY)
    async with azure.client() as client:
        response = await client.post(
            chat_path("gpt-4o"), json={"messages": HI}, headers={"api-key": token}
        )
    assert response.status_code == 200, response.text
    (seen,) = mock_upstream_server.requests
    assert seen.headers["api-key"] == AZURE_KEY
    assert token not in str(seen.headers) and "authorization" not in seen.headers
    assert seen.path == chat_path("gpt-4o")


async def test_the_deployment_not_the_body_model_is_checked(
    azure: Proxy, mock_upstream_server: MockUpstream
) -> None:
    """Item 2: an allowed `model` in the body does not unlock another deployment."""
    token = azure.token({"base_key_env": "AZURE_KEY", "model_regex": "^gpt-4o-mini$"})
    async with azure.client() as client:
        response = await client.post(
            chat_path("gpt-4o"),
            json={"model": "gpt-4o-mini", "messages": HI},
            headers={"authorization": f"Bearer {token}"},
        )
    message = openai_error_message(response, 403)
    assert message == 'model "gpt-4o" does not match policy regex "^gpt-4o-mini$"'
    assert mock_upstream_server.requests == []


async def test_the_deployment_is_the_model_upstream_and_in_the_records(
    azure: Proxy, mock_upstream_server: MockUpstream
) -> None:
    token = azure.token({"base_key_env": "AZURE_KEY", "model_regex": "^gpt-4o-mini$"})
    async with azure.client() as client:
        response = await client.post(
            chat_path("gpt-4o-mini"),
            json={"model": "gpt-4o", "messages": HI},
            headers={"api-key": token},
        )
    assert response.status_code == 200, response.text
    (seen,) = mock_upstream_server.requests
    assert seen.json["model"] == "gpt-4o-mini"  # the body agrees with the deployment served
    await settled(azure)
    models = azure.server.stats.snapshot()["by_model_and_key"]
    assert [m["model"] for m in models] == ["gpt-4o-mini"]


async def test_the_deployment_chooses_the_provider_policy_and_its_budget(
    azure: Proxy, mock_upstream_server: MockUpstream
) -> None:
    policy = {
        "providers": {
            "azure_openai": [
                {"model": "tiny", "base_key_env": "AZURE_KEY", "max_tokens": 1},
                {"model_regex": "^gpt-4o", "base_key_env": "AZURE_KEY"},
            ]
        }
    }
    token = azure.token(policy)
    async with azure.client() as client:
        over = await client.post(
            chat_path("tiny"), json={"messages": HI}, headers={"api-key": token}
        )
        fine = await client.post(
            chat_path("gpt-4o"), json={"model": "tiny", "messages": HI}, headers={"api-key": token}
        )
    assert openai_error_message(over, 429).startswith("budget exceeded")
    assert fine.status_code == 200, fine.text
    assert [r.json["model"] for r in mock_upstream_server.requests] == ["gpt-4o"]


@pytest.mark.parametrize(
    ("path", "body", "status", "shape"),
    [
        ("/v1/chat/completions", {"model": "claude-3", "messages": HI}, 403, "openai"),
        ("/v1/messages", {"model": "claude-3", "max_tokens": 9, "messages": HI}, 403, "anthropic"),
        (chat_path("o1-pro"), {"messages": HI}, 403, "openai"),
        ("/v1/chat/completions", {"model": 4, "messages": HI}, 400, "openai"),
        ("/v1/messages", {"model": None, "max_tokens": 9, "messages": HI}, 400, "anthropic"),
    ],
)
async def test_a_model_no_provider_policy_matches_is_refused_not_a_500(
    azure: Proxy,
    mock_upstream_server: MockUpstream,
    path: str,
    body: Any,
    status: int,
    shape: str,
) -> None:
    """Item 9: a policy of provider policies only has no key for other models."""
    token = azure.token(POLICY)
    async with azure.client() as client:
        response = await client.post(path, json=body, headers={"x-api-key": token})
    assert response.status_code == status, response.text
    error = response.json()
    assert ("type" in error and error["type"] == "error") == (shape == "anthropic")
    assert mock_upstream_server.requests == []


@pytest.fixture
async def azure_client(azure: Proxy) -> AsyncIterator[openai.AsyncAzureOpenAI]:
    token = azure.token(POLICY)
    async with openai.AsyncAzureOpenAI(
        azure_endpoint=azure.url, api_key=token, api_version=VERSION, max_retries=0, timeout=30
    ) as client:
        yield client


async def test_the_azure_sdk_chat_buffered_and_streamed_and_embeddings(
    azure_client: openai.AsyncAzureOpenAI, azure: Proxy, mock_upstream_server: MockUpstream
) -> None:
    completion = await azure_client.chat.completions.create(model="gpt-4o", messages=HI)
    assert completion.choices[0].message.content == "Mock reply to: hi"
    stream = await azure_client.chat.completions.create(model="gpt-4o", messages=HI, stream=True)
    text = "".join([c.choices[0].delta.content or "" async for c in stream if c.choices])
    assert text == "Mock reply to: hi"
    embedded = await azure_client.embeddings.create(model="gpt-4o-embed", input="hello")
    assert embedded.data[0].embedding
    with pytest.raises(openai.PermissionDeniedError):
        await azure_client.chat.completions.create(model="o1-pro", messages=HI)
    paths = [r.path.split("?")[0] for r in mock_upstream_server.requests]
    assert paths == [
        "/openai/deployments/gpt-4o/chat/completions",
        "/openai/deployments/gpt-4o/chat/completions",
        "/openai/deployments/gpt-4o-embed/embeddings",
    ]
    assert {r.headers["api-key"] for r in mock_upstream_server.requests} == {AZURE_KEY}
    await settled(azure)
    assert azure.server.stats.snapshot()["totals"]["request_count"] == 4


AZURE_SCRIPT = textwrap.dedent(
    """
    import openai

    client = openai.AzureOpenAI()  # AZURE_OPENAI_* and OPENAI_API_VERSION from `run`
    hi = [{"role": "user", "content": "hello azure"}]
    print(client.chat.completions.create(model="mock-gpt", messages=hi).choices[0].message.content)
    stream = client.chat.completions.create(model="mock-gpt", messages=hi, stream=True)
    print("".join(c.choices[0].delta.content or "" for c in stream if c.choices))
    print(len(client.embeddings.create(model="mock-gpt", input="hello").data))
    """
)


@pytest.mark.slow
def test_the_azure_sdk_works_as_the_child_of_run(cli: Callable[..., Result], work: Path) -> None:
    """Issue 21: `run --provider azure_openai` and the `AzureOpenAI` client, end to end."""
    created = cli("token", "create", "--policy", MOCK_POLICY, "--json")
    assert created.code == 0, created.err
    token = json.loads(created.out)["token"]
    (work / "app.py").write_text(AZURE_SCRIPT)
    env = {"TOKENOMICS_KEY": token, "PATH": f"{Path(PY).parent}{os.pathsep}{os.environ['PATH']}"}
    result = tokenomics("run", "--provider", "azure_openai", "python3", "app.py", env=env)
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == ["Mock reply to: hello azure"] * 2 + ["1"]
    assert summary(result.stderr).startswith("tokenomics: 3 requests, ")
