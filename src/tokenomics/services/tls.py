"""TLS for the HTTPS listener: auto-generated CA + server certificate, or the user's own pair.

`core.md` §6 with its fixes: an existing CA is reused, never overwritten while it is usable; the
server pair is re-issued when missing, unreadable, not matching its key, not issued by the CA,
expiring within `RENEW_WITHIN`, or not covering the requested host names. Usable files are left
byte-identical. Every file is PEM, mode 0600, written atomically; the directory is created 0700.
"""

from __future__ import annotations

import contextlib
import ipaddress
import os
import re
import secrets
import ssl
import tempfile
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING

from tokenomics.domain.errors import ConfigError

if TYPE_CHECKING:
    from collections.abc import Sequence

    from cryptography import x509
    from cryptography.hazmat.primitives.asymmetric.types import (
        CertificateIssuerPrivateKeyTypes,
        CertificatePublicKeyTypes,
        PrivateKeyTypes,
    )

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

CA_DAYS = 3650
SERVER_DAYS = 365
RENEW_WITHIN = timedelta(days=30)
BACKDATE = timedelta(minutes=5)
DEFAULT_HOSTS = ("localhost", "127.0.0.1", "::1")
ALPN_PROTOCOLS = ("h2", "http/1.1")
CA_LABELS = ("CA certificate", "CA key")
SERVER_LABELS = ("server certificate", "server key")
_LABEL = r"[a-z0-9_]([a-z0-9_-]*[a-z0-9_])?"
_DNS_NAME = re.compile(rf"^(\*\.)?{_LABEL}(\.{_LABEL})*$")


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


@dataclass(frozen=True, slots=True)
class _Names:
    dns: tuple[str, ...]
    ips: tuple[IPAddress, ...]


@dataclass(frozen=True, slots=True)
class _Pair:
    cert: x509.Certificate
    key: PrivateKeyTypes


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
    names = _requested_names(hosts)
    paths = CertPaths(cert_dir / "ca.crt", cert_dir / "server.crt", cert_dir / "server.key")
    made: dict[str, str] = {}
    try:
        cert_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
        ca, ca_reason = _ensure_ca(cert_dir, now)
        if ca_reason is not None:
            made["ca"] = ca_reason
            server_reason: str | None = "server certificate must be issued by the new CA"
        else:
            server_reason = _server_problem(paths, ca.cert, names, now)
        if server_reason is not None:
            made["server"] = server_reason
            _write_pair(_new_server(ca, names, now), paths.cert, paths.key)
    except OSError as err:
        raise ConfigError(
            f"cannot write TLS certificates to {cert_dir} ({err.strerror or err}); "
            "set server.tls.cert_dir to a writable directory."
        ) from None
    return CertPaths(
        paths.ca_cert, paths.cert, paths.key, tuple(made), reasons=tuple(made.values())
    )


def _ensure_ca(cert_dir: Path, now: datetime) -> tuple[_Pair, str | None]:
    """The usable CA in `cert_dir`, or a new one and the reason the old one was replaced."""
    cert_path, key_path = cert_dir / "ca.crt", cert_dir / "ca.key"
    ca, reason = _read_pair(cert_path, key_path, CA_LABELS)
    if ca is not None:
        reason = _ca_problem(ca, now)
        if reason is None:
            return ca, None
    ca = _new_ca(now)
    _write_pair(ca, cert_path, key_path)
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


def _requested_names(hosts: Sequence[str]) -> _Names:
    dns: dict[str, None] = {}
    ips: dict[IPAddress, None] = {}
    for raw in (*DEFAULT_HOSTS, *hosts):
        host = raw.strip().removeprefix("[").removesuffix("]")
        if not host:
            continue
        try:
            ip = ipaddress.ip_address(host)
        except ValueError:
            dns[_dns_name(raw, host)] = None
            continue
        if not ip.is_unspecified:
            ips[ip] = None
    return _Names(tuple(dns), tuple(ips))


def _dns_name(raw: str, host: str) -> str:
    try:
        name = host.encode("idna").decode("ascii").lower().rstrip(".")
    except UnicodeError:
        name = ""
    if not _DNS_NAME.match(name):
        raise ConfigError(
            f"TLS host {raw!r} is not a host name or IP address; fix it in server.tls.hosts "
            "(or server.host), e.g. proxy.example.com or 10.0.0.5."
        )
    return name


def _read_pair(
    cert_path: Path, key_path: Path, labels: tuple[str, str]
) -> tuple[_Pair | None, str | None]:
    from cryptography import x509
    from cryptography.exceptions import UnsupportedAlgorithm
    from cryptography.hazmat.primitives.serialization import load_pem_private_key

    cert_label, key_label = labels
    for label, path in ((cert_label, cert_path), (key_label, key_path)):
        if not path.is_file() or not os.access(path, os.R_OK):
            return None, f"{label} {path} is missing or not readable"
    try:
        cert = x509.load_pem_x509_certificate(cert_path.read_bytes())
    except (OSError, ValueError):
        return None, f"{cert_label} {cert_path} is not a PEM certificate"
    try:
        key = load_pem_private_key(key_path.read_bytes(), password=None)
    except (OSError, ValueError, TypeError, UnsupportedAlgorithm):
        return None, f"{key_label} {key_path} is not an unencrypted PEM private key"
    if not _key_matches(cert, key):
        return None, f"{key_label} {key_path} does not match {cert_label} {cert_path}"
    return _Pair(cert, key), None


def _key_matches(cert: x509.Certificate, key: PrivateKeyTypes) -> bool:
    from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

    spki = Encoding.DER, PublicFormat.SubjectPublicKeyInfo
    try:
        return cert.public_key().public_bytes(*spki) == key.public_key().public_bytes(*spki)
    except ValueError:
        return False


