"""Popular agents through `tokenomics run …`, typed as a user types it (issue 13).

Codex CLI, gemini-cli, Claude Code, `llm`, the `openai` and `anthropic` Python SDKs and the
`openai` npm package each run as `tokenomics run <command>` from a fresh user's home (data in
`~/.tokenomics`, the token in `$TOKENOMICS_KEY` with the built-in mock provider); each is
answered by the mock in seconds and recorded in the ledger.

Nothing may reach the internet: the proxy variables point at a closed loopback port
(`127.0.0.1:9`, loopback exempt), so an agent that ignored our variables fails fast instead of
retrying a real endpoint; Claude Code's and gemini-cli's telemetry and update checks are off.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow

BIN = Path(sys.executable).parent  # the venv: `tokenomics`, `python`, `llm`
MOCK_POLICY = '{"base_key_env":"MOCK_KEY","default_provider":"mock"}'
CLOSED = "http://127.0.0.1:9"
SECONDS = 90  # an agent retrying a leak or a bad answer takes minutes
OPENAI_APP = textwrap.dedent(
    """
    import openai
    reply = openai.OpenAI().chat.completions.create(
        model="gpt-4o-mini", messages=[{"role": "user", "content": "say hi"}])
    print(reply.choices[0].message.content)
    """
)
ANTHROPIC_APP = textwrap.dedent(
    """
    import warnings
    import anthropic
    warnings.simplefilter("error")  # e.g. the warning for both a key and a bearer token
    reply = anthropic.Anthropic().messages.create(
        model="claude-sonnet-4-5", max_tokens=50,
        messages=[{"role": "user", "content": "say hi"}])
    print(reply.content[0].text)
    """
)
NODE_APP = textwrap.dedent(
    """
    import OpenAI from "openai";
    const stream = await new OpenAI().chat.completions.create({
      model: "gpt-4o-mini", stream: true, messages: [{ role: "user", content: "say hi" }],
    });
    let text = "";
    for await (const chunk of stream) text += chunk.choices[0]?.delta?.content ?? "";
    console.log(text);
    """
)


@pytest.fixture(scope="module")
def user(tmp_path_factory: pytest.TempPathFactory, npm_clients: Path) -> dict[str, str]:
    """A new user's environment: own HOME, the agents on PATH, a token in TOKENOMICS_KEY."""
    root = tmp_path_factory.mktemp("user")
    home, work = root / "home", root / "work"
    home.mkdir()
    work.mkdir()
    for name, text in (("openai_app.py", OPENAI_APP), ("anthropic_app.py", ANTHROPIC_APP)):
        (work / name).write_text(text)
    (npm_clients / "app.mjs").write_text(NODE_APP)
    # gemini-cli: the user has turned off its usage statistics (kept by `run`)
    (home / ".gemini").mkdir()
    (home / ".gemini" / "settings.json").write_text(
        '{"privacy": {"usageStatisticsEnabled": false}, "general": {"enableAutoUpdate": false}}'
    )
    env = {
        "HOME": str(home),
        "PATH": os.pathsep.join([str(npm_clients / "node_modules" / ".bin"), str(BIN),
                                 os.environ.get("PATH", "/usr/bin:/bin")]),
        "LANG": "C.UTF-8",
        "TOKENOMICS_HASH_KEY": "run-agents-hash-key",
        "HTTPS_PROXY": CLOSED, "HTTP_PROXY": CLOSED, "NO_PROXY": "127.0.0.1,localhost",
        # Claude Code: no telemetry, no update check; gemini-cli: headless in an untrusted
        # folder needs this (its own rule, not ours)
        "CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC": "1", "DISABLE_AUTOUPDATER": "1",
        "GEMINI_CLI_TRUST_WORKSPACE": "true",
        "WORK": str(work),
    }  # fmt: skip
    if "PYTHONPATH" in os.environ:  # a worktree's sources under test, not the venv's install
        env["PYTHONPATH"] = os.environ["PYTHONPATH"]
    subprocess.run(["git", "init", "-q", str(work)], check=True, env=env)  # Codex wants a repo
    created = tokenomics(env, "token", "create", "--policy", MOCK_POLICY, "--json")
    env["TOKENOMICS_KEY"] = json.loads(created.stdout)["token"]
    return env


