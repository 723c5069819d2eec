"""The SQL of the ledger index's summaries: whole days from `ledger_daily`, part days from
`ledger_requests`.

A `LedgerFilter`'s time range [since, until) is split into the whole UTC days it covers, read
from the per-day sums, and at most two part days at its ends (a `--since 12h` starts in the
middle of one), read request by request through the `ts` index. Both sources give the same
columns (`domain.ledger_rows.SUMMED`), so one `GROUP BY` over their union gives each group's
sums, and the result does not depend on where a day boundary falls.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from tokenomics.domain.ledger_rows import PER_REQUEST_SQL, SUMMED, SUMS_SQL

if TYPE_CHECKING:
    from collections.abc import Sequence

DAY_US = 86_400_000_000
# The facets of `ledger_facets` (`kind` -> the column of the other tables it sums by).
FACETS = {"provider": "provider", "model": "model", "agent": "agent", "token": "token_hash"}
_SESSION_KEYS = {"branch", "commit", "repo", "session", "day"}
# What `--by` groups on: a column of both tables.
GROUP_COLUMNS = {
    "branch": "branch", "commit": "git_commit", "model": "model", "provider": "provider",
    "token": "token_hash", "agent": "agent", "day": "day", "session": "session_id",
    "repo": "repo",
}  # fmt: skip


@dataclass(frozen=True, slots=True)
class LedgerFilter:
    """Requests recorded in [since, until) (microseconds, UTC), on a branch, in a repository
    (its full path or its last component), in files of one kind ("json" or "journal"), in
    the files with these ids (`ledger_files.id`), of the keys with these `tokens` (hashes);
    empty fields do not filter."""

    since_us: int | None = None
    until_us: int | None = None
    branch: str = ""
    repo: str = ""
    file_kind: str = ""
    file_ids: tuple[int, ...] = ()
    tokens: tuple[str, ...] = ()

    @property
    def by_time(self) -> bool:
        return self.since_us is not None or self.until_us is not None


def _day(us: int) -> str:
    return f"{datetime.fromtimestamp(us // 1_000_000, UTC):%Y-%m-%d}"


@dataclass(frozen=True, slots=True)
class Plan:
    """Whole days [first, end) from the daily sums (None: unbounded; `whole` False: none) and
    the [lo, hi) microsecond ranges read request by request."""

    whole: bool
    first: str | None
    end: str | None
    ranges: tuple[tuple[int | None, int | None], ...]


def plan(f: LedgerFilter) -> Plan:
    lo, hi = f.since_us, f.until_us
    start = None if lo is None else -(-lo // DAY_US) * DAY_US  # the first midnight >= since
    stop = None if hi is None else hi // DAY_US * DAY_US  # the last midnight <= until
    if start is not None and stop is not None and start >= stop:
        return Plan(False, None, None, ((lo, hi),) if lo is None or hi is None or lo < hi else ())
    ranges: list[tuple[int | None, int | None]] = []
    if lo is not None and start is not None and lo < start:
        ranges.append((lo, start))
    if hi is not None and stop is not None and stop < hi:
        ranges.append((stop, hi))
    first = None if start is None else _day(start)
    end = None if stop is None else _day(stop)
    return Plan(True, first, end, tuple(ranges))


def _like(text: str) -> str:
    return "%/" + text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def _scope(directory: str, f: LedgerFilter) -> tuple[list[str], list[Any]]:
    # `+file_id`: never read by the file index (every row of the directory, one file after the
    # other); the day and time indexes narrow far better.
    clauses = ["+file_id IN (SELECT id FROM ledger_files WHERE dir = ?)"]
    params: list[Any] = [directory]
    if f.file_kind:
        # the journals are few (running or crashed sessions): found by the file index
        plus = "" if f.file_kind == "journal" else "+"
        clauses[0] = f"{plus}file_id IN (SELECT id FROM ledger_files WHERE dir = ? AND kind = ?)"
        params.append(f.file_kind)
    if f.file_ids:  # a few files: found by the file index
        clauses.append(f"file_id IN ({', '.join('?' for _ in f.file_ids)})")
        params += f.file_ids
    if f.branch:
        clauses.append("branch = ?")
        params.append(f.branch)
    if f.repo:
        clauses.append("(repo = ? OR repo LIKE ? ESCAPE '\\')")
        params += [f.repo, _like(f.repo)]
    return clauses, params


def _bounded(
    clauses: list[str], params: list[Any], column: str, lo: object, hi: object
) -> tuple[str, list[Any]]:
    extra, values = [], []
    if lo is not None:
        extra.append(f"{column} >= ?")
        values.append(lo)
    if hi is not None:
        extra.append(f"{column} < ?")
        values.append(hi)
    return " AND ".join([*clauses, *extra]), [*params, *values]


def _sums_table(keys: Sequence[str], by_token: bool = False) -> tuple[str, str, str]:
    """The table of whole-day sums for grouping by `keys` (and filtering `by_token`), the
    `kind` it is read for and the facet column it stands in for ("" for `ledger_daily`)."""
    facets = {k for k in keys if k not in _SESSION_KEYS} | ({"token"} if by_token else set())
    if len(facets) > 1:
        return "ledger_daily", "", ""
    kind = min(facets) if facets else "provider"  # any one facet adds up to every request
    return "ledger_facets", kind, FACETS[kind]


def _of_tokens(
    where: str, values: list[Any], column: str, f: LedgerFilter
) -> tuple[str, list[Any]]:
    if not f.tokens:
        return where, values
    return f"{where} AND {column} IN ({', '.join('?' for _ in f.tokens)})", [*values, *f.tokens]


def source(directory: str, f: LedgerFilter, keys: Sequence[str]) -> tuple[str, list[Any]]:
    """A subquery of the matching requests' group columns (of `keys`), `file_id` and summed
    values (`SUMMED`)."""
    columns = [GROUP_COLUMNS[k] for k in keys]
    clauses, scope = _scope(directory, f)
    head = ", ".join([*columns, "file_id"])
    p = plan(f)
    parts: list[str] = []
    params: list[Any] = []
    if p.whole:
        table, kind, facet = _sums_table(keys, bool(f.tokens))
        where, values = _bounded(clauses, scope, "day", p.first, p.end)
        token_column = "value" if facet == "token_hash" else "token_hash"
        where, values = _of_tokens(where, values, token_column, f)
        if kind:
            few = "+" if f.file_kind == "journal" or f.file_ids else ""  # the file index then
            where, values = f"{few}kind = ? AND {where}", [kind, *values]
        picked = ", ".join([*(f"value AS {c}" if c == facet else c for c in columns), "file_id"])
        parts.append(f"SELECT {picked}, {', '.join(SUMMED)} FROM {table} WHERE {where}")
        params += values
    for lo, hi in p.ranges:
        where, values = _of_tokens(*_bounded(clauses, scope, "ts", lo, hi), "token_hash", f)
        parts.append(f"SELECT {head}, {PER_REQUEST_SQL} FROM ledger_requests WHERE {where}")
        params += values
    if not parts:  # an empty range
        parts.append(f"SELECT {head}, {', '.join(SUMMED)} FROM ledger_daily WHERE 0")
    return " UNION ALL ".join(parts), params


def grouped_sql(directory: str, f: LedgerFilter, keys: Sequence[str]) -> tuple[str, list[Any]]:
    columns = [GROUP_COLUMNS[k] for k in keys]
    inner, params = source(directory, f, keys)
    group = f" GROUP BY {', '.join(columns)}" if columns else ""
    select = ", ".join([*columns, SUMS_SQL])
    return f"SELECT {select} FROM ({inner}){group}", params


def sessions_sql(directory: str, f: LedgerFilter) -> tuple[str, list[Any]]:
    """How many sessions have a matching request; without a time range, every readable
    session file on the branch / in the repository (those without requests too); of some
    `tokens`, the sessions with a request of one."""
    if f.by_time or f.tokens:
        inner, params = source(directory, f, ())
        return f"SELECT COUNT(DISTINCT file_id) FROM ({inner})", params
    clauses, params = _scope(directory, f)
    clauses[0] = "valid AND dir = ?" + (" AND kind = ?" if f.file_kind else "")
    return f"SELECT COUNT(*) FROM ledger_files WHERE {' AND '.join(clauses)}", params


def requests_sql(directory: str, f: LedgerFilter, columns: Sequence[str]) -> tuple[str, list[Any]]:
    """Every matching request, oldest first."""
    clauses, scope = _scope(directory, f)
    bounded = _bounded(clauses, scope, "ts", f.since_us, f.until_us)
    where, params = _of_tokens(*bounded, "token_hash", f)
    select = ", ".join(columns)
    return f"SELECT {select} FROM ledger_requests WHERE {where} ORDER BY ts, file_id, seq", params
