"""A real central server (`tokenomics remote`) and real proxies (`tokenomics serve`) on
loopback: token changes reach every proxy by push and by poll, deletions included; the fleet
survives the central server going away; the API, the webhook and synced policies are guarded.
Latencies are printed (run with -s to see them)."""

from __future__ import annotations

import hashlib
import hmac
import json
import subprocess
import sys
import time
import urllib.request
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from tests.fleet.fleet import (
    API_KEY,
    POLICY,
    SECRET,
    SIGNING_KEY,
    Fleet,
    Process,
    central_call,
    chat,
    http,
    wait_for,
)

pytestmark = pytest.mark.slow
POLL = 1  # remote.sync of the polling proxy, seconds


@pytest.fixture
def fleet(tmp_path: Path) -> Iterator[Fleet]:
    runner = Fleet(tmp_path)
    yield runner
    runner.stop_all()


def cli(fleet: Fleet, name: str, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "tokenomics", *args], env=fleet.envs.get(name, fleet.env(name)) | env,
        cwd=fleet.root / name, capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip


def converge(
    proxies: dict[str, Process], token: str, status: int, seconds: float
) -> dict[str, float]:
    """Seconds until each proxy answers `status` for `token`."""
    return {
        name: wait_for(lambda p=p: chat(p, token) == status, seconds) for name, p in proxies.items()
    }


def test_changes_reach_both_proxies_by_push_and_by_poll(fleet: Fleet) -> None:
    central = fleet.remote()
    pushed = fleet.proxy("pushed", central.url, sync=3600, push=True)
    polled = fleet.proxy("polled", central.url, sync=POLL, push=False)
    both = {"push": pushed, "poll": polled}
    latency: dict[str, dict[str, float]] = {}

    status, created = central_call(central, "POST", "/api/v1/tokens", {"policy": POLICY})
    assert status == 201
    token, token_hash = created["token"], created["token_hash"]
    latency["create"] = converge(both, token, 200, 5)

    local = json.loads(cli(fleet, "polled", "token", "create", "--policy",
                           json.dumps(POLICY), "--json").stdout)["token"]  # fmt: skip
    wait_for(lambda: chat(polled, local) == 200, 5)  # the token snapshot refreshes every 0.5 s

    narrowed = {**POLICY, "model": "some-other-model"}
    assert (
        central_call(central, "PUT", f"/api/v1/tokens/{token_hash}", {"policy": narrowed})[0] == 200
    )
    latency["update"] = converge(both, token, 403, 5)

    past = (datetime.now(UTC) - timedelta(minutes=1)).strftime("%Y-%m-%dT%H:%M:%SZ")
    body = {"policy": POLICY, "expires": past}
    assert central_call(central, "PUT", f"/api/v1/tokens/{token_hash}", body)[0] == 200
    latency["expire"] = converge(both, token, 401, 5)
    assert (
        central_call(central, "PUT", f"/api/v1/tokens/{token_hash}", {"expires": "clear"})[0] == 200
    )
    latency["clear expiry"] = converge(both, token, 200, 5)

    # A CLI write on the central host while `remote` runs reaches the proxies too (§5.8).
    made = cli(fleet, "central", "token", "create", "--policy", json.dumps(POLICY), "--json")
    latency["cli create"] = converge(both, json.loads(made.stdout)["token"], 200, 5)

    assert central_call(central, "DELETE", f"/api/v1/tokens/{token_hash}")[0] == 200
    latency["delete"] = converge(both, token, 401, 5)
    print("\nlatency (s):", json.dumps(latency, indent=1))
    for change, seconds in latency.items():
        assert seconds["push"] <= (1.0 if change != "cli create" else 1.5), change
        assert seconds["poll"] <= POLL + 0.5, change
    assert chat(polled, local) == 200  # local-only tokens are never touched by the mirror

    # Graceful shutdown deregisters the pushed proxy.
    assert len(central_call(central, "GET", "/api/v1/clients")[1]) == 1
    pushed.stop()
    assert central_call(central, "GET", "/api/v1/clients")[1] == []


def test_central_down_proxies_keep_serving_report_staleness_and_converge(fleet: Fleet) -> None:
    central = fleet.remote()
    polled = fleet.proxy("polled", central.url, sync=POLL, push=False)
    status, created = central_call(central, "POST", "/api/v1/tokens", {"policy": POLICY})
    assert status == 201
    token = created["token"]
    wait_for(lambda: chat(polled, token) == 200, 5)

    central.stop()
    wait_for(lambda: _remote_stats(polled)["failures"] >= 2, 10)
    assert chat(polled, token) == 200  # still served from the last tokens it had
    stats = _remote_stats(polled)
    assert stats["age_seconds"] >= 1 and "cannot reach the central server" in stats["last_error"]
    assert "tokenomics_remote_sync_failures" in _metrics(polled)
    shown = cli(fleet, "polled", "status").stdout
    assert "Remote sync" in shown and "failure(s) since" in shown
    doctor = cli(fleet, "polled", "doctor")
    assert "[FAIL] remote server" in doctor.stdout and "cannot reach" in doctor.stdout

    # Revoked on the central host while its server is down, then the server comes back.
    assert cli(fleet, "central", "token", "delete", "--hash", created["token_hash"]).returncode == 0
    started = time.monotonic()
    fleet.remote(port=central.port)
    wait_for(lambda: chat(polled, token) == 401, 30)
    print(f"\nconverged {time.monotonic() - started:.2f}s after the central server returned")
    wait_for(lambda: _remote_stats(polled)["failures"] == 0, 5)
    doctor = cli(fleet, "polled", "doctor")
    assert "[ok]   remote server" in doctor.stdout and "[ok]   remote sync" in doctor.stdout