def tokenomics(
    env: dict[str, str], *argv: str, cwd: str | None = None
) -> subprocess.CompletedProcess[str]:
    done = subprocess.run(
        [str(BIN / "tokenomics"), *argv], cwd=cwd or env["WORK"], env=env,
        stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    return done


def sessions(env: dict[str, str]) -> dict[str, dict]:
    listed = tokenomics(env, "ledger", "sessions", "--json")
    return {session["session_id"]: session for session in json.loads(listed.stdout)}


def run_agent(env: dict[str, str], *command: str, cwd: str | None = None) -> tuple[str, dict]:
    """`tokenomics run <command>`: its stdout and the ledger session it recorded."""
    before = sessions(env)
    started = time.monotonic()
    done = tokenomics(env, "run", *command, cwd=cwd)
    elapsed = time.monotonic() - started
    assert elapsed < SECONDS, f"{command[0]} took {elapsed:.0f} s:\n{done.stderr}"
    (session,) = [s for k, s in sessions(env).items() if k not in before]
    (line,) = [x for x in done.stderr.splitlines() if x.startswith("tokenomics: ")]
    answered = [r for r in session["requests"] if r["status_code"] == 200]
    assert answered, done.stderr
    assert all(r["provider"] == "mock" for r in answered)
    assert line.startswith(f"tokenomics: {len(answered)} request")
    assert session["totals"]["total_tokens"] > 0
    return done.stdout, session


def test_codex_cli(user: dict[str, str]) -> None:
    codex_home = Path(user["HOME"]) / ".codex"
    out, session = run_agent(user, "codex", "exec", "say hi")
    assert "Mock reply to: say hi" in out
    # the Responses API, streamed (with its usage) and accounted
    assert all(r.get("stream") for r in session["requests"])
    assert not (codex_home / "config.toml").exists()  # the user's Codex config is untouched


def test_gemini_cli(user: dict[str, str]) -> None:
    settings = Path(user["HOME"]) / ".gemini" / "settings.json"
    before = settings.read_text()
    out, session = run_agent(user, "gemini", "-p", "say hi")
    assert "Mock reply to: " in out
    assert settings.read_text() == before  # the auth type went to a home for this run only
    # gemini-cli asks for JSON (routing, next speaker): the mock's JSON ends those at once
    assert len(session["requests"]) <= 4


def test_claude_code(user: dict[str, str]) -> None:
    out, _ = run_agent(user, "claude", "-p", "say hi")
    assert out.startswith("Mock reply to: ")


def test_llm(user: dict[str, str]) -> None:
    out, session = run_agent(user, "llm", "say hi")
    assert out == "Mock reply to: say hi\n"
    assert len(session["requests"]) == 1


def test_openai_python_sdk(user: dict[str, str]) -> None:
    out, session = run_agent(user, "python", "openai_app.py")
    assert out == "Mock reply to: say hi\n"
    assert [r["model"] for r in session["requests"]] == ["gpt-4o-mini"]


def test_anthropic_python_sdk(user: dict[str, str]) -> None:
    out, session = run_agent(user, "python", "anthropic_app.py")
    assert out == "Mock reply to: say hi\n"
    assert [r["model"] for r in session["requests"]] == ["claude-sonnet-4-5"]


def test_openai_npm_package(user: dict[str, str], npm_clients: Path) -> None:
    out, session = run_agent(user, "node", "app.mjs", cwd=str(npm_clients))
    assert out == "Mock reply to: say hi\n"
    assert [r.get("stream") for r in session["requests"]] == [True]
