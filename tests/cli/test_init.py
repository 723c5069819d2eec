"""`tokenomics init` (`cli.md` §4, §10 scenarios 4-5 and 20-33, decisions D22/D24), in-process.

Adapted scenarios: the default proxy URL is http://localhost:<server.http_port> (D22, §9 item
11; the original printed https://localhost:8443), shell output uses single quotes (§9 item 24),
unknown agents list codex too, and the Claude settings file is 0600 with `env` merged.
"""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

from tokenomics.cli.envvars import client_env, mask_secret, provider_for_command
from tokenomics.cli.init import dotenv_quote, merge_dotenv, shell_quote
from tokenomics.config.dotenv import parse_dotenv
from tokenomics.config.providers import ProviderConfig

TOKEN = "tkn_1b4e28ba-2fa1-41d2-883f-0016d3cca427"
NASTY = "a b'c\"d$HOME`id`$(touch pwned)\\e\tf\ng;h|i&j*k#l!m%n"


def exports(out: str) -> list[tuple[str, str]]:
    """`export NAME='value'` lines (single-line values) as pairs, in order."""
    pairs = []
    for line in out.splitlines():
        assert line.startswith("export "), line
        name, _, quoted = line.removeprefix("export ").partition("=")
        assert quoted[0] == quoted[-1] == "'", line
        pairs.append((name, quoted[1:-1]))
    return pairs


def config(work: Path, text: str) -> None:
    (work / "config.yaml").write_text(text)


# ── scenarios 20-27: variables and the base URL ──────────────────────────────────────────────


def test_scenario_20_adapted_token_only_prints_openai_vars_for_local_http_proxy(cli) -> None:
    result = cli("init", "--token", "T")
    assert result.code == 0, result.err
    assert result.out == (
        "export OPENAI_API_KEY='T'\nexport OPENAI_BASE_URL='http://localhost:8080/v1'\n"
    )
    assert result.err == ""


def test_tls_flag_points_at_the_https_listener(cli) -> None:
    for flag in ("--tls", "--tls=true"):
        result = cli("init", "--token", "T", flag)
        assert exports(result.out)[1] == ("OPENAI_BASE_URL", "https://localhost:8443/v1")


def test_default_port_follows_server_settings(cli, monkeypatch) -> None:
    monkeypatch.setenv("TOKENOMICS_SERVER_HTTP_PORT", "9090")
    monkeypatch.setenv("TOKENOMICS_SERVER_HTTPS_PORT", "9443")
    assert "http://localhost:9090/v1" in cli("init", "--token", "T").out
    assert "https://localhost:9443/v1" in cli("init", "--token", "T", "--tls").out


def test_disabled_http_listener_means_https_by_default(cli, monkeypatch) -> None:
    monkeypatch.setenv("TOKENOMICS_SERVER_HTTP_PORT", "0")
    assert "https://localhost:8443/v1" in cli("init", "--token", "T").out


def test_scenario_21_anthropic_base_url_has_no_v1(cli) -> None:
    result = cli("init", "--token", "T", "--provider", "anthropic")
    assert exports(result.out) == [
        ("ANTHROPIC_API_KEY", "T"),
        ("ANTHROPIC_BASE_URL", "http://localhost:8080"),
    ]


def test_scenario_22_azure_and_gemini_variables(cli) -> None:
    azure = dict(exports(cli("init", "--token", "T", "--provider", "azure").out))
    assert azure["AZURE_OPENAI_API_KEY"] == "T"
    assert azure["AZURE_OPENAI_ENDPOINT"] == "http://localhost:8080"
    assert azure["OPENAI_API_VERSION"]  # AzureOpenAI clients refuse to start without it
    gemini = exports(cli("init", "--token", "T", "--provider", "gemini").out)
    assert gemini == [
        ("GEMINI_API_KEY", "T"),
        ("GEMINI_BASE_URL", "http://localhost:8080"),
        ("GOOGLE_GEMINI_BASE_URL", "http://localhost:8080"),  # what google-genai reads
    ]


