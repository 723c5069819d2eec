"""`tokenomics.pyz run` with real clients: the `openai` Python SDK, the `openai` npm package and
Claude Code (`@anthropic-ai/claude-code`), all answered by the built-in mock provider (D22, D25).

The npm packages are installed once per session (`tests/support/npm.py`); the pyz is built once
for this module, like `test_build_pyz.py` does.
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from tests.test_build_pyz import clean_env, pyz, sandbox  # noqa: F401  (fixtures)

pytestmark = pytest.mark.slow

HASH_KEY = "run-pyz-hash-key"
MOCK_POLICY = '{"base_key_env":"MOCK_KEY","default_provider":"mock"}'
PYTHON_CLIENT = textwrap.dedent(
    """
    import sys
    import openai

    client = openai.OpenAI()  # OPENAI_API_KEY and OPENAI_BASE_URL from the environment only
    reply = client.chat.completions.create(
        model="mock-gpt", messages=[{"role": "user", "content": sys.argv[1]}]
    )
    print(reply.choices[0].message.content)
    """
)
NODE_CLIENT = textwrap.dedent(
    """
    import OpenAI from "openai";

    const client = new OpenAI();  // OPENAI_API_KEY and OPENAI_BASE_URL from the environment
    const reply = await client.chat.completions.create({
      model: "mock-gpt",
      messages: [{ role: "user", content: process.argv[2] }],
    });
    console.log(reply.choices[0].message.content);
    console.log(JSON.stringify(process.argv.slice(3)));
    """
)


@pytest.fixture(scope="module")
def data_and_token(pyz: Path, sandbox: Path) -> tuple[str, str]:  # noqa: F811
    data = str(sandbox / "run-data")
    env = clean_env(sandbox, TOKENOMICS_HASH_KEY=HASH_KEY)
    created = subprocess.run(
        [str(pyz), "--dir", data, "token", "create", "--policy", MOCK_POLICY, "--json"],
        cwd=sandbox / "work", env=env, capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert created.returncode == 0, created.stderr
    return data, json.loads(created.stdout)["token"]


def run_pyz(
    pyz: Path,  # noqa: F811
    sandbox: Path,  # noqa: F811
    data_and_token: tuple[str, str],
    *argv: str,
    cwd: Path | None = None,
    **env: str,
) -> subprocess.CompletedProcess[str]:
    data, token = data_and_token
    environ = clean_env(sandbox, TOKENOMICS_HASH_KEY=HASH_KEY, TOKENOMICS_KEY=token, **env)
    return subprocess.run(
        [str(pyz), "--dir", data, "run", *argv],
        cwd=cwd or sandbox / "work", env=environ, capture_output=True, text=True, timeout=300,
        check=False,
    )  # fmt: skip


def sessions(pyz: Path, sandbox: Path, data: str) -> dict[str, dict]:  # noqa: F811
    """Every ledger session of the data directory, by id (`ledger sessions --json`)."""
    listed = subprocess.run(
        [str(pyz), "--dir", data, "ledger", "sessions", "--json"],
        cwd=sandbox / "work", env=clean_env(sandbox), capture_output=True, text=True,
        timeout=120, check=False,
    )  # fmt: skip
    assert listed.returncode == 0, listed.stderr
    return {session["session_id"]: session for session in json.loads(listed.stdout)}


def new_session(pyz: Path, sandbox: Path, data: str, before: dict[str, dict]) -> dict:  # noqa: F811
    """The one session written since `before`: the run's own ledger session."""
    (session,) = [s for k, s in sessions(pyz, sandbox, data).items() if k not in before]
    return session


def summary(stderr: str) -> str:
    lines = [line for line in stderr.splitlines() if line.startswith("tokenomics: ")]
    assert len(lines) == 1, stderr
    return lines[0]


