"""Every configuration key, by file, by environment and by flag, and the precedence between them.

`SAMPLES` must name every key of `Settings`: adding a key without a test here fails.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import pytest
import yaml

from tokenomics.config.loader import env_name, iter_keys, load_settings
from tokenomics.config.settings import Settings, WebhookSettings
from tokenomics.domain.errors import ConfigError

HOOK = {"url": "http://127.0.0.1:9/hook", "secret": "s", "events": ["token.*"], "timeout": 3}

# key -> (value written in the file, value given in the environment, expected from the env)
SAMPLES: dict[str, tuple[Any, str, Any]] = {
    "dir": ("/srv/file-dir", "/srv/env-dir", "/srv/env-dir"),
    "server.host": ("0.0.0.0", "::1", "::1"),
    "server.http_port": (7000, "9091", 9091),
    "server.https_port": (7443, "9443", 9443),
    "server.upstream_url": ("https://file.example", "https://env.example", "https://env.example"),
    "server.max_request_mb": (20, "30", 30),
    "server.max_buffered_mb": (64, "128", 128),
    "server.body_timeout": (30, "45", 45),
    "server.idle_timeout": (20, "15", 15),
    "server.stream_idle_timeout": (60, "90", 90),
    "server.shutdown_grace": (3, "0", 0),
    "server.workers": (4, "2", 2),
    "server.tls.enabled": (False, "false", False),
    "server.tls.auto_gen": (False, "0", False),
    "server.tls.cert_dir": ("/srv/file-certs", "/srv/env-certs", "/srv/env-certs"),
    "server.tls.cert_file": ("/srv/file.crt", "/srv/env.crt", "/srv/env.crt"),
    "server.tls.key_file": ("/srv/file.key", "/srv/env.key", "/srv/env.key"),
    "server.tls.hosts": (
        ["proxy.lan"],
        "[proxy.internal, 10.0.0.5]",
        ("proxy.internal", "10.0.0.5"),
    ),
    "admin.enabled": (False, "FALSE", False),
    "admin.auth.username": ("file-user", "env-user", "env-user"),
    "admin.auth.password": ("file-pass", "env-pass", "env-pass"),
    "storage.db_path": ("/srv/file.db", "/srv/env.db", "/srv/env.db"),
    "session.backend": ("redis", "memory", "memory"),
    "session.redis.addr": ("file:6379", "env:6380", "env:6380"),
    "session.redis.password": ("file-pw", "env-pw", "env-pw"),
    "session.redis.db": (2, "3", 3),
    "session.redis.timeout_ms": (250, "100", 100),
    "session.redis.rate_limit_fail_open": (True, "false", False),
    "session.redis.memory_max_entries": (50, "20", 20),
    "security.hash_key_env": ("FILE_HASH", "ENV_HASH", "ENV_HASH"),
    "security.encryption_key_env": ("FILE_ENC", "ENV_ENC", "ENV_ENC"),
    "logging.level": ("debug", "warn", "warn"),
    "logging.format": ("text", "json", "json"),
    "logging.request_body": (True, "true", True),
    "logging.response_body": (True, "t", True),
    "logging.hide_token_hash": (True, "1", True),
    "logging.disable_request": (False, "false", False),
    "logging.proxy_log_file": ("/srv/file-proxy.log", "/srv/env-proxy.log", "/srv/env-proxy.log"),
    "logging.file.enabled": (True, "true", True),
    "logging.file.level": ("error", "debug", "debug"),
    "logging.file.path": ("/srv/file.log", "/srv/env.log", "/srv/env.log"),
    "events.webhooks": (
        [HOOK],
        '[{"url": "http://127.0.0.1:8/env", "insecure": true}]',
        (WebhookSettings(url="http://127.0.0.1:8/env", insecure=True),),
    ),
    "events.max_age": (3600, "7200", 7200),
    "remote.url": ("http://file:9090", "http://x:9090", "http://x:9090"),
    "remote.api_key": ("file-key", "env-key", "env-key"),
    "remote.sync": (30, "60", 60),
    "remote.insecure": (True, "true", True),
    "remote.webhook.enabled": (True, "true", True),
    "remote.webhook.path": ("/hooks/file", "/hooks/env", "/hooks/env"),
    "remote.webhook.secret": ("file-secret", "env-secret", "env-secret"),
    "remote.webhook.signing_key": ("file-sign", "env-sign", "env-sign"),
    "remote.webhook.auto_register": (True, "true", True),
    "remote.webhook.callback_url": ("http://file/cb", "http://env/cb", "http://env/cb"),
    "remote.webhook.insecure": (True, "true", True),
    "remote.webhook.debounce_ms": (100, "50", 50),
    "remote.webhook.replay_window": (120, "60", 60),
    "remote.allowed_key_envs": (["FILE_KEY"], "[ENV_KEY, OTHER_KEY]", ("ENV_KEY", "OTHER_KEY")),
    "remote.allowed_upstream_hosts": (["file.lan"], "[env.lan]", ("env.lan",)),
    "cli_maps": ({"claude": "anthropic"}, '{"aider": "openai"}', {"aider": "openai"}),
    "default_provider": ("openai", "anthropic", "anthropic"),
    "ledger.enabled": (False, "false", False),
    "ledger.memory": (False, "false", False),
    "ledger.event_ledger": (True, "true", True),
    "otlp.endpoint": ("http://file:4318", "http://env:4318", "http://env:4318"),
    "otlp.headers": ({"api-key": "f"}, '{"api-key": "e"}', {"api-key": "e"}),
    "otlp.timeout": (5, "7", 7),
    "otlp.service_name": ("file-gw", "env-gw", "env-gw"),
    "otlp.queue_size": (100, "200", 200),
    "providers": (
        {"mine": {"upstream_url": "https://file.example"}},
        '{"mine": {"upstream_url": "https://env.example"}}',
        {"mine": {"upstream_url": "https://env.example"}},
    ),
}
FLAGS = {"dir": "--dir", "storage.db_path": "--db"}

# The seed's environment table (CONFIGURATION.md), verbatim.
SEED_ENV = """
server.http_port TOKENOMICS_SERVER_HTTP_PORT
server.https_port TOKENOMICS_SERVER_HTTPS_PORT
server.upstream_url TOKENOMICS_SERVER_UPSTREAM_URL
server.tls.enabled TOKENOMICS_SERVER_TLS_ENABLED
server.tls.auto_gen TOKENOMICS_SERVER_TLS_AUTO_GEN
server.tls.cert_dir TOKENOMICS_SERVER_TLS_CERT_DIR
server.tls.cert_file TOKENOMICS_SERVER_TLS_CERT_FILE
server.tls.key_file TOKENOMICS_SERVER_TLS_KEY_FILE
admin.enabled TOKENOMICS_ADMIN_ENABLED
admin.auth.username TOKENOMICS_ADMIN_AUTH_USERNAME
admin.auth.password TOKENOMICS_ADMIN_AUTH_PASSWORD
storage.db_path TOKENOMICS_STORAGE_DB_PATH
session.backend TOKENOMICS_SESSION_BACKEND
session.redis.addr TOKENOMICS_SESSION_REDIS_ADDR
session.redis.password TOKENOMICS_SESSION_REDIS_PASSWORD
session.redis.db TOKENOMICS_SESSION_REDIS_DB
security.hash_key_env TOKENOMICS_SECURITY_HASH_KEY_ENV
security.encryption_key_env TOKENOMICS_SECURITY_ENCRYPTION_KEY_ENV
logging.level TOKENOMICS_LOGGING_LEVEL
logging.format TOKENOMICS_LOGGING_FORMAT
logging.request_body TOKENOMICS_LOGGING_REQUEST_BODY
logging.response_body TOKENOMICS_LOGGING_RESPONSE_BODY
logging.hide_token_hash TOKENOMICS_LOGGING_HIDE_TOKEN_HASH
logging.disable_request TOKENOMICS_LOGGING_DISABLE_REQUEST
logging.proxy_log_file TOKENOMICS_LOGGING_PROXY_LOG_FILE
default_provider TOKENOMICS_DEFAULT_PROVIDER
remote.url TOKENOMICS_REMOTE_URL
remote.api_key TOKENOMICS_REMOTE_API_KEY
remote.sync TOKENOMICS_REMOTE_SYNC
remote.insecure TOKENOMICS_REMOTE_INSECURE
ledger.enabled TOKENOMICS_LEDGER_ENABLED
ledger.memory TOKENOMICS_LEDGER_MEMORY
ledger.event_ledger TOKENOMICS_LEDGER_EVENT_LEDGER
logging.file.enabled TOKENOMICS_LOGGING_FILE_ENABLED
logging.file.level TOKENOMICS_LOGGING_FILE_LEVEL
logging.file.path TOKENOMICS_LOGGING_FILE_PATH
"""


def nested(key: str, value: Any) -> dict[str, Any]:
    doc: dict[str, Any] = {}
    node = doc
    parts = key.split(".")
    for part in parts[:-1]:
        node = node.setdefault(part, {})
    node[parts[-1]] = value
    return doc


def get(settings: Settings, key: str) -> Any:
    node: Any = settings
    for part in key.split("."):
        node = getattr(node, part)
    return node


def expected_from_file(key: str, value: Any) -> Any:
    if key == "events.webhooks":
        return tuple(WebhookSettings(**{**h, "events": tuple(h["events"])}) for h in value)
    if isinstance(value, list):
        return tuple(value)
    return value


def load(work: Path, home: Path, env: dict[str, str] | None = None, **kw: Any) -> Settings:
    return load_settings(cwd=work, home=home, environ=env or {}, **kw)


def test_samples_cover_every_key_and_the_seed_env_table() -> None:
    assert sorted(SAMPLES) == sorted(k.name for k in iter_keys())
    for line in SEED_ENV.strip().splitlines():
        key, env = line.split()
        assert env_name(key) == env
    assert env_name("dir") == "TOKENOMICS_DIR"


@pytest.mark.parametrize("key", sorted(SAMPLES))
def test_every_key_by_default_file_env_and_flag(key: str, work: Path, home: Path) -> None:
    file_value, env_text, env_expected = SAMPLES[key]
    default = load(work, home)
    assert get(default, key) != expected_from_file(key, file_value)

    (work / "config.yaml").write_text(yaml.safe_dump(nested(key, file_value)))
    from_file = load(work, home)
    assert get(from_file, key) == expected_from_file(key, file_value)

    from_env = load(work, home, {env_name(key): env_text})
    assert get(from_env, key) == env_expected

    if key in FLAGS:
        flagged = load(
            work, home, {env_name(key): env_text}, flags={key: ("/srv/flag", FLAGS[key])}
        )
        assert get(flagged, key) == "/srv/flag"


def test_defaults_of_the_seed(work: Path, home: Path) -> None:
    (work / "config.yaml").write_text("server:\n  upstream_url: https://api.openai.com\n")
    s = load(work, home)
    assert (s.server.http_port, s.server.https_port, s.server.host) == (8080, 8443, "127.0.0.1")
    assert s.server.tls.enabled and s.server.tls.auto_gen and s.admin.enabled
    assert s.session.backend == "memory" and s.session.redis.addr == "localhost:6379"
    assert (s.logging.level, s.logging.format, s.logging.disable_request) == ("info", "json", True)
    assert (s.ledger.enabled, s.ledger.memory, s.ledger.event_ledger) == (True, True, False)
    assert s.dir == str(home / ".tokenomics")
    assert s.storage.db_path == str(home / ".tokenomics" / "tokenomics.db")
    assert s.server.tls.cert_dir == str(home / ".tokenomics" / "certs")
    assert s.logging.proxy_log_file == str(home / ".tokenomics" / "proxy.log")
    assert s.logging.file.path == str(home / ".tokenomics" / "tokenomics.log")
    assert s.remote.webhook.path == "/v1/webhook" and s.events.webhooks == ()
    assert s.security.hash_key_env == "TOKENOMICS_HASH_KEY"


def test_dir_moves_everything_unless_a_path_is_explicit(work: Path, home: Path) -> None:
    s = load(work, home, flags={"dir": ("/tmp/x", "--dir")})
    assert s.storage.db_path == "/tmp/x/tokenomics.db" and s.server.tls.cert_dir == "/tmp/x/certs"
    assert s.logging.file.path == "/tmp/x/tokenomics.log" and s.sessions_dir == Path(
        "/tmp/x/sessions"
    )
    assert s.memory_dir == Path("/tmp/x/memory") and s.pid_file == Path("/tmp/x/tokenomics.pid")
    assert s.logging.proxy_log_file == "/tmp/x/proxy.log"
    (work / "config.yaml").write_text(
        "storage:\n  db_path: ./tokenomics.db\nserver:\n  tls:\n    cert_dir: ./certs\n"
    )
    compat = load(work, home, flags={"dir": ("/tmp/x", "--dir")})
    assert compat.storage.db_path == "/tmp/x/tokenomics.db"
    assert compat.server.tls.cert_dir == "/tmp/x/certs"
    (work / "config.yaml").write_text("storage:\n  db_path: data/my.db\n")
    explicit = load(work, home, flags={"dir": ("/tmp/x", "--dir")})
    assert explicit.storage.db_path == str(work / "data" / "my.db")


def test_tilde_and_relative_dir_are_expanded(work: Path, home: Path, monkeypatch) -> None:
    monkeypatch.setenv("HOME", str(home))
    assert load(work, home, {"TOKENOMICS_DIR": "~/data"}).dir == str(home / "data")
    assert load(work, home, {"TOKENOMICS_DIR": "rel"}).dir == str(work / "rel")


def test_precedence_flag_over_env_over_file(work: Path, home: Path) -> None:
    (work / "config.yaml").write_text("server:\n  http_port: 7000\ndefault_provider: openai\n")
    assert load(work, home).server.http_port == 7000
    env = {"TOKENOMICS_SERVER_HTTP_PORT": "9091", "TOKENOMICS_DEFAULT_PROVIDER": "anthropic"}
    s = load(work, home, env)
    assert (s.server.http_port, s.default_provider) == (9091, "anthropic")
    flagged = load(work, home, env, flags={"server.http_port": (1234, "--port")})
    assert flagged.server.http_port == 1234


def test_empty_env_values_are_ignored(work: Path, home: Path) -> None:
    (work / "config.yaml").write_text("server:\n  http_port: 7000\n")
    assert load(work, home, {"TOKENOMICS_SERVER_HTTP_PORT": ""}).server.http_port == 7000


def test_env_applies_without_the_section_in_the_file(work: Path, home: Path) -> None:
    (work / "config.yaml").write_text("server:\n  http_port: 7000\n")
    assert (
        load(work, home, {"TOKENOMICS_REMOTE_URL": "http://x:9090"}).remote.url == "http://x:9090"
    )


def test_config_file_lookup_order(work: Path, home: Path, tmp_path: Path) -> None:
    (home / ".tokenomics").mkdir()
    (home / ".tokenomics" / "config.yaml").write_text("default_provider: home\n")
    assert load(work, home).default_provider == "home"
    (work / "config.yaml").write_text("default_provider: cwd\n")
    assert load(work, home).default_provider == "cwd"
    (work / ".tokenomics").mkdir()
    (work / ".tokenomics" / "config.yaml").write_text("default_provider: dot\n")
    s = load(work, home)
    assert s.default_provider == "dot" and s.config_file == str(
        work / ".tokenomics" / "config.yaml"
    )
    other = tmp_path / "other.yaml"
    other.write_text("default_provider: explicit\n")
    assert load(work, home, config_path=str(other)).default_provider == "explicit"
    with pytest.raises(ConfigError, match="load config: config file not found: /missing.yaml"):
        load(work, home, config_path="/missing.yaml")


def test_config_in_the_data_dir_is_found(work: Path, home: Path, tmp_path: Path) -> None:
    data = tmp_path / "data"
    data.mkdir()
    (data / "config.yaml").write_text("default_provider: datadir\n")
    assert load(work, home, flags={"dir": (str(data), "--dir")}).default_provider == "datadir"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("server:\n  http_port: abc\n", 'server.http_port: "abc" must be a whole number (CFG:2)'),
        ("server:\n  http_port: 70000\n",
         "server.http_port: 70000 must be a port number from 0 to 65535 (CFG:2)"),
        ("logging:\n  level: loud\n",
         'logging.level: "loud" must be one of debug, info, warn, error (CFG:2)'),
        ("ledger:\n  enabled: maybe\n", 'ledger.enabled: "maybe" must be true or false (CFG:2)'),
        ("session:\n  backend: etcd\n", 'session.backend: "etcd" must be one of memory, redis (CFG:2)'),
        ("server:\n  htp_port: 1\n", 'unknown configuration key "server.htp_port" (CFG:2)'),
        ("server: 5\n", "server: must be a map of keys (CFG:1)"),
        ("events:\n  webhooks:\n    - secret: x\n", "events.webhooks: [\"\"] needs a url"),
        ("events:\n  webhooks:\n    - url: http://x\n      retries: 3\n",
         'unknown key "events.webhooks[0].retries" (CFG:2)'),
        ("server:\n  http_port: [1\n", "CFG:3: invalid YAML"),
        ("- a\n- b\n", "CFG:1: expected a mapping"),
    ],
)  # fmt: skip
def test_bad_values_name_key_value_and_place(
    work: Path, home: Path, text: str, message: str
) -> None:
    (work / "config.yaml").write_text(text)
    with pytest.raises(ConfigError) as err:
        load(work, home)
    assert message.replace("CFG", str(work / "config.yaml")) in str(err.value)


def test_bad_env_and_flag_values_name_their_source(work: Path, home: Path) -> None:
    with pytest.raises(ConfigError, match=r"\(env TOKENOMICS_SERVER_HTTPS_PORT\)"):
        load(work, home, {"TOKENOMICS_SERVER_HTTPS_PORT": "x"})
    with pytest.raises(
        ConfigError, match=r'server.http_port: "x" must be a whole number \(flag --port\)'
    ):
        load(work, home, flags={"server.http_port": ("x", "--port")})
    with pytest.raises(ConfigError, match="must be a YAML or JSON list/map"):
        load(work, home, {"TOKENOMICS_CLI_MAPS": "{unclosed"})


def test_loading_writes_nothing(work: Path, home: Path) -> None:
    load(work, home, {"TOKENOMICS_DIR": str(work / "data")})
    assert list(work.iterdir()) == [] and list(home.iterdir()) == []


def test_settings_are_immutable(work: Path, home: Path) -> None:
    with pytest.raises(dataclasses.FrozenInstanceError):
        load(work, home).dir = "x"  # type: ignore[misc]