def test_scenario_23_v1_only_for_openai_style_providers(cli) -> None:
    deepseek = dict(exports(cli("init", "--token", "T", "--provider", "deepseek").out))
    assert deepseek == {"DEEPSEEK_API_KEY": "T", "DEEPSEEK_BASE_URL": "http://localhost:8080/v1"}
    mistral = dict(exports(cli("init", "--token", "T", "--provider", "mistral").out))
    assert mistral == {"MISTRAL_API_KEY": "T", "MISTRAL_BASE_URL": "http://localhost:8080"}


def test_provider_names_match_case_insensitively_and_empty_key_env_is_derived(cli) -> None:
    assert exports(cli("init", "--token", "T", "--provider", "DeepSeek").out)[0] == (
        "DEEPSEEK_API_KEY",
        "T",
    )
    ollama = exports(cli("init", "--token", "T", "--provider", "ollama").out)
    assert ollama == [("OLLAMA_API_KEY", "T"), ("OLLAMA_BASE_URL", "http://localhost:8080")]


def test_unknown_provider_is_an_error_naming_the_valid_ones(cli) -> None:
    result = cli("init", "--token", "T", "--provider", "custom")
    assert result.code == 1 and result.out == ""
    assert result.err.startswith('Error: unknown provider "custom" (valid: ')
    assert all(f" {name}," in result.err for name in ("all", "anthropic", "gemini", "openai"))


def test_config_override_of_a_provider_changes_its_variables(cli, work) -> None:
    config(
        work,
        "providers:\n  anthropic:\n    upstream_url: https://api.anthropic.com\n"
        "    api_key_env: MY_ANTHROPIC_API_KEY_NEW\n",
    )
    out = exports(cli("init", "--token", "T", "--provider", "anthropic").out)
    assert out == [
        ("MY_ANTHROPIC_API_KEY_NEW", "T"),
        ("ANTHROPIC_BASE_URL", "http://localhost:8080"),
    ]


def test_scenario_24_custom_names_need_both_flags(cli) -> None:
    both = cli("init", "--token", "T", "--env-key", "K", "--env-base-url", "U")
    assert exports(both.out) == [("K", "T"), ("U", "http://localhost:8080")]
    only_key = cli("init", "--token", "T", "--env-key", "K")
    assert [name for name, _ in exports(only_key.out)] == ["OPENAI_API_KEY", "OPENAI_BASE_URL"]


def test_custom_name_that_is_not_a_variable_is_refused(cli) -> None:
    result = cli("init", "--token", "T", "--env-key", "X=1; rm -rf ~ #", "--env-base-url", "U")
    assert result.code == 1
    assert result.err.startswith('Error: --env-key "X=1; rm -rf ~ #" is not a valid')
    assert result.out == ""


def test_scenario_25_host_port_and_tls_false(cli) -> None:
    for tls in ("--tls=false", "--no-tls"):
        result = cli("init", "--token", "T", tls, "--host", "h", "--port", "9000")
        assert exports(result.out)[1] == ("OPENAI_BASE_URL", "http://h:9000/v1")
    ipv6 = cli("init", "--token", "T", "--host", "::1", "--port", "9000")
    assert exports(ipv6.out)[1] == ("OPENAI_BASE_URL", "http://[::1]:9000/v1")


def test_scenario_25_proxy_url_flag_beats_environment(cli, monkeypatch) -> None:
    monkeypatch.setenv("TOKENOMICS_PROXY_URL", "https://p:1")
    assert exports(cli("init", "--token", "T").out)[1][1] == "https://p:1/v1"
    result = cli("init", "--token", "T", "--proxy-url", "https://q:2/")
    assert exports(result.out)[1] == ("OPENAI_BASE_URL", "https://q:2/v1")


def test_invalid_port_is_an_error(cli) -> None:
    result = cli("init", "--token", "T", "--port", "70000")
    assert result.code == 1
    assert "invalid port 70000" in result.err


def test_scenario_26_insecure_adds_node_switch_last(cli) -> None:
    result = cli("init", "--token", "T", "--insecure")
    assert result.out.splitlines()[-1] == "export NODE_TLS_REJECT_UNAUTHORIZED='0'"
    assert "NODE_TLS" not in cli("init", "--token", "T", "--insecure=false").out


