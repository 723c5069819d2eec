"""`tokenomics run` (`cli.md` §2, §10 "run", D22): real processes, the built-in mock provider.

Each test runs `python -m tokenomics run …` as a subprocess in the isolated HOME/cwd of
`tests/conftest.py`; the proxy answers from the `mock` provider, so no network is used.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import textwrap
import time
from collections.abc import Callable
from pathlib import Path

import pytest
import trio
from tests.conftest import Result
from tests.support.proxy import start_proxy

from tokenomics.cli.run import mark_child_argv
from tokenomics.cli.run_proxy import proxy_settings
from tokenomics.cli.run_proxy import summary as run_summary
from tokenomics.config.settings import AdminSettings, Settings

MOCK_POLICY = '{"base_key_env":"MOCK_KEY","default_provider":"mock"}'
PY = sys.executable
SUMMARY_PREFIX = "tokenomics: "
# Prints what the child sees: its pid and the injected variables, as one JSON line.
SHOW_ENV = (
    "import json, os; print(json.dumps({'pid': os.getpid(), **{k: v for k, v in os.environ.items()"
    " if k.startswith(('OPENAI_', 'ANTHROPIC_', 'GEMINI_', 'GOOGLE_', 'SSL_', 'REQUESTS_',"
    " 'NODE_', 'MY_'))}}), flush=True)"
)
OPENAI_SCRIPT = textwrap.dedent(
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


@pytest.fixture
def token(cli: Callable[..., Result]) -> str:
    """A wrapper token answered by the built-in mock provider; also exported for subprocesses."""
    created = cli("token", "create", "--policy", MOCK_POLICY, "--json")
    assert created.code == 0, created.err
    return str(json.loads(created.out)["token"])


def tokenomics(
    *args: str, env: dict[str, str] | None = None, timeout: float = 60
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [PY, "-m", "tokenomics", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**os.environ, **(env or {})},
        check=False,
    )


def start(*args: str, env: dict[str, str] | None = None) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [PY, "-m", "tokenomics", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, **(env or {})},
    )


def seen(stdout: str) -> dict[str, str]:
    """The child's SHOW_ENV line."""
    return dict(json.loads(stdout.strip().splitlines()[-1]))


def port_of(url: str) -> int:
    return int(url.rsplit(":", 1)[1].split("/")[0])


def is_listening(port: int) -> bool:
    with socket.socket() as sock:
        sock.settimeout(1)
        return sock.connect_ex(("127.0.0.1", port)) == 0


def is_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def summary(stderr: str) -> str:
    lines = [line for line in stderr.splitlines() if line.startswith(SUMMARY_PREFIX)]
    assert len(lines) == 1, stderr
    return lines[0]


# ── argument handling ───────────────────────────────────────────────────────────────────────


@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        (["run", "node", "app.js", "--port", "9"], ["run", "--", "node", "app.js", "--port", "9"]),
        (["run", "--port", "9", "node", "-x"], ["run", "--port", "9", "--", "node", "-x"]),
        (["run", "--tls", "--token=t", "claude"], ["run", "--tls", "--token=t", "--", "claude"]),
        (["run", "--", "node", "--x"], ["run", "--", "node", "--x"]),
        (["--dir", "d", "run", "sh"], ["--dir", "d", "run", "--", "sh"]),
        (["run", "--help"], ["run", "--help"]),
        (["token", "list", "x"], ["token", "list", "x"]),
        (["--config", "run", "x"], ["--config", "run", "x"]),
    ],
)
def test_options_end_at_the_first_positional(argv: list[str], expected: list[str]) -> None:
    assert mark_child_argv(argv) == expected


def test_options_after_the_command_go_to_the_child(token: str) -> None:
    code = "import sys; print(sys.argv[1:])"
    result = tokenomics("run", "--token", token, PY, "-c", code, "--port", "9", "--token", "x")
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "['--port', '9', '--token', 'x']"


def test_double_dash_is_accepted(token: str) -> None:
    result = tokenomics("run", "--token", token, "--", PY, "-c", "print('ok')", "--", "-v")
    assert result.returncode == 0, result.stderr
    assert result.stdout == "ok\n"


def test_no_command_is_an_error(cli: Callable[..., Result]) -> None:
    result = cli("run", "--token", "tkn_x")
    assert result.code == 1
    assert result.err.startswith("Error: no command to execute\n")
    assert "Usage: tokenomics run [flags] COMMAND [ARGS...]" in result.err


