"""`tokenomics run [options] COMMAND [ARGS...]`: run a tool through the proxy (`cli.md` §2, D22).

    tokenomics run node app.js            # OPENAI_*, ANTHROPIC_*, GEMINI_* (routing by model)
    tokenomics run claude -p "hi"         # ANTHROPIC_AUTH_TOKEN, ANTHROPIC_BASE_URL
    tokenomics run codex exec "hi"        # + `-c` options selecting a tokenomics provider

Options end at the first positional argument: everything after it belongs to the command
(`main.run` inserts `--` there before cyclopts parses, see `mark_child_argv`). Our own proxy
runs in this process, in the same Trio run as the child, and stops when the child exits; the
exit status is the child's, and one summary line goes to stderr.
"""

from __future__ import annotations

import tempfile
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from functools import partial
from pathlib import Path
from typing import Annotated

import trio
from cyclopts import Parameter

from tokenomics.app import Server, run_server
from tokenomics.cli import envvars, run_agents, run_budget, run_proxy
from tokenomics.cli.context import Context
from tokenomics.cli.run_child import run_child
from tokenomics.cli.serve import run_trio
from tokenomics.config.providers import ProviderConfig, load_providers
from tokenomics.domain.errors import CommandError
from tokenomics.domain.run_budget import RunLimits
from tokenomics.services import logs

NO_COMMAND = (
    "no command to execute\n\n"
    "Usage: tokenomics run [flags] COMMAND [ARGS...]\n"
    'Example: tokenomics run claude "your prompt"'
)
NO_TOKEN = "no token provided: use --token flag or set $TOKENOMICS_KEY"
# `run`'s options that take a value (as a separate argument unless written `--name=value`);
# the global ones may follow `run` too. tests/cli/test_option_forms.py checks both lists.
VALUE_OPTIONS = frozenset({
    "--token", "--provider", "--env-key", "--env-base-url", "--host", "--port", "--proxy-url",
    "--max-cost", "--max-tokens", "--max-requests", "--max-duration",
})  # fmt: skip
GLOBAL_VALUE_OPTIONS = frozenset({"--config", "--db", "--dir"})
# Where a client finds the CAs it trusts (OpenSSL/Python, requests): the system's and ours.
CA_BUNDLE_VARIABLES = ("SSL_CERT_FILE", "REQUESTS_CA_BUNDLE")
# Node's extra CAs, added to its built-in ones: ours alone.
NODE_CA_VARIABLE = "NODE_EXTRA_CA_CERTS"
Providers = Mapping[str, ProviderConfig]


def _skip_options(args: Sequence[str], index: int, takes_value: frozenset[str]) -> int:
    while index < len(args) and args[index].startswith("-") and args[index] not in ("-", "--"):
        arg = args[index]
        index += 2 if arg in takes_value else 1
    return index


def mark_child_argv(argv: Sequence[str]) -> list[str]:
    """`argv` with `--` inserted before the command that `run` executes (if missing), so
    that cyclopts reads no option after it: `run node app.js --port 9` -> `run -- node …`."""
    args = list(argv)
    at = _skip_options(args, 0, GLOBAL_VALUE_OPTIONS)
    if at >= len(args) or args[at] != "run":
        return args
    at = _skip_options(args, at + 1, VALUE_OPTIONS | GLOBAL_VALUE_OPTIONS)
    if at < len(args) and args[at] != "--":
        args.insert(at, "--")
    return args


def _opt(text: str, **more: object) -> Parameter:
    return Parameter(help=text, show_default=False, **more)  # type: ignore[arg-type]


@dataclass(frozen=True, slots=True)
class Plan:
    """What one `run` does, decided before anything starts."""

    argv: tuple[str, ...]
    token: str
    provider: str
    proxy_url: str  # remote mode when set
    host: str
    port: int
    tls: bool
    insecure: bool
    admin: bool
    env_key: str
    env_base_url: str
    print_env: bool
    show_secrets: bool
    limits: RunLimits | None = None  # the run budget (`--max-*`), None without one


