"""Every configuration key of Tokenomics, declared once, typed, with its default.

The dotted key of a field is its path through these dataclasses (`server.tls.cert_dir`); its
environment variable is `TOKENOMICS_` + the key upper-cased with dots as underscores. The one
loader (`config.loader`) fills them from flags > environment > file > defaults. Path fields hold
absolute, resolved paths after loading. Each key's description is its `Annotated` text: the
configuration reference (docs/CONFIGURATION.md, `config.reference`) is generated from them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any, Literal

LogLevel = Literal["debug", "info", "warn", "error"]


@dataclass(frozen=True, slots=True)
class TLSSettings:
    enabled: Annotated[bool, "Start the HTTPS listener."] = True
    auto_gen: Annotated[
        bool,
        "Generate a local CA and a server certificate on first run (when no "
        "cert_file/key_file is set).",
    ] = True
    cert_dir: Annotated[str, "Directory of the generated certificates (default: {dir}/certs)."] = ""
    cert_file: Annotated[
        str,
        "A server certificate of your own (PEM); with key_file it replaces the generated one.",
    ] = ""
    key_file: Annotated[str, "The private key (PEM) of cert_file."] = ""
    hosts: Annotated[
        tuple[str, ...],
        "Extra names or IP addresses for the generated server certificate.",
    ] = ()


@dataclass(frozen=True, slots=True)
class ServerSettings:
    host: Annotated[
        str,
        "Address the listeners bind to (use 0.0.0.0 to listen on every interface).",
    ] = "127.0.0.1"
    http_port: Annotated[int, "Port of the HTTP listener (0 disables it)."] = 8080
    https_port: Annotated[int, "Port of the HTTPS listener."] = 8443
    upstream_url: Annotated[
        str,
        "Upstream for requests whose policy and provider name none.",
    ] = "https://api.openai.com"
    max_request_mb: Annotated[
        int,
        "Largest request body in MiB; larger ones are refused with 413.",
    ] = 10
    max_buffered_mb: Annotated[
        int,
        "Request bodies all requests may hold in memory at once, in MiB; past it 503 with "
        "Retry-After.",
    ] = 256
    body_timeout: Annotated[
        int,
        "Seconds a whole request body may take to arrive after its head; 408 beyond.",
    ] = 60
    idle_timeout: Annotated[
        int,
        "Seconds a connection stays open with no request under way (idle between requests, "
        "or still sending its request line and headers).",
    ] = 75
    stream_idle_timeout: Annotated[
        int,
        "Seconds without upstream data before a response read fails.",
    ] = 300
    shutdown_grace: Annotated[
        int,
        "Seconds in-flight requests get to finish on SIGINT/SIGTERM.",
    ] = 10
    workers: Annotated[
        int,
        "Serving processes sharing the listeners (SO_REUSEPORT), supervised by `serve`; more "
        "than 1 needs session.backend: redis.",
    ] = 1
    tls: TLSSettings = field(default_factory=TLSSettings)


@dataclass(frozen=True, slots=True)
class AdminAuthSettings:
    username: Annotated[
        str,
        "Basic auth user of the admin UI/API, /stats and /metrics (with password: required; "
        "the admin UI/API then also serves non-loopback clients when server.host binds wider).",
    ] = ""
    password: Annotated[str, "Basic auth password of the admin UI/API, /stats and /metrics."] = ""


@dataclass(frozen=True, slots=True)
class AdminSettings:
    enabled: Annotated[
        bool,
        "Admin UI/API switch; the proxy of `run` has it only with --admin.",
    ] = True
    auth: AdminAuthSettings = field(default_factory=AdminAuthSettings)


@dataclass(frozen=True, slots=True)
class StorageSettings:
    db_path: Annotated[str, "The SQLite token store (default: {dir}/tokenomics.db)."] = ""


@dataclass(frozen=True, slots=True)
class RedisSettings:
    addr: Annotated[
        str,
        "Redis address (host:port), when session.backend is redis.",
    ] = "localhost:6379"
    password: Annotated[str, "Redis password."] = ""
    db: Annotated[int, "Redis database number."] = 0
    timeout_ms: Annotated[
        int,
        "Milliseconds one Redis call may take; past it the request is refused with 503.",
    ] = 500
    rate_limit_fail_open: Annotated[
        bool,
        "Let requests through without rate limits while Redis is unreachable (budgets always "
        "fail closed).",
    ] = False
    memory_max_entries: Annotated[
        int,
        "Entries kept per token in Redis policy memory (memory.redis: true); older ones are "
        "trimmed.",
    ] = 1000


@dataclass(frozen=True, slots=True)
class SessionSettings:
    backend: Annotated[
        Literal["memory", "redis"],
        "Where rate-limit and budget counters live: memory, or redis to share them across proxies.",
    ] = "memory"
    redis: RedisSettings = field(default_factory=RedisSettings)


@dataclass(frozen=True, slots=True)
class SecuritySettings:
    hash_key_env: Annotated[
        str,
        "Name of the environment variable holding the HMAC key of token hashes.",
    ] = "TOKENOMICS_HASH_KEY"
    encryption_key_env: Annotated[
        str,
        "Name of the environment variable holding the key that encrypts policies at rest "
        "(AES-256-GCM); unset: stored in clear.",
    ] = "TOKENOMICS_ENCRYPTION_KEY"


@dataclass(frozen=True, slots=True)
class LogFileSettings:
    enabled: Annotated[bool, "Also write the application log to a file."] = False
    level: Annotated[LogLevel, "Level of the log file: debug, info, warn or error."] = "info"
    path: Annotated[str, "The log file (default: {dir}/tokenomics.log)."] = ""


@dataclass(frozen=True, slots=True)
class LoggingSettings:
    level: Annotated[
        LogLevel,
        "Console log level: debug, info, warn or error (debug also writes proxy_log_file).",
    ] = "info"
    format: Annotated[Literal["json", "text"], "Log line format: json or text."] = "json"
    request_body: Annotated[bool, "Log request bodies."] = False
    response_body: Annotated[bool, "Log response bodies."] = False
    hide_token_hash: Annotated[bool, "Print token hashes as `****` in logs."] = False
    disable_request: Annotated[
        bool,
        "No per-request log line (false: one structured line per request).",
    ] = True
    proxy_log_file: Annotated[
        str,
        "Debug log file, relative to {dir}, written when logging.level is debug.",
    ] = "proxy.log"
    file: LogFileSettings = field(default_factory=LogFileSettings)


@dataclass(frozen=True, slots=True)
class WebhookSettings:
    url: Annotated[str, "Endpoint the events are POSTed to (required)."] = ""
    secret: Annotated[str, "Shared secret sent as X-Webhook-Secret."] = ""
    signing_key: Annotated[str, "HMAC-SHA256 key of the X-Webhook-Signature header."] = ""
    events: Annotated[
        tuple[str, ...],
        "Event types to send (empty: all); a trailing * matches a prefix (token.*).",
    ] = ()
    timeout: Annotated[int, "Delivery timeout in seconds."] = 10
    insecure: Annotated[bool, "Skip TLS certificate verification of the endpoint."] = False


@dataclass(frozen=True, slots=True)
class EventsSettings:
    webhooks: Annotated[
        tuple[WebhookSettings, ...],
        "Webhooks that receive events (a list of the keys below).",
    ] = ()
    max_age: Annotated[
        int,
        "Seconds an undelivered event is retried (with backoff) before it is dead-lettered "
        "(kept: `tokenomics events list --dead`, `tokenomics events retry`).",
    ] = 86400


@dataclass(frozen=True, slots=True)
class RemoteWebhookSettings:
    enabled: Annotated[bool, "Accept pushed token updates on an inbound webhook endpoint."] = False
    path: Annotated[str, "URL path of the inbound webhook endpoint."] = "/v1/webhook"
    secret: Annotated[str, "Expected X-Webhook-Secret of inbound webhooks."] = ""
    signing_key: Annotated[
        str,
        "HMAC-SHA256 key that verifies X-Webhook-Signature of inbound webhooks.",
    ] = ""
    auto_register: Annotated[
        bool,
        "Register this proxy's webhook with the central server at startup.",
    ] = False
    callback_url: Annotated[
        str,
        "URL the central server posts to (required with auto_register).",
    ] = ""
    insecure: Annotated[
        bool,
        "Ask the central server to skip TLS verification when it calls back.",
    ] = False
    debounce_ms: Annotated[
        int,
        "Quiet time after the last pushed event before the one sync it triggers.",
    ] = 200
    replay_window: Annotated[
        int,
        "Seconds an event's timestamp may be off; older or repeated events are refused.",
    ] = 300


@dataclass(frozen=True, slots=True)
class RemoteSettings:
    url: Annotated[str, "Central configuration server to sync tokens from."] = ""
    api_key: Annotated[str, "API key for the central server."] = ""
    sync: Annotated[int, "Seconds between syncs (0: at startup only)."] = 0
    insecure: Annotated[bool, "Skip TLS certificate verification of the central server."] = False
    allowed_key_envs: Annotated[
        tuple[str, ...],
        "Key variables a synced policy may name as base_key_env, besides the api_key_env of "
        "the configured providers.",
    ] = ()
    allowed_upstream_hosts: Annotated[
        tuple[str, ...],
        "Hosts a synced policy may name in upstream_url, besides those of the configured "
        "providers and server.upstream_url.",
    ] = ()
    webhook: RemoteWebhookSettings = field(default_factory=RemoteWebhookSettings)


@dataclass(frozen=True, slots=True)
class LedgerSettings:
    enabled: Annotated[
        bool,
        "Record every request in the session ledger under {dir}/sessions.",
    ] = True
    memory: Annotated[bool, "Keep the conversations as markdown under {dir}/memory."] = True
    event_ledger: Annotated[
        bool,
        "Add communication_events (sanitised headers, bounded bodies) to the session files.",
    ] = False


@dataclass(frozen=True, slots=True)
class OtlpSettings:
    endpoint: Annotated[
        str,
        "OpenTelemetry collector (OTLP/HTTP) that receives one span per request; /v1/traces is "
        "added to a base URL. Empty: $OTEL_EXPORTER_OTLP_TRACES_ENDPOINT or "
        "$OTEL_EXPORTER_OTLP_ENDPOINT, else no export.",
    ] = ""
    headers: Annotated[
        dict[str, str],
        "HTTP headers of every export, e.g. {authorization: Bearer …}; empty: "
        "$OTEL_EXPORTER_OTLP_HEADERS (k=v,k2=v2).",
    ] = field(default_factory=dict)
    timeout: Annotated[int, "Seconds one export request may take."] = 10
    service_name: Annotated[
        str, "The service.name of the spans (empty: $OTEL_SERVICE_NAME, else tokenomics)."
    ] = ""
    queue_size: Annotated[
        int,
        "Spans waiting for export; when full, new ones are dropped (counted in /metrics), "
        "never waited for.",
    ] = 2048


@dataclass(frozen=True, slots=True)
class Settings:
    dir: Annotated[
        str,
        "Data directory: token store, sessions/, memory/, certs/, logs and the PID file "
        "(default: ~/.tokenomics).",
    ] = ""
    server: ServerSettings = field(default_factory=ServerSettings)
    admin: AdminSettings = field(default_factory=AdminSettings)
    storage: StorageSettings = field(default_factory=StorageSettings)
    session: SessionSettings = field(default_factory=SessionSettings)
    security: SecuritySettings = field(default_factory=SecuritySettings)
    logging: LoggingSettings = field(default_factory=LoggingSettings)
    events: EventsSettings = field(default_factory=EventsSettings)
    remote: RemoteSettings = field(default_factory=RemoteSettings)
    cli_maps: Annotated[
        dict[str, str],
        "Executable name to provider, for `tokenomics run` (e.g. {aider: openai}); the "
        "built-in table fills the rest.",
    ] = field(default_factory=dict)
    default_provider: Annotated[
        str,
        "Provider for models that no policy entry routes (e.g. openai).",
    ] = ""
    ledger: LedgerSettings = field(default_factory=LedgerSettings)
    otlp: OtlpSettings = field(default_factory=OtlpSettings)
    providers: Annotated[
        dict[str, Any],
        "Inline provider entries (same shape as providers.yaml); they replace entries of the "
        "same name.",
    ] = field(default_factory=dict)
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
