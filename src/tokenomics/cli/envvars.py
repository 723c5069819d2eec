"""The environment variables that point a client tool at the proxy (`cli.md` §2.5, §4.2, §4.3).

Shared by `init` (which prints or writes them) and `run` (which injects them into its child):

    pairs = client_env(providers, "anthropic", "http://localhost:8080", token)
    # [("ANTHROPIC_API_KEY", token), ("ANTHROPIC_BASE_URL", "http://localhost:8080")]

Resolution, in order:

1. `all`: every catalogue entry (rules 3-4) in name order; the first to use a name wins.
2. `env_key` and `env_base_url` both given: exactly those two, base URL without `/v1`.
3. `generic`: the variables every OpenAI SDK and CLI reads, `OPENAI_API_KEY` and
   `OPENAI_BASE_URL=<base>/v1` (whatever the catalogue's `generic` entry says).
4. A provider of the catalogue (exact name, then case-insensitive): its `api_key_env` (else
   `<NAME>_API_KEY`) and `base_url_env` (else `<NAME>_BASE_URL`); the URL gets `/v1` only for
   the providers whose clients expect it there (`OPENAI_V1`).
5. Anything else: the hard-coded families `anthropic`, `azure`, `gemini`, else generic.

Besides the catalogue's own variables, a few that the official clients read are added: the
Google GenAI SDKs and the Gemini CLI read `GOOGLE_GEMINI_BASE_URL` (never `GEMINI_BASE_URL`),
and the `AzureOpenAI` clients refuse to start without `OPENAI_API_VERSION`.

`run` gives a command of no known family the variables of every family (`every_family_env`),
and removes the inherited variables a client would read instead of ours (`shadowed`).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from pathlib import PurePosixPath, PureWindowsPath

from tokenomics.config.providers import ProviderConfig
from tokenomics.domain.errors import ConfigError

EnvPairs = list[tuple[str, str]]

ALL = "all"
GENERIC = "generic"

# Providers whose SDKs want the base URL to end with /v1 (`cli.md` §4.2).
OPENAI_V1 = frozenset(
    {"openai", "generic", "groq", "together", "fireworks", "perplexity", "deepseek", "xai",
     "openrouter", "vllm", "litellm"}
)  # fmt: skip

# provider family -> (key variable, base-URL variable, base URL gets /v1)
FAMILIES: dict[str, tuple[str, str, bool]] = {
    GENERIC: ("OPENAI_API_KEY", "OPENAI_BASE_URL", True),
    "anthropic": ("ANTHROPIC_API_KEY", "ANTHROPIC_BASE_URL", False),
    "azure": ("AZURE_OPENAI_API_KEY", "AZURE_OPENAI_ENDPOINT", False),
    "gemini": ("GEMINI_API_KEY", "GEMINI_BASE_URL", False),
}

# Executable name -> provider, used when the config's `cli_maps` has no entry (`cli.md` §2.2).
BUILTIN_CLI_MAPS: dict[str, str] = {
    "claude": "anthropic",
    "anthropic": "anthropic",
    "codex": GENERIC,
    "openai": GENERIC,
    "openai-cli": GENERIC,
    "azure": "azure",
    "gemini": "gemini",
    "gcloud": "gemini",
}

# A base-URL variable -> further variables real clients read for the same URL.
URL_ALIASES: dict[str, tuple[str, ...]] = {"GEMINI_BASE_URL": ("GOOGLE_GEMINI_BASE_URL",)}

# The families a command of no known family gets (`every_family_env`): one token, and the
# proxy routes each request by its model.
EVERY_FAMILY = (GENERIC, "anthropic", "gemini")

# An injected variable -> inherited ones the same client would read instead or as well, which
# the child must not see: the Anthropic SDK warns on every call when it has both a key and a
# bearer token; the Google GenAI SDK prefers GOOGLE_API_KEY to GEMINI_API_KEY.
SHADOWED: dict[str, tuple[str, ...]] = {
    "ANTHROPIC_API_KEY": ("ANTHROPIC_AUTH_TOKEN",),
    "ANTHROPIC_AUTH_TOKEN": ("ANTHROPIC_API_KEY",),
    "GEMINI_API_KEY": ("GOOGLE_API_KEY",),
}

# Node's switch for self-signed certificates (`--insecure`).
NODE_INSECURE = ("NODE_TLS_REJECT_UNAUTHORIZED", "0")

ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


def command_names(command: str) -> tuple[str, ...]:
    """The names an executable is known by: as given, its base name, without `.exe`."""
    name = PureWindowsPath(PurePosixPath(command).name).name
    stem = name[:-4] if name.lower().endswith(".exe") else name
    return tuple(dict.fromkeys((command, name, stem)))


def provider_for_command(command: str, cli_maps: Mapping[str, str]) -> str | None:
    """The provider for an executable: config `cli_maps` first, then the built-in table.

    Matching uses the executable's base name too, so `/usr/bin/claude` counts as `claude`.
    """
    names = command_names(command)
    for key in names:
        if key in cli_maps:
            return cli_maps[key]
    return BUILTIN_CLI_MAPS.get(names[-1])


def provider_names(providers: Mapping[str, ProviderConfig], *, with_all: bool) -> list[str]:
    """The valid values of `--provider`: the families and the catalogue (and `all`)."""
    names = {*FAMILIES, *providers, *((ALL,) if with_all else ())}
    return sorted(names, key=str.casefold)


def check_provider(providers: Mapping[str, ProviderConfig], name: str, *, with_all: bool) -> None:
    """Raise `ConfigError` naming the valid providers when `name` is none of them."""
    if name.casefold() in FAMILIES or find_provider(providers, name) is not None:
        return
    if with_all and name.casefold() == ALL:
        return
    valid = ", ".join(provider_names(providers, with_all=with_all))
    raise ConfigError(f'unknown provider "{name}" (valid: {valid})')


def find_provider(providers: Mapping[str, ProviderConfig], name: str) -> ProviderConfig | None:
    """The catalogue entry called `name`: exact match first, then case-insensitive."""
    if name in providers:
        return providers[name]
    folded = name.casefold()
    return next((p for n, p in providers.items() if n.casefold() == folded), None)


def client_env(
    providers: Mapping[str, ProviderConfig],
    provider: str,
    base_url: str,
    token: str,
    *,
    env_key: str = "",
    env_base_url: str = "",
) -> EnvPairs:
    """The (name, value) pairs, in order, that send a client of `provider` to `base_url`.

    `provider` may be `all`: every catalogue entry in name order, the first provider to use a
    variable name wins (`env_key`/`env_base_url` are then ignored). Raises `ConfigError` when a
    catalogue entry names a variable that cannot be one.
    """
    base = base_url.rstrip("/")
    if provider.casefold() == ALL:
        return _all_env(providers, base, token)
    if env_key and env_base_url:
        return [(env_key, token), (env_base_url, base)]
    entry = find_provider(providers, provider)
    if entry is None or entry.name.casefold() == GENERIC:
        family = provider.casefold() if provider.casefold() in FAMILIES else GENERIC
        return _family_env(family, base, token)
    return _entry_env(entry, base, token)


def every_family_env(base_url: str, token: str) -> EnvPairs:
    """The variables of every family in `EVERY_FAMILY` (for a command of unknown family)."""
    base = base_url.rstrip("/")
    return [pair for family in EVERY_FAMILY for pair in _family_env(family, base, token)]


def shadowed(pairs: EnvPairs) -> set[str]:
    """The inherited variables to remove from a child given `pairs` (see `SHADOWED`)."""
    names = {name for name, _ in pairs}
    return {other for name in names for other in SHADOWED.get(name, ()) if other not in names}


def mask_secret(value: str) -> str:
    """A secret for printouts: `tkn_…a1b2` (prefix and last four characters), or `…` if short."""
    prefix = "tkn_" if value.startswith("tkn_") else ""
    rest = value[len(prefix) :]
    return f"{prefix}…{rest[-4:]}" if len(rest) >= 16 else f"{prefix}…"


def _family_env(family: str, base: str, token: str) -> EnvPairs:
    key_var, url_var, v1 = FAMILIES[family]
    url = f"{base}/v1" if v1 else base
    return [(key_var, token), (url_var, url), *((a, url) for a in URL_ALIASES.get(url_var, ()))]


def _entry_env(entry: ProviderConfig, base: str, token: str) -> EnvPairs:
    if entry.name.casefold() == GENERIC:
        return _family_env(GENERIC, base, token)
    label = re.sub(r"[^A-Za-z0-9_]", "_", entry.name.upper())
    key_var = entry.api_key_env or f"{label}_API_KEY"
    url_var = entry.base_url_env or f"{label}_BASE_URL"
    for field, name in (("api_key_env", key_var), ("base_url_env", url_var)):
        if not ENV_NAME.fullmatch(name):
            raise ConfigError(
                f'provider "{entry.name}": {field} "{name}" is not a valid environment variable '
                "name (letters, digits and _, not starting with a digit)"
            )
    url = f"{base}/v1" if entry.name.casefold() in OPENAI_V1 else base
    pairs = [(key_var, token), (url_var, url)]
    pairs += [(alias, url) for alias in URL_ALIASES.get(url_var, ())]
    if url_var == "AZURE_OPENAI_ENDPOINT" and (version := entry.query.get("api-version")):
        pairs.append(("OPENAI_API_VERSION", version))
    return pairs


def _all_env(providers: Mapping[str, ProviderConfig], base: str, token: str) -> EnvPairs:
    if not providers:
        return _family_env(GENERIC, base, token)
    seen: dict[str, str] = {}
    for name in sorted(providers):
        for var, value in _entry_env(providers[name], base, token):
            seen.setdefault(var, value)
    return list(seen.items())
