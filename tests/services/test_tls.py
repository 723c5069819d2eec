"""TLS certificates for the HTTPS listener (`core.md` §6, scenarios 76-78 with the fixes)."""

from __future__ import annotations

import shutil
import socket
import ssl
import stat
import threading
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import (
    Encoding,
    NoEncryption,
    PrivateFormat,
    load_pem_private_key,
)
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from tokenomics.domain.errors import ConfigError
from tokenomics.services.tls import CertPaths, ensure_certificates, resolve_tls, ssl_context

FILES = ("ca.crt", "ca.key", "server.crt", "server.key")


def utcnow() -> datetime:
    return datetime.now(UTC)


def load_cert(path: Path) -> x509.Certificate:
    return x509.load_pem_x509_certificate(path.read_bytes())


def snapshot(cert_dir: Path) -> dict[str, bytes]:
    return {name: (cert_dir / name).read_bytes() for name in FILES}


def name_attr(name: x509.Name, oid: x509.ObjectIdentifier) -> str:
    return str(name.get_attributes_for_oid(oid)[0].value)


def sans(cert: x509.Certificate) -> tuple[set[str], set[str]]:
    san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    ips = {str(ip) for ip in san.get_values_for_type(x509.IPAddress)}
    return set(san.get_values_for_type(x509.DNSName)), ips


@pytest.fixture
def cert_dir(tmp_path: Path) -> Path:
    return tmp_path / "tokenomics" / "certs"


# Scenario 76 ------------------------------------------------------------------------------------


def test_empty_dir_gets_four_private_files_in_a_private_dir(cert_dir: Path) -> None:
    paths = ensure_certificates(cert_dir, (), utcnow())

    assert paths == CertPaths(
        cert_dir / "ca.crt",
        cert_dir / "server.crt",
        cert_dir / "server.key",
        regenerated=("ca", "server"),
        reasons=paths.reasons,
    )
    assert stat.S_IMODE(cert_dir.stat().st_mode) == 0o700
    for name in FILES:
        assert stat.S_IMODE((cert_dir / name).stat().st_mode) == 0o600, name
    assert not [p.name for p in cert_dir.iterdir() if p.name not in FILES]


def test_generated_ca_is_a_ten_year_p256_root(cert_dir: Path) -> None:
    now = utcnow().replace(microsecond=0)
    ensure_certificates(cert_dir, (), now)
    ca = load_cert(cert_dir / "ca.crt")

    assert name_attr(ca.subject, NameOID.COMMON_NAME) == "Tokenomics Root CA"
    assert name_attr(ca.subject, NameOID.ORGANIZATION_NAME) == "Tokenomics CA"
    assert ca.issuer == ca.subject
    assert 0 < ca.serial_number < 2**128
    assert ca.not_valid_before_utc == now - timedelta(minutes=5)
    assert ca.not_valid_after_utc == now + timedelta(days=3650)
    basic = ca.extensions.get_extension_for_class(x509.BasicConstraints)
    assert basic.critical and basic.value.ca and basic.value.path_length == 1
    usage = ca.extensions.get_extension_for_class(x509.KeyUsage)
    assert usage.critical and usage.value.key_cert_sign and usage.value.crl_sign
    assert not usage.value.digital_signature
    ca.extensions.get_extension_for_class(x509.SubjectKeyIdentifier)
    ca.verify_directly_issued_by(ca)


def test_generated_server_cert_is_a_one_year_localhost_cert_issued_by_the_ca(
    cert_dir: Path,
) -> None:
    now = utcnow().replace(microsecond=0)
    ensure_certificates(cert_dir, (), now)
    ca = load_cert(cert_dir / "ca.crt")
    server = load_cert(cert_dir / "server.crt")

    assert name_attr(server.subject, NameOID.COMMON_NAME) == "localhost"
    assert name_attr(server.subject, NameOID.ORGANIZATION_NAME) == "Tokenomics"
    assert sans(server) == ({"localhost"}, {"127.0.0.1", "::1"})
    assert server.not_valid_before_utc == now - timedelta(minutes=5)
    assert server.not_valid_after_utc == now + timedelta(days=365)
    eku = server.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    assert list(eku) == [ExtendedKeyUsageOID.SERVER_AUTH]
    usage = server.extensions.get_extension_for_class(x509.KeyUsage)
    assert usage.critical and usage.value.digital_signature and not usage.value.key_cert_sign
    aki = server.extensions.get_extension_for_class(x509.AuthorityKeyIdentifier).value
    ski = ca.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value
    assert aki.key_identifier == ski.digest
    assert server.issuer == ca.subject
    assert server.serial_number != ca.serial_number
    server.verify_directly_issued_by(ca)


