"""`tokenomics status` (`cli.md` §5.2, scenarios 66-67): proxy state from the PID file, the
providers' variables with secrets masked, the token count; always exit 0."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
from tests.conftest import Result
from tests.support.daemons import Daemons, daemons, free_port

from tokenomics.cli import pidfile
from tokenomics.cli.status import mask_token, safe_url

__all__ = ["daemons"]

Cli = Callable[..., Result]


def line_of(out: str, name: str) -> str:
    """The first line for variable `name`, whitespace collapsed."""
    found = re.search(rf"^ +{name} .*$", out, re.MULTILINE)
    assert found, out
    return " ".join(found.group().split())


def test_status_without_a_proxy_shows_stopped_and_masks_the_token(
    cli: Cli, monkeypatch: pytest.MonkeyPatch, home: Path
) -> None:
    monkeypatch.setenv("TOKENOMICS_KEY", "tkn_abcdef123456")
    monkeypatch.setenv("TOKENOMICS_PROXY_URL", "http://user:secret@proxy.example:8080/x?key=k")
    result = cli("status")
    assert result.code == 0 and result.err == ""
    assert "Proxy\n  Status:  stopped\n" in result.out
    assert "  Token:   tkn_...3456\n" in result.out
    assert "  Remote:  http://proxy.example:8080/x\n" in result.out
    assert "secret" not in result.out and "abcdef" not in result.out
    assert result.out.endswith("\nTokens\n  0 token(s) in database (none created yet)\n")
    assert not (home / ".tokenomics").exists()  # a read-only command creates nothing


@pytest.mark.parametrize(
    ("value", "shown"),
    [("tkn_x", "proxy token"), ("sk-123", "set (direct key)"), (None, "not set")],
)
def test_status_tells_proxy_tokens_from_direct_keys(
    cli: Cli, monkeypatch: pytest.MonkeyPatch, value: str | None, shown: str
) -> None:
    if value is not None:
        monkeypatch.setenv("OPENAI_API_KEY", value)
    out = cli("status", "--all").out
    assert line_of(out, "OPENAI_API_KEY") == f"OPENAI_API_KEY {shown}"
    assert "sk-123" not in out
    assert line_of(out, "OPENAI_BASE_URL") == "OPENAI_BASE_URL not set (will use provider default)"
    assert out.index("  anthropic") < out.index("  openai")  # sorted by name


def test_status_counts_tokens(cli: Cli) -> None:
    assert cli("token", "create", "--policy", '{"base_key_env":"OPENAI_API_KEY"}').code == 0
    assert cli("status").out.endswith("\nTokens\n  1 token(s) in database\n")


def test_status_with_a_config_error_says_so_and_exits_0(cli: Cli, work: Path) -> None:
    (work / "config.yaml").write_text("server:\n  http_port: lots\n")
    result = cli("status")
    assert result.code == 0
    assert result.out.startswith("Config: error loading (") and "http_port" in result.out


def test_status_reports_a_stale_pid_file_as_stopped(cli: Cli, home: Path) -> None:
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    pidfile.write(home / ".tokenomics" / "tokenomics.pid", pidfile.PidRecord(child.pid))
    out = cli("status").out
    assert f"  Status:  stopped (stale PID file {home / '.tokenomics' / 'tokenomics.pid'}" in out


@pytest.mark.slow
def test_status_shows_the_running_background_proxy(cli: Cli, daemons: Daemons) -> None:
    port = free_port()
    started = daemons.run("start", "--port", str(port))
    assert started.code == 0, started.err
    record = pidfile.read(daemons.home / ".tokenomics" / "tokenomics.pid")
    assert record is not None
    out = cli("status").out
    assert f"  Status:  running (PID {record.pid})\n  URL:     http://127.0.0.1:{port}\n" in out
    assert daemons.run("stop").err == f"Proxy stopped (PID {record.pid})\n"
    assert "  Status:  stopped\n" in cli("status").out


def test_status_shows_only_providers_with_a_variable_set_unless_all(
    cli: Cli, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ANTHROPIC_API_KEY", "sk-ant-secret")
    out = cli("status").out
    section = out[out.index("Environment Variables") : out.index("\nTokens")]
    assert re.findall(r"^  (\S+) *$", section, re.M) == ["anthropic"]
    assert section.count("not set") == 1  # anthropic's base URL, not 30 providers' variables
    assert re.search(r"^  \(\d+ providers have no variable set; --all lists them\)$", section, re.M)
    assert "openai" in cli("status", "--all").out
    assert len(out.splitlines()) < 15


def test_status_json_has_every_provider_and_no_secret(
    cli: Cli, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", "sk-123456789")
    monkeypatch.setenv("TOKENOMICS_KEY", "tkn_abcdef123456")
    result = cli("status", "--json")
    assert result.code == 0 and "sk-123456789" not in result.out and "abcdef" not in result.out
    report = json.loads(result.out)
    assert report["proxy"] == {
        "state": "stopped", "detail": "stopped", "pid": None, "url": "", "remote": "",
        "token": "tkn_...3456",
    }  # fmt: skip
    openai = next(p for p in report["providers"] if p["name"] == "openai")
    assert openai["key"] == "set" and openai["configured"] is True
    assert openai["api_key_env"] == "OPENAI_API_KEY"
    assert len(report["providers"]) > 5
    assert (report["tokens"], report["database_exists"]) == (0, False)


def test_masking_never_shows_short_secrets() -> None:
    assert mask_token("tkn_abc") == "****"
    assert mask_token("sk-abcdefghijkl") == "...ijkl"
    assert safe_url("not a url") == "not a url"