def run(
    *command: Annotated[
        str,  # words after `--` are the command's whatever they look like
        Parameter(help="The command to run, and its arguments.", allow_leading_hyphen=False),
    ],
    token: Annotated[str, _opt("Wrapper token (default: $TOKENOMICS_KEY).")] = "",
    provider: Annotated[
        str, _opt("Client variables to inject (default: from cli_maps by command name).")
    ] = "",
    env_key: Annotated[str, _opt("Variable for the token (needs --env-base-url too).")] = "",
    env_base_url: Annotated[str, _opt("Variable for the URL (needs --env-key too).")] = "",
    host: Annotated[str, Parameter(help="Loopback address of the proxy.")] = "127.0.0.1",
    port: Annotated[
        int, _opt("Proxy port (default: a free one); reuses a Tokenomics proxy found there.")
    ] = 0,
    tls: Annotated[bool, _opt("Serve HTTPS and point the child at the generated CA.")] = False,
    insecure: Annotated[
        bool, _opt("Skip TLS verification of --proxy-url; adds NODE_TLS_REJECT_UNAUTHORIZED=0.")
    ] = False,
    admin: Annotated[bool, _opt("Enable the admin UI/API (if admin.enabled).")] = False,
    proxy_url: Annotated[
        str, _opt("Use this running proxy instead (default: $TOKENOMICS_PROXY_URL).")
    ] = "",
    print_env: Annotated[bool, _opt("Print the injected variables to stderr.")] = False,
    show_secrets: Annotated[bool, _opt("Print the token in clear with --print-env.")] = False,
    max_cost: Annotated[
        float, _opt("Cap the run's spend in US dollars (on top of the token's policy).")
    ] = 0.0,
    max_tokens: Annotated[int, _opt("Cap the run's input+output tokens.")] = 0,
    max_requests: Annotated[int, _opt("Cap the run's model requests.")] = 0,
    max_duration: Annotated[
        str,
        _opt("Refuse the run's requests after this long (30m, 1h30m); the command is not stopped."),
    ] = "",
    ctx: Annotated[Context, Parameter(parse=False)],
) -> int:
    """Run a command with its API client pointed at a Tokenomics proxy; exits with its status.

    Options end at the first argument: `tokenomics run node app.js --port 9` passes --port to
    node (`--` works too). Unless --proxy-url is given, a proxy starts in this process on a free
    127.0.0.1 port and stops when the command exits; one summary line goes to stderr.
    """
    if not command:
        raise CommandError(NO_COMMAND)
    token = token or ctx.environ.get("TOKENOMICS_KEY", "")
    if not token:
        raise CommandError(NO_TOKEN)
    for flag, name in (("--env-key", env_key), ("--env-base-url", env_base_url)):
        if name and not envvars.ENV_NAME.fullmatch(name):
            raise CommandError(f'{flag} "{name}" is not a valid environment variable name')
    if not 0 <= port <= 65535:
        raise CommandError(f"invalid port {port}: use --port with a value from 0 to 65535")
    limits = run_budget.limits(max_cost, max_tokens, max_requests, max_duration)
    plan = Plan(
        argv=command, token=token, provider=provider,
        proxy_url=(proxy_url or ctx.environ.get("TOKENOMICS_PROXY_URL", "")).strip(),
        host=host, port=port, tls=tls, insecure=insecure, admin=admin, env_key=env_key,
        env_base_url=env_base_url, print_env=print_env, show_secrets=show_secrets,
        limits=limits,
    )  # fmt: skip
    if not plan.proxy_url and not plan.port:
        ctx.hash_key()  # D7: our own proxy needs the hash key (with --port: unless reused)
    settings = ctx.settings()
    # The console is the child's stderr too: only our errors go there (files log as configured).
    quiet = replace(settings.logging, level="debug" if ctx.debug else "error")
    handlers = logs.configure(quiet, stream=ctx.stderr)
    try:
        return run_trio(_session, ctx, plan)
    finally:
        logs.remove(handlers)


def resolve_provider(plan: Plan, cli_maps: dict[str, str]) -> str:
    """`--provider`, else the command's `cli_maps` entry (config, then built-in), else "" (a
    command of no known family: the variables of every family)."""
    if plan.provider:
        return plan.provider
    return envvars.provider_for_command(plan.argv[0], cli_maps) or ""


@dataclass(frozen=True, slots=True)
class Launch:
    """The child's command line and environment."""

    argv: tuple[str, ...]
    env: dict[str, str]


def _client_pairs(plan: Plan, providers: Providers, provider: str, base: str) -> envvars.EnvPairs:
    if not provider and not (plan.env_key and plan.env_base_url):
        return envvars.every_family_env(base, plan.token)
    return envvars.client_env(
        providers, provider or envvars.GENERIC, base, plan.token, env_key=plan.env_key,
        env_base_url=plan.env_base_url,
    )  # fmt: skip


