"""Every configuration key of Tokenomics, declared once, typed, with its default.

The dotted key of a field is its path through these dataclasses (`server.tls.cert_dir`); its
environment variable is `TOKENOMICS_` + the key upper-cased with dots as underscores. The one
loader (`config.loader`) fills them from flags > environment > file > defaults. Path fields hold
absolute, resolved paths after loading.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

LogLevel = Literal["debug", "info", "warn", "error"]


@dataclass(frozen=True, slots=True)
class TLSSettings:
    enabled: bool = True
    auto_gen: bool = True
    cert_dir: str = ""
    cert_file: str = ""
    key_file: str = ""
    hosts: tuple[str, ...] = ()  # extra names/IPs for the generated server certificate


@dataclass(frozen=True, slots=True)
class ServerSettings:
    host: str = "127.0.0.1"
    http_port: int = 8080
    https_port: int = 8443
    upstream_url: str = "https://api.openai.com"
    max_request_mb: int = 10  # larger request bodies are refused with 413
    # The request bodies all requests hold in memory at once; past it 503 with Retry-After.
    max_buffered_mb: int = 256
    body_timeout: int = 60  # seconds for a whole request body after its head; 408 beyond
    # Seconds a connection stays open with no request under way: idle between requests, or
    # still sending its request line and headers.
    idle_timeout: int = 75
    stream_idle_timeout: int = 300  # seconds without upstream data before a body read fails
    shutdown_grace: int = 10  # seconds in-flight requests get to finish on SIGINT/SIGTERM
    tls: TLSSettings = field(default_factory=TLSSettings)


@dataclass(frozen=True, slots=True)
class AdminAuthSettings:
    username: str = ""
    password: str = ""


@dataclass(frozen=True, slots=True)
class AdminSettings:
    enabled: bool = True
    auth: AdminAuthSettings = field(default_factory=AdminAuthSettings)


@dataclass(frozen=True, slots=True)
class StorageSettings:
    db_path: str = ""


@dataclass(frozen=True, slots=True)
class RedisSettings:
    addr: str = "localhost:6379"
    password: str = ""
    db: int = 0


@dataclass(frozen=True, slots=True)
class SessionSettings:
    backend: Literal["memory", "redis"] = "memory"
    redis: RedisSettings = field(default_factory=RedisSettings)


@dataclass(frozen=True, slots=True)
class SecuritySettings:
    hash_key_env: str = "TOKENOMICS_HASH_KEY"
    encryption_key_env: str = "TOKENOMICS_ENCRYPTION_KEY"


@dataclass(frozen=True, slots=True)
class LogFileSettings:
    enabled: bool = False
    level: LogLevel = "info"
    path: str = ""


@dataclass(frozen=True, slots=True)
class LoggingSettings:
    level: LogLevel = "info"
    format: Literal["json", "text"] = "json"
    request_body: bool = False
    response_body: bool = False
    hide_token_hash: bool = False
    disable_request: bool = True
    proxy_log_file: str = "proxy.log"
    file: LogFileSettings = field(default_factory=LogFileSettings)


@dataclass(frozen=True, slots=True)
class WebhookSettings:
    url: str = ""
    secret: str = ""
    signing_key: str = ""
    events: tuple[str, ...] = ()
    timeout: int = 10
    insecure: bool = False


@dataclass(frozen=True, slots=True)
class EventsSettings:
    webhooks: tuple[WebhookSettings, ...] = ()


@dataclass(frozen=True, slots=True)
class RemoteWebhookSettings:
    enabled: bool = False
    path: str = "/v1/webhook"
    secret: str = ""
    signing_key: str = ""
    auto_register: bool = False
    callback_url: str = ""
    insecure: bool = False


@dataclass(frozen=True, slots=True)
class RemoteSettings:
    url: str = ""
    api_key: str = ""
    sync: int = 0
    insecure: bool = False
    webhook: RemoteWebhookSettings = field(default_factory=RemoteWebhookSettings)


@dataclass(frozen=True, slots=True)
class LedgerSettings:
    enabled: bool = True
    memory: bool = True
    event_ledger: bool = False


@dataclass(frozen=True, slots=True)
class Settings:
    dir: str = ""
    server: ServerSettings = field(default_factory=ServerSettings)
    admin: AdminSettings = field(default_factory=AdminSettings)
    storage: StorageSettings = field(default_factory=StorageSettings)
    session: SessionSettings = field(default_factory=SessionSettings)
    security: SecuritySettings = field(default_factory=SecuritySettings)
    logging: LoggingSettings = field(default_factory=LoggingSettings)
    events: EventsSettings = field(default_factory=EventsSettings)
    remote: RemoteSettings = field(default_factory=RemoteSettings)
    cli_maps: dict[str, str] = field(default_factory=dict)
    default_provider: str = ""
    ledger: LedgerSettings = field(default_factory=LedgerSettings)
    providers: dict[str, Any] = field(default_factory=dict)  # inline entries, see config.providers
    config_file: str = ""  # the file that was loaded, "" when none

    # Paths derived from `dir` (all absolute once loaded).
    @property
    def data_dir(self) -> Path:
        return Path(self.dir)

    @property
    def sessions_dir(self) -> Path:
        return self.data_dir / "sessions"

    @property
    def memory_dir(self) -> Path:
        return self.data_dir / "memory"

    @property
    def pid_file(self) -> Path:
        return self.data_dir / "tokenomics.pid"
