"""`tokenomics remote` refuses to serve without an API key (D20) unless told to, and then only
on loopback; in-process, the server answers the spec's scenario 110."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import httpx2
import trio
from tests.conftest import Result

from tokenomics.config.loader import load_settings
from tokenomics.domain.tokens import HashKey
from tokenomics.remote_app import run_remote, split_addr


def test_no_api_key_is_refused(cli: Callable[..., Result]) -> None:
    done = cli("remote", "--addr", "127.0.0.1:0")
    assert done.code == 1
    assert "the remote server needs an API key: export TOKENOMICS_REMOTE_API_KEY" in done.err


def test_no_auth_only_on_loopback(cli: Callable[..., Result]) -> None:
    done = cli("remote", "--addr", "0.0.0.0:0", "--insecure-no-auth")
    assert done.code == 1
    assert "--insecure-no-auth serves only on a loopback address, not 0.0.0.0:0" in done.err


def test_addresses() -> None:
    assert split_addr(":9090") == ("127.0.0.1", 9090)
    assert split_addr("[::1]:80") == ("::1", 80)
    assert split_addr("0.0.0.0:1") == ("0.0.0.0", 1)


async def test_health_list_and_auth_in_process(tmp_path: Path) -> None:
    settings = load_settings(cwd=tmp_path, home=tmp_path, environ={"TOKENOMICS_DIR": str(tmp_path)})
    async with trio.open_nursery() as nursery:
        server = await nursery.start(
            lambda task_status: run_remote(
                settings, {}, HashKey(b"k"), addr="127.0.0.1:0", api_key="k", client_ttl=60,
                task_status=task_status,
            )
        )  # fmt: skip
        url = server.urls[0]
        async with httpx2.AsyncClient() as client:
            assert (await client.get(url + "/health")).json() == {"status": "ok"}
            assert (await client.get(url + "/api/v1/tokens")).status_code == 401
            wrong = await client.get(url + "/api/v1/tokens", headers={"authorization": "Bearer x"})
            assert (wrong.status_code, wrong.json()) == (403, {"error": "invalid api key"})
            auth = {"authorization": "Bearer k"}
            made = await client.post(
                url + "/api/v1/tokens", json={"policy": '{"base_key_env":"OPENAI_API_KEY"}'},
                headers=auth,
            )  # fmt: skip
            assert made.status_code == 201 and made.json()["token"].startswith("tkn_")
            listed = await client.get(url + "/api/v1/tokens", headers=auth)
            assert listed.headers["content-type"] == "application/json"
            assert [set(t) for t in listed.json()] == [{"token_hash", "policy", "created_at"}]
            missing = await client.delete(url + "/api/v1/tokens/" + "0" * 64, headers=auth)
            assert (missing.status_code, missing.json()) == (404, {"error": "token not found"})
        server.shutdown()
