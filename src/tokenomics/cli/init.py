"""`tokenomics init`: the environment that points a client tool at the proxy (`cli.md` §4).

Printed for `eval` (shell), merged into a dotenv file, printed as JSON, or written into an
agent's own configuration (Claude Code's `.claude/settings.local.json`, Codex's `config.toml`).
The wrapper token is printed in those outputs (that is what the user asked for); the summaries
on stderr mask it.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Annotated, Any

import orjson
from cyclopts import Parameter

from tokenomics.cli import daemon, envvars
from tokenomics.cli.context import Context
from tokenomics.cli.init_agents import (
    AGENTS,
    CODEX_KEY_ENV,
    read_text,
    shell_quote,
    write_claude_code,
    write_codex,
    write_gemini,
    write_text,
)
from tokenomics.config.providers import load_providers
from tokenomics.config.settings import Settings
from tokenomics.domain.errors import CommandError

OUTPUTS = ("shell", "dotenv", "json")


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
        str, _opt("Provider, or all (default: generic; --agent claude-code, gemini: theirs).")
    ] = "",
    output: Annotated[str, Parameter(help="shell, dotenv or json.")] = "shell",
    dotenv: Annotated[str, _opt("File for --output dotenv (default: ./.env).")] = "",
    agent: Annotated[
        str, _opt("Write an agent's own config instead: claude-code, codex, gemini.")
    ] = "",
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
    if provider:
        envvars.check_provider(providers, provider, with_all=True)
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
    elif agent_name == "gemini":
        write_gemini(ctx, pairs, token)
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
        write_text(path, merge_dotenv(read_text(path), pairs))
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
    return {"claude-code": "anthropic", "gemini": "gemini"}.get(agent, envvars.GENERIC)


# ── formats ──────────────────────────────────────────────────────────────────────────────────


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
