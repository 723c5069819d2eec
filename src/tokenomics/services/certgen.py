"""Building and checking the auto-generated TLS certificates (CA and server pair).

Sans-policy helpers for `services.tls`: names requested for the server certificate, reading and
writing PEM pairs atomically (0600), and the checks that decide whether a pair is still usable.
`cryptography` is imported inside the functions so that importing this module stays cheap.
"""

from __future__ import annotations

import ipaddress
import os
import re
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

from tokenomics.config.private_files import write_atomic
from tokenomics.domain.errors import ConfigError

if TYPE_CHECKING:
    from collections.abc import Sequence
    from pathlib import Path

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
CA_LABELS = ("CA certificate", "CA key")
SERVER_LABELS = ("server certificate", "server key")
_LABEL = r"[a-z0-9_]([a-z0-9_-]*[a-z0-9_])?"
_DNS_NAME = re.compile(rf"^(\*\.)?{_LABEL}(\.{_LABEL})*$")


@dataclass(frozen=True, slots=True)
class Names:
    dns: tuple[str, ...]
    ips: tuple[IPAddress, ...]


@dataclass(frozen=True, slots=True)
class Pair:
    cert: x509.Certificate
    key: PrivateKeyTypes


def requested_names(hosts: Sequence[str]) -> Names:
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
    return Names(tuple(dns), tuple(ips))


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


def read_pair(
    cert_path: Path, key_path: Path, labels: tuple[str, str]
) -> tuple[Pair | None, str | None]:
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
    if not key_matches(cert, key):
        return None, f"{key_label} {key_path} does not match {cert_label} {cert_path}"
    return Pair(cert, key), None


def key_matches(cert: x509.Certificate, key: PrivateKeyTypes) -> bool:
    from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

    spki = Encoding.DER, PublicFormat.SubjectPublicKeyInfo
    try:
        return cert.public_key().public_bytes(*spki) == key.public_key().public_bytes(*spki)
    except ValueError:
        return False


def ca_problem(pair: Pair, now: datetime) -> str | None:
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


def server_problem(
    cert_path: Path, key_path: Path, ca_cert: x509.Certificate, names: Names, now: datetime
) -> str | None:
    """Why the server pair must be re-issued, or None when it is usable."""
    from cryptography.exceptions import InvalidSignature

    pair, reason = read_pair(cert_path, key_path, SERVER_LABELS)
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


def _covers(cert: x509.Certificate, names: Names) -> bool:
    from cryptography import x509

    try:
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        return False
    dns = {name.lower().rstrip(".") for name in san.get_values_for_type(x509.DNSName)}
    ips = set(san.get_values_for_type(x509.IPAddress))
    return set(names.dns) <= dns and set(names.ips) <= ips


def new_ca(now: datetime) -> Pair:
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
    return Pair(cert, key)


def new_server(ca: Pair, names: Names, now: datetime) -> Pair:
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
    return Pair(cert, key)


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


def _authority_key_id(ca: Pair) -> x509.AuthorityKeyIdentifier:
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


def write_pair(pair: Pair, cert_path: Path, key_path: Path) -> None:
    from cryptography.hazmat.primitives.serialization import (
        Encoding,
        NoEncryption,
        PrivateFormat,
    )

    key_pem = pair.key.private_bytes(Encoding.PEM, PrivateFormat.TraditionalOpenSSL, NoEncryption())
    write_atomic(key_path, key_pem)
    write_atomic(cert_path, pair.cert.public_bytes(Encoding.PEM))
