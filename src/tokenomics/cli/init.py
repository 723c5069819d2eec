"""`tokenomics init`: the environment that points a client tool at the proxy (`cli.md` §4).

Printed for `eval` (shell), merged into a dotenv file, printed as JSON, or written into an
agent's own configuration (Claude Code's `.claude/settings.local.json`, Codex's `config.toml`).
The wrapper token is printed in those outputs (that is what the user asked for); the summaries
on stderr mask it.
"""

from __future__ import annotations

import contextlib
import os
import re
import tempfile
from pathlib import Path
from typing import Annotated, Any

import orjson
from cyclopts import Parameter

from tokenomics.cli import daemon, envvars
from tokenomics.cli.context import Context
from tokenomics.cli.token import CommandError
from tokenomics.config.providers import load_providers
from tokenomics.config.settings import Settings

OUTPUTS = ("shell", "dotenv", "json")
AGENTS = ("claude-code", "codex")
CLAUDE_SETTINGS = Path(".claude") / "settings.local.json"
CODEX_PROVIDER = "tokenomics"
CODEX_KEY_ENV = "TOKENOMICS_KEY"


def _opt(text: str, **more: Any) -> Parameter:
    """An option whose default is explained in its help text."""
    return Parameter(help=text, show_default=False, **more)


def init(
    cli_name: Annotated[
        str, _opt("Client executable to configure for (see cli_maps).", allow_leading_hyphen=False)
    ] = "",
    /,
    *,
    token: Annotated[str, _opt("Wrapper token (default: $TOKENOMICS_KEY).")] = "",
    proxy_url: Annotated[str, _opt("Proxy URL (default: $TOKENOMICS_PROXY_URL, else local).")] = "",
    host: Annotated[str, Parameter(help="Host of the local proxy URL.")] = "localhost",
    port: Annotated[
        int | None, _opt("Local proxy port (default: server.http_port/https_port).")
    ] = None,
    tls: Annotated[bool | None, _opt("Use the local proxy's HTTPS listener (default: no).")] = None,
    insecure: Annotated[bool, _opt("Add NODE_TLS_REJECT_UNAUTHORIZED=0.", negative="")] = False,
    env_key: Annotated[str, _opt("Variable for the token (needs --env-base-url too).")] = "",
    env_base_url: Annotated[str, _opt("Variable for the URL (needs --env-key too).")] = "",
    provider: Annotated[
        str, _opt("Provider, or all (default: generic; claude-code: anthropic).")
    ] = "",
    output: Annotated[str, Parameter(help="shell, dotenv or json.")] = "shell",
    dotenv: Annotated[str, _opt("File for --output dotenv (default: ./.env).")] = "",
    agent: Annotated[str, _opt("Write an agent's own config instead: claude-code, codex.")] = "",
    ctx: Annotated[Context, Parameter(parse=False)],
) -> None:
    """Print the environment variables that send a client tool through the proxy.

    The proxy URL is --proxy-url (or $TOKENOMICS_PROXY_URL) when given. Otherwise it is a proxy
    you run yourself (`tokenomics serve` or `start`): http://localhost:<server.http_port>
    (8080) by default, https://localhost:<server.https_port> (8443) with --tls. Plain HTTP is
    the default because most SDKs reject the proxy's self-signed certificate.

    Use: eval "$(tokenomics init)". Shell output is single-quoted, safe to eval whatever the
    values hold.
    """
    token = token or ctx.environ.get("TOKENOMICS_KEY", "")
    if not token:
        raise CommandError("no token provided: use --token flag or set $TOKENOMICS_KEY")
    for flag, name in (("--env-key", env_key), ("--env-base-url", env_base_url)):
        if name and not envvars.ENV_NAME.fullmatch(name):
            raise CommandError(f'{flag} "{name}" is not a valid environment variable name')
    settings = ctx.settings()
    env_url = ctx.environ.get("TOKENOMICS_PROXY_URL", "")
    base = proxy_base_url(settings, proxy_url or env_url, host, port, tls)
    agent_name = agent.strip().lower()
    if agent_name and agent_name not in AGENTS:
        raise CommandError(f"unknown agent: {agent} (supported: {', '.join(AGENTS)})")
    providers = load_providers(
        cwd=ctx.cwd, home=ctx.home, data_dir=Path(settings.dir), inline=settings.providers
    )
    name = provider or _provider_for(cli_name, settings, agent_name)
    pairs = envvars.client_env(
        providers, name, base, token, env_key=env_key, env_base_url=env_base_url
    )
    if insecure:
        pairs.append(envvars.NODE_INSECURE)
    if agent_name == "claude-code":
        write_claude_code(ctx, pairs, token, base)
    elif agent_name == "codex":
        write_codex(ctx, base, token, env_key or CODEX_KEY_ENV)
    else:
        emit(ctx, output, dotenv, pairs)


