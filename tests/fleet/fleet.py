"""Real `tokenomics remote` and `tokenomics serve` processes on loopback, for fleet tests."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tests.support.daemons import free_port

HASH_KEY = "fleet-test-hash-key"
API_KEY = "fleet-api-key-0123456789"
SECRET = "push-secret"
SIGNING_KEY = "push-signing-key"
POLICY = {"base_key_env": "OPENAI_API_KEY", "upstream_url": "mock://tokenomics"}


def http(
    method: str, url: str, body: Any = None, headers: dict[str, str] | None = None
) -> tuple[int, Any, dict[str, str]]:
    data = json.dumps(body).encode() if body is not None and not isinstance(body, bytes) else body
    request = urllib.request.Request(url, data=data, method=method, headers=headers or {})
    if data is not None:
        request.add_header("content-type", "application/json")
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            raw, status, got = response.read(), response.status, dict(response.headers)
    except urllib.error.HTTPError as exc:
        raw, status, got = exc.read(), exc.code, dict(exc.headers)
    return (
        status,
        (json.loads(raw) if raw.strip() else None),
        {k.lower(): v for k, v in got.items()},
    )


def wait_for(check: Callable[[], bool], seconds: float, step: float = 0.02) -> float:
    """Seconds until `check()` held; AssertionError after `seconds`."""
    start = time.monotonic()
    while not check():
        if time.monotonic() - start > seconds:
            raise AssertionError(f"not within {seconds}s")
        time.sleep(step)
    return time.monotonic() - start


@dataclass
class Process:
    popen: subprocess.Popen[str]
    port: int
    log: Path

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def stop(self) -> None:
        if self.popen.poll() is None:
            self.popen.terminate()
            try:
                self.popen.wait(15)
            except subprocess.TimeoutExpired:
                self.popen.kill()
                self.popen.wait()

    def text(self) -> str:
        return self.log.read_text()


@dataclass
class Fleet:
    root: Path
    processes: list[Process] = field(default_factory=list)
    envs: dict[str, dict[str, str]] = field(default_factory=dict)  # of the processes started

    def env(self, name: str, **extra: str) -> dict[str, str]:
        clean = {k: v for k, v in os.environ.items() if not k.startswith("TOKENOMICS_")}
        return {**clean, "HOME": str(self.root / name), "TOKENOMICS_HASH_KEY": HASH_KEY,
                "TOKENOMICS_DIR": str(self.root / name / "data"), "OPENAI_API_KEY": "sk-real",
                "TOKENOMICS_LOGGING_FORMAT": "text", **extra}  # fmt: skip

    def spawn(self, name: str, args: list[str], env: dict[str, str], port: int) -> Process:
        (self.root / name).mkdir(parents=True, exist_ok=True)
        self.envs[name] = env
        log = self.root / f"{name}.log"
        popen = subprocess.Popen(
            [sys.executable, "-m", "tokenomics", *args], env=env, cwd=self.root / name,
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=log.open("w"), text=True,
        )  # fmt: skip
        process = Process(popen, port, log)
        self.processes.append(process)
        wait_for(lambda: _health(process), 30, 0.05)
        return process

    def remote(self, port: int = 0) -> Process:
        port = port or free_port()
        env = self.env("central", TOKENOMICS_REMOTE_API_KEY=API_KEY)
        return self.spawn("central", ["remote", "--addr", f"127.0.0.1:{port}"], env, port)

    def proxy(self, name: str, central: str, *, sync: int, push: bool, **extra: str) -> Process:
        port = free_port()
        env = self.env(name, TOKENOMICS_SERVER_HTTP_PORT=str(port),
                       TOKENOMICS_SERVER_TLS_ENABLED="false", TOKENOMICS_LEDGER_ENABLED="false",
                       TOKENOMICS_REMOTE_URL=central, TOKENOMICS_REMOTE_API_KEY=API_KEY,
                       TOKENOMICS_REMOTE_SYNC=str(sync), **extra)  # fmt: skip
        if push:
            env |= {"TOKENOMICS_REMOTE_WEBHOOK_ENABLED": "true",
                    "TOKENOMICS_REMOTE_WEBHOOK_SECRET": SECRET,
                    "TOKENOMICS_REMOTE_WEBHOOK_SIGNING_KEY": SIGNING_KEY,
                    "TOKENOMICS_REMOTE_WEBHOOK_AUTO_REGISTER": "true",
                    "TOKENOMICS_REMOTE_WEBHOOK_CALLBACK_URL":
                        f"http://127.0.0.1:{port}/v1/webhook"}  # fmt: skip
        return self.spawn(name, ["serve"], env, port)

    def stop_all(self) -> None:
        for process in self.processes:
            process.stop()


def _health(process: Process) -> bool:
    if process.popen.poll() is not None:
        raise AssertionError(f"exited {process.popen.returncode}:\n{process.text()}")
    try:
        return http("GET", process.url + "/health")[0] == 200
    except OSError:
        return False


def central_call(central: Process, method: str, path: str, body: Any = None) -> tuple[int, Any]:
    status, data, _ = http(method, central.url + path, body, {"authorization": f"Bearer {API_KEY}"})
    return status, data


def chat(proxy: Process, token: str) -> int:
    body = {"model": "mock-gpt", "messages": [{"role": "user", "content": "hi"}]}
    headers = {"authorization": f"Bearer {token}"}
    return http("POST", proxy.url + "/v1/chat/completions", body, headers)[0]
