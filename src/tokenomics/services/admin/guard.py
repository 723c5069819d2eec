"""Who may use the admin UI and API (decision D21, `proxy.md` W-S3, W-S5).

* The peer is the socket's address: forwarding headers (`X-Forwarded-For`, `X-Real-IP`, …)
  never count. It must be loopback, unless the listeners bind a wider address and basic auth
  is configured: then any peer that passes basic auth.
* Basic auth, when `admin.auth.username` and `.password` are both set (constant-time).
* `Host` must name this listener (loopback names, the bound address, `server.tls.hosts`), so a
  DNS-rebinding page (`Host: evil.example`) is refused.
* A state-changing request needs `Content-Type: application/json` (a page cannot send that
  cross-origin without a CORS preflight, which is never granted) and, when the browser says
  where it comes from (`Origin`, `Sec-Fetch-Site`), the same origin.
"""

from __future__ import annotations

import base64
import hmac
import ipaddress
from dataclasses import dataclass

from tokenomics.domain.errors import AdminError

MUTATING = frozenset({"POST", "PUT", "PATCH", "DELETE"})
LOOPBACK_NAMES = frozenset({"localhost", "localhost."})
_WILDCARDS = frozenset({"", "0.0.0.0", "::", "*"})


def _address(text: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    try:
        address = ipaddress.ip_address(text.strip("[]"))
    except ValueError:
        return None
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped  # a dual-stack listener sees IPv4 peers as ::ffff:a.b.c.d
    return address


def is_loopback(text: str) -> bool:
    address = _address(text)
    return address is not None and address.is_loopback


def split_host(value: str) -> str | None:
    """The host name of a `Host` header value (`name`, `name:port`, `[v6]:port`), lower-case;
    None when malformed."""
    value = value.strip().lower()
    if value.startswith("["):
        end = value.find("]")
        rest = value[end + 1 :]
        if end < 0 or (rest and not (rest.startswith(":") and rest[1:].isdigit())):
            return None
        return value[1:end]
    name, colon, port = value.partition(":")
    if colon and not port.isdigit():
        return None
    return name or None


@dataclass(frozen=True, slots=True)
class Guard:
    bind_host: str
    extra_hosts: tuple[str, ...] = ()
    username: str = ""
    password: str = ""

    @property
    def auth_required(self) -> bool:
        return bool(self.username and self.password)

    @property
    def bound_wide(self) -> bool:
        return self.bind_host in _WILDCARDS or not is_loopback(self.bind_host)

    def check(self, peer: str, local: str, method: str, headers: dict[str, str]) -> None:
        """Raise `AdminError` (403, 401, 415) when the request from `peer`, arrived at our
        address `local`, may not proceed."""
        if not is_loopback(peer) and not (self.bound_wide and self.auth_required):
            raise AdminError(403, "admin UI/API is local-only")
        if self.auth_required and not self._authorized(headers.get("authorization", "")):
            challenge = (b"www-authenticate", b'Basic realm="tokenomics-admin"')
            raise AdminError(401, "unauthorized", [challenge])
        host = self._host(headers.get("host", ""), local)
        if method in MUTATING:
            self._same_origin(host, headers)

    def _authorized(self, given: str) -> bool:
        expected = "Basic " + base64.b64encode(f"{self.username}:{self.password}".encode()).decode()
        return hmac.compare_digest(given.encode("latin-1", "replace"), expected.encode())

    def _allowed_host(self, name: str, local: str) -> bool:
        """Loopback names; our own address as the connection reached it (an address in `Host`
        is never DNS rebinding); the bound address; the names of `server.tls.hosts`."""
        if name in LOOPBACK_NAMES or is_loopback(name):
            return True
        address = _address(name)
        if address is not None and address == _address(local):
            return True
        known = {h.lower().strip("[]") for h in self.extra_hosts}
        if self.bind_host not in _WILDCARDS:
            known.add(self.bind_host.lower().strip("[]"))
        return name in known or (address is not None and str(address) in known)

    def _host(self, value: str, local: str) -> str:
        name = split_host(value)
        if name is None or not self._allowed_host(name, local):
            raise AdminError(403, "admin: unexpected Host header")
        return value.strip().lower()

    @staticmethod
    def _same_origin(host: str, headers: dict[str, str]) -> None:
        media = headers.get("content-type", "").split(";", 1)[0].strip().lower()
        if media != "application/json":
            raise AdminError(415, "admin: Content-Type must be application/json")
        site = headers.get("sec-fetch-site", "").strip().lower()
        origin = headers.get("origin")
        if site in ("cross-site", "same-site") or (
            origin is not None
            and origin.strip().lower() not in (f"http://{host}", f"https://{host}")
        ):
            raise AdminError(403, "admin: cross-origin request refused")
