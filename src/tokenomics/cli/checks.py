"""The individual checks of `tokenomics doctor` (`cli.md` §5.1). Each returns `Check`s; a
failing or warning check carries the fix. Checks only read: nothing is created."""

from __future__ import annotations

import os
import platform
import socket
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Literal

from tokenomics.cli import pidfile, process
from tokenomics.cli.process import Identity
from tokenomics.config.prices import load_prices
from tokenomics.config.providers import ProviderConfig
from tokenomics.domain.errors import PidFileError, TokenomicsError
from tokenomics.store.db import SCHEMA_VERSION

if TYPE_CHECKING:
    from collections.abc import Mapping

    from tokenomics.cli.context import Context
    from tokenomics.config.settings import Settings

Level = Literal["ok", "warn", "fail"]
KEY_HINT = "export {var}=$(openssl rand -hex 32)"


@dataclass(frozen=True, slots=True)
class Check:
    level: Level
    name: str
    detail: str
    fix: str = ""


def data_dir(settings: Settings) -> Check:
    path = Path(settings.dir)
    if path.exists() and not path.is_dir():
        return Check("fail", "data dir", f"{path} is not a directory",
                     "remove that file or choose another directory with --dir")  # fmt: skip
    existing = next(p for p in (path, *path.parents) if p.exists())
    if not os.access(existing, os.W_OK | os.X_OK):
        return Check("fail", "data dir", f"{existing} is not writable",
                     f"chmod u+rwx {existing}, or choose another directory with --dir")  # fmt: skip
    if existing != path:
        return Check("ok", "data dir", f"{path} will be created on first use")
    return Check("ok", "data dir", f"{path} is writable")


def database(ctx: Context, settings: Settings) -> list[Check]:
    path = Path(settings.storage.db_path)
    if not path.exists():
        return [Check("warn", "database", f"{path} does not exist yet (created on first run)")]
    try:
        store = ctx.open_store()
    except TokenomicsError as exc:
        text = str(exc)
        if "schema version" in text:
            return [Check("fail", "store schema", text,
                          "install a newer Tokenomics, or use another --db")]  # fmt: skip
        if "not an SQLite database" in text:
            fix = f"move {path} away, or point storage.db_path (--db) at another file"
        else:
            fix = f"check that you can read and write {path} and its directory (ls -l {path})"
        return [Check("fail", "database", f"cannot open: {text}", fix)]
    try:
        count, version = store.count(), store.db.schema_version
    finally:
        store.close()
    return [
        Check("ok", "database", f"found {path} ({count} token(s))"),
        Check("ok", "store schema", f"version {version} (this Tokenomics: {SCHEMA_VERSION})"),
    ]


def hash_key(ctx: Context, settings: Settings) -> Check:
    var = settings.security.hash_key_env
    if ctx.environ.get(var, ""):
        return Check("ok", "hash key", f"${var} is set")
    return Check("fail", "hash key", f"${var} not set (serve, start and run refuse to start)",
                 KEY_HINT.format(var=var) + ", and keep it stable")  # fmt: skip


def encryption_key(ctx: Context, settings: Settings) -> Check:
    var = settings.security.encryption_key_env
    if ctx.environ.get(var, ""):
        return Check("ok", "encryption key", f"${var} is set")
    return Check("warn", "encryption key", f"${var} not set, database will not be encrypted at "
                 "rest", KEY_HINT.format(var=var))  # fmt: skip


def provider_keys(ctx: Context, providers: Mapping[str, ProviderConfig]) -> list[Check]:
    if not providers:
        return [Check("warn", "providers", "no providers configured",
                      "add providers to providers.yaml or config.yaml")]  # fmt: skip
    keyed = [p for p in providers.values() if p.api_key_env]
    missing = sorted((p for p in keyed if not ctx.environ.get(p.api_key_env)), key=lambda p: p.name)
    if not missing:
        return [Check("ok", "provider keys", f"{len(providers)} provider(s), all keys set")]
    detail = f"{len(keyed) - len(missing)} configured, {len(missing)} missing API keys"
    level: Level = "warn"
    fix = "export the API key of each provider you use (the built-in mock provider needs none)"
    checks = [Check(level, "provider keys", detail, fix)]
    if len(missing) <= 5:
        checks += [Check("warn", "  missing key", f"{p.name} (${p.api_key_env})") for p in missing]
    return checks