def test_python_openai_sdk(pyz: Path, sandbox: Path, data_and_token: tuple[str, str]) -> None:  # noqa: F811
    (sandbox / "work" / "script.py").write_text(PYTHON_CLIENT)
    # python3 of the venv running the tests: it has the `openai` package
    python_dir = str(Path(sys.executable).parent)
    path = f"{python_dir}:{clean_env(sandbox)['PATH']}"
    before = sessions(pyz, sandbox, data_and_token[0])
    result = run_pyz(
        pyz, sandbox, data_and_token, "--", "python3", "script.py", "hello pyz", PATH=path
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout == "Mock reply to: hello pyz\n"
    assert summary(result.stderr) == "tokenomics: 1 request, 10 tokens, $0.0000"
    session = new_session(pyz, sandbox, data_and_token[0], before)
    (entry,) = session["requests"]
    assert (entry["model"], entry["provider"], entry["status_code"]) == ("mock-gpt", "mock", 200)
    assert session["totals"]["total_tokens"] == 10


def test_node_openai_package(
    pyz: Path,  # noqa: F811
    sandbox: Path,  # noqa: F811
    data_and_token: tuple[str, str],
    npm_clients: Path,
) -> None:
    (npm_clients / "app.mjs").write_text(NODE_CLIENT)
    before = sessions(pyz, sandbox, data_and_token[0])
    result = run_pyz(
        pyz, sandbox, data_and_token, "node", "app.mjs", "hello node", "--port", "9",
        cwd=npm_clients,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    reply, extra = result.stdout.splitlines()
    assert reply == "Mock reply to: hello node"
    assert json.loads(extra) == ["--port", "9"]  # options after the command are node's
    assert summary(result.stderr) == "tokenomics: 1 request, 10 tokens, $0.0000"
    session = new_session(pyz, sandbox, data_and_token[0], before)
    assert [e["model"] for e in session["requests"]] == ["mock-gpt"]
    assert session["totals"]["total_tokens"] == 10


def test_claude_code(
    pyz: Path,  # noqa: F811
    sandbox: Path,  # noqa: F811
    data_and_token: tuple[str, str],
    npm_clients: Path,
    tmp_path: Path,
) -> None:
    path = f"{npm_clients / 'node_modules' / '.bin'}:{clean_env(sandbox)['PATH']}"
    before = sessions(pyz, sandbox, data_and_token[0])
    result = run_pyz(
        pyz, sandbox, data_and_token, "--print-env", "claude", "-p", "hi", "--model", "mock-claude",
        PATH=path, CLAUDE_CONFIG_DIR=str(tmp_path / "claude-config"), DISABLE_AUTOUPDATER="1",
        CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC="1", TOKENOMICS_LEDGER_EVENT_LEDGER="true",
    )  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr
    # `claude` maps to anthropic: the bearer token (not the key too) and the URL without /v1
    assert "  ANTHROPIC_API_KEY=" not in result.stderr
    assert "  ANTHROPIC_AUTH_TOKEN=tkn_…" in result.stderr
    assert "  ANTHROPIC_BASE_URL=http://127.0.0.1:" in result.stderr
    # the mock echoes the start of the last user text (Claude Code prepends a system reminder)
    assert result.stdout.startswith("Mock reply to: ")
    requests = int(summary(result.stderr).split()[1])
    assert requests >= 1
    # in the ledger: Claude Code's streamed /v1/messages calls, answered by the mock
    session = new_session(pyz, sandbox, data_and_token[0], before)
    # (Claude Code also probes `HEAD /` without a key: a 401, in the ledger, not in the summary)
    authenticated = [e for e in session["requests"] if e["token_hash"]]
    assert len(authenticated) == requests
    streamed = [e for e in session["requests"] if e.get("stream") and e["status_code"] == 200]
    assert streamed and all(e["provider"] == "mock" for e in streamed)
    received = [e for e in session["communication_events"] if e["type"] == "request.received"]
    assert any(e["path"] == "/v1/messages" and e["method"] == "POST" for e in received)
