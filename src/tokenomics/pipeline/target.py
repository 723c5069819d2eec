"""Where one attempt goes: provider, upstream URL, key and auth for a model (`proxy.md` §2.6).

Resolved for the primary model and again for each fallback (D10), so a fallback gets its own
provider, key, URL and model check.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from tokenomics.domain.resolve import resolve_for_model, resolve_provider
from tokenomics.pipeline.exchange import ProxyError

if TYPE_CHECKING:
    from collections.abc import Mapping

    from tokenomics.config.providers import ProviderConfig
    from tokenomics.domain.policy import Policy
    from tokenomics.domain.resolve import Resolved
    from tokenomics.formats.base import Route


@dataclass(frozen=True, slots=True)
class Target:
    resolved: Resolved
    provider_name: str
    provider: ProviderConfig | None
    base_url: str
    key_env: str
    key: str

    @property
    def timeout(self) -> float:
        return float(self.resolved.timeout or 30)


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
    """The resolved policy and connection details for `model` on this route."""
    if route.adapter is None:
        resolved = resolve_provider(policy, "")
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
    needs_key = provider is None or provider.auth_scheme != "none" or resolved.base_key_env
    if needs_key and not key:
        raise ProxyError(500, f'base key env "{key_env}" is not set')
    return Target(resolved, name, provider, base, key_env, key)