@pytest.mark.parametrize("name", ["ca.key", "server.key"])
def test_keys_are_p256_in_ec_private_key_pem(cert_dir: Path, name: str) -> None:
    ensure_certificates(cert_dir, (), utcnow())
    pem = (cert_dir / name).read_bytes()

    assert pem.startswith(b"-----BEGIN EC PRIVATE KEY-----\n")
    key = load_pem_private_key(pem, password=None)
    assert isinstance(key, ec.EllipticCurvePrivateKey)
    assert isinstance(key.curve, ec.SECP256R1)


# Scenario 77 ------------------------------------------------------------------------------------


def test_existing_valid_certs_are_reused_byte_identical(cert_dir: Path) -> None:
    ensure_certificates(cert_dir, ("proxy.example.com",), utcnow())
    before = snapshot(cert_dir)

    paths = ensure_certificates(cert_dir, ("proxy.example.com",), utcnow())

    assert snapshot(cert_dir) == before
    assert paths.regenerated == ()
    assert paths.reasons == ()


# Scenario 78 (fix) ------------------------------------------------------------------------------


@pytest.mark.parametrize("deleted", ["server.key", "server.crt"])
def test_missing_server_file_renews_only_the_server_pair(cert_dir: Path, deleted: str) -> None:
    ensure_certificates(cert_dir, (), utcnow())
    before = snapshot(cert_dir)
    (cert_dir / deleted).unlink()

    paths = ensure_certificates(cert_dir, (), utcnow())

    after = snapshot(cert_dir)
    assert after["ca.crt"] == before["ca.crt"]
    assert after["ca.key"] == before["ca.key"]
    assert after["server.crt"] != before["server.crt"]
    assert after["server.key"] != before["server.key"]
    assert paths.regenerated == ("server",)
    assert "missing" in paths.reasons[0]
    load_cert(cert_dir / "server.crt").verify_directly_issued_by(load_cert(cert_dir / "ca.crt"))


def test_missing_ca_key_regenerates_ca_and_server(cert_dir: Path) -> None:
    ensure_certificates(cert_dir, (), utcnow())
    before = snapshot(cert_dir)
    (cert_dir / "ca.key").unlink()

    paths = ensure_certificates(cert_dir, (), utcnow())

    after = snapshot(cert_dir)
    assert all(after[name] != before[name] for name in FILES)
    assert paths.regenerated == ("ca", "server")
    assert "CA key" in paths.reasons[0] and "missing" in paths.reasons[0]
    load_cert(cert_dir / "server.crt").verify_directly_issued_by(load_cert(cert_dir / "ca.crt"))


def test_unreadable_ca_regenerates_ca_and_server(cert_dir: Path) -> None:
    ensure_certificates(cert_dir, (), utcnow())
    (cert_dir / "ca.crt").write_bytes(b"not a certificate")

    paths = ensure_certificates(cert_dir, (), utcnow())

    assert paths.regenerated == ("ca", "server")
    assert "not a PEM certificate" in paths.reasons[0]
    load_cert(cert_dir / "server.crt").verify_directly_issued_by(load_cert(cert_dir / "ca.crt"))


def test_ca_expiring_within_30_days_is_replaced_with_the_server_pair(cert_dir: Path) -> None:
    ensure_certificates(cert_dir, (), utcnow() - timedelta(days=3640))
    before = snapshot(cert_dir)

    paths = ensure_certificates(cert_dir, (), utcnow())

    assert paths.regenerated == ("ca", "server")
    assert "CA certificate expires within 30 days" in paths.reasons[0]
    assert all(snapshot(cert_dir)[name] != before[name] for name in FILES)