def test_missing_token_is_an_error_before_any_proxy_work(
    cli: Callable[..., Result], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("TOKENOMICS_HASH_KEY")  # the token is checked first
    result = cli("run", "--", "true")
    assert result.code == 1
    assert result.err == "Error: no token provided: use --token flag or set $TOKENOMICS_KEY\n"


def test_missing_hash_key_is_an_error(
    cli: Callable[..., Result], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("TOKENOMICS_HASH_KEY")
    result = cli("run", "--token", "tkn_x", "--", "true")
    assert result.code == 1
    assert "TOKENOMICS_HASH_KEY" in result.err


def test_unknown_command_cannot_start(token: str) -> None:
    result = tokenomics("run", "--token", token, "no-such-command-xyz")
    assert result.returncode == 1
    assert result.stderr.splitlines()[-1] == (
        "Error: start command: no-such-command-xyz: no such file or directory"
    )


# ── the child, its environment and the proxy ───────────────────────────────────────────────


def test_python_openai_sdk_reaches_the_mock_through_the_proxy(token: str, work: Path) -> None:
    (work / "script.py").write_text(OPENAI_SCRIPT)
    env = {"TOKENOMICS_KEY": token, "OPENAI_API_KEY": "sk-real", "OPENAI_BASE_URL": "https://x"}
    # `python3` is the test venv's, which has the `openai` package
    env["PATH"] = f"{Path(PY).parent}{os.pathsep}{os.environ['PATH']}"
    result = tokenomics("run", "--", "python3", "script.py", "hello from python", env=env)
    assert result.returncode == 0, result.stderr
    assert result.stdout == "Mock reply to: hello from python\n"  # nothing of ours on stdout
    # the mock counts 3 words + 3 per message in, 6 words out
    assert summary(result.stderr) == "tokenomics: 1 request, 12 tokens, $0.0000"


def test_injected_environment_replaces_the_parents(token: str) -> None:
    env = {"TOKENOMICS_KEY": token, "OPENAI_BASE_URL": "x", "OPENAI_API_KEY": "sk-real"}
    result = tokenomics("run", "--", PY, "-c", SHOW_ENV, env=env)
    assert result.returncode == 0, result.stderr
    child = seen(result.stdout)
    assert child["OPENAI_API_KEY"] == token
    base = child["OPENAI_BASE_URL"]
    assert base.startswith("http://127.0.0.1:") and base.endswith("/v1")
    assert not is_listening(port_of(base))  # the proxy is gone with the command
    assert summary(result.stderr) == "tokenomics: 0 requests, 0 tokens, $0.0000"


@pytest.mark.parametrize("code", [0, 1, 7])
def test_exit_status_is_the_childs(token: str, code: int) -> None:
    result = tokenomics("run", "--token", token, PY, "-c", f"import sys; sys.exit({code})")
    assert result.returncode == code
    assert "Error" not in result.stderr


def test_child_killed_by_a_signal_gives_128_plus_the_signal(token: str) -> None:
    kill_self = SHOW_ENV + "; os.kill(os.getpid(), 9)"
    result = tokenomics("run", "--token", token, PY, "-c", kill_self)
    assert result.returncode == 128 + signal.SIGKILL
    child = seen(result.stdout)
    assert not is_listening(port_of(child["OPENAI_BASE_URL"]))
    assert not is_alive(int(child["pid"]))


@pytest.mark.parametrize(
    ("signum", "status"), [(signal.SIGINT, 130), (signal.SIGTERM, 143), (signal.SIGHUP, 129)]
)
def test_signals_are_forwarded_to_the_child(token: str, signum: int, status: int) -> None:
    sleeper = SHOW_ENV + "; import time; time.sleep(60)"
    run = start("run", "--token", token, PY, "-c", sleeper)
    try:
        assert run.stdout is not None
        child = seen(run.stdout.readline())
        port = port_of(child["OPENAI_BASE_URL"])
        assert is_listening(port)
        run.send_signal(signum)
        assert run.wait(timeout=30) == status
    finally:
        run.kill()
        _, stderr = run.communicate()
    assert summary(stderr).startswith(SUMMARY_PREFIX)
    assert not is_listening(port)
    assert not is_alive(int(child["pid"]))
    # the run's ledger session was written on the way out (scenario 48)
    sessions = Path(os.environ["HOME"]) / ".tokenomics" / "sessions"
    assert [p.suffix for p in sessions.iterdir()] == [".json"]


def test_killed_run_leaves_no_proxy_behind(token: str) -> None:
    sleeper = SHOW_ENV + "; import time; time.sleep(60)"
    run = start("run", "--token", token, PY, "-c", sleeper)
    assert run.stdout is not None
    child = seen(run.stdout.readline())
    try:
        run.kill()
        run.wait(timeout=10)
        assert not is_listening(port_of(child["OPENAI_BASE_URL"]))
    finally:
        os.kill(int(child["pid"]), signal.SIGKILL)  # orphaned, like any SIGKILLed parent's
        run.communicate()


def test_print_env_masks_the_token(token: str) -> None:
    result = tokenomics("run", "--token", token, "--print-env", "--insecure", "true")
    assert result.returncode == 0, result.stderr
    header, key, url, *rest = result.stderr.splitlines()
    assert header == "tokenomics run - injected environment:"
    assert key == f"  OPENAI_API_KEY=tkn_…{token[-4:]}"
    assert url.startswith("  OPENAI_BASE_URL=http://127.0.0.1:") and url.endswith("/v1")
    assert f"  ANTHROPIC_API_KEY=tkn_…{token[-4:]}" in rest  # `true`: every family
    assert "  NODE_TLS_REJECT_UNAUTHORIZED=0" in rest
    assert token not in result.stderr

    shown = tokenomics("run", "--token", token, "--print-env", "--show-secrets", "true")
    assert f"  OPENAI_API_KEY={token}\n" in shown.stderr


def test_custom_variable_names(token: str) -> None:
    args = ("--env-key", "MY_KEY", "--env-base-url", "MY_URL", PY, "-c", SHOW_ENV)
    result = tokenomics("run", "--token", token, *args)
    child = seen(result.stdout)
    assert child["MY_KEY"] == token
    assert child["MY_URL"].startswith("http://127.0.0.1:") and "/v1" not in child["MY_URL"]
    assert "OPENAI_API_KEY" not in child


def test_cli_maps_from_config_override_the_built_ins(token: str, work: Path) -> None:
    (work / "config.yaml").write_text("cli_maps:\n  python: anthropic\n  mytool: gemini\n")
    # `.../bin/python` matches `python` by its base name; the config beats python -> generic
    result = tokenomics("run", "--token", token, str(Path(PY).parent / "python"), "-c", SHOW_ENV)
    child = seen(result.stdout)
    assert child["ANTHROPIC_API_KEY"] == token
    assert "ANTHROPIC_AUTH_TOKEN" not in child  # never both: the SDK warns on every call
    assert child["ANTHROPIC_BASE_URL"].startswith("http://127.0.0.1:")
    assert "OPENAI_API_KEY" not in child

    tool = work / "mytool"
    tool.write_text(f"#!{PY}\n{SHOW_ENV}\n")
    tool.chmod(0o755)
    gemini = seen(tokenomics("run", "--token", token, str(tool)).stdout)
    assert gemini["GEMINI_API_KEY"] == token
    assert gemini["GOOGLE_GEMINI_BASE_URL"] == gemini["GEMINI_BASE_URL"]


def test_explicit_provider_wins(token: str) -> None:
    result = tokenomics("run", "--token", token, "--provider", "gemini", PY, "-c", SHOW_ENV)
    child = seen(result.stdout)
    assert child["GEMINI_API_KEY"] == token
    assert "OPENAI_API_KEY" not in child and "ANTHROPIC_API_KEY" not in child


def test_unknown_provider_is_an_error_naming_the_valid_ones(token: str) -> None:
    result = tokenomics("run", "--token", token, "--provider", "opnai", PY, "-c", SHOW_ENV)
    assert result.returncode == 1
    assert result.stdout == ""  # the command did not run
    assert 'unknown provider "opnai" (valid: ' in result.stderr
    assert all(name in result.stderr for name in ("anthropic", "gemini", "generic", "openai"))


def test_a_command_of_no_known_family_gets_every_family(token: str, work: Path) -> None:
    """`run python my_script.py`: the OpenAI, Anthropic and Gemini SDKs all find the proxy,
    and inherited variables that would compete with ours are not passed on."""
    inherited = {"ANTHROPIC_AUTH_TOKEN": "sk-ant-real", "GOOGLE_API_KEY": "real-google-key"}
    result = tokenomics("run", "--token", token, PY, "-c", SHOW_ENV, env=inherited)
    child = seen(result.stdout)
    base = child["ANTHROPIC_BASE_URL"]
    assert base.startswith("http://127.0.0.1:")
    assert child["OPENAI_BASE_URL"] == base + "/v1"
    assert child["GOOGLE_GEMINI_BASE_URL"] == child["GEMINI_BASE_URL"] == base
    assert child["OPENAI_API_KEY"] == child["ANTHROPIC_API_KEY"] == child["GEMINI_API_KEY"]
    assert child["OPENAI_API_KEY"] == token
    assert "ANTHROPIC_AUTH_TOKEN" not in child and "GOOGLE_API_KEY" not in child


def test_anthropic_sdk_under_a_generic_command(token: str, work: Path) -> None:
    script = textwrap.dedent(
        """
        import sys, warnings
        import anthropic

        warnings.simplefilter("error")  # the SDK's "both key and token" warning fails this
        client = anthropic.Anthropic()  # ANTHROPIC_API_KEY and ANTHROPIC_BASE_URL only
        reply = client.messages.create(
            model="mock-claude", max_tokens=20,
            messages=[{"role": "user", "content": sys.argv[1]}],
        )
        print(reply.content[0].text)
        """
    )
    (work / "claude_script.py").write_text(script)
    result = tokenomics("run", "--token", token, PY, "claude_script.py", "hello anthropic")
    assert result.returncode == 0, result.stderr
    assert result.stdout == "Mock reply to: hello anthropic\n"
    assert summary(result.stderr).startswith("tokenomics: 1 request, 10 tokens, ")


def test_tls_points_the_child_at_the_generated_ca(token: str, work: Path) -> None:
    script = textwrap.dedent(
        """
        import json, os, ssl, urllib.request
        ca = os.environ["SSL_CERT_FILE"]
        assert os.environ["REQUESTS_CA_BUNDLE"] == ca
        # the system's CAs and ours in one bundle; Node adds its extra CAs to its own store
        ours = open(os.environ["NODE_EXTRA_CA_CERTS"]).read()
        bundle = open(ca).read()
        assert bundle.endswith(ours) and bundle.count("BEGIN CERTIFICATE") > 1
        base = os.environ["OPENAI_BASE_URL"]
        # verified against the CA from the environment (OpenSSL reads SSL_CERT_FILE)
        with urllib.request.urlopen(base.removesuffix("/v1") + "/ping") as r:
            print(r.read().decode())
        body = {"model": "mock-gpt", "messages": [{"role": "user", "content": "over tls"}]}
        request = urllib.request.Request(
            base + "/chat/completions", data=json.dumps(body).encode(),
            headers={"Authorization": "Bearer " + os.environ["OPENAI_API_KEY"],
                     "Content-Type": "application/json"})
        with urllib.request.urlopen(request) as r:
            print(json.load(r)["choices"][0]["message"]["content"])
        """
    )
    (work / "tls_client.py").write_text(script)
    (work / "script.py").write_text(OPENAI_SCRIPT)
    result = tokenomics("run", "--token", token, "--tls", PY, "tls_client.py")
    assert result.returncode == 0, result.stderr
    assert result.stdout == ".\nMock reply to: over tls\n"
    sdk = tokenomics("run", "--token", token, "--tls", PY, "script.py", "sdk over tls")
    assert sdk.returncode == 0, sdk.stderr
    assert sdk.stdout == "Mock reply to: sdk over tls\n"


# ── a proxy that is already running ────────────────────────────────────────────────────────


async def test_remote_mode_uses_the_given_proxy(tmp_path: Path, work: Path) -> None:
    (work / "script.py").write_text(OPENAI_SCRIPT)
    (tmp_path / "remote").mkdir()
    async with start_proxy(tmp_path / "remote") as proxy:
        raw = proxy.token(MOCK_POLICY)
        env = {**os.environ, "TOKENOMICS_PROXY_URL": proxy.url, "TOKENOMICS_KEY": raw}
        env.pop("TOKENOMICS_HASH_KEY", None)  # no local proxy: no hash key needed
        result = await trio.run_process(
            [PY, "-m", "tokenomics", "run", "--print-env", PY, "script.py", "via remote"],
            capture_stdout=True, capture_stderr=True, env=env, check=False,
        )  # fmt: skip
        stderr = result.stderr.decode()
        assert result.returncode == 0, stderr
        assert result.stdout.decode() == "Mock reply to: via remote\n"
        assert f"  OPENAI_BASE_URL={proxy.url}/v1\n" in stderr
        assert proxy.server.stats.snapshot()["totals"]["request_count"] == 1
        # the summary is the proxy's /stats difference
        assert summary(stderr) == (
            f"tokenomics: 1 request, 10 tokens, $0.0000 (all clients of {proxy.url})"
        )


async def test_port_with_a_running_proxy_reuses_it(tmp_path: Path) -> None:
    (tmp_path / "daemon").mkdir()
    async with start_proxy(tmp_path / "daemon") as proxy:
        raw = proxy.token(MOCK_POLICY)
        port = port_of(proxy.url)
        env = {**os.environ, "TOKENOMICS_KEY": raw}
        result = await trio.run_process(
            [PY, "-m", "tokenomics", "run", "--port", str(port), PY, "-c", SHOW_ENV],
            capture_stdout=True, capture_stderr=True, env=env, check=False,
        )  # fmt: skip
        assert result.returncode == 0, result.stderr.decode()
        assert seen(result.stdout.decode())["OPENAI_BASE_URL"] == f"http://127.0.0.1:{port}/v1"
        assert is_listening(port)  # left running
        assert summary(result.stderr.decode()) == (
            f"tokenomics: 0 requests, 0 tokens, $0.0000 (all clients of http://127.0.0.1:{port})"
        )


def test_port_that_is_free_starts_our_proxy_there(token: str) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    result = tokenomics("run", "--token", token, "--port", str(port), PY, "-c", SHOW_ENV)
    assert result.returncode == 0, result.stderr
    assert seen(result.stdout)["OPENAI_BASE_URL"] == f"http://127.0.0.1:{port}/v1"
    assert not is_listening(port)


def test_unreachable_remote_proxy_is_an_error(token: str) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    started = time.monotonic()
    result = tokenomics("run", "--token", token, "--proxy-url", f"http://127.0.0.1:{port}", "true")
    assert result.returncode == 1
    assert result.stderr.startswith("Error: proxy failed to start: ")
    assert "connection refused" in result.stderr
    assert time.monotonic() - started < 20


# ── pure parts ─────────────────────────────────────────────────────────────────────────────


@pytest.mark.parametrize(
    ("flag", "configured", "enabled"),
    [(False, True, False), (True, True, True), (True, False, False), (False, False, False)],
)
def test_admin_only_with_the_flag_and_the_config(
    flag: bool, configured: bool, enabled: bool
) -> None:
    base = Settings(admin=AdminSettings(enabled=configured))
    settings = proxy_settings(base, host="localhost", port=0, tls=False, admin=flag, provider="")
    assert settings.admin.enabled is enabled
    assert settings.server.host == "127.0.0.1"
    assert settings.server.tls.enabled is False


def test_detected_provider_is_the_default_only_when_none_is_configured() -> None:
    chosen = proxy_settings(Settings(), host="", port=0, tls=True, admin=False, provider="gemini")
    assert chosen.default_provider == "gemini"
    assert (chosen.server.http_port, chosen.server.https_port) == (0, 0)
    configured = Settings(default_provider="openrouter")
    kept = proxy_settings(configured, host="", port=0, tls=False, admin=False, provider="gemini")
    assert kept.default_provider == "openrouter"


def test_summary_line() -> None:
    counts = {"request_count": 3, "total_tokens": 1234, "cost_usd": 0.00123, "unpriced_count": 0}
    assert run_summary(counts) == "tokenomics: 3 requests, 1,234 tokens, $0.00123"
    # issue 13: nothing priced reads `n/a` as in `ledger`, never `$0.0000`; some priced: `+`
    one = {"request_count": 6, "total_tokens": 5, "cost_usd": 0.0, "unpriced_count": 6}
    assert run_summary(one) == "tokenomics: 6 requests, 5 tokens, n/a (6 requests without a price)"
    part = {"request_count": 3.0, "total_tokens": 9.0, "cost_usd": 0.5, "unpriced_count": 1.0}
    assert (
        run_summary(part)
        == "tokenomics: 3 requests, 9 tokens, $0.5000+ (1 request without a price)"
    )
