"""What a policy synced from a central server may name (`proxy.md` W-S4).

A policy names the environment variable whose value is sent upstream as the key
(`base_key_env`) and may name the upstream (`upstream_url`): whoever controls the central
server could otherwise make every proxy send, say, `TOKENOMICS_ENCRYPTION_KEY` to a host of
theirs. A synced policy may only name the key variables and upstream hosts allowed here;
our own secrets are never allowed, even when listed.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

if TYPE_CHECKING:
    from collections.abc import Iterable, Iterator

    from tokenomics.domain.policy import Policy


def url_host(url: str) -> str:
    """The lower-case host of `url`, "" when it has none."""
    try:
        return (urlsplit(url.strip()).hostname or "").lower()
    except ValueError:
        return ""


@dataclass(frozen=True, slots=True)
class PolicyGuard:
    key_envs: frozenset[str]
    upstream_hosts: frozenset[str]
    forbidden_envs: frozenset[str] = frozenset()

    @classmethod
    def build(
        cls, key_envs: Iterable[str], upstream_urls: Iterable[str], hosts: Iterable[str],
        forbidden: Iterable[str],
    ) -> PolicyGuard:  # fmt: skip
        names = frozenset(n for n in key_envs if n)
        allowed_hosts = {url_host(u) for u in upstream_urls} | {h.lower() for h in hosts}
        return cls(names, frozenset(allowed_hosts - {""}), frozenset(f for f in forbidden if f))

    def violations(self, policy: Policy) -> list[str]:
        """Why `policy` may not be applied; empty when it may."""
        problems = []
        for where, key_env, upstream in _named(policy):
            if key_env and (key_env in self.forbidden_envs or key_env not in self.key_envs):
                problems.append(f"{where}base_key_env {key_env} is not an allowed key variable")
            if upstream and url_host(upstream) not in self.upstream_hosts:
                host = url_host(upstream) or "(none)"
                problems.append(f"{where}upstream_url host {host} is not an allowed upstream")
        return problems


def _named(policy: Policy) -> Iterator[tuple[str, str, str]]:
    yield "", policy.base_key_env, policy.upstream_url
    for name, entries in policy.providers:
        for index, entry in enumerate(entries):
            yield f"providers.{name}[{index}].", entry.base_key_env, entry.upstream_url
