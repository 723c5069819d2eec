"""OpenTelemetry export: one span per finished request, POSTed as OTLP/HTTP JSON to a collector
(`otlp.*` settings, or the standard `OTEL_EXPORTER_OTLP_*` variables).

    request task ── offer(finished) ──> bounded channel ──> run(): batch, POST /v1/traces
                    (span built here,   (`otlp.queue_size`;
                     never waits)        full: dropped, counted)

The recorder calls `offer` on the request's task: it turns the record into a small span dict
and puts it in the channel without waiting; when the channel is full the span is dropped and
counted (`/metrics`: `tokenomics_otlp_spans_dropped_total`), so a slow or dead collector never
slows a request down. `run`, a sibling task of the ledger in the consumers nursery, takes the
git context once, then sends batches of up to `BATCH_SIZE` spans, at most `BATCH_SECONDS`
after the first one arrived. A failed export (connection refused, timeout, 429, 5xx) is retried
with exponential backoff (honouring `Retry-After`), up to `ATTEMPTS` attempts; other statuses
give the batch up. On shutdown (cancellation), what is queued gets one shielded attempt within
`FINAL_FLUSH_SECONDS`, then it is counted as failed.

Why our own encoder rather than the OpenTelemetry SDK: the SDK's batch processor runs its own
thread and its OTLP/HTTP exporter blocks on `requests` (neither installed here); its queue,
retries and shutdown would live outside Trio's cancellation, and a zipapp would carry three
more packages. The OTLP/HTTP JSON encoding is a small, stable wire format (`otlp_spans`), sent
with the HTTP client the proxy already uses for upstreams.
"""

from __future__ import annotations

import contextlib
import logging
import math
from dataclasses import dataclass
from typing import TYPE_CHECKING
from urllib.parse import unquote, urlsplit

import trio

from tokenomics import __version__
from tokenomics.domain.errors import ConfigError, UpstreamError
from tokenomics.services import git_context
from tokenomics.services.otlp_spans import Pair, Span, export_body, run_attributes, span_of
from tokenomics.upstream.client import UpstreamRequest, Upstreams, header, read_all

if TYPE_CHECKING:
    from collections.abc import Mapping
    from pathlib import Path

    from tokenomics.config.settings import OtlpSettings
    from tokenomics.services.finished import Finished

logger = logging.getLogger("tokenomics.otlp")
TRACES_PATH = "/v1/traces"
BATCH_SIZE = 512
BATCH_SECONDS = 1.0
ATTEMPTS = 5
BACKOFF_SECONDS = 0.5  # doubled after each failed attempt
MAX_BACKOFF_SECONDS = 30.0
FINAL_FLUSH_SECONDS = 5.0
RESPONSE_LIMIT = 64 * 1024
RETRIED = frozenset({408, 429, 502, 503, 504})


@dataclass(frozen=True, slots=True)
class OtlpConfig:
    url: str  # the full traces URL
    headers: tuple[tuple[str, str], ...]
    timeout: float
    service_name: str
    queue_size: int


def _traces_url(endpoint: str, where: str, *, base: bool) -> str:
    parts = urlsplit(endpoint.strip())
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ConfigError(f"{where}: {endpoint!r} must be an http:// or https:// URL")
    if not base or parts.path.rstrip("/").endswith(TRACES_PATH):
        return endpoint.strip()
    return parts._replace(path=parts.path.rstrip("/") + TRACES_PATH).geturl()


def _env_headers(text: str) -> dict[str, str]:
    """`OTEL_EXPORTER_OTLP_HEADERS`: `k=v,k2=v2`, values percent-decoded."""
    pairs = (item.partition("=") for item in text.split(",") if item.strip())
    return {unquote(k).strip(): unquote(v).strip() for k, sep, v in pairs if sep and k.strip()}


def _check_headers(headers: Mapping[str, str]) -> tuple[tuple[str, str], ...]:
    for name, value in headers.items():
        if not name.isascii() or not name.replace("-", "").isalnum() or "\n" in value + "\r":
            raise ConfigError(f"otlp.headers: {name!r} is not a valid HTTP header")
    return tuple((name.lower(), value) for name, value in headers.items())


def otlp_config(settings: OtlpSettings, environ: Mapping[str, str]) -> OtlpConfig | None:
    """The export's configuration, None when no endpoint is configured; `OTEL_SDK_DISABLED`
    turns off an export that only the `OTEL_*` variables asked for."""
    if settings.endpoint.strip():
        url = _traces_url(settings.endpoint, "otlp.endpoint", base=True)
    elif environ.get("OTEL_SDK_DISABLED", "").strip().lower() == "true":
        return None
    elif traces := environ.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "").strip():
        url = _traces_url(traces, "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", base=False)
    elif endpoint := environ.get("OTEL_EXPORTER_OTLP_ENDPOINT", "").strip():
        url = _traces_url(endpoint, "OTEL_EXPORTER_OTLP_ENDPOINT", base=True)
    else:
        return None
    headers = settings.headers or _env_headers(environ.get("OTEL_EXPORTER_OTLP_HEADERS", ""))
    if settings.timeout <= 0 or settings.queue_size <= 0:
        raise ConfigError("otlp.timeout and otlp.queue_size must be above 0")
    service = settings.service_name or environ.get("OTEL_SERVICE_NAME", "") or "tokenomics"
    return OtlpConfig(url, _check_headers(headers), settings.timeout, service, settings.queue_size)


@dataclass(frozen=True, slots=True)
class OtlpStatistics:
    exported: int  # spans the collector accepted
    dropped: int  # spans dropped because the queue was full
    failed: int  # spans given up after the retries (or at shutdown)
    queued: int