def test_reused_ca_without_key_identifier_still_issues_the_server_cert(cert_dir: Path) -> None:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "Someone Else's CA")])
    now = utcnow()
    ca = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(7)
        .not_valid_before(now - timedelta(days=1))
        .not_valid_after(now + timedelta(days=1000))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_dir.mkdir(parents=True)
    (cert_dir / "ca.crt").write_bytes(ca.public_bytes(Encoding.PEM))
    (cert_dir / "ca.key").write_bytes(
        key.private_bytes(Encoding.PEM, PrivateFormat.TraditionalOpenSSL, NoEncryption())
    )

    paths = ensure_certificates(cert_dir, (), now)

    assert paths.regenerated == ("server",)
    server = load_cert(paths.cert)
    server.verify_directly_issued_by(ca)
    aki = server.extensions.get_extension_for_class(x509.AuthorityKeyIdentifier).value
    expected = x509.AuthorityKeyIdentifier.from_issuer_public_key(key.public_key())
    assert aki.key_identifier == expected.key_identifier


# Renewal ----------------------------------------------------------------------------------------


@pytest.mark.parametrize("age_days", [366, 340])
def test_expired_or_expiring_server_cert_is_renewed_and_ca_kept(
    cert_dir: Path, age_days: int
) -> None:
    ensure_certificates(cert_dir, (), utcnow() - timedelta(days=age_days))
    before = snapshot(cert_dir)

    paths = ensure_certificates(cert_dir, (), utcnow())

    after = snapshot(cert_dir)
    assert (after["ca.crt"], after["ca.key"]) == (before["ca.crt"], before["ca.key"])
    assert after["server.crt"] != before["server.crt"]
    assert paths.regenerated == ("server",)
    assert "expires within 30 days" in paths.reasons[0]
    server = load_cert(cert_dir / "server.crt")
    assert server.not_valid_after_utc > utcnow() + timedelta(days=364)


def test_server_cert_with_more_than_30_days_left_is_kept(cert_dir: Path) -> None:
    ensure_certificates(cert_dir, (), utcnow() - timedelta(days=300))
    before = snapshot(cert_dir)

    assert ensure_certificates(cert_dir, (), utcnow()).regenerated == ()
    assert snapshot(cert_dir) == before


def test_server_key_not_matching_the_cert_renews_the_pair(cert_dir: Path, tmp_path: Path) -> None:
    ensure_certificates(cert_dir, (), utcnow())
    other = ensure_certificates(tmp_path / "other", (), utcnow())
    before = snapshot(cert_dir)
    shutil.copyfile(other.key, cert_dir / "server.key")

    paths = ensure_certificates(cert_dir, (), utcnow())

    assert paths.regenerated == ("server",)
    assert "does not match" in paths.reasons[0]
    assert snapshot(cert_dir)["ca.key"] == before["ca.key"]


def test_server_cert_from_another_ca_is_renewed(cert_dir: Path, tmp_path: Path) -> None:
    ensure_certificates(cert_dir, (), utcnow())
    other = ensure_certificates(tmp_path / "other", (), utcnow())
    before = snapshot(cert_dir)
    shutil.copyfile(other.cert, cert_dir / "server.crt")
    shutil.copyfile(other.key, cert_dir / "server.key")

    paths = ensure_certificates(cert_dir, (), utcnow())

    assert paths.regenerated == ("server",)
    assert "not issued by the CA" in paths.reasons[0]
    assert snapshot(cert_dir)["ca.crt"] == before["ca.crt"]
    load_cert(cert_dir / "server.crt").verify_directly_issued_by(load_cert(cert_dir / "ca.crt"))


# Host names -------------------------------------------------------------------------------------


def test_extra_hosts_become_sans_and_wildcard_binds_are_skipped(cert_dir: Path) -> None:
    hosts = ("proxy.example.com", "10.1.2.3", "0.0.0.0", "::", "", "[fd00::5]", "*.internal")
    ensure_certificates(cert_dir, hosts, utcnow())

    dns, ips = sans(load_cert(cert_dir / "server.crt"))

    assert dns == {"localhost", "proxy.example.com", "*.internal"}
    assert ips == {"127.0.0.1", "::1", "10.1.2.3", "fd00::5"}