def test_missing_token_is_an_error(cli) -> None:
    result = cli("init")
    assert result.code == 1
    assert result.err == "Error: no token provided: use --token flag or set $TOKENOMICS_KEY\n"
    assert result.out == ""


def test_scenarios_4_and_5_token_from_dotenv_files_and_environment(
    cli, work, home, monkeypatch
) -> None:
    (home / ".tokenomics").mkdir()
    (home / ".tokenomics" / ".env").write_text("TOKENOMICS_KEY=tkn_home\n")
    (work / ".env").write_text("TOKENOMICS_KEY=tkn_a\n")
    assert exports(cli("init").out)[0] == ("OPENAI_API_KEY", "tkn_a")
    monkeypatch.setenv("TOKENOMICS_KEY", "tkn_b")
    assert exports(cli("init").out)[0] == ("OPENAI_API_KEY", "tkn_b")


# ── scenarios 27-30: formats and --provider all ──────────────────────────────────────────────


def test_scenario_27_json_is_one_object_with_exactly_the_keys(cli) -> None:
    result = cli("init", "--token", "T", "--output", "json")
    assert result.out == (
        '{\n  "OPENAI_API_KEY": "T",\n  "OPENAI_BASE_URL": "http://localhost:8080/v1"\n}\n'
    )
    nasty = cli("init", "--token", NASTY, "--output", "json", "--provider", "anthropic")
    assert json.loads(nasty.out) == {
        "ANTHROPIC_API_KEY": NASTY,
        "ANTHROPIC_BASE_URL": "http://localhost:8080",
    }


def test_scenario_28_dotenv_replaces_keeps_and_appends(cli, work) -> None:
    target = work / ".env.proxy"
    target.write_text('OPENAI_API_KEY="old"\nOTHER="keep"\n')
    target.chmod(0o640)
    result = cli("init", "--token", "T", "--output", "dotenv", "--dotenv", ".env.proxy")
    assert result.code == 0, result.err
    assert (result.out, result.err) == ("", "Updated .env.proxy\n")
    assert target.read_text() == (
        'OPENAI_API_KEY="T"\nOTHER="keep"\nOPENAI_BASE_URL="http://localhost:8080/v1"\n'
    )
    assert stat.S_IMODE(target.stat().st_mode) == 0o640  # an existing file keeps its mode


def test_dotenv_default_is_a_new_private_dot_env_in_cwd(cli, work) -> None:
    result = cli("init", "--token", "T", "--output", "dotenv")
    assert result.err == "Updated .env\n"
    path = work / ".env"
    assert path.read_text() == 'OPENAI_API_KEY="T"\nOPENAI_BASE_URL="http://localhost:8080/v1"\n'
    assert stat.S_IMODE(path.stat().st_mode) == 0o600


def test_dotenv_round_trips_any_value_through_the_project_parser(cli, work) -> None:
    (work / "x.env").write_text(
        "# keep me\nexport ANTHROPIC_API_KEY=old\nANTHROPIC_BASE_URL = old\nZ='1'"
    )
    result = cli(
        "init",
        "--token",
        NASTY,
        "--provider",
        "anthropic",
        "--output",
        "dotenv",
        "--dotenv",
        "x.env",
    )
    assert result.code == 0, result.err
    text = (work / "x.env").read_text()
    assert text.startswith("# keep me\nexport ANTHROPIC_API_KEY=")
    assert parse_dotenv(text) == {
        "ANTHROPIC_API_KEY": NASTY,
        "ANTHROPIC_BASE_URL": "http://localhost:8080",
        "Z": "1",
    }


def test_scenario_29_unknown_output_format(cli) -> None:
    result = cli("init", "--token", "T", "--output", "xml")
    assert result.code == 1
    assert result.err.startswith("Error: unknown output format: xml")
    assert result.out == ""


