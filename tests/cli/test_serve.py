"""`tokenomics serve` as a real subprocess: listening line, /ping and /health (`cli.md` §10
scenario 7), a proxied request, a token created while it runs (scenario 19), graceful SIGTERM,
the clear one-line errors (busy port, no hash key), and the HTTPS listener with the generated CA.
The upstream is the built-in mock provider, so no network is needed."""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import ssl
import subprocess
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import httpx2
import pytest
import trio

CHAT = {"model": "gpt-4o", "messages": [{"role": "user", "content": "hi"}]}
SERVE = [sys.executable, "-m", "tokenomics", "serve"]
LISTENING = re.compile(r"Tokenomics listening on (.+)")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def serve_env(home: Path, **extra: str) -> dict[str, str]:
    """The parent's environment (the `isolated` fixture removed TOKENOMICS_*) plus the server's."""
    return {
        **os.environ,
        "HOME": str(home),
        "TOKENOMICS_HASH_KEY": "serve-test-key",
        "TOKENOMICS_SERVER_HTTP_PORT": str(free_port()),
        "TOKENOMICS_SERVER_TLS_ENABLED": "false",
        "TOKENOMICS_SERVER_UPSTREAM_URL": "mock://tokenomics",
        "OPENAI_KEY": "sk-real",
        **extra,
    }


class Served:
    """A running `serve` process and everything it wrote to stderr so far."""

    def __init__(self, process: trio.Process) -> None:
        self.process = process
        self.stderr = ""
        self.urls: list[str] = []

    async def read_until(self, pattern: re.Pattern[str], seconds: float = 30) -> re.Match[str]:
        assert self.process.stderr is not None
        with trio.fail_after(seconds):
            while not (found := pattern.search(self.stderr)):
                chunk = await self.process.stderr.receive_some()
                if not chunk:
                    raise AssertionError(f"serve ended before {pattern.pattern!r}:\n{self.stderr}")
                self.stderr += chunk.decode()
        return found

    async def wait(self, seconds: float) -> int:
        """Wait for the exit (reading stderr to the end); returns the exit code."""
        assert self.process.stderr is not None
        with trio.fail_after(seconds):
            while chunk := await self.process.stderr.receive_some():
                self.stderr += chunk.decode()
            return await self.process.wait()


@asynccontextmanager
async def spawn(env: dict[str, str], cwd: Path, *args: str) -> AsyncIterator[Served]:
    process = await trio.lowlevel.open_process(
        [*SERVE, *args], env=env, cwd=cwd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )  # fmt: skip
    try:
        yield Served(process)
    finally:
        if process.returncode is None:
            process.kill()
        with trio.CancelScope(shield=True):
            await process.wait()


@asynccontextmanager
async def serving(env: dict[str, str], cwd: Path) -> AsyncIterator[Served]:
    """`serve`, started and listening (`.urls`)."""
    async with spawn(env, cwd) as served:
        served.urls = (await served.read_until(LISTENING)).group(1).split(", ")
        yield served


def create_token(env: dict[str, str], cwd: Path) -> str:
    created = subprocess.run(
        [sys.executable, "-m", "tokenomics", "token", "create", "--json",
         "--policy", '{"base_key_env":"OPENAI_KEY"}'],
        capture_output=True, text=True, env=env, cwd=cwd, timeout=30, check=False,
    )  # fmt: skip
    assert created.returncode == 0, created.stderr
    token: str = json.loads(created.stdout)["token"]
    return token


async def test_serve_answers_ping_health_and_proxies_with_a_token_created_meanwhile(
    home: Path, work: Path
) -> None:
    env = serve_env(home)
    port = env["TOKENOMICS_SERVER_HTTP_PORT"]
    async with serving(env, work) as served:
        assert served.urls == [f"http://127.0.0.1:{port}"]  # D21: loopback by default
        async with httpx2.AsyncClient(base_url=served.urls[0], timeout=10) as client:
            ping = await client.get("/ping")
            health = await client.get("/health")
            assert (ping.status_code, ping.text) == (200, ".")
            assert health.status_code == 200 and health.json() == {"status": "ok"}
            token = await trio.to_thread.run_sync(create_token, env, work)
            created = trio.current_time()
            while True:  # the running server notices the new token within ~1 s (D4)
                response = await client.post(
                    "/v1/chat/completions", json=CHAT, headers={"authorization": f"Bearer {token}"}
                )
                if response.status_code != 401 or trio.current_time() - created > 3:
                    break
                await trio.sleep(0.1)
        assert response.status_code == 200, response.text
        assert response.json()["choices"][0]["message"]["content"] == "Mock reply to: hi"
        served.process.send_signal(signal.SIGTERM)
        assert await served.wait(15) == 0
    assert "SIGTERM: shutting down" in served.stderr
    assert "Traceback" not in served.stderr
    assert token not in served.stderr and "sk-real" not in served.stderr


