"""The client registry of the central server: proxies that asked to be told of token changes
(`core.md` §5.4). Registrations expire unless renewed, so a crashed proxy does not stay
registered forever; they are kept in `{dir}/clients.json` (0600: it holds their secrets),
and secrets are never returned (D20)."""

from __future__ import annotations

import json
import logging
import secrets
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from tokenomics.config.private_files import write_atomic
from tokenomics.domain.durations import format_rfc3339
from tokenomics.domain.errors import RegistrationError
from tokenomics.services.webhook_send import WebhookTarget

if TYPE_CHECKING:
    from collections.abc import Callable
    from pathlib import Path

log = logging.getLogger("tokenomics.remote")
MAX_CLIENTS = 1000


@dataclass(frozen=True, slots=True)
class Registration:
    id: str
    url: str
    secret: str = field(repr=False)
    signing_key: str = field(repr=False)
    events: tuple[str, ...]
    insecure: bool
    created_at: str
    expires: float  # wall-clock seconds

    def public(self) -> dict[str, Any]:
        """What the API shows: never the secrets, only whether they are set."""
        shown: dict[str, Any] = {"id": self.id, "url": self.url, "events": list(self.events)}
        shown |= {"insecure": self.insecure, "created_at": self.created_at}
        shown |= {"has_secret": bool(self.secret), "has_signing_key": bool(self.signing_key)}
        shown["expires_at"] = format_rfc3339(datetime.fromtimestamp(self.expires, UTC))
        return shown


def check_url(raw: object) -> str:
    """The callback URL, or the spec's error (`core.md` §5.3)."""
    if not isinstance(raw, str) or not raw:
        raise RegistrationError("url is required")
    try:
        parts = urlsplit(raw)
        host = parts.hostname
    except ValueError as exc:
        raise RegistrationError(f"invalid url: {exc}") from None
    if parts.scheme not in ("http", "https"):
        raise RegistrationError(f"invalid url scheme: {parts.scheme[:20]}")
    if not host:
        raise RegistrationError("invalid url: host is required")
    if len(raw) > 2048 or any(c.isspace() or ord(c) < 32 for c in raw):
        raise RegistrationError("invalid url: too long or contains control characters")
    return raw


def _text(payload: dict[str, Any], key: str) -> str:
    value = payload.get(key, "")
    if not isinstance(value, str) or len(value) > 1024:
        raise RegistrationError(f"{key} must be a string (at most 1024 characters)")
    return value


def _events(payload: dict[str, Any]) -> tuple[str, ...]:
    value = payload.get("events") or []
    if not isinstance(value, list) or len(value) > 64:
        raise RegistrationError("events must be a list of event types")
    if not all(isinstance(e, str) and 0 < len(e) <= 100 for e in value):
        raise RegistrationError("events must be a list of event types")
    return tuple(value)


class ClientRegistry:
    def __init__(
        self, path: Path | None, ttl: float, now: Callable[[], float],
        on_register: Callable[[str], None] = lambda client_id: None,
    ) -> None:  # fmt: skip
        """`on_register(id)` runs before a new registration is visible (its outbox cursor)."""
        self._path, self.ttl, self._now, self._on_register = path, ttl, now, on_register
        self._clients: dict[str, Registration] = {}
        if path is not None and path.exists():
            self._load(path)

    def _load(self, path: Path) -> None:
        try:
            rows = json.loads(path.read_text())
            for row in rows:
                row["events"] = tuple(row["events"])
                self._clients[row["id"]] = Registration(**row)
        except (OSError, ValueError, TypeError, KeyError) as exc:
            log.warning("ignoring unreadable client registry %s: %s", path, exc)

    def _save(self) -> None:
        if self._path is None:
            return
        rows = [asdict(r) for r in self._clients.values()]
        write_atomic(self._path, json.dumps(rows, indent=1).encode())

    def prune(self) -> None:
        now = self._now()
        gone = [key for key, reg in self._clients.items() if reg.expires < now]
        for key in gone:
            log.info("client registration %s expired (not renewed)", key)
            del self._clients[key]
        if gone:
            self._save()

    def register(self, payload: dict[str, Any]) -> Registration:
        self.prune()
        if len(self._clients) >= MAX_CLIENTS:
            raise RegistrationError("too many registered clients")
        url = check_url(payload.get("url"))
        insecure = payload.get("insecure", False)
        if not isinstance(insecure, bool):
            raise RegistrationError("insecure must be true or false")
        reg = Registration(
            id="cl_" + secrets.token_hex(8), url=url, secret=_text(payload, "secret"),
            signing_key=_text(payload, "signing_key"), events=_events(payload),
            insecure=insecure, created_at=format_rfc3339(datetime.now(UTC)),
            expires=self._now() + self.ttl,
        )  # fmt: skip
        self._on_register(reg.id)
        self._clients[reg.id] = reg
        self._save()
        return reg

    def renew(self, client_id: str) -> Registration | None:
        self.prune()
        reg = self._clients.get(client_id)
        if reg is None:
            return None
        fresh = self._clients[client_id] = _with_expiry(reg, self._now() + self.ttl)
        self._save()
        return fresh

    def get(self, client_id: str) -> Registration | None:
        self.prune()
        return self._clients.get(client_id)

    def all(self) -> list[Registration]:
        self.prune()
        return sorted(self._clients.values(), key=lambda r: (r.created_at, r.id))

    def targets(self) -> list[WebhookTarget]:
        """The live registrations as the dispatcher's targets (one outbox cursor each)."""
        return [
            WebhookTarget(name=r.id, url=r.url, secret=r.secret, signing_secret=r.signing_key,
                          events=r.events, timeout=10.0, insecure=r.insecure)
            for r in self.all()
        ]  # fmt: skip

    def delete(self, client_id: str) -> bool:
        if self._clients.pop(client_id, None) is None:
            return False
        self._save()
        return True


def _with_expiry(reg: Registration, expires: float) -> Registration:
    return Registration(
        reg.id, reg.url, reg.secret, reg.signing_key, reg.events, reg.insecure, reg.created_at,
        expires,
    )  # fmt: skip
