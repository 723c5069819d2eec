"""Logging per the `logging.*` keys: level, json/text, the application log file, the proxy debug
log, and one structured line per request (`proxy.md` §5.3 keys plus cost)."""

from __future__ import annotations

import json
import logging
import logging.handlers
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tokenomics.config.private_files import private_dir, touch_private
from tokenomics.domain.durations import format_rfc3339
from tokenomics.domain.errors import ConfigError

if TYPE_CHECKING:
    from tokenomics.config.settings import LoggingSettings

LEVELS = {
    "debug": logging.DEBUG,
    "info": logging.INFO,
    "warn": logging.WARNING,
    "error": logging.ERROR,
}
REQUEST_LOGGER = "tokenomics.request"


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
        }
        fields = getattr(record, "fields", None)
        if isinstance(fields, dict):
            entry.update(fields)
        else:
            entry["msg"] = record.getMessage()
        if record.exc_info:
            entry["exc"] = self.formatException(record.exc_info)
        return json.dumps(entry, default=str)


class TextFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        fields = getattr(record, "fields", None)
        message = record.getMessage()
        if isinstance(fields, dict):
            message = " ".join(f"{k}={v}" for k, v in fields.items())
        stamp = format_rfc3339(datetime.fromtimestamp(record.created, UTC))
        return f"{stamp} {record.levelname:<7} {record.name}: {message}"


class PrivateRotatingFileHandler(logging.handlers.RotatingFileHandler):
    """A rotating log whose files are 0600 whatever the umask: the file is created (or
    narrowed) by us before the handler opens it, and again right after each rotation moves it
    away, so the handler only ever appends to a file that exists with our mode."""

    def __init__(self, path: Path, max_bytes: int, backups: int) -> None:
        private_dir(path.parent)
        touch_private(path)
        super().__init__(path, maxBytes=max_bytes, backupCount=backups)

    def rotate(self, source: str, dest: str) -> None:
        super().rotate(source, dest)
        if source == self.baseFilename:
            touch_private(Path(source))


def _file_handler(path: Path, level: int, formatter: logging.Formatter) -> logging.Handler:
    try:
        handler = PrivateRotatingFileHandler(path, 20 * 2**20, 3)
    except OSError as exc:
        raise ConfigError(f"cannot open log file {path}: {exc.strerror or exc}") from None
    handler.setLevel(level)
    handler.setFormatter(formatter)
    return handler


def configure(settings: LoggingSettings, *, stream: Any = None) -> list[logging.Handler]:
    """Install handlers on the `tokenomics` logger; returns them so the caller can remove them."""
    formatter = JsonFormatter() if settings.format == "json" else TextFormatter()
    console = logging.StreamHandler(stream or sys.stderr)
    console.setLevel(LEVELS[settings.level])
    console.setFormatter(formatter)
    handlers: list[logging.Handler] = [console]
    if settings.file.enabled:
        handlers.append(
            _file_handler(Path(settings.file.path), LEVELS[settings.file.level], formatter)
        )
    if settings.level == "debug":
        handlers.append(_file_handler(Path(settings.proxy_log_file), logging.DEBUG, formatter))
    root = logging.getLogger("tokenomics")
    root.setLevel(min(h.level for h in handlers))
    root.propagate = False
    for handler in handlers:
        root.addHandler(handler)
    logging.getLogger(REQUEST_LOGGER).disabled = settings.disable_request
    return handlers


def remove(handlers: list[logging.Handler]) -> None:
    """Undo `configure`: remove and close the handlers, restore the loggers' defaults."""
    root = logging.getLogger("tokenomics")
    for handler in handlers:
        root.removeHandler(handler)
        handler.close()
    root.setLevel(logging.NOTSET)
    root.propagate = True
    logging.getLogger(REQUEST_LOGGER).disabled = False