async def test_sigterm_lets_the_in_flight_request_finish_then_exits_0(
    home: Path, work: Path
) -> None:
    env = serve_env(home, TOKENOMICS_SERVER_SHUTDOWN_GRACE="5")
    token = create_token(env, work)
    async with serving(env, work) as served:
        url = served.urls[0]
        result: dict[str, httpx2.Response] = {}

        async def slow_request() -> None:
            async with httpx2.AsyncClient(base_url=url, timeout=10) as client:
                result["response"] = await client.post(
                    "/v1/chat/completions",
                    json={**CHAT, "model": "slow-1500-gpt"},
                    headers={"x-api-key": token},
                )

        async with trio.open_nursery() as nursery:
            started = trio.current_time()
            nursery.start_soon(slow_request)
            async with httpx2.AsyncClient(base_url=url, timeout=10) as probe:
                with trio.fail_after(5):  # until the request is being served
                    while True:
                        metrics = await probe.get("/metrics")
                        if "tokenomics_in_flight 1" in metrics.text:
                            break
                        await trio.sleep(0.02)
            assert trio.current_time() - started < 1.5
            signalled = trio.current_time()
            served.process.send_signal(signal.SIGTERM)
            code = await served.wait(10)
            exited = trio.current_time()
        response = result["response"]
        assert response.status_code == 200, response.text
        assert response.json()["choices"][0]["message"]["content"] == "Mock reply to: hi"
        assert code == 0, served.stderr
        assert exited - started >= 1.5  # it waited for the request...
        assert exited - signalled < 5  # ...within the grace period
    assert "Traceback" not in served.stderr


async def test_busy_port_is_one_clear_error_and_exit_1(home: Path, work: Path) -> None:
    env = serve_env(home)
    port = int(env["TOKENOMICS_SERVER_HTTP_PORT"])
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", port))
        holder.listen()
        async with spawn(env, work) as served:
            code = await served.wait(30)
    assert code == 1
    (line,) = served.stderr.splitlines()
    assert line.startswith(f"Error: cannot listen on 127.0.0.1:{port}: the port is already in use")


async def test_host_and_port_flags_win_over_the_configuration(home: Path, work: Path) -> None:
    env = serve_env(home)
    port = free_port()
    async with spawn(env, work, "--host", "127.0.0.1", f"--port={port}") as served:
        urls = (await served.read_until(LISTENING)).group(1).split(", ")
        assert urls == [f"http://127.0.0.1:{port}"]
        served.process.terminate()
        assert await served.wait(30) == 0


async def test_a_bad_port_flag_is_named_in_the_error(home: Path, work: Path) -> None:
    async with spawn(serve_env(home), work, "--port", "70000") as served:
        assert await served.wait(30) == 1
    assert "server.http_port: 70000 must be a port number" in served.stderr
    assert "(flag --port)" in served.stderr


async def test_missing_hash_key_is_one_clear_error_and_exit_1(home: Path, work: Path) -> None:
    env = serve_env(home)
    del env["TOKENOMICS_HASH_KEY"]
    async with spawn(env, work) as served:
        code = await served.wait(30)
    assert code == 1
    (line,) = served.stderr.splitlines()
    assert line.startswith("Error: the token hash key is not set: export TOKENOMICS_HASH_KEY")
    assert not (home / ".tokenomics" / "tokenomics.db").exists()  # refused before anything


async def test_https_listener_works_with_the_generated_ca_as_trust_root(
    home: Path, work: Path
) -> None:
    https_port = free_port()
    env = serve_env(
        home, TOKENOMICS_SERVER_TLS_ENABLED="true", TOKENOMICS_SERVER_HTTPS_PORT=str(https_port)
    )
    token = create_token(env, work)
    async with serving(env, work) as served:
        plain_port = env["TOKENOMICS_SERVER_HTTP_PORT"]
        assert set(served.urls) == {
            f"https://127.0.0.1:{https_port}",
            f"http://127.0.0.1:{plain_port}",
        }
        ca = home / ".tokenomics" / "certs" / "ca.crt"
        trust = ssl.create_default_context(cafile=str(ca))
        async with httpx2.AsyncClient(verify=trust, timeout=10) as client:
            for host in ("127.0.0.1", "localhost"):
                ping = await client.get(f"https://{host}:{https_port}/ping")
                assert (ping.status_code, ping.text) == (200, "."), host
            response = await client.post(
                f"https://127.0.0.1:{https_port}/v1/chat/completions",
                json=CHAT,
                headers={"x-api-key": token},
            )
        assert response.status_code == 200, response.text
        async with httpx2.AsyncClient(timeout=10) as untrusting:
            with pytest.raises(httpx2.ConnectError):
                await untrusting.get(f"https://127.0.0.1:{https_port}/ping")
        served.process.send_signal(signal.SIGTERM)
        assert await served.wait(15) == 0