def _remote_stats(proxy: Process) -> dict[str, object]:
    stats = http("GET", proxy.url + "/stats")[1]
    remote: dict[str, object] = stats["remote"]
    return remote


def _metrics(proxy: Process) -> str:
    with urllib.request.urlopen(proxy.url + "/metrics", timeout=10) as response:
        return str(response.read().decode())


def _event(kind: str = "token.updated", when: datetime | None = None) -> bytes:
    stamp = (when or datetime.now(UTC)).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    event = {"id": f"evt_{uuid.uuid4().hex}", "type": kind, "timestamp": stamp,
             "data": {"token_hash": "abcd1234"}}  # fmt: skip
    return json.dumps(event).encode()


def _push(
    proxy: Process, body: bytes, secret: str = SECRET, key: str = SIGNING_KEY
) -> tuple[int, object]:
    signature = "sha256=" + hmac.new(key.encode(), body, hashlib.sha256).hexdigest()
    headers = {"x-webhook-secret": secret, "x-webhook-signature": signature}
    status, answer, _ = http("POST", proxy.url + "/v1/webhook", body, headers)
    return status, answer


def test_auth_webhook_guards_and_synced_policy_allow_list(fleet: Fleet) -> None:
    central = fleet.remote()
    tokens = central.url + "/api/v1/tokens"
    assert http("GET", central.url + "/health")[:2] == (200, {"status": "ok"})
    assert http("GET", tokens)[:2] == (401, {"error": "missing authorization"})
    assert http("GET", tokens, headers={"authorization": "Bearer wrong"})[:2] == (
        403, {"error": "invalid api key"})  # fmt: skip
    assert http("POST", tokens, {"policy": POLICY}, {"authorization": "Basic x"})[0] == 401
    assert http("PATCH", tokens)[:2] == (405, {"error": "method not allowed"})
    assert central_call(central, "POST", "/api/v1/clients", {"url": "ftp://x"}) == (
        400, {"error": "invalid url scheme: ftp"})  # fmt: skip
    status, listing, headers = http("GET", tokens, headers={"authorization": f"Bearer {API_KEY}"})
    assert status == 200 and listing == []
    unchanged = http("GET", tokens, headers={"authorization": f"Bearer {API_KEY}",
                                             "if-none-match": headers["etag"]})  # fmt: skip
    assert unchanged[0] == 304

    proxy = fleet.proxy("pushed", central.url, sync=3600, push=True)
    assert all("secret" not in c and "signing_key" not in c
               for c in central_call(central, "GET", "/api/v1/clients")[1])  # fmt: skip
    body = _event()
    assert _push(proxy, body, secret="wrong") == (401, {"error": "unauthorized"})
    assert _push(proxy, body, key="forged-key") == (403, {"error": "invalid signature"})
    assert _push(proxy, body) == (200, {"status": "accepted"})
    assert _push(proxy, body) == (409, {"error": "replayed event"})
    stale = _event(when=datetime.now(UTC) - timedelta(hours=1))
    assert _push(proxy, stale)[0] == 409
    assert _push(proxy, _event("rule.violation"))[1] == {"status": "ignored",
                                                         "reason": "not a token event"}  # fmt: skip
    huge = b'{"pad":"' + b"x" * (1024 * 1024) + b'"}'
    assert _push(proxy, huge)[0] == 413
    assert http("GET", proxy.url + "/v1/webhook")[0] == 405

    hostile = [
        {"base_key_env": "TOKENOMICS_ENCRYPTION_KEY", "upstream_url": "mock://tokenomics"},
        {"base_key_env": "OPENAI_API_KEY", "upstream_url": "https://collector.example"},
    ]
    made = [central_call(central, "POST", "/api/v1/tokens", {"policy": p})[1] for p in hostile]
    fine = central_call(central, "POST", "/api/v1/tokens", {"policy": POLICY})[1]
    wait_for(lambda: chat(proxy, fine["token"]) == 200, 5)
    for item in made:
        assert chat(proxy, item["token"]) == 401
        assert item["token_hash"][:8] in _remote_stats(proxy)["refused"]  # type: ignore[operator]
    log = proxy.text()
    assert "TOKENOMICS_ENCRYPTION_KEY is not an allowed key variable" in log
    assert "collector.example is not an allowed upstream" in log
    assert "refused, not applied" in log
