"""`tokenomics init --agent …`: an agent's own configuration, and the files init writes.

* `claude-code`: the variables in the `env` of `./.claude/settings.local.json` (0600; it holds
  the token, which the summary says);
* `codex`: a `tokenomics` model provider in Codex's `config.toml` (the token stays in a
  variable);
* `gemini`: gemini-cli's auth type in `~/.gemini/settings.json`; the variables are printed for
  `eval` (the token stays in the shell).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import orjson

from tokenomics.cli import envvars
from tokenomics.cli.context import Context
from tokenomics.cli.run_agents import GEMINI_AUTH, set_gemini_auth
from tokenomics.config.private_files import FILE_MODE, write_atomic
from tokenomics.domain.errors import CommandError

AGENTS = ("claude-code", "codex", "gemini")
CLAUDE_SETTINGS = Path(".claude") / "settings.local.json"
CODEX_PROVIDER = "tokenomics"
CODEX_KEY_ENV = "TOKENOMICS_KEY"


def shell_quote(value: str) -> str:
    """POSIX single quotes: nothing inside is expanded; `'` becomes `'\\''`."""
    return "'" + value.replace("'", "'\\''") + "'"


def write_claude_code(ctx: Context, pairs: list[tuple[str, str]], token: str, base: str) -> None:
    """Merge `pairs` into the `env` of `./.claude/settings.local.json` (0600), keeping the rest."""
    path = ctx.cwd / CLAUDE_SETTINGS
    data: dict[str, Any] = {}
    if path.exists():
        try:
            data = orjson.loads(read_text(path) or "{}")
        except orjson.JSONDecodeError as exc:
            raise CommandError(
                f"{CLAUDE_SETTINGS} is not valid JSON ({exc}); fix it or move it away"
            ) from None
    env = data.setdefault("env", {}) if isinstance(data, dict) else None
    if not isinstance(env, dict):
        raise CommandError(f'{CLAUDE_SETTINGS}: expected a JSON object with an "env" object')
    env.update(pairs)
    path.parent.mkdir(parents=True, exist_ok=True)
    text = orjson.dumps(data, option=orjson.OPT_INDENT_2).decode() + "\n"
    write_text(path, text, keep_mode=False)  # it holds a credential: always 0600
    shown = [f"  {k}={envvars.mask_secret(v) if v == token else v}" for k, v in pairs]
    ctx.stderr.write(
        "\n".join(
            [
                f"Wrote {CLAUDE_SETTINGS.as_posix()} (mode 0600)",
                "It holds your wrapper token in clear: keep it private and out of version control",
                f"(add {CLAUDE_SETTINGS.as_posix()} to .gitignore if Claude Code has not).",
                "",
                "Environment variables configured:",
                *shown,
                "",
                f"Claude Code reaches the proxy at {base} only while it runs (`tokenomics start`).",
                "",
                "To point other tools at it too, add to your shell profile:",
                f"  export TOKENOMICS_PROXY_URL={shell_quote(base)}",
                "",
            ]
        )
    )


def write_codex(ctx: Context, base: str, token: str, key_env: str) -> None:
    """Write `[model_providers.tokenomics]` into Codex's `config.toml`, keeping everything else.

    Codex (`codex-rs/model-provider-info`) reads `name`, `base_url` (OpenAI-style, with /v1),
    `env_key` (the variable holding the key, sent as a Bearer token), `env_key_instructions`
    and `wire_api`; current releases accept only `wire_api = "responses"` and refuse to start
    with the older "chat". The token itself is not written: Codex reads it from `env_key`.
    """
    codex_home = ctx.environ.get("CODEX_HOME", "")
    if not codex_home and ctx.home is None:
        raise CommandError("cannot find Codex's config.toml: set $CODEX_HOME or $HOME")
    path = Path(codex_home).expanduser() if codex_home else Path(ctx.home or "") / ".codex"
    path = path / "config.toml"
    entry = {
        "name": "Tokenomics",
        "base_url": f"{base}/v1",
        "env_key": key_env,
        "env_key_instructions": f"Set {key_env} to your Tokenomics wrapper token (tkn_...).",
        "wire_api": "responses",
    }
    text = read_text(path)
    updated = _with_codex_provider(path, text, entry)
    if updated != text:
        path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        write_text(path, updated)
    has_key = ctx.environ.get(key_env) == token
    key_note = "" if has_key else f" (export it with your token, {envvars.mask_secret(token)})"
    ctx.stderr.write(
        f"Wrote {path}\n\n"
        f'Codex model provider "{CODEX_PROVIDER}":\n'
        f"  base_url = {entry['base_url']}\n"
        f"  env_key  = {key_env}{key_note}\n\n"
        f"Use it with:  codex -c model_provider={CODEX_PROVIDER}\n"
        f'  (or put model_provider = "{CODEX_PROVIDER}" at the top of {path.name})\n'
        f"Codex reaches the proxy at {base} only while it runs (`tokenomics start`).\n"
    )


def _with_codex_provider(path: Path, text: str, entry: dict[str, str]) -> str:
    """`text` with the provider entry set (its other keys kept); appended when that keeps the
    rest of the file byte for byte, else the whole document is rewritten (comments are lost)."""
    import tomllib

    import tomli_w

    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise CommandError(f"{path} is not valid TOML ({exc}); fix it or move it away") from None
    providers = data.get("model_providers", {})
    old = providers.get(CODEX_PROVIDER) if isinstance(providers, dict) else None
    if not isinstance(providers, dict) or not isinstance(old, dict | None):
        raise CommandError(f"{path}: model_providers.{CODEX_PROVIDER} must be a table")
    new = {**(old or {}), **entry}
    if new == old:
        return text
    expected = {**data, "model_providers": {**providers, CODEX_PROVIDER: new}}
    if old is None:
        snippet = tomli_w.dumps({"model_providers": {CODEX_PROVIDER: entry}})
        appended = (text.rstrip("\n") + "\n\n" if text.strip() else "") + snippet
        try:
            if tomllib.loads(appended) == expected:
                return appended
        except tomllib.TOMLDecodeError:
            pass  # e.g. model_providers written as an inline table: rewrite below
    return tomli_w.dumps(expected)


def write_gemini(ctx: Context, pairs: list[tuple[str, str]], token: str) -> None:
    """Set `security.auth.selectedType` in gemini-cli's user settings, keeping the rest, and
    print the variables to export: the token is not written to a file.

    gemini-cli (0.61) takes the base URL from `GOOGLE_GEMINI_BASE_URL`, but with that set and
    no auth type in its settings it picks "gateway", which its non-interactive mode rejects.
    """
    root = ctx.environ.get("GEMINI_CLI_HOME", "") or (str(ctx.home) if ctx.home else "")
    if not root:
        raise CommandError("cannot find gemini-cli's settings: set $GEMINI_CLI_HOME or $HOME")
    path = Path(root).expanduser() / ".gemini" / "settings.json"
    text = read_text(path)
    try:
        data: Any = orjson.loads(text) if text.strip() else {}
    except orjson.JSONDecodeError as exc:
        raise CommandError(f"{path} is not plain JSON ({exc}); fix it or move it away") from None
    before = orjson.dumps(data)
    if not set_gemini_auth(data):
        raise CommandError(f'{path}: expected a JSON object with a "security.auth" object')
    if orjson.dumps(data) != before:
        path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        write_text(path, orjson.dumps(data, option=orjson.OPT_INDENT_2).decode() + "\n")
    ctx.stdout.write("".join(f"export {k}={shell_quote(v)}\n" for k, v in pairs))
    ctx.stderr.write(
        f"Wrote {path} (security.auth.selectedType = {GEMINI_AUTH})\n"
        f'Export the variables above (eval "$(tokenomics init --agent gemini)");'
        f" the token is {envvars.mask_secret(token)}.\n"
    )


# ── files ────────────────────────────────────────────────────────────────────────────────────


def read_text(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return ""
    except (OSError, UnicodeDecodeError) as exc:
        raise CommandError(f"cannot read {path}: {exc}") from None


def write_text(path: Path, text: str, *, keep_mode: bool = True) -> None:
    """`write_atomic` for a file the user owns: an existing one keeps its mode (else 0600,
    always 0600 without `keep_mode`); a failure is one `CommandError` line."""
    try:
        write_atomic(path, text.encode(), mode=None if keep_mode else FILE_MODE)
    except OSError as exc:
        raise CommandError(f"cannot write {path}: {exc.strerror or exc}") from None
