"""`run_agents`: what Codex, gemini-cli and Claude Code need besides the usual variables."""

from __future__ import annotations

import json
import shutil
import tomllib
from pathlib import Path

from tokenomics.cli.run_agents import AgentLaunch, agent_launch, codex_overrides

BASE = "http://127.0.0.1:4321"
TOKEN = "tkn_test"


def launch(argv: list[str], tmp_path: Path, **environ: str) -> AgentLaunch:
    home = tmp_path / "home"
    home.mkdir(exist_ok=True)
    scratch = tmp_path / "scratch"
    scratch.mkdir(exist_ok=True)
    return agent_launch(argv, BASE, TOKEN, environ=environ, home=home, scratch=scratch)


def test_codex_gets_a_provider_on_its_command_line(tmp_path: Path) -> None:
    found = launch(["/usr/local/bin/codex", "exec", "say hi"], tmp_path)
    assert found.argv[0] == "/usr/local/bin/codex"
    assert found.argv[-2:] == ("exec", "say hi")
    assert found.env == [("OPENAI_API_KEY", TOKEN)]
    options = found.argv[1:-2]
    assert options[0::2] == ("-c", "-c")
    # each override is `dotted.key=<TOML value>`, as Codex parses it
    parsed = [tomllib.loads(option.replace("=", " = ", 1)) for option in options[1::2]]
    assert parsed[0] == {"model_provider": "tokenomics"}
    assert parsed[1]["model_providers"]["tokenomics"] == {
        "name": "Tokenomics", "base_url": f"{BASE}/v1", "env_key": "OPENAI_API_KEY",
        "wire_api": "responses", "supports_websockets": False,
    }  # fmt: skip


def test_codex_override_quotes_the_url() -> None:
    (_, _, _, table) = codex_overrides('http://h/"x\\')
    value = tomllib.loads(table.replace("=", " = ", 1))
    assert value["model_providers"]["tokenomics"]["base_url"] == 'http://h/"x\\/v1'


def test_gemini_gets_a_home_of_its_own_with_the_users_files(tmp_path: Path) -> None:
    user = tmp_path / "home" / ".gemini"
    user.mkdir(parents=True)
    (user / "settings.json").write_text('{"ui": {"theme": "X"}, "security": {"auth": {}}}')
    (user / "GEMINI.md").write_text("memory")
    found = launch(["gemini", "-p", "hi"], tmp_path)
    assert found.argv == ("gemini", "-p", "hi")
    ((name, home),) = found.env
    assert name == "GEMINI_CLI_HOME" and Path(home).is_relative_to(tmp_path / "scratch")
    ours = Path(home) / ".gemini"
    settings = json.loads((ours / "settings.json").read_text())
    assert settings == {
        "ui": {"theme": "X"},
        "security": {"auth": {"selectedType": "gemini-api-key"}},
    }
    assert (ours / "GEMINI.md").read_text() == "memory"  # linked, so writes reach the user's
    assert json.loads((user / "settings.json").read_text())["security"] == {"auth": {}}
    assert found.notes == ()


def test_gemini_settings_that_are_not_json_are_left_out_with_a_note(tmp_path: Path) -> None:
    user = tmp_path / "home" / ".gemini"
    user.mkdir(parents=True)
    (user / "settings.json").write_text("{// a comment\n}")
    found = launch(["gemini"], tmp_path, GEMINI_CLI_HOME=str(tmp_path / "home"))
    (note,) = found.notes
    assert "settings.json is not plain JSON" in note
    settings = json.loads((Path(found.env[0][1]) / ".gemini" / "settings.json").read_text())
    assert settings == {"security": {"auth": {"selectedType": "gemini-api-key"}}}


def test_claude_gets_the_bearer_token_instead_of_the_key(tmp_path: Path) -> None:
    found = launch(["claude", "-p", "hi"], tmp_path)
    assert found.rename == {"ANTHROPIC_API_KEY": "ANTHROPIC_AUTH_TOKEN"}
    assert found.env == []


def test_other_commands_are_left_alone(tmp_path: Path) -> None:
    found = launch(["python", "codex.py"], tmp_path)
    assert (found.argv, found.env, dict(found.rename)) == (("python", "codex.py"), [], {})
    assert not (tmp_path / "scratch" / "gemini-home").exists()


def test_removing_the_run_home_keeps_the_users_files(tmp_path: Path) -> None:
    user = tmp_path / "home" / ".gemini"
    (user / "tmp").mkdir(parents=True)
    (user / "tmp" / "chat.json").write_text("{}")
    launch(["gemini"], tmp_path)
    shutil.rmtree(tmp_path / "scratch")  # what `run` does when the command ends
    assert (user / "tmp" / "chat.json").read_text() == "{}"