def test_scenario_30_provider_all_emits_each_variable_once(cli, work) -> None:
    config(
        work,
        "providers:\n"
        "  openai: {upstream_url: https://api.openai.com, api_key_env: OPENAI_API_KEY,"
        " base_url_env: OPENAI_BASE_URL}\n"
        "  openai_compat: {upstream_url: https://compat.example, api_key_env: OPENAI_API_KEY,"
        " base_url_env: OPENAI_BASE_URL}\n",
    )
    names = [name for name, _ in exports(cli("init", "--token", "T", "--provider", "all").out)]
    assert len(names) == len(set(names))
    assert {"OPENAI_API_KEY", "OPENAI_BASE_URL", "ANTHROPIC_API_KEY", "MISTRAL_BASE_URL"} <= set(
        names
    )
    ignored = cli(
        "init", "--token", "T", "--provider", "all", "--env-key", "K", "--env-base-url", "U"
    )
    assert "K" not in dict(exports(ignored.out))


# ── shell output is safe to eval ─────────────────────────────────────────────────────────────


def test_shell_output_evals_back_to_the_exact_value(cli, work) -> None:
    result = cli("init", "--token", NASTY, "--proxy-url", "http://h:1/$(touch pwned2)")
    script = 'eval "$1"; printf %s "$OPENAI_API_KEY"; printf "\\0%s" "$OPENAI_BASE_URL"'
    done = subprocess.run(
        ["bash", "-c", script, "_", result.out],
        cwd=work,
        capture_output=True,
        text=True,
        check=True,
    )
    assert done.stdout.split("\0") == [NASTY, "http://h:1/$(touch pwned2)/v1"]
    assert not (work / "pwned").exists() and not (work / "pwned2").exists()