def child_launch(
    ctx: Context, plan: Plan, providers: Providers, provider: str, scratch: Path,
    base: str, ca: Path | None,
) -> Launch:  # fmt: skip
    """The child's argv, and our environment with the client variables replaced (exactly one
    of each name; the inherited variables they would shadow removed)."""
    agent = run_agents.agent_launch(
        plan.argv, base, plan.token, environ=ctx.environ, home=ctx.home, scratch=scratch
    )
    pairs = [(agent.rename.get(k, k), v) for k, v in _client_pairs(plan, providers, provider, base)]
    pairs += agent.env
    if plan.insecure:
        pairs.append(envvars.NODE_INSECURE)
    if ca is not None:
        bundle = run_proxy.ca_bundle(ca, ctx.environ, scratch)
        pairs += [(name, str(bundle)) for name in CA_BUNDLE_VARIABLES]
        pairs.append((NODE_CA_VARIABLE, str(ca)))  # Node adds it to its own trust store
    pairs = list(dict(pairs).items())
    for note in agent.notes:
        ctx.stderr.write(note + "\n")
    if plan.print_env:
        shown = [
            f"  {k}={v if plan.show_secrets or v != plan.token else envvars.mask_secret(v)}"
            for k, v in pairs
        ]
        ctx.stderr.write("tokenomics run - injected environment:\n" + "\n".join(shown) + "\n")
    ctx.stderr.flush()
    dropped = dict(pairs).keys() | envvars.shadowed(pairs)
    env = {k: v for k, v in ctx.environ.items() if k not in dropped}
    env.update(pairs)
    return Launch(agent.argv, env)


async def _session(ctx: Context, plan: Plan) -> int:
    settings = ctx.settings()
    providers = load_providers(
        cwd=ctx.cwd, home=ctx.home, data_dir=Path(settings.dir), inline=settings.providers
    )
    if plan.provider:
        envvars.check_provider(providers, plan.provider, with_all=True)
    provider = resolve_provider(plan, settings.cli_maps)
    with tempfile.TemporaryDirectory(prefix="tokenomics-run-") as scratch:
        prepare = partial(child_launch, ctx, plan, providers, provider, Path(scratch))
        launch_for = partial(trio.to_thread.run_sync, prepare)
        if plan.proxy_url:
            run_budget.check_own_proxy(plan.limits, "--proxy-url")
            await run_proxy.check_remote(plan.proxy_url, insecure=plan.insecure)
            launch = await launch_for(plan.proxy_url, None)
            return await _with_running_proxy(ctx, plan, plan.proxy_url, launch)
        if plan.port:
            base = run_proxy.local_url(plan.host, plan.port, plan.tls)
            if await run_proxy.is_tokenomics(base):
                run_budget.check_own_proxy(plan.limits, f"the proxy already running on {base}")
                ca = run_proxy.ca_file(settings) if plan.tls else None
                return await _with_running_proxy(ctx, plan, base, await launch_for(base, ca))
        known = provider and envvars.find_provider(providers, provider) is not None
        default = provider if known and provider != envvars.GENERIC else ""
        return await _with_own_proxy(ctx, plan, default, launch_for)


async def _with_running_proxy(ctx: Context, plan: Plan, base: str, launch: Launch) -> int:
    """Run the child against a proxy we did not start; the summary is that proxy's `/stats`
    difference (every client's requests in the meantime), when it lets us read it."""
    insecure = plan.insecure or not plan.proxy_url
    before = await run_proxy.totals(base, insecure=insecure)
    code = await run_child(launch.argv, launch.env)
    after = await run_proxy.totals(base, insecure=insecure) if before else None
    if before and after:
        difference = {k: after[k] - before[k] for k in run_proxy.SUMMED if k in before}
        ctx.stderr.write(f"{run_proxy.summary(difference)} (all clients of {base})\n")
        ctx.stderr.flush()
    return code


async def _with_own_proxy(
    ctx: Context, plan: Plan, default_provider: str, launch_for: Callable[..., Awaitable[Launch]]
) -> int:
    settings = run_proxy.proxy_settings(
        ctx.settings(), host=plan.host, port=plan.port, tls=plan.tls, admin=plan.admin,
        provider=default_provider,
    )  # fmt: skip
    ca = await trio.to_thread.run_sync(run_proxy.ca_file, settings)
    start = partial(
        run_server, settings, ctx.environ, ctx.hash_key(), cwd=ctx.cwd, home=ctx.home,
        ephemeral=plan.port == 0 and not plan.tls, run_limits=plan.limits,
    )  # fmt: skip
    async with trio.open_nursery() as nursery:
        server: Server = await nursery.start(start)
        try:
            base = run_proxy.bound_url(server.urls, plan.host, plan.tls)
            launch = await launch_for(base, ca)
            if server.deps.run_budget is not None:
                server.deps.run_budget.start()  # --max-duration counts from the child's start
            code = await run_child(launch.argv, launch.env)
        finally:
            server.shutdown()  # graceful: in-flight requests finish, the ledger is flushed
    capped = server.deps.run_budget.summary() if server.deps.run_budget else ""
    ctx.stderr.write(run_proxy.summary(server.stats.snapshot()["totals"]) + capped + "\n")
    ctx.stderr.flush()
    return code