def test_new_host_renews_server_cert_but_a_removed_host_does_not(cert_dir: Path) -> None:
    ensure_certificates(cert_dir, ("127.0.0.1",), utcnow())
    ca_before = (cert_dir / "ca.crt").read_bytes()

    added = ensure_certificates(cert_dir, ("127.0.0.1", "Proxy.Example.com", "10.0.0.7"), utcnow())
    after_add = snapshot(cert_dir)
    removed = ensure_certificates(cert_dir, ("127.0.0.1",), utcnow())

    assert added.regenerated == ("server",)
    assert "does not cover" in added.reasons[0]
    assert (cert_dir / "ca.crt").read_bytes() == ca_before
    assert sans(load_cert(cert_dir / "server.crt"))[0] == {"localhost", "proxy.example.com"}
    assert removed.regenerated == ()
    assert snapshot(cert_dir) == after_add


def test_invalid_host_is_a_config_error(cert_dir: Path) -> None:
    with pytest.raises(ConfigError, match=r"server\.tls\.hosts"):
        ensure_certificates(cert_dir, ("proxy.example.com:8443",), utcnow())


def test_unwritable_cert_dir_is_a_config_error(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("x")

    with pytest.raises(ConfigError, match=r"set server\.tls\.cert_dir"):
        ensure_certificates(blocker / "certs", (), utcnow())


# resolve_tls ------------------------------------------------------------------------------------


def resolve(cert_dir: Path, **overrides: object) -> CertPaths | None:
    options: dict[str, object] = {
        "enabled": True,
        "auto_gen": True,
        "cert_dir": cert_dir,
        "cert_file": "",
        "key_file": "",
        "hosts": (),
        "now": utcnow(),
    }
    options.update(overrides)
    return resolve_tls(**options)  # type: ignore[arg-type]


def test_disabled_tls_resolves_to_none(cert_dir: Path) -> None:
    assert resolve(cert_dir, enabled=False, auto_gen=False) is None
    assert not cert_dir.exists()


def test_auto_gen_resolves_to_generated_certs(cert_dir: Path) -> None:
    paths = resolve(cert_dir, hosts=("proxy.example.com",))

    assert paths is not None
    assert paths.ca_cert == cert_dir / "ca.crt"
    assert "proxy.example.com" in sans(load_cert(paths.cert))[0]


def test_no_cert_files_and_no_auto_gen_is_a_config_error_with_a_hint(cert_dir: Path) -> None:
    with pytest.raises(ConfigError) as caught:
        resolve(cert_dir, auto_gen=False)

    message = str(caught.value)
    assert message.startswith("TLS enabled but no cert files provided and auto_gen is disabled")
    assert "server.tls.cert_file" in message
    assert "auto_gen: true" in message
    assert "server.tls.enabled: false" in message


@pytest.mark.parametrize(
    ("given", "missing"),
    [("cert_file", "server.tls.key_file"), ("key_file", "server.tls.cert_file")],
)
def test_only_one_custom_file_names_the_missing_key(
    cert_dir: Path, tmp_path: Path, given: str, missing: str
) -> None:
    with pytest.raises(ConfigError, match=rf"{missing} is not"):
        resolve(cert_dir, **{given: str(tmp_path / "x.pem")})


def test_custom_pair_is_used_as_is(cert_dir: Path, tmp_path: Path) -> None:
    mine = ensure_certificates(tmp_path / "mine", (), utcnow())

    paths = resolve(cert_dir, cert_file=str(mine.cert), key_file=str(mine.key))

    assert paths == CertPaths(ca_cert=None, cert=mine.cert, key=mine.key)
    assert not cert_dir.exists()


def test_custom_file_that_does_not_exist_is_a_config_error(cert_dir: Path, tmp_path: Path) -> None:
    mine = ensure_certificates(tmp_path / "mine", (), utcnow())

    with pytest.raises(ConfigError, match=r"server\.tls\.key_file .*missing or not readable"):
        resolve(cert_dir, cert_file=str(mine.cert), key_file=str(tmp_path / "nope.key"))


def test_custom_key_not_matching_the_cert_is_a_config_error(cert_dir: Path, tmp_path: Path) -> None:
    mine = ensure_certificates(tmp_path / "mine", (), utcnow())
    other = ensure_certificates(tmp_path / "other", (), utcnow())

    with pytest.raises(ConfigError, match="does not match"):
        resolve(cert_dir, cert_file=str(mine.cert), key_file=str(other.key))


def test_custom_cert_that_is_not_pem_is_a_config_error(cert_dir: Path, tmp_path: Path) -> None:
    mine = ensure_certificates(tmp_path / "mine", (), utcnow())
    bogus = tmp_path / "bogus.crt"
    bogus.write_text("hello")

    with pytest.raises(ConfigError, match="not a PEM certificate"):
        resolve(cert_dir, cert_file=str(bogus), key_file=str(mine.key))


# ssl_context and a real handshake ---------------------------------------------------------------


def test_ssl_context_requires_tls_12_and_offers_h2_and_http11(cert_dir: Path) -> None:
    context = ssl_context(ensure_certificates(cert_dir, (), utcnow()))

    assert context.minimum_version == ssl.TLSVersion.TLSv1_2
    assert context.verify_mode == ssl.CERT_NONE


def test_ssl_context_with_unloadable_files_is_a_config_error(tmp_path: Path) -> None:
    junk = tmp_path / "junk.pem"
    junk.write_text("junk")

    with pytest.raises(ConfigError, match="cannot load the TLS certificate"):
        ssl_context(CertPaths(ca_cert=None, cert=junk, key=junk))


def serve_tls(context: ssl.SSLContext, connections: int) -> tuple[int, threading.Thread]:
    """Accept `connections` TLS clients on 127.0.0.1, reply with the negotiated ALPN protocol."""
    listener = socket.create_server(("127.0.0.1", 0))
    listener.settimeout(10)

    def run() -> None:
        with listener:
            for _ in range(connections):
                raw, _ = listener.accept()
                raw.settimeout(10)
                try:
                    with context.wrap_socket(raw, server_side=True) as conn:
                        conn.sendall((conn.selected_alpn_protocol() or "-").encode())
                except (ssl.SSLError, OSError):
                    raw.close()

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return listener.getsockname()[1], thread


@pytest.mark.parametrize("hostname", ["localhost", "127.0.0.1"])
def test_real_handshake_verifies_against_the_ca_only(cert_dir: Path, hostname: str) -> None:
    paths = ensure_certificates(cert_dir, (), utcnow())
    assert paths.ca_cert is not None
    port, thread = serve_tls(ssl_context(paths), connections=1)
    client = ssl.create_default_context(cafile=str(paths.ca_cert))
    client.set_alpn_protocols(["http/1.1"])
    assert client.check_hostname

    with (
        socket.create_connection(("127.0.0.1", port), timeout=10) as raw,
        client.wrap_socket(raw, server_hostname=hostname) as conn,
    ):
        assert conn.version() in {"TLSv1.2", "TLSv1.3"}
        assert conn.recv(16) == b"http/1.1"
    thread.join(10)
    assert not thread.is_alive()


def test_handshake_fails_for_a_name_not_in_the_cert(cert_dir: Path) -> None:
    paths = ensure_certificates(cert_dir, (), utcnow())
    assert paths.ca_cert is not None
    port, thread = serve_tls(ssl_context(paths), connections=1)
    client = ssl.create_default_context(cafile=str(paths.ca_cert))

    with (
        socket.create_connection(("127.0.0.1", port), timeout=10) as raw,
        pytest.raises(ssl.SSLCertVerificationError),
    ):
        client.wrap_socket(raw, server_hostname="proxy.example.com")
    thread.join(10)


def test_handshake_with_an_extra_ip_host_prefers_h2(cert_dir: Path) -> None:
    paths = ensure_certificates(cert_dir, ("127.0.0.2",), utcnow())
    assert paths.ca_cert is not None
    port, thread = serve_tls(ssl_context(paths), connections=1)
    client = ssl.create_default_context(cafile=str(paths.ca_cert))
    client.set_alpn_protocols(["http/1.1", "h2"])

    with (
        socket.create_connection(("127.0.0.1", port), timeout=10) as raw,
        client.wrap_socket(raw, server_hostname="127.0.0.2") as conn,
    ):
        assert conn.recv(16) == b"h2"
    thread.join(10)
