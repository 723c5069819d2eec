"""The ledger index as the `ledger` commands use it, and their shared filter flags.

`open_index` syncs the index of the sessions directory before a command reads it. The index
lives in the token store (`storage.db_path`) when that file exists; a read-only command never
creates it (`reindex` does), so without one, or when it cannot be used, the sessions are
indexed into a private in-memory database for this one command: the same queries, only slower
on a large ledger.
"""

from __future__ import annotations

import contextlib
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

from cyclopts import Parameter

from tokenomics.cli.context import Context
from tokenomics.domain.errors import StoreError
from tokenomics.domain.ledger_range import parse_bound
from tokenomics.domain.ledger_rows import micros
from tokenomics.services.ledger_index import LedgerIndexer
from tokenomics.store.db import Database
from tokenomics.store.ledger_index import LedgerIndex
from tokenomics.store.ledger_query import LedgerFilter

if TYPE_CHECKING:
    from collections.abc import Iterator

Since = Annotated[
    str,
    Parameter(
        help="Only requests from then on: a date (YYYY-MM-DD), an RFC 3339 time, or 7d / 12h ago."
    ),
]
Until = Annotated[
    str, Parameter(help="Only requests before then (a date: up to the end of that day).")
]
Repo = Annotated[str, Parameter(help="Only sessions in this repository (path or its name).")]
Branch = Annotated[str, Parameter(help="Only sessions on this git branch.")]
Csv = Annotated[bool, Parameter(help="Output as CSV.", negative="")]


def ledger_filter(
    since: str, until: str, branch: str, repo: str, now: datetime | None = None
) -> LedgerFilter:
    """The filter the flags describe; raises DurationError for a bad time."""
    now = now or datetime.now(UTC)
    start = parse_bound(since, now) if since else None
    end = parse_bound(until, now, until=True) if until else None
    return LedgerFilter(
        since_us=micros(start) if start else None, until_us=micros(end) if end else None,
        branch=branch, repo=repo,
    )  # fmt: skip


def sessions_dir(ctx: Context, directory: str) -> Path:
    base = Path(directory).expanduser() if directory else ctx.settings().data_dir
    return base / "sessions"


def _database(ctx: Context, create: bool) -> Database:
    path = Path(ctx.settings().storage.db_path)
    if create:
        return Database.open(path)
    if path.exists():
        with contextlib.suppress(StoreError):
            return Database.open(path)
    return Database.in_memory()


@contextlib.contextmanager
def open_index(ctx: Context, directory: str, *, create: bool = False) -> Iterator[LedgerIndexer]:
    """The synced index of the sessions `directory` names (closed after use). `create` makes
    the token store when it is missing (and raises StoreError when it cannot be used)."""
    indexer = LedgerIndexer(LedgerIndex(_database(ctx, create)), sessions_dir(ctx, directory))
    try:
        if not create:
            try:
                indexer.sync()
            except StoreError:  # busy beyond the timeout, read-only, ...: index in memory
                indexer.close()
                indexer = LedgerIndexer(LedgerIndex(Database.in_memory()), indexer.sessions)
                indexer.sync()
        yield indexer
    finally:
        indexer.close()


Ctx = Annotated[Context, Parameter(parse=False)]
Dir = Annotated[str, Parameter(help="Ledger directory (default: the configured dir).")]
Json = Annotated[bool, Parameter(help="Output as JSON.", negative="")]
