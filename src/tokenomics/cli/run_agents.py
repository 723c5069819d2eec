"""What some agents need from `tokenomics run` besides the usual variables (issue 13).

    extra = agent_launch(argv, base, token, environ=env, home=home, scratch=tmp)
    # extra.argv: the command to run; extra.env: more variables; extra.rename: variables to
    # inject under another name

* `codex` (OpenAI Codex CLI) ignores `OPENAI_BASE_URL`: `-c` overrides on its command line
  add a `tokenomics` model provider (Responses API, key from `OPENAI_API_KEY`, no WebSocket)
  and select it. Nothing is written to the user's `~/.codex`.
* `gemini` (gemini-cli) refuses to start without an auth type in its settings: with
  `GOOGLE_GEMINI_BASE_URL` set it picks "gateway", which its non-interactive mode rejects. It
  gets a home of its own for this run (`GEMINI_CLI_HOME` under `scratch`) whose `.gemini`
  links every entry of the user's own `.gemini`, except `settings.json`: a copy with
  `security.auth.selectedType = "gemini-api-key"`. The user's files are not changed.
* `claude` (Claude Code) gets the token as `ANTHROPIC_AUTH_TOKEN` instead of `ANTHROPIC_API_KEY`
  (a bearer token it uses without asking to approve it; never both).
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tokenomics.cli.envvars import EnvPairs, command_names
from tokenomics.config.private_files import private_dir, write_atomic

CODEX_PROVIDER = "tokenomics"
CODEX_KEY_ENV = "OPENAI_API_KEY"
GEMINI_DIR = ".gemini"
GEMINI_SETTINGS = "settings.json"
GEMINI_AUTH = "gemini-api-key"


@dataclass(frozen=True, slots=True)
class AgentLaunch:
    argv: tuple[str, ...]
    env: EnvPairs = field(default_factory=list)
    rename: Mapping[str, str] = field(default_factory=dict)
    notes: tuple[str, ...] = ()


def toml_string(value: str) -> str:
    """A TOML basic string (JSON's escapes are a subset of TOML's)."""
    return json.dumps(value, ensure_ascii=False)


def codex_overrides(base_url: str) -> tuple[str, ...]:
    """`-c` options that make Codex use our proxy for this run only."""
    entry = {
        "name": toml_string("Tokenomics"),
        "base_url": toml_string(f"{base_url.rstrip('/')}/v1"),
        "env_key": toml_string(CODEX_KEY_ENV),
        "wire_api": toml_string("responses"),
        "supports_websockets": "false",
    }
    table = ", ".join(f"{k} = {v}" for k, v in entry.items())
    return (
        "-c", f"model_provider={toml_string(CODEX_PROVIDER)}",
        "-c", f"model_providers.{CODEX_PROVIDER}={{{table}}}",
    )  # fmt: skip


def _codex(argv: Sequence[str], base_url: str, token: str) -> AgentLaunch:
    return AgentLaunch((argv[0], *codex_overrides(base_url), *argv[1:]), [(CODEX_KEY_ENV, token)])


def set_gemini_auth(settings: Any) -> bool:
    """Set `security.auth.selectedType` in gemini-cli settings; False if they are not shaped
    for it (not an object, or `security`/`auth` not objects)."""
    if not isinstance(settings, dict):
        return False
    auth = settings.setdefault("security", {})
    auth = auth.setdefault("auth", {}) if isinstance(auth, dict) else None
    if not isinstance(auth, dict):
        return False
    auth["selectedType"] = GEMINI_AUTH
    return True


def _gemini_settings(source: Path) -> tuple[dict[str, Any], str]:
    """The user's gemini-cli settings with our auth type, and a note if they were unusable."""
    settings: Any = {}
    note = ""
    try:
        settings = json.loads(source.read_text(encoding="utf-8"))
    except FileNotFoundError:
        pass
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        note = f"tokenomics: {source} is not plain JSON ({exc}): gemini runs without it"
    if not set_gemini_auth(settings):
        note = note or f"tokenomics: {source} is not a settings object: gemini runs without it"
        settings = {}
        set_gemini_auth(settings)
    return settings, note


def gemini_home(user_home: Path | None, scratch: Path) -> tuple[Path, str]:
    """A gemini-cli home for this run (see the module docstring), and a note for the user."""
    home = scratch / "gemini-home"
    target = home / GEMINI_DIR
    private_dir(target)
    source = (user_home / GEMINI_DIR) if user_home is not None else None
    if source is not None and source.is_dir():
        for entry in source.iterdir():
            if entry.name != GEMINI_SETTINGS:
                with contextlib.suppress(OSError):  # e.g. no symlinks here: run without it
                    (target / entry.name).symlink_to(entry)
    settings, note = _gemini_settings(source / GEMINI_SETTINGS if source else home / "none")
    path = target / GEMINI_SETTINGS
    write_atomic(path, (json.dumps(settings, indent=2) + "\n").encode())
    return home, note


def agent_launch(
    argv: Sequence[str],
    base_url: str,
    token: str,
    *,
    environ: Mapping[str, str],
    home: Path | None,
    scratch: Path,
) -> AgentLaunch:
    """The command line and extra variables for `argv`'s agent (unchanged for others)."""
    stem = command_names(argv[0])[-1].lower()
    if stem == "codex":
        return _codex(argv, base_url, token)
    if stem == "gemini":
        user_home = Path(environ["GEMINI_CLI_HOME"]) if environ.get("GEMINI_CLI_HOME") else home
        gemini, note = gemini_home(user_home, scratch)
        notes = (note,) if note else ()
        return AgentLaunch(tuple(argv), [("GEMINI_CLI_HOME", str(gemini))], notes=notes)
    if stem == "claude":
        return AgentLaunch(tuple(argv), rename={"ANTHROPIC_API_KEY": "ANTHROPIC_AUTH_TOKEN"})
    return AgentLaunch(tuple(argv))
