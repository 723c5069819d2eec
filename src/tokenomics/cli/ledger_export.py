"""`ledger export` (every request, for spreadsheets and warehouses) and `ledger reindex`.

`export` streams the filtered requests from the ledger index, oldest first, as CSV (the
default) or JSON lines (`--json`), to stdout or `--output` (created 0600). A cell of text that a
spreadsheet would run as a formula (starting with `=`, `+`, `-`, `@`, tab or CR: a model name
comes from a client) is written with a leading `'` in CSV; JSON lines carry the values as they
are. The token is the first 16 characters of its hash; `cost_usd` is empty / null for a request
without a price (`unpriced` says so).

`reindex` rebuilds the index of the sessions directory from its files (creating the token store
when it is missing).
"""

from __future__ import annotations

import contextlib
import csv as csvlib
import os
import time
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, TextIO

import orjson
from cyclopts import Parameter

from tokenomics.cli.ledger_index import (
    Branch,
    Csv,
    Ctx,
    Dir,
    Json,
    Repo,
    Since,
    Until,
    open_index,
)
from tokenomics.cli.ledger_report import parse_filter
from tokenomics.domain.durations import format_rfc3339_nano
from tokenomics.domain.errors import CommandError
from tokenomics.domain.ledger_report import TOKEN_PREFIX
from tokenomics.domain.ledger_rows import from_micros

if TYPE_CHECKING:
    from collections.abc import Callable, Iterable, Iterator

EXPORT_COLUMNS = (
    "session_id", "timestamp", "day", "model", "provider", "token", "branch", "commit", "repo",
    "agent", "status_code", "input_tokens", "output_tokens", "cached_input_tokens",
    "cache_creation_tokens", "reasoning_tokens", "cost_usd", "unpriced", "estimated",
    "retry_count", "rule_failures", "duration_ms", "path",
)  # fmt: skip
_FORMULA = ("=", "+", "-", "@", "\t", "\r")
Output = Annotated[str, Parameter(help="Write to this file instead of stdout.")]


def export_record(row: tuple[Any, ...]) -> dict[str, Any]:
    """One request of the index (`REQUEST_COLUMNS` without `seq`) as an export record."""
    (ts, day, session_id, model, provider, token_hash, branch, commit, repo, agent, status,
     inp, out, cached, created, reasoning, cost, estimated, retries, rules, duration,
     path) = row  # fmt: skip
    return {
        "session_id": session_id, "timestamp": format_rfc3339_nano(from_micros(ts)),
        "day": day, "model": model, "provider": provider, "token": token_hash[:TOKEN_PREFIX],
        "branch": branch, "commit": commit, "repo": repo, "agent": agent,
        "status_code": status, "input_tokens": inp, "output_tokens": out,
        "cached_input_tokens": cached, "cache_creation_tokens": created,
        "reasoning_tokens": reasoning, "cost_usd": cost, "unpriced": cost is None,
        "estimated": bool(estimated), "retry_count": retries, "rule_failures": rules,
        "duration_ms": duration, "path": path,
    }  # fmt: skip


def _text(value: str) -> str:
    return "'" + value if value.startswith(_FORMULA) else value


_CELL: dict[type, Callable[[Any], str]] = {
    str: _text, int: str, float: repr, bool: lambda v: "true" if v else "false",
    type(None): lambda _: "",
}  # fmt: skip


def write_export(out: TextIO, records: Iterable[dict[str, Any]], *, jsonl: bool) -> int:
    written = 0
    if jsonl:
        for record in records:
            out.write(orjson.dumps(record).decode() + "\n")
            written += 1
        return written
    writer = csvlib.writer(out, lineterminator="\n")
    writer.writerow(EXPORT_COLUMNS)
    for record in records:
        writer.writerow([_CELL[type(v)](v) for v in record.values()])
        written += 1
    return written


@contextlib.contextmanager
def _target(ctx: Any, output: str) -> Iterator[TextIO]:
    if not output:
        yield ctx.stdout
        return
    try:
        fd = os.open(Path(output).expanduser(), os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    except OSError as exc:
        raise CommandError(f"cannot write {output}: {exc.strerror or exc}") from None
    with open(fd, "w", encoding="utf-8", newline="") as handle:
        yield handle


def _quiet(out: TextIO) -> None:
    """Point a closed pipe at /dev/null, so flushing it at exit raises nothing more."""
    with contextlib.suppress(OSError, ValueError, AttributeError):
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, out.fileno())
        os.close(devnull)


def export(
    *, dir: Dir = "", json: Json = False, csv: Csv = False, output: Output = "",
    since: Since = "", until: Until = "", repo: Repo = "", branch: Branch = "", ctx: Ctx,
) -> None:  # fmt: skip
    """Every request (filtered), oldest first, as CSV or JSON lines (--json)."""
    if json and csv:
        raise CommandError("--json and --csv cannot be used together")
    query = parse_filter(since, until, branch, repo)
    with open_index(ctx, dir) as indexer, _target(ctx, output) as out:
        rows = indexer.index.requests(indexer.key, query)
        try:
            written = write_export(out, (export_record(r) for r in rows), jsonl=json)
        except BrokenPipeError:  # `ledger export | head`: the reader has all it wanted
            _quiet(out)
            return
    if output:
        ctx.stderr.write(f"Exported {written:,} requests to {output}\n")


def reindex(*, dir: Dir = "", ctx: Ctx) -> None:
    """Rebuild the ledger index of the sessions directory from its files."""
    started = time.perf_counter()
    with open_index(ctx, dir, create=True) as indexer:
        result = indexer.rebuild()
        where = indexer.sessions
    seconds = time.perf_counter() - started
    ctx.stdout.write(
        f"Indexed {result.files:,} session files ({result.requests:,} requests) from {where}"
        f" in {seconds:.2f}s\n"
    )
