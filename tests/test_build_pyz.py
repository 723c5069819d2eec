"""`build_pyz.py` builds a working single-file `tokenomics.pyz` (decision D3)."""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tokenomics import __version__

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[1]
POLICY = '{"base_key_env":"OPENAI_API_KEY"}'
RFC3339_UTC = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?Z")


@pytest.fixture(scope="module")
def pyz(tmp_path_factory: pytest.TempPathFactory) -> Path:
    output = tmp_path_factory.mktemp("pyz") / "tokenomics.pyz"
    build_info = ROOT / "src" / "tokenomics" / "_build_info.json"
    had_build_info = build_info.exists()
    result = subprocess.run(
        [sys.executable, str(ROOT / "build_pyz.py"), "--output", str(output)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=900,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert output.is_file()
    assert os.access(output, os.X_OK)
    assert str(output) in result.stdout
    assert build_info.exists() == had_build_info  # the checkout is left as it was
    return output


@pytest.fixture(scope="module")
def sandbox(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A working directory with its own HOME and pex root; nothing of the user's is read."""
    base = tmp_path_factory.mktemp("sandbox")
    (base / "home").mkdir()
    (base / "work").mkdir()
    return base


def clean_env(sandbox: Path, **extra: str) -> dict[str, str]:
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HOME": str(sandbox / "home"),
        # Shared by every run in this module, so the venv is unpacked only once.
        "PEX_ROOT": str(sandbox / "pex-root"),
        "LANG": "C.UTF-8",
    }
    env.update(extra)
    return env


def run(
    argv: list[str], sandbox: Path, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        argv,
        cwd=sandbox / "work",
        env=env if env is not None else clean_env(sandbox),
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


def expected_commit() -> str | None:
    """HEAD's short hash, or None when the checkout has no commits (or git is missing)."""
    if shutil.which("git") is None:
        return None
    head = subprocess.run(
        ["git", "rev-parse", "--short", "HEAD"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
    )
    return head.stdout.strip() if head.returncode == 0 and head.stdout.strip() else None


def check_version_output(stdout: str) -> None:
    lines = stdout.splitlines()
    assert lines[0] == f"tokenomics {__version__}"
    fields = dict(line.strip().split(":", 1) for line in lines[1:])
    fields = {key: value.strip() for key, value in fields.items()}
    assert set(fields) == {"commit", "built", "python", "os/arch"}
    commit = expected_commit()
    if commit is None:
        assert fields["commit"] == "unknown"
    else:
        assert re.fullmatch(re.escape(commit) + r"(-dirty)?", fields["commit"]), fields["commit"]
    assert RFC3339_UTC.fullmatch(fields["built"]), fields["built"]
    assert re.fullmatch(r"\d+\.\d+\.\d+\S*", fields["python"])
    assert re.fullmatch(r"[a-z0-9_]+/[a-z0-9_]+", fields["os/arch"])


def test_version_runs_as_executable(pyz: Path, sandbox: Path) -> None:
    result = run([str(pyz), "version"], sandbox)
    assert result.returncode == 0, result.stderr
    check_version_output(result.stdout)


def test_version_runs_with_python3(pyz: Path, sandbox: Path) -> None:
    python3 = shutil.which("python3") or sys.executable
    result = run([python3, str(pyz), "version"], sandbox)
    assert result.returncode == 0, result.stderr
    check_version_output(result.stdout)


def test_token_round_trip(pyz: Path, sandbox: Path) -> None:
    env = clean_env(sandbox, TOKENOMICS_HASH_KEY="testkey")
    data = str(sandbox / "data")

    created = run(
        [str(pyz), "--dir", data, "token", "create", "--policy", POLICY, "--json"], sandbox, env
    )
    assert created.returncode == 0, created.stderr
    body = json.loads(created.stdout)
    token, token_hash = body["token"], body["token_hash"]
    assert token.startswith("tkn_")
    assert token_hash == hmac.new(b"testkey", token.encode(), hashlib.sha256).hexdigest()

    got = run(
        [str(pyz), "--dir", data, "token", "get", "--hash", token_hash, "--json"], sandbox, env
    )
    assert got.returncode == 0, got.stderr
    assert json.loads(got.stdout)["policy"] == {"base_key_env": "OPENAI_API_KEY"}

    listed = run([str(pyz), "--dir", data, "token", "list"], sandbox, env)
    assert listed.returncode == 0, listed.stderr
    assert token_hash in listed.stdout

    deleted = run([str(pyz), "--dir", data, "token", "delete", "--hash", token_hash], sandbox, env)
    assert deleted.returncode == 0, deleted.stderr
    assert deleted.stdout.strip() == "Token deleted."


def test_token_create_needs_hash_key(pyz: Path, sandbox: Path) -> None:
    data = str(sandbox / "data-nokey")
    result = run([str(pyz), "--dir", data, "token", "create", "--policy", POLICY], sandbox)
    assert result.returncode == 1
    errors = [line for line in result.stderr.splitlines() if line.startswith("Error: ")]
    assert errors, result.stderr
    assert "TOKENOMICS_HASH_KEY" in errors[0]


def test_admin_ui_assets_ship_inside(pyz: Path, sandbox: Path) -> None:
    """Every file of the admin UI is package data of the zipapp (nothing fetched at run time)."""
    ui = ROOT / "src" / "tokenomics" / "services" / "admin" / "ui"
    shipped = {p.name for p in ui.iterdir() if p.is_file() and p.suffix != ".py"}
    code = (
        "import json; from tokenomics.services.admin.ui import serve_ui; "
        f"print(json.dumps({{n: (serve_ui('/admin/assets/' + n) or (0,))[0] for n in {sorted(shipped)!r}}}))"
    )
    result = run([str(pyz), "-c", code], sandbox, clean_env(sandbox, PEX_INTERPRETER="1"))
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout) == dict.fromkeys(shipped, 200)


def _children(pid: int) -> list[int]:
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == pid:
            found.append(int(stat.parent.name))
    return found


def test_serve_delivers_webhooks_from_a_low_priority_child(pyz: Path, sandbox: Path) -> None:
    """The delivery process is started from inside the zipapp (its pex venv), at nice 19, and
    goes away with `serve`."""
    import http.server
    import socket
    import threading
    import time

    kinds: list[str] = []

    class Hook(http.server.BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            self.rfile.read(int(self.headers["content-length"]))
            kinds.append(self.headers["x-event-type"])
            self.send_response(200)
            self.send_header("content-length", "0")
            self.end_headers()

        def log_message(self, *args: object) -> None:
            pass

    receiver = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Hook)
    threading.Thread(target=receiver.serve_forever, daemon=True).start()
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    hooks = json.dumps([{"url": f"http://127.0.0.1:{receiver.server_port}/hook"}])
    env = clean_env(
        sandbox, TOKENOMICS_HASH_KEY="testkey", TOKENOMICS_DIR=str(sandbox / "data-hooks"),
        TOKENOMICS_SERVER_HTTP_PORT=str(port), TOKENOMICS_SERVER_TLS_ENABLED="false",
        TOKENOMICS_EVENTS_WEBHOOKS=hooks,
    )  # fmt: skip
    serve = subprocess.Popen([str(pyz), "serve"], cwd=sandbox / "work", env=env)
    try:
        deadline = time.monotonic() + 120
        while "server.start" not in kinds and time.monotonic() < deadline:
            time.sleep(0.1)
        assert kinds == ["server.start"]
        children = _children(serve.pid)
        assert len(children) == 1
        stat = Path(f"/proc/{children[0]}/stat").read_text().rsplit(")", 1)[1].split()
        assert int(stat[16]) == 19  # nice
        serve.send_signal(15)
        assert serve.wait(60) == 0
        assert not Path(f"/proc/{children[0]}").exists()
    finally:
        serve.kill()
        receiver.shutdown()