class _Failed(Exception):
    def __init__(self, reason: str, retry_after: float | None = None) -> None:
        super().__init__(reason)
        self.reason, self.retry_after = reason, retry_after


class OtlpExporter:
    def __init__(self, config: OtlpConfig, *, run_id: str, cwd: Path) -> None:
        self.config = config
        self._run_id, self._cwd = run_id, cwd
        self._send, self._receive = trio.open_memory_channel[Span](config.queue_size)
        self._exported = self._dropped = self._failed = 0
        self._run: list[Pair] = []
        self._upstreams: Upstreams | None = None
        self._batch: list[Span] = []  # taken from the queue, not yet exported or given up
        self._failing = False

    def offer(self, finished: Finished) -> None:
        """Queue the span of an authenticated request, never waiting: a full queue drops it."""
        if not finished.token_hash:
            return  # unauthenticated traffic spends nothing; `/metrics` counts it
        try:
            self._send.send_nowait(span_of(finished))
        except (trio.WouldBlock, trio.ClosedResourceError, trio.BrokenResourceError):
            self._dropped += 1

    def statistics(self) -> OtlpStatistics:
        queued = self._receive.statistics().current_buffer_used
        return OtlpStatistics(self._exported, self._dropped, self._failed, queued)

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        self._upstreams = Upstreams()
        task_status.started()
        try:
            git = await git_context.open_context(self._cwd)  # each git call is time-bounded
            self._run = run_attributes(self._run_id, git)
            while True:
                await self._gather()
                await self._export(self._batch, ATTEMPTS)
                self._batch = []
        finally:
            with trio.CancelScope(shield=True):
                with trio.move_on_after(FINAL_FLUSH_SECONDS):
                    await self._final_flush()
                self._failed += len(self._batch) + len(self._take_nowait())
                await self._upstreams.aclose()

    async def _gather(self) -> None:
        """Into `_batch` (kept there if cancelled: the final flush sends it)."""
        self._batch.append(await self._receive.receive())
        with trio.move_on_after(BATCH_SECONDS):
            while len(self._batch) < BATCH_SIZE:
                self._batch.append(await self._receive.receive())

    def _take_nowait(self, limit: int = 0) -> list[Span]:
        """What the queue holds, up to `limit` spans (0: all)."""
        batch: list[Span] = []
        while not limit or len(batch) < limit:
            try:
                batch.append(self._receive.receive_nowait())
            except trio.WouldBlock:
                break
        return batch

    async def _final_flush(self) -> None:
        """The batch in hand and the queue, one attempt each (the caller bounds the time)."""
        if not self._batch:
            self._batch = self._take_nowait(BATCH_SIZE)
        while self._batch:
            await self._export(self._batch, 1)
            self._batch = self._take_nowait(BATCH_SIZE)

    async def _export(self, batch: list[Span], attempts: int) -> None:
        body = export_body(
            batch, service_name=self.config.service_name, version=__version__, run=self._run
        )
        delay = BACKOFF_SECONDS
        for attempt in range(1, attempts + 1):
            try:
                await self._post(body)
            except _Failed as exc:
                retry = exc.retry_after is not None and attempt < attempts
                if not retry:
                    self._give_up(len(batch), exc.reason)
                    return
                await trio.sleep(min(max(exc.retry_after or 0.0, delay), MAX_BACKOFF_SECONDS))
                delay *= 2
                continue
            self._exported += len(batch)
            if self._failing:
                logger.info("OpenTelemetry export to %s works again", self._where())
            self._failing = False
            return

    def _give_up(self, count: int, reason: str) -> None:
        self._failed += count
        if not self._failing:  # once per run of failures
            logger.warning(
                "OpenTelemetry export to %s failed, %d span(s) lost: %s",
                self._where(), count, reason,
            )  # fmt: skip
        self._failing = True

    def _where(self) -> str:
        parts = urlsplit(self.config.url)  # never the query: it may carry a key
        return f"{parts.scheme}://{parts.netloc.rpartition('@')[2]}{parts.path}"

    async def _post(self, body: bytes) -> None:
        """One attempt; `_Failed` with a `retry_after` (seconds, 0: the backoff) when another
        attempt may succeed."""
        assert self._upstreams is not None
        headers = [("content-type", "application/json"), *self.config.headers]
        request = UpstreamRequest("POST", self.config.url, headers, body)
        timeout = self.config.timeout
        with trio.move_on_after(timeout) as scope:
            try:
                response = await self._upstreams.open(request, headers_timeout=timeout)
            except UpstreamError as exc:
                raise _Failed(exc.reason, 0.0) from None
            try:  # read (so the connection can be reused); the status alone decides
                with contextlib.suppress(UpstreamError):
                    await read_all(response, RESPONSE_LIMIT, timeout)
            finally:
                await response.aclose()
        if scope.cancelled_caught:
            raise _Failed(f"no answer within {timeout:g}s", 0.0)
        if 200 <= response.status < 300:
            return
        reason = f"HTTP {response.status}"
        if response.status in RETRIED:
            raise _Failed(reason, _retry_after(header(response.headers, "retry-after")))
        raise _Failed(reason)


def _retry_after(value: str) -> float:
    try:
        seconds = float(value.strip())
    except ValueError:
        return 0.0
    return seconds if math.isfinite(seconds) and seconds > 0 else 0.0


def open_exporter(
    settings: OtlpSettings, environ: Mapping[str, str], *, run_id: str, cwd: Path
) -> OtlpExporter | None:
    """The exporter when an endpoint is configured (else None: the export costs nothing)."""
    config = otlp_config(settings, environ)
    return None if config is None else OtlpExporter(config, run_id=run_id, cwd=cwd)