@pytest.mark.slow
def test_eval_of_the_real_command_round_trips(work, home) -> None:
    env = {**os.environ, "HOME": str(home)}
    script = 'eval "$("$0" -m tokenomics init --token "$1")"; printf %s "$OPENAI_API_KEY"'
    done = subprocess.run(
        ["bash", "-c", script, sys.executable, NASTY],
        cwd=work,
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    assert done.stdout == NASTY
    assert not (work / "pwned").exists()


def test_quoting_helpers() -> None:
    assert shell_quote("it's") == "'it'\\''s'"
    assert dotenv_quote('a"b\\c\nd') == '"a\\"b\\\\c\\nd"'
    assert merge_dotenv("", [("A", "1")]) == 'A="1"\n'
    assert merge_dotenv("B=2", [("A", "1")]) == 'B=2\nA="1"\n'


# ── scenario 33 and cli_maps ─────────────────────────────────────────────────────────────────


def test_scenario_33_cli_maps_from_config(cli, work) -> None:
    config(work, "cli_maps:\n  claude: anthropic\n")
    names = [n for n, _ in exports(cli("init", "--token", "T", "claude").out)]
    assert names == ["ANTHROPIC_API_KEY", "ANTHROPIC_BASE_URL"]


def test_builtin_cli_map_matches_the_basename_and_config_overrides_it(cli, work) -> None:
    out = cli("init", "--token", "T", "/usr/local/bin/claude").out
    assert exports(out)[0][0] == "ANTHROPIC_API_KEY"
    config(work, "cli_maps:\n  claude: gemini\n")
    assert exports(cli("init", "--token", "T", "claude").out)[0][0] == "GEMINI_API_KEY"
    explicit = cli("init", "--token", "T", "--provider", "mistral", "claude")
    assert exports(explicit.out)[0][0] == "MISTRAL_API_KEY"


def test_provider_for_command() -> None:
    assert provider_for_command("/usr/bin/codex", {}) == "generic"
    assert provider_for_command("/usr/bin/node", {}) is None  # `run`: every family
    assert provider_for_command("C:\\tools\\claude.exe", {}) == "anthropic"
    assert provider_for_command("./claude", {"./claude": "x"}) == "x"
    assert provider_for_command("claude", {"claude": "gemini"}) == "gemini"
    assert provider_for_command("unknown-tool", {}) is None


def test_client_env_for_run() -> None:
    providers = {
        "openai": ProviderConfig(
            name="openai", api_key_env="OPENAI_API_KEY", base_url_env="OPENAI_BASE_URL"
        )
    }
    assert client_env(providers, "openai", "http://127.0.0.1:5/", "T") == [
        ("OPENAI_API_KEY", "T"),
        ("OPENAI_BASE_URL", "http://127.0.0.1:5/v1"),
    ]
    assert client_env({}, "all", "http://x", "T") == [
        ("OPENAI_API_KEY", "T"),
        ("OPENAI_BASE_URL", "http://x/v1"),
    ]


def test_mask_secret() -> None:
    assert mask_secret(TOKEN) == "tkn_…a427"
    assert mask_secret("T") == "…"
    assert mask_secret("tkn_short") == "tkn_…"


# ── scenarios 31-32: agents ──────────────────────────────────────────────────────────────────


def test_scenario_31_claude_code_keeps_other_keys_and_writes_0600(cli, work) -> None:
    path = work / ".claude" / "settings.local.json"
    path.parent.mkdir()
    path.write_text(json.dumps({"allowedTools": ["Bash"], "env": {"KEEP": "1"}}))
    path.chmod(0o644)
    result = cli("init", "--agent", "claude-code", "--provider", "anthropic", "--token", TOKEN)
    assert result.code == 0, result.err
    assert result.out == ""
    assert result.err.startswith(
        "Wrote .claude/settings.local.json (mode 0600)\n"
        "It holds your wrapper token in clear: keep it private and out of version control\n"
    )
    assert TOKEN not in result.err and "ANTHROPIC_API_KEY=tkn_…a427" in result.err
    data = json.loads(path.read_text())
    assert data["allowedTools"] == ["Bash"]
    assert data["env"] == {
        "KEEP": "1",
        "ANTHROPIC_API_KEY": TOKEN,
        "ANTHROPIC_BASE_URL": "http://localhost:8080",
    }
    assert stat.S_IMODE(path.stat().st_mode) == 0o600


def test_claude_code_defaults_to_anthropic_and_creates_the_file(cli, work) -> None:
    result = cli("init", "--agent", "Claude-Code", "--token", "T")
    assert result.code == 0, result.err
    path = work / ".claude" / "settings.local.json"
    assert json.loads(path.read_text()) == {
        "env": {"ANTHROPIC_API_KEY": "T", "ANTHROPIC_BASE_URL": "http://localhost:8080"}
    }
    assert stat.S_IMODE(path.stat().st_mode) == 0o600


def test_claude_code_refuses_to_replace_invalid_json(cli, work) -> None:
    path = work / ".claude" / "settings.local.json"
    path.parent.mkdir()
    path.write_text("{not json")
    result = cli("init", "--agent", "claude-code", "--token", "T")
    assert result.code == 1
    assert "is not valid JSON" in result.err
    assert path.read_text() == "{not json"


def test_scenario_32_unknown_agent(cli) -> None:
    result = cli("init", "--token", "T", "--agent", "foo")
    assert result.code == 1
    assert result.err == "Error: unknown agent: foo (supported: claude-code, codex, gemini)\n"


CODEX_CONFIG = """\
# my codex settings
model = "gpt-5"

[model_providers.other]
name = "Other"
base_url = "https://other.example/v1"

[mcp_servers.docs]
command = "docs-server"
"""


def test_codex_appends_a_provider_and_keeps_the_file(cli, home, monkeypatch) -> None:
    codex_home = home / "codex-home"
    codex_home.mkdir()
    path = codex_home / "config.toml"
    path.write_text(CODEX_CONFIG)
    monkeypatch.setenv("CODEX_HOME", str(codex_home))
    result = cli("init", "--agent", "codex", "--token", TOKEN)
    assert result.code == 0, result.err
    assert result.out == "" and TOKEN not in result.err
    assert result.err.startswith(f"Wrote {path}\n")
    text = path.read_text()
    assert text.startswith(CODEX_CONFIG)  # appended: comments and layout kept
    assert TOKEN not in text
    data = tomllib.loads(text)
    assert data["model"] == "gpt-5"
    assert data["mcp_servers"] == {"docs": {"command": "docs-server"}}
    assert data["model_providers"]["other"]["name"] == "Other"
    entry = data["model_providers"]["tokenomics"]
    assert {k: entry[k] for k in ("name", "base_url", "env_key", "wire_api")} == {
        "name": "Tokenomics",
        "base_url": "http://localhost:8080/v1",
        "env_key": "TOKENOMICS_KEY",
        "wire_api": "responses",
    }
    assert cli("init", "--agent", "codex", "--token", TOKEN).code == 0
    assert path.read_text() == text  # nothing changed, nothing rewritten


def test_codex_updates_an_existing_entry_keeping_its_other_keys(cli, home) -> None:
    path = home / ".codex" / "config.toml"
    path.parent.mkdir()
    path.write_text(
        'model = "o3"\n[model_providers.tokenomics]\nname = "Old"\nbase_url = "http://old/v1"\n'
        "request_max_retries = 7\n"
    )
    result = cli(
        "init",
        "--agent",
        "codex",
        "--token",
        "T",
        "--port",
        "9000",
        "--env-key",
        "MY_KEY",
        "--env-base-url",
        "MY_URL",
    )
    assert result.code == 0, result.err
    data = tomllib.loads(path.read_text())
    assert data["model"] == "o3"
    entry = data["model_providers"]["tokenomics"]
    assert entry["request_max_retries"] == 7
    assert (entry["base_url"], entry["env_key"]) == ("http://localhost:9000/v1", "MY_KEY")


def test_codex_creates_a_private_config_in_home(cli, home) -> None:
    assert cli("init", "--agent", "codex", "--token", "T").code == 0
    path = home / ".codex" / "config.toml"
    assert tomllib.loads(path.read_text())["model_providers"]["tokenomics"]["name"] == "Tokenomics"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600


def test_codex_refuses_to_replace_invalid_toml(cli, home) -> None:
    path = home / ".codex" / "config.toml"
    path.parent.mkdir()
    path.write_text("model = [unterminated\n")
    result = cli("init", "--agent", "codex", "--token", "T")
    assert result.code == 1
    assert "is not valid TOML" in result.err
    assert path.read_text() == "model = [unterminated\n"


def test_codex_rewrites_when_providers_are_an_inline_table(cli, home) -> None:
    path = home / ".codex" / "config.toml"
    path.parent.mkdir()
    path.write_text('model = "o3"\nmodel_providers = { other = { name = "O" } }\n')
    assert cli("init", "--agent", "codex", "--token", "T").code == 0
    data = tomllib.loads(path.read_text())
    assert data["model"] == "o3"
    assert set(data["model_providers"]) == {"other", "tokenomics"}


def test_init_writes_nothing_but_its_output(cli, work, home) -> None:
    assert cli("init", "--token", "T").code == 0
    assert list(work.iterdir()) == [] and list(home.iterdir()) == []


def test_gemini_agent_sets_the_auth_type_and_prints_the_variables(cli, home) -> None:
    settings = home / ".gemini" / "settings.json"
    settings.parent.mkdir()
    settings.write_text('{"ui": {"theme": "GitHub"}}')
    result = cli("init", "--agent", "gemini", "--token", TOKEN)
    assert result.code == 0, result.err
    assert exports(result.out) == [
        ("GEMINI_API_KEY", TOKEN),
        ("GEMINI_BASE_URL", "http://localhost:8080"),
        ("GOOGLE_GEMINI_BASE_URL", "http://localhost:8080"),
    ]
    assert json.loads(settings.read_text()) == {
        "ui": {"theme": "GitHub"}, "security": {"auth": {"selectedType": "gemini-api-key"}},
    }  # fmt: skip
    assert TOKEN not in settings.read_text() and TOKEN not in result.err
    assert result.err.startswith(f"Wrote {settings} (security.auth.selectedType = gemini-api-key)")


def test_gemini_agent_refuses_settings_it_cannot_read(cli, home) -> None:
    settings = home / ".gemini" / "settings.json"
    settings.parent.mkdir()
    for text, error in (("{// c\n}", "is not plain JSON"), ('{"security": 1}', "expected")):
        settings.write_text(text)
        result = cli("init", "--agent", "gemini", "--token", TOKEN)
        assert result.code == 1 and error in result.err
        assert settings.read_text() == text