def prices(providers: Mapping[str, ProviderConfig]) -> Check:
    overrides = {m: f for p in providers.values() for m, f in p.prices.items()}
    try:
        table = load_prices(overrides)
    except TokenomicsError as exc:
        return Check("fail", "price table", str(exc), "correct the prices: entry it names")
    unpriced = sorted({m for p in providers.values() for m in p.models if table.lookup(m) is None})
    # Unpriced models are recorded with cost_usd null (D15): worth knowing, not a problem.
    more = f", {len(unpriced)} listed model(s) without a price (cost_usd null)" if unpriced else ""
    return Check("ok", "price table", f"{len(table)} models priced{more}")


def tls(settings: Settings) -> Check:
    t = settings.server.tls
    if not t.enabled:
        return Check("warn", "tls", "TLS is disabled")
    if t.cert_file or t.key_file:
        absent = [f"{n}: {f or '(not set)'}" for n, f in (("cert", t.cert_file),
                  ("key", t.key_file)) if not f or not Path(f).is_file()]  # fmt: skip
        if absent:
            return Check("fail", "tls", "missing files: " + ", ".join(absent),
                         "set server.tls.cert_file and key_file to existing files")  # fmt: skip
        return Check("ok", "tls", f"cert={t.cert_file} key={t.key_file}")
    if not t.auto_gen:
        return Check("fail", "tls", "TLS enabled but no certs configured and auto_gen is off",
                     "set server.tls.cert_file/key_file or server.tls.auto_gen: true")  # fmt: skip
    if (Path(t.cert_dir) / "server.crt").exists():
        return Check("ok", "tls", f"auto-generated certs in {t.cert_dir}")
    return Check("ok", "tls", f"auto_gen enabled, certs will be created in {t.cert_dir} on first "
                 "serve")  # fmt: skip


def proxy_status(settings: Settings) -> Check:
    path = settings.pid_file
    try:
        record = pidfile.read(path)
    except PidFileError as exc:
        return Check("warn", "proxy status", str(exc), f"rm {path}")
    if record is None:
        return Check("ok", "proxy status", "no background proxy running")
    identity = process.identify(record)
    if identity is Identity.OURS:
        return Check("ok", "proxy status", f"background proxy running (PID {record.pid})")
    return Check("warn", "proxy status", f"stale PID file at {path} "
                 f"({process.describe(identity, record.pid)})",
                 "run 'tokenomics stop' to remove it")  # fmt: skip


def python_runtime() -> Check:
    machine = platform.machine().lower() or "unknown"
    return Check("ok", "python", f"{platform.python_implementation()} "
                 f"{platform.python_version()} on {sys.platform}/{machine}")  # fmt: skip


def redis(settings: Settings, timeout: float = 2.0) -> Check:
    """A TCP connect, AUTH when a password is set, SELECT and PING: enough to know it answers."""
    cfg = settings.session.redis
    host, _, port_text = cfg.addr.rpartition(":")
    host = host.strip("[]") or "localhost"
    fix = f"start Redis at {cfg.addr} or correct session.redis.addr"
    if not port_text.isdigit():
        return Check("fail", "redis", f"session.redis.addr {cfg.addr!r} is not host:port", fix)
    commands = [["AUTH", cfg.password]] if cfg.password else []
    commands += [["SELECT", str(cfg.db)]] if cfg.db else []
    commands.append(["PING"])
    try:
        with socket.create_connection((host, int(port_text)), timeout=timeout) as sock:
            replies = [_redis_call(sock, command) for command in commands]
    except OSError as exc:
        return Check("fail", "redis", f"cannot connect to {cfg.addr}: {exc.strerror or exc}", fix)
    bad = next((r for r in replies if r.startswith("-")), "")
    if bad:
        name = bad[1:].split(" ", 1)[0]
        hint = "set session.redis.password" if name in ("NOAUTH", "WRONGPASS") else fix
        return Check("fail", "redis", f"{cfg.addr} answered {bad[1:]}", hint)
    return Check("ok", "redis", f"{cfg.addr} answered {replies[-1].lstrip('+')}")


def _redis_call(sock: socket.socket, command: list[str]) -> str:
    parts = [f"*{len(command)}\r\n".encode()]
    for arg in command:
        data = arg.encode()
        parts.append(b"$%d\r\n%s\r\n" % (len(data), data))
    sock.sendall(b"".join(parts))
    reply = b""
    while not reply.endswith(b"\r\n"):
        chunk = sock.recv(4096)
        if not chunk:
            raise ConnectionError("connection closed by the server")
        reply += chunk
    return reply.decode("utf-8", errors="replace").strip()
