"""Where one attempt goes: provider, upstream URL, key and auth for a model (`proxy.md` §2.6).

Resolved for the primary model and again for each fallback (D10), so a fallback gets its own
provider, key, URL and model check.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

from tokenomics.domain.errors import ModelNotAllowed, ProxyError
from tokenomics.domain.memo import remember
from tokenomics.domain.resolve import resolve_for_model, resolve_provider

if TYPE_CHECKING:
    from collections.abc import Mapping

    from tokenomics.config.providers import ProviderConfig
    from tokenomics.domain.policy import Policy
    from tokenomics.domain.resolve import Resolved
    from tokenomics.formats.base import Route


@dataclass(slots=True)
class Target:
    """Where an attempt goes. Never changed once resolved; not frozen, as a frozen
    dataclass's `__init__` costs ~5x (`object.__setattr__` per field), once per request."""

    resolved: Resolved
    provider_name: str
    provider: ProviderConfig | None
    base_url: str
    key_env: str
    key: str

    @property
    def timeout(self) -> float:
        return float(self.resolved.timeout or 30)


def _passthrough_provider(
    policy: Policy, route: Route, providers: Mapping[str, ProviderConfig]
) -> str:
    """Passthrough has no model to match: a policy with neither a global key nor a default
    provider uses its first provider policy (document order) whose provider accepts the
    request's API family, else its first one."""
    if policy.base_key_env or policy.default_provider:
        return ""
    names = [name for name, entries in policy.providers if entries]
    fitting = (n for n in names if (p := providers.get(n)) is None or route.family in p.formats)
    return next(fitting, names[0] if names else "")


def _refuse_unroutable(policy: Policy, route: Route, model: str, resolved: Resolved) -> None:
    """A model the policy does not allow is the client's error (403), not a missing key: the
    model check, and a policy of provider policies only that none of them matches."""
    if route.adapter is None or route.adapter.model_checked:
        resolved.check_model(model)
    if policy.providers and not resolved.provider_name:
        raise ModelNotAllowed(
            f'model "{model}" not allowed; no provider policy of this token matches it'
        )


# `provider_at` per (upstream, providers table): the same few on every request. The table is
# kept beside its answers so that another table (tests build many) never reads a stale one.
_NAMED: dict[tuple[str, int], tuple[Mapping[str, ProviderConfig], str]] = {}
_NAMED_LIMIT = 256


def _provider_name(base: str, providers: Mapping[str, ProviderConfig]) -> str:
    key = (base, id(providers))
    found = _NAMED.get(key)
    if found is not None and found[0] is providers:
        return found[1]
    name = provider_at(base, providers)
    remember(_NAMED, key, (providers, name), _NAMED_LIMIT)
    return name


def provider_at(base: str, providers: Mapping[str, ProviderConfig]) -> str:
    """The name for a request no policy or config named a provider for (the default OpenAI
    route): the configured provider whose upstream it went to (of several, the one named in
    the host: `openai`, not its alias `generic`), else that upstream's host, so the ledger's
    `by_provider` leaves no request out. Only the name: no provider settings apply."""
    wanted = base.rstrip("/").lower()
    host = urlsplit(wanted).netloc.rpartition("@")[2]  # never the userinfo
    found = [n for n, p in providers.items() if p.upstream_url.rstrip("/").lower() == wanted]
    return next((name for name in found if name in host), found[0] if found else host)


# Targets already resolved, by what decides them: the policy, the route's family and kind, the
# model, and the server's providers, default provider, upstream and environment (the same few
# on every request; ~3 µs each, a third of it reading `os.environ`). Each is kept with the
# objects it came from, checked by identity (and kept alive, so no other can take their `id`):
# an edited policy is a new object and resolves afresh. The environment's contents are read
# once per entry: a process's environment changes only through its own code, and ours never
# changes it (nor the providers table) while serving. A refusal is never remembered.
_Key = tuple[int, str, bool, str, int, int, str, str]
_Found = tuple["Policy", "Mapping[str, ProviderConfig]", "Mapping[str, str]", Target]
_TARGETS: dict[_Key, _Found] = {}
_TARGETS_LIMIT = 1024


def resolve_target(
    policy: Policy,
    route: Route,
    model: str,
    *,
    providers: Mapping[str, ProviderConfig],
    default_provider: str,
    server_upstream: str,
    environ: Mapping[str, str],
) -> Target:
    """The resolved policy and connection details for `model` on this route (a passthrough
    request that names no model has none to match); remembered (`_TARGETS`)."""
    by_model = route.adapter is not None or bool(model)
    key = (
        id(policy), route.family, by_model, model, id(providers), id(environ), default_provider,
        server_upstream,
    )  # fmt: skip
    found = _TARGETS.get(key)
    if found is not None and found[0] is policy and found[1] is providers and found[2] is environ:
        return found[3]
    target = _resolve(policy, route, model, by_model, providers, default_provider,
                      server_upstream, environ)  # fmt: skip
    remember(_TARGETS, key, (policy, providers, environ, target), _TARGETS_LIMIT)
    return target


def _resolve(
    policy: Policy, route: Route, model: str, by_model: bool,
    providers: Mapping[str, ProviderConfig], default_provider: str, server_upstream: str,
    environ: Mapping[str, str],
) -> Target:  # fmt: skip
    if not by_model:
        resolved = resolve_provider(policy, _passthrough_provider(policy, route, providers))
    else:
        resolved = resolve_for_model(policy, model)
    name = resolved.provider_name or policy.default_provider or default_provider
    provider = providers.get(name) if name else None
    if provider is not None and route.family not in provider.formats:
        accepted = ", ".join(provider.formats)
        raise ProxyError(
            400,
            f'provider "{name}" does not accept {route.family}-format requests (it accepts '
            f"{accepted}); send this model to a {route.family}-compatible provider",
        )
    base = resolved.upstream_url or (provider.upstream_url if provider else "") or server_upstream
    key_env = resolved.base_key_env or (provider.api_key_env if provider else "")
    key = environ.get(key_env, "") if key_env else ""
    # A provider that takes no auth (the built-in mock, a local server) sends no key, so an
    # unset key env is fine there: the policy still has to name one (D25: runs with no key).
    needs_key = provider is None or provider.auth_scheme != "none"
    if needs_key and not key:
        if by_model:
            _refuse_unroutable(policy, route, model, resolved)
        raise ProxyError(500, f'base key env "{key_env}" is not set')
    return Target(resolved, name or _provider_name(base, providers), provider, base, key_env, key)
