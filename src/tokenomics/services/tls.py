"""TLS for the HTTPS listener: auto-generated CA + server certificate, or the user's own pair.

`core.md` §6 with its fixes: an existing CA is reused, never overwritten while it is usable; the
server pair is re-issued when missing, unreadable, not matching its key, not issued by the CA,
expiring within `RENEW_WITHIN`, or not covering the requested host names. Usable files are left
byte-identical. Every file is PEM, mode 0600, written atomically; the directory is created 0700.
"""

from __future__ import annotations

import ssl
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

from tokenomics.config.private_files import private_dir
from tokenomics.domain.errors import ConfigError
from tokenomics.services.certgen import (
    CA_LABELS,
    Pair,
    ca_problem,
    new_ca,
    new_server,
    read_pair,
    requested_names,
    server_problem,
    write_pair,
)

if TYPE_CHECKING:
    from collections.abc import Sequence


ALPN_PROTOCOLS = ("h2", "http/1.1")


@dataclass(frozen=True, slots=True)
class CertPaths:
    """Where the listener's certificate and key are; `ca_cert` is None for a user-provided pair.

    `regenerated` lists what this call (re)created (`"ca"`, `"server"`), `reasons` says why.
    """

    ca_cert: Path | None
    cert: Path
    key: Path
    regenerated: tuple[str, ...] = ()
    reasons: tuple[str, ...] = ()


def resolve_tls(
    *,
    enabled: bool,
    auto_gen: bool,
    cert_dir: Path,
    cert_file: str,
    key_file: str,
    hosts: Sequence[str],
    now: datetime,
) -> CertPaths | None:
    """The certificate for the HTTPS listener per `server.tls.*`, or None when TLS is off."""
    if not enabled:
        return None
    if cert_file and not key_file:
        raise ConfigError(
            "server.tls.cert_file is set but server.tls.key_file is not; set both, "
            "or neither to use auto_gen."
        )
    if key_file and not cert_file:
        raise ConfigError(
            "server.tls.key_file is set but server.tls.cert_file is not; set both, "
            "or neither to use auto_gen."
        )
    if cert_file:
        return _custom_pair(Path(cert_file).expanduser(), Path(key_file).expanduser())
    if auto_gen:
        return ensure_certificates(cert_dir, hosts, now)
    raise ConfigError(
        "TLS enabled but no cert files provided and auto_gen is disabled; set "
        "server.tls.cert_file and server.tls.key_file, or server.tls.auto_gen: true, "
        "or server.tls.enabled: false."
    )


def ensure_certificates(cert_dir: Path, hosts: Sequence[str], now: datetime) -> CertPaths:
    """Create or reuse `ca.crt`/`ca.key` and `server.crt`/`server.key` in `cert_dir`.

    `hosts` are extra names/IPs for the server certificate (pass `server.host` and
    `server.tls.hosts`); a naive `now` is taken as UTC.
    """
    now = _as_utc(now)
    names = requested_names(hosts)
    paths = CertPaths(cert_dir / "ca.crt", cert_dir / "server.crt", cert_dir / "server.key")
    made: dict[str, str] = {}
    try:
        private_dir(cert_dir, owned=True)
        ca, ca_reason = _ensure_ca(cert_dir, now)
        if ca_reason is not None:
            made["ca"] = ca_reason
            server_reason: str | None = "server certificate must be issued by the new CA"
        else:
            server_reason = server_problem(paths.cert, paths.key, ca.cert, names, now)
        if server_reason is not None:
            made["server"] = server_reason
            write_pair(new_server(ca, names, now), paths.cert, paths.key)
    except OSError as err:
        raise ConfigError(
            f"cannot write TLS certificates to {cert_dir} ({err.strerror or err}); "
            "set server.tls.cert_dir to a writable directory."
        ) from None
    return CertPaths(
        paths.ca_cert, paths.cert, paths.key, tuple(made), reasons=tuple(made.values())
    )


def _ensure_ca(cert_dir: Path, now: datetime) -> tuple[Pair, str | None]:
    """The usable CA in `cert_dir`, or a new one and the reason the old one was replaced."""
    cert_path, key_path = cert_dir / "ca.crt", cert_dir / "ca.key"
    ca, reason = read_pair(cert_path, key_path, CA_LABELS)
    if ca is not None:
        reason = ca_problem(ca, now)
        if reason is None:
            return ca, None
    ca = new_ca(now)
    write_pair(ca, cert_path, key_path)
    return ca, reason


def ssl_context(paths: CertPaths) -> ssl.SSLContext:
    """A server-side context: TLS 1.2 minimum, ALPN h2 and http/1.1, the pair loaded."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.options |= ssl.OP_NO_COMPRESSION | ssl.OP_CIPHER_SERVER_PREFERENCE
    context.set_alpn_protocols(list(ALPN_PROTOCOLS))
    try:
        # The password callback stops OpenSSL from prompting on a terminal for an encrypted key.
        context.load_cert_chain(str(paths.cert), str(paths.key), password=_no_password)
    except (OSError, ssl.SSLError) as err:
        raise ConfigError(
            f"cannot load the TLS certificate {paths.cert} with key {paths.key} ({err}); "
            "fix server.tls.cert_file/key_file or delete the files to regenerate them."
        ) from None
    return context


def _no_password() -> bytes:
    return b""


def _as_utc(now: datetime) -> datetime:
    return now.replace(tzinfo=UTC) if now.tzinfo is None else now.astimezone(UTC)


def _custom_pair(cert_path: Path, key_path: Path) -> CertPaths:
    labels = ("server.tls.cert_file", "server.tls.key_file")
    pair, reason = read_pair(cert_path, key_path, labels)
    if pair is None:
        raise ConfigError(
            f"{reason}; point server.tls.cert_file and key_file at a PEM certificate and its "
            "unencrypted key, or unset both to use auto_gen."
        )
    return CertPaths(ca_cert=None, cert=cert_path, key=key_path)