def emit(ctx: Context, output: str, dotenv: str, pairs: list[tuple[str, str]]) -> None:
    """`--output shell` and `json` print to stdout; `dotenv` merges into a file."""
    if output == "shell":
        ctx.stdout.write("".join(f"export {k}={shell_quote(v)}\n" for k, v in pairs))
    elif output == "json":
        data = orjson.dumps(dict(pairs), option=orjson.OPT_INDENT_2 | orjson.OPT_SORT_KEYS)
        ctx.stdout.write(data.decode() + "\n")
    elif output == "dotenv":
        target = dotenv or ".env"
        path = ctx.cwd / Path(target).expanduser()
        _write_atomic(path, merge_dotenv(_read(path), pairs))
        ctx.stderr.write(f"Updated {target}\n")
    else:
        raise CommandError(f"unknown output format: {output} (supported: {', '.join(OUTPUTS)})")


def proxy_base_url(
    settings: Settings, proxy_url: str, host: str, port: int | None, tls: bool | None
) -> str:
    """`proxy_url` (--proxy-url or $TOKENOMICS_PROXY_URL), else the local proxy's listener.

    Without --tls/--no-tls the plain HTTP listener is used, unless it is disabled
    (`server.http_port: 0`) and TLS is on.
    """
    if url := proxy_url.strip():
        return url.rstrip("/")
    listener = daemon.choose_listener(settings, host, port, tls)  # the one `start` uses
    host = listener.host
    if ":" in host and not host.startswith("["):
        host = f"[{host}]"
    return f"{'https' if listener.tls else 'http'}://{host}:{listener.port}"


def _provider_for(cli_name: str, settings: Settings, agent: str) -> str:
    if cli_name and (mapped := envvars.provider_for_command(cli_name, settings.cli_maps)):
        return mapped
    return "anthropic" if agent == "claude-code" else envvars.GENERIC


# ── formats ──────────────────────────────────────────────────────────────────────────────────


def shell_quote(value: str) -> str:
    """POSIX single quotes: nothing inside is expanded; `'` becomes `'\\''`."""
    return "'" + value.replace("'", "'\\''") + "'"


_DOTENV_ESCAPES = {"\\": "\\\\", '"': '\\"', "\n": "\\n", "\r": "\\r", "\t": "\\t"}


def dotenv_quote(value: str) -> str:
    """Double quotes with backslash escapes, as `config.dotenv.parse_dotenv` reads them."""
    return '"' + re.sub(r'[\\"\n\r\t]', lambda m: _DOTENV_ESCAPES[m.group()], value) + '"'


def merge_dotenv(text: str, pairs: list[tuple[str, str]]) -> str:
    """Replace each `NAME=` line of `pairs` (also `export NAME =`), append the rest, keep others."""
    values = dict(pairs)
    lines = text.split("\n")
    if lines and lines[-1] == "":
        lines.pop()
    done: set[str] = set()
    for i, line in enumerate(lines):
        match = re.match(r"(\s*(?:export\s+)?)([A-Za-z_][A-Za-z0-9_.]*)\s*=", line)
        if match and match.group(2) in values:
            name = match.group(2)
            lines[i] = f"{match.group(1).lstrip()}{name}={dotenv_quote(values[name])}"
            done.add(name)
    lines += [f"{k}={dotenv_quote(v)}" for k, v in values.items() if k not in done]
    return "\n".join(lines) + "\n"


# ── agents ───────────────────────────────────────────────────────────────────────────────────


def write_claude_code(ctx: Context, pairs: list[tuple[str, str]], token: str, base: str) -> None:
    """Merge `pairs` into the `env` of `./.claude/settings.local.json` (0600), keeping the rest."""
    path = ctx.cwd / CLAUDE_SETTINGS
    data: dict[str, Any] = {}
    if path.exists():
        try:
            data = orjson.loads(_read(path) or "{}")
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
    _write_atomic(path, text, force_mode=True)  # it holds a credential: always 0600
    shown = [f"  {k}={envvars.mask_secret(v) if v == token else v}" for k, v in pairs]
    ctx.stderr.write(
        "\n".join(
            [
                f"Wrote {CLAUDE_SETTINGS.as_posix()}",
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
    text = _read(path)
    updated = _with_codex_provider(path, text, entry)
    if updated != text:
        path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        _write_atomic(path, updated)
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


# ── files ────────────────────────────────────────────────────────────────────────────────────


def _read(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return ""
    except (OSError, UnicodeDecodeError) as exc:
        raise CommandError(f"cannot read {path}: {exc}") from None


def _write_atomic(path: Path, text: str, *, mode: int = 0o600, force_mode: bool = False) -> None:
    """Replace `path` in one step (temporary file + rename, symlinks followed).

    A new file gets `mode`; an existing one keeps its own mode unless `force_mode`.
    """
    path = path.resolve()
    if not force_mode:
        with contextlib.suppress(FileNotFoundError):
            mode = path.stat().st_mode & 0o777
    try:
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as out:
                out.write(text)
            os.chmod(tmp, mode)
            os.replace(tmp, path)
        except BaseException:
            os.unlink(tmp)
            raise
    except OSError as exc:
        raise CommandError(f"cannot write {path}: {exc.strerror or exc}") from None
