"""Turning the configured paths into absolute ones under the data directory (`{dir}`)."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from tokenomics.config.settings import Settings


def _absolute(value: str, base: Path) -> str:
    path = Path(value).expanduser()
    return str(path if path.is_absolute() else (base / path).resolve())


def default_dir(home: Path | None, cwd: Path) -> Path:
    return home / ".tokenomics" if home is not None else cwd / ".tokenomics"


def resolve_paths(settings: Settings, cwd: Path, home: Path | None) -> Settings:
    """`dir` (default `~/.tokenomics`) and every path derived from it become absolute.

    Empty paths, and the original's literal defaults `./tokenomics.db` and `./certs`, move with
    `dir`; any other relative path is taken relative to the working directory.
    """
    data_dir = Path(_absolute(settings.dir, cwd)) if settings.dir else default_dir(home, cwd)

    def under_dir(value: str, default_name: str, *literal_defaults: str) -> str:
        if value in ("", *literal_defaults):
            return str(data_dir / default_name)
        return _absolute(value, cwd)

    def optional(value: str) -> str:
        return _absolute(value, cwd) if value else ""

    tls = settings.server.tls
    log = settings.logging
    return dataclasses.replace(
        settings,
        dir=str(data_dir),
        storage=dataclasses.replace(
            settings.storage,
            db_path=under_dir(settings.storage.db_path, "tokenomics.db", "./tokenomics.db"),
        ),
        server=dataclasses.replace(
            settings.server,
            tls=dataclasses.replace(
                tls,
                cert_dir=under_dir(tls.cert_dir, "certs", "./certs"),
                cert_file=optional(tls.cert_file),
                key_file=optional(tls.key_file),
            ),
        ),
        logging=dataclasses.replace(
            log,
            proxy_log_file=_absolute(log.proxy_log_file or "proxy.log", data_dir),
            file=dataclasses.replace(log.file, path=under_dir(log.file.path, "tokenomics.log")),
        ),
    )