def _ca_problem(pair: _Pair, now: datetime) -> str | None:
    from cryptography import x509
    from cryptography.hazmat.primitives.asymmetric import ec, rsa

    try:
        is_ca = pair.cert.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    except x509.ExtensionNotFound:
        is_ca = False
    if not is_ca:
        return "ca.crt is not a CA certificate"
    if not isinstance(pair.key, ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey):
        return "ca.key is not an EC or RSA key"
    if pair.cert.not_valid_after_utc - now < RENEW_WITHIN:
        return f"CA certificate expires within {RENEW_WITHIN.days} days"
    return None


def _server_problem(
    paths: CertPaths, ca_cert: x509.Certificate, names: _Names, now: datetime
) -> str | None:
    from cryptography.exceptions import InvalidSignature

    pair, reason = _read_pair(paths.cert, paths.key, SERVER_LABELS)
    if pair is None:
        return reason
    try:
        pair.cert.verify_directly_issued_by(ca_cert)
    except (ValueError, TypeError, InvalidSignature):
        return "server certificate is not issued by the CA"
    if pair.cert.not_valid_before_utc > now:
        return "server certificate is not valid yet"
    if pair.cert.not_valid_after_utc - now < RENEW_WITHIN:
        return f"server certificate expires within {RENEW_WITHIN.days} days"
    if not _covers(pair.cert, names):
        return "server certificate does not cover the requested host names"
    return None


def _covers(cert: x509.Certificate, names: _Names) -> bool:
    from cryptography import x509

    try:
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        return False
    dns = {name.lower().rstrip(".") for name in san.get_values_for_type(x509.DNSName)}
    ips = set(san.get_values_for_type(x509.IPAddress))
    return set(names.dns) <= dns and set(names.ips) <= ips


def _new_ca(now: datetime) -> _Pair:
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name(
        [
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "Tokenomics CA"),
            x509.NameAttribute(NameOID.COMMON_NAME, "Tokenomics Root CA"),
        ]
    )
    cert = (
        _builder(name, name, key.public_key(), now, CA_DAYS)
        .add_extension(x509.BasicConstraints(ca=True, path_length=1), critical=True)
        .add_extension(_key_usage(key_cert_sign=True, crl_sign=True), critical=True)
        .sign(key, hashes.SHA256())
    )
    return _Pair(cert, key)


def _new_server(ca: _Pair, names: _Names, now: datetime) -> _Pair:
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name(
        [
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "Tokenomics"),
            x509.NameAttribute(NameOID.COMMON_NAME, "localhost"),
        ]
    )
    sans: list[x509.GeneralName] = [x509.DNSName(name) for name in names.dns]
    sans += [x509.IPAddress(ip) for ip in names.ips]
    cert = (
        _builder(subject, ca.cert.subject, key.public_key(), now, SERVER_DAYS)
        .add_extension(_key_usage(digital_signature=True), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(x509.SubjectAlternativeName(sans), critical=False)
        .add_extension(_authority_key_id(ca), critical=False)
        .sign(_issuer_key(ca.key), hashes.SHA256())
    )
    return _Pair(cert, key)


def _builder(
    subject: x509.Name,
    issuer: x509.Name,
    public_key: CertificatePublicKeyTypes,
    now: datetime,
    days: int,
) -> x509.CertificateBuilder:
    from cryptography import x509

    return (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer)
        .public_key(public_key)
        .serial_number(1 + secrets.randbelow(2**128 - 1))
        .not_valid_before(now - BACKDATE)
        .not_valid_after(now + timedelta(days=days))
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(public_key), critical=False)
    )


def _key_usage(**enabled: bool) -> x509.KeyUsage:
    from cryptography import x509

    names = "digital_signature content_commitment key_encipherment data_encipherment"
    names += " key_agreement key_cert_sign crl_sign encipher_only decipher_only"
    flags = dict.fromkeys(names.split(), False)
    return x509.KeyUsage(**(flags | enabled))


def _authority_key_id(ca: _Pair) -> x509.AuthorityKeyIdentifier:
    from cryptography import x509

    try:
        ski = ca.cert.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value
    except x509.ExtensionNotFound:  # a reused CA made by another tool
        return x509.AuthorityKeyIdentifier.from_issuer_public_key(_issuer_key(ca.key).public_key())
    return x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ski)


def _issuer_key(key: PrivateKeyTypes) -> CertificateIssuerPrivateKeyTypes:
    from cryptography.hazmat.primitives.asymmetric import ec, rsa

    if not isinstance(key, ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey):
        raise TypeError("the CA key must be an EC or RSA key")
    return key


def _write_pair(pair: _Pair, cert_path: Path, key_path: Path) -> None:
    from cryptography.hazmat.primitives.serialization import (
        Encoding,
        NoEncryption,
        PrivateFormat,
    )

    key_pem = pair.key.private_bytes(Encoding.PEM, PrivateFormat.TraditionalOpenSSL, NoEncryption())
    _write_private(key_path, key_pem)
    _write_private(cert_path, pair.cert.public_bytes(Encoding.PEM))


def _write_private(path: Path, data: bytes) -> None:
    """Write `data` to `path` with mode 0600 via a temporary file and `os.replace`."""
    fd, temp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as handle:
            os.chmod(temp, 0o600)
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(temp)
        raise


def _custom_pair(cert_path: Path, key_path: Path) -> CertPaths:
    labels = ("server.tls.cert_file", "server.tls.key_file")
    pair, reason = _read_pair(cert_path, key_path, labels)
    if pair is None:
        raise ConfigError(
            f"{reason}; point server.tls.cert_file and key_file at a PEM certificate and its "
            "unencrypted key, or unset both to use auto_gen."
        )
    return CertPaths(ca_cert=None, cert=cert_path, key=key_path)
