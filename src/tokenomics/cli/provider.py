"""`tokenomics provider list|models|test` (`cli.md` §6.1-6.3).

`test` contacts each provider's model list endpoint concurrently (10 s each) and prints one line
per provider, in order: `OK` (2xx, or 429), `AUTH` (401/403), `FAIL` (any other status, or
unreachable), `SKIP` (placeholders in the URL, or no URL) and `UNKNOWN` (not in the config).
Keys are sent, never printed: URLs are shown without their query string.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Annotated, Any, Literal

import trio
from cyclopts import App, Parameter

from tokenomics.cli.context import Context
from tokenomics.cli.output import print_json
from tokenomics.config.providers import ProviderConfig, load_providers
from tokenomics.domain.errors import CommandError, UpstreamConfigError, UpstreamError
from tokenomics.upstream.client import UpstreamRequest, Upstreams
from tokenomics.upstream.fetch import unverified_context
from tokenomics.upstream.urls import join_url, redact, with_query

if TYPE_CHECKING:
    from collections.abc import Callable, Mapping, Sequence

app = App(
    name="provider", help="List the configured upstream providers, their models, and test them."
)
Ctx = Annotated[Context, Parameter(parse=False)]
Json = Annotated[bool, Parameter(help="Print JSON.", negative="")]

TIMEOUT = 10.0
PARALLEL = 16
WIDTHS = (16, 40, 8, 28, 6)
HEADER = ("NAME", "UPSTREAM", "AUTH", "API KEY ENV", "KEY?", "MODELS")
DASHES = ("----", "--------", "----", "-----------", "----", "------")


def load(ctx: Context) -> dict[str, ProviderConfig]:
    """The provider catalogue (embedded < providers.yaml < inline config), sorted by name."""
    settings = ctx.settings()
    return load_providers(
        cwd=ctx.cwd, home=ctx.home, data_dir=settings.data_dir, inline=settings.providers
    )


# ── list ─────────────────────────────────────────────────────────────────────────────────────


def key_state(provider: ProviderConfig, environ: Mapping[str, str]) -> str:
    if not provider.api_key_env:
        return "n/a"
    return "yes" if environ.get(provider.api_key_env) else "no"


def _row(cells: Sequence[str]) -> str:
    padded = [f"{cell:<{width}}" for cell, width in zip(cells, WIDTHS, strict=False)]
    return " ".join([*padded, cells[-1]]).rstrip()


def _cut(text: str, width: int) -> str:
    return text if len(text) <= width else text[: width - 3] + "..."


def _as_json(provider: ProviderConfig, environ: Mapping[str, str]) -> dict[str, Any]:
    out: dict[str, Any] = {
        "name": provider.name,
        "upstream_url": provider.upstream_url,
        "auth_scheme": provider.auth_scheme or "bearer",
        "api_key_env": provider.api_key_env,
        "key_set": bool(provider.api_key_env and environ.get(provider.api_key_env)),
    }
    if provider.chat_path:
        out["chat_path"] = provider.chat_path
    out["model_count"] = len(provider.models)
    return out


@app.command(name="list")
def list_(
    *,
    output: Annotated[
        Literal["table", "json"], Parameter(help="Output format (--json: json).", alias="-o")
    ] = "table",
    json: Json = False,
    ctx: Ctx,
) -> None:
    """List the configured providers: upstream URL, auth scheme, key variable, model count."""
    providers = load(ctx)
    if json or output == "json":
        print_json(ctx.stdout, [_as_json(p, ctx.environ) for p in providers.values()])
        return
    if not providers:
        ctx.stdout.write(
            "No providers configured.\n"
            "Add entries to providers.yaml (./, {dir}/ or ~/.tokenomics/) or `providers:` "
            "in config.yaml.\n"
        )
        return
    lines = [_row(HEADER), _row(DASHES)]
    for p in providers.values():
        cells = (p.name, _cut(p.upstream_url, 40), p.auth_scheme or "bearer", p.api_key_env)
        lines.append(_row([*cells, key_state(p, ctx.environ), str(len(p.models))]))
    ctx.stdout.write("\n".join(lines) + "\n")


# ── models ───────────────────────────────────────────────────────────────────────────────────


@app.command
def models(
    name: Annotated[
        str, Parameter(help="Provider name (default: every provider).", allow_leading_hyphen=False)
    ] = "",
    /,
    *,
    json: Json = False,
    ctx: Ctx,
) -> None:
    """List the models each provider declares (informational; any model name can be used).

    --json prints an object of provider name to its list of models."""
    providers = load(ctx)
    if name and name not in providers:
        raise CommandError(f'provider "{name}" not found in config')
    if json:
        chosen = [name] if name else list(providers)
        print_json(ctx.stdout, {n: list(providers[n].models) for n in chosen})
        return
    if name:
        found = providers[name].models
        ctx.stdout.write("".join(f"{m}\n" for m in found) or f"{name}: no models configured\n")
        return
    lines: list[str] = []
    for p in providers.values():
        lines += (
            [f"{p.name}:", *(f"  {m}" for m in p.models)] if p.models else [f"{p.name}: (none)"]
        )
    ctx.stdout.write("".join(f"{line}\n" for line in lines))


# ── test ─────────────────────────────────────────────────────────────────────────────────────


@dataclass(frozen=True, slots=True)
class Outcome:
    status: Literal["OK", "AUTH", "FAIL", "SKIP", "UNKNOWN"]
    detail: str

    @property
    def failed(self) -> bool:
        return self.status in ("FAIL", "AUTH")


def format_line(name: str, outcome: Outcome) -> str:
    """`<name padded 16>  <STATUS padded 4>  <detail>` (`UNKNOWN (not in config)` as in ORIG)."""
    if outcome.status == "UNKNOWN":
        return f"{name:<16}  UNKNOWN {outcome.detail}"
    return f"{name:<16}  {outcome.status:<4}  {outcome.detail}"


def models_path(provider: ProviderConfig) -> str:
    """`/v1/models`, or the models list next to a non-`/v1/` chat path (Gemini's OpenAI API)."""
    chat = provider.chat_path
    if not chat or "/v1/" in chat:
        return "/v1/models"
    if chat.endswith("/chat/completions"):
        return chat.removesuffix("/chat/completions") + "/models"
    return "/"


def build_probe(provider: ProviderConfig, environ: Mapping[str, str]) -> UpstreamRequest:
    """The GET request for one provider, with its auth, headers and default query parameters.

    Raises `UpstreamConfigError` when the URL cannot be used (placeholders, bad URL)."""
    url = join_url(provider.upstream_url, models_path(provider), "")
    key = environ.get(provider.api_key_env, "") if provider.api_key_env else ""
    scheme = provider.auth_scheme
    forced = {"key": key} if key and scheme == "query" else {}
    if provider.query or forced:
        url = with_query(url, {**provider.query, **forced}, override=tuple(forced))
    headers = [("accept", "application/json"), ("accept-encoding", "identity")]
    if key and scheme == "bearer":
        headers.append(("authorization", f"Bearer {key}"))
    elif key and scheme == "header":
        headers.append((provider.auth_header.lower(), key))
    headers += [(name.lower(), value) for name, value in provider.headers.items()]
    return UpstreamRequest("GET", url, headers, b"")


def _judge(provider: ProviderConfig, url: str, status: int, ms: int, key_set: bool) -> Outcome:
    where = f"HTTP {status} from GET {redact(url)}"
    if 200 <= status < 300:
        return Outcome("OK", f"{ms}ms")
    if status == 429:
        return Outcome("OK", f"{ms}ms (rate limited: HTTP 429)")
    if status in (401, 403):
        missing = "" if key_set else f"; ${provider.api_key_env} is not set"
        if not provider.api_key_env:
            missing = "; no api_key_env configured"
        return Outcome("AUTH", f"reachable but credentials invalid or missing ({where}{missing})")
    return Outcome("FAIL", f"{where} ({ms}ms)")


async def probe(
    provider: ProviderConfig, environ: Mapping[str, str], upstreams: Upstreams
) -> Outcome:
    if not provider.upstream_url:
        return Outcome("SKIP", "skipped (no upstream_url configured)")
    if "{" in provider.upstream_url + models_path(provider):
        return Outcome("SKIP", "skipped (URL contains placeholders; set upstream_url)")
    try:
        request = build_probe(provider, environ)
    except UpstreamConfigError as exc:
        return Outcome("FAIL", f"bad URL: {exc}")
    start = trio.current_time()
    try:
        response = await upstreams.open(request, headers_timeout=TIMEOUT)
    except UpstreamError as exc:
        return Outcome("FAIL", f"unreachable: {exc.reason}")
    ms = round((trio.current_time() - start) * 1000)
    await response.aclose()
    key_set = bool(provider.api_key_env and environ.get(provider.api_key_env))
    return _judge(provider, request.url, response.status, ms, key_set)


def open_upstreams(*, insecure: bool) -> Upstreams:
    """The pooled client; with `insecure`, certificates are not verified."""
    if not insecure:
        return Upstreams()
    return Upstreams(ssl_context=unverified_context())


async def _run_tests(
    targets: Sequence[tuple[str, ProviderConfig | None]],
    environ: Mapping[str, str],
    insecure: bool,
    report: Callable[[str, Outcome], None],
) -> list[Outcome]:
    """Probe concurrently; `report(name, outcome)` is called in the order of `targets`."""
    outcomes: list[Outcome | None] = [None] * len(targets)
    done = [trio.Event() for _ in targets]
    limiter = trio.CapacityLimiter(PARALLEL)
    upstreams = open_upstreams(insecure=insecure)

    async def one(index: int, provider: ProviderConfig) -> None:
        async with limiter:
            outcomes[index] = await probe(provider, environ, upstreams)
        done[index].set()

    try:
        async with trio.open_nursery() as nursery:
            for index, (_, provider) in enumerate(targets):
                if provider is None:
                    outcomes[index] = Outcome("UNKNOWN", "(not in config)")
                    done[index].set()
                else:
                    nursery.start_soon(one, index, provider)
            for index, (name, _) in enumerate(targets):
                await done[index].wait()
                outcome = outcomes[index]
                assert outcome is not None
                report(name, outcome)
    finally:
        with trio.CancelScope(shield=True):
            await upstreams.aclose()
    return [o for o in outcomes if o is not None]


@app.command
def test(
    *names: Annotated[
        str,
        Parameter(help="Providers to test (default: every provider).", allow_leading_hyphen=False),
    ],
    insecure: Annotated[
        bool, Parameter(help="Do not verify upstream TLS certificates.", negative="")
    ] = False,
    json: Annotated[
        bool,
        Parameter(help="Print JSON: [{name, status, detail}], once all are done.", negative=""),
    ] = False,
    ctx: Ctx,
) -> int:
    """Check that each provider answers: GET its model list with the configured key.

    Exit status 1 when any tested provider is FAIL or AUTH; SKIP and UNKNOWN are not failures."""
    providers = load(ctx)
    chosen = list(dict.fromkeys(names)) or list(providers)
    targets = [(name, providers.get(name)) for name in chosen]
    results: list[dict[str, str]] = []

    def report(name: str, outcome: Outcome) -> None:
        if json:
            results.append({"name": name, "status": outcome.status, "detail": outcome.detail})
            return
        ctx.stdout.write(format_line(name, outcome) + "\n")
        ctx.stdout.flush()

    outcomes = trio.run(_run_tests, targets, dict(ctx.environ), insecure, report)
    if json:
        print_json(ctx.stdout, results)
    if any(o.failed for o in outcomes):
        raise CommandError("one or more providers failed connectivity test")
    return 0
