"""`ledger summary` (with `--by`, `--since/--until`, `--repo`, `--branch`) and `ledger top`.

Both read the ledger index (`cli/ledger_index.py`), aggregating in SQL. `summary` without
`--by` prints what it always printed (`cli.md` §7.8), over the filtered requests; with `--by`
the totals and one row per group, keys in the order given. On a terminal the group tables are
rich tables and a per-day spend chart follows (`cli/ledger_chart.py`); piped, plain aligned
text. `--json` and `--csv` are for scripts (an unknown cost is `null` / an empty cell).
"""

from __future__ import annotations

import csv as csvlib
from typing import TYPE_CHECKING, Annotated, Any, Literal

from cyclopts import Parameter

from tokenomics.cli.ledger_chart import print_chart
from tokenomics.cli.ledger_index import (
    Branch,
    Csv,
    Ctx,
    Dir,
    Json,
    Repo,
    Since,
    Until,
    ledger_filter,
    open_index,
)
from tokenomics.cli.ledger_tables import (
    NONE,
    count,
    rollup_table,
    tabwrite,
    totals_block,
    write_lines,
)
from tokenomics.cli.output import is_terminal, print_json, print_table
from tokenomics.domain.errors import CommandError, DurationError
from tokenomics.domain.ledger_report import (
    CSV_COLUMNS,
    Group,
    classic,
    csv_cells,
    grouped,
    ranked,
    shown_key,
    total,
)
from tokenomics.domain.money import format_cost

if TYPE_CHECKING:
    from collections.abc import Sequence

    from tokenomics.cli.context import Context
    from tokenomics.store.ledger_query import LedgerFilter

ByKey = Literal["branch", "commit", "model", "provider", "token", "agent", "day", "repo", "session"]
By = Annotated[
    tuple[ByKey, ...],
    Parameter(help="Group by branch, commit, model, provider, token, agent, day, repo or "
              "session (repeat to group by several, in that order).", negative=""),
]  # fmt: skip
Limit = Annotated[int, Parameter(help="How many to list.")]
CLASSIC_KEYS = ("model", "provider", "token")
GROUP_HEADER = ("REQUESTS", "INPUT", "OUTPUT", "TOTAL", "COST")


def parse_filter(since: str, until: str, branch: str, repo: str) -> LedgerFilter:
    try:
        return ledger_filter(since, until, branch, repo)
    except DurationError as exc:
        raise CommandError(str(exc)) from None


def _formats(json: bool, csv: bool) -> None:
    if json and csv:
        raise CommandError("--json and --csv cannot be used together")


def _cells(by: Sequence[str], key: Sequence[str], rollup: dict[str, Any]) -> list[str]:
    names = [shown_key(k, v) or "(none)" for k, v in zip(by, key, strict=True)]
    counts = [str(count(rollup, k)) for k in ("request_count", "input_tokens", "output_tokens")]
    return [*names, *counts, str(count(rollup, "total_tokens")), format_cost(rollup)]


def write_csv(ctx: Context, header: Sequence[str], rows: Sequence[Sequence[str]]) -> None:
    writer = csvlib.writer(ctx.stdout, lineterminator="\n")
    writer.writerow(header)
    writer.writerows(rows)


def _group_table(
    ctx: Context, title: str, header: Sequence[str], rows: list[list[str]], *, lead: bool = True
) -> None:
    if is_terminal(ctx.stdout):
        ctx.stdout.write("\n" if lead else "")
        print_table(ctx.stdout, title, header, rows)
    else:
        head = ["", f"{title}:"] if lead else [f"{title}:"]
        write_lines(ctx, [*head, *tabwrite([header, *rows], "  ")])


def summary(
    *, dir: Dir = "", json: Json = False, csv: Csv = False, by: By = (), since: Since = "",
    until: Until = "", repo: Repo = "", branch: Branch = "", ctx: Ctx,
) -> None:  # fmt: skip
    """Totals over every session, by model and by provider (or --by branch, day, ...)."""
    _formats(json, csv)
    query = parse_filter(since, until, branch, repo)
    chart = is_terminal(ctx.stdout) and not (json or csv)
    with open_index(ctx, dir) as indexer:
        index, key = indexer.index, indexer.key
        sessions = index.session_count(key, query)
        singles = [] if by else [index.groups(key, query, (k,)) for k in CLASSIC_KEYS]
        groups = index.groups(key, query, by) if by else singles[1]  # (each request once)
        days = index.groups(key, query, ("day",)) if chart else []
    if csv:
        found = [(g[0], g[1].as_rollup()) for g in sorted(groups, key=lambda g: g[0])]
        found = found if by else [((), total(groups).as_rollup())]  # no --by: the totals
        write_csv(ctx, [*by, *CSV_COLUMNS], [
            [shown_key(k, v) for k, v in zip(by, key, strict=True)] + csv_cells(rollup)
            for key, rollup in found
        ])  # fmt: skip
        return
    bounds = {k: v for k, v in (("since", since), ("until", until)) if v}
    merged = grouped(sessions, by, groups, bounds) if by else classic(sessions, *singles)
    if json:
        print_json(ctx.stdout, merged)
        return
    if not sessions:
        ctx.stdout.write(NONE)
        return
    write_lines(ctx, [f"Sessions: {sessions}", "", *totals_block(merged["totals"], full=True)])
    if by:
        rows = [_cells(by, g[0], g[1].as_rollup()) for g in sorted(groups, key=lambda g: g[0])]
        header = [k.upper() for k in by] + list(GROUP_HEADER)
        _group_table(ctx, "By " + " / ".join(k.capitalize() for k in by), header, rows)
    else:
        _classic_tables(ctx, merged)
    if chart:
        ctx.stdout.write("\n")
        print_chart(ctx.stdout, [(g[0][0], g[1].as_rollup()) for g in days])


def _classic_tables(ctx: Context, merged: dict[str, Any]) -> None:
    for title, name in (("By Model", "by_model"), ("By Provider", "by_provider")):
        rollups: dict[str, Any] = merged[name]
        if not is_terminal(ctx.stdout):
            write_lines(ctx, rollup_table(title, rollups))
        elif rollups:
            ctx.stdout.write("\n")
            rows = [_cells(("name",), (n,), rollups[n]) for n in sorted(rollups)]
            print_table(ctx.stdout, title, ["NAME", *GROUP_HEADER], rows)


TopKey = Literal[
    "session", "branch", "token", "model", "provider", "agent", "commit", "day", "repo"
]
TopBy = Annotated[TopKey, Parameter(help="What to rank: sessions, branches, tokens, ...")]


def top(
    *, by: TopBy = "session", limit: Limit = 10, dir: Dir = "", json: Json = False,
    csv: Csv = False, since: Since = "", until: Until = "", repo: Repo = "",
    branch: Branch = "", ctx: Ctx,
) -> None:  # fmt: skip
    """The most expensive sessions (or branches, tokens, models, ...), costliest first."""
    _formats(json, csv)
    query = parse_filter(since, until, branch, repo)
    with open_index(ctx, dir) as indexer:
        groups = ranked(indexer.index.groups(indexer.key, query, (by,)), limit)
        ids = [g[0][0] for g in groups] if by == "session" else []
        about = indexer.index.sessions(indexer.key, ids)
    extra = ("started_at", "branch") if by == "session" else ()
    rows = [_top_row(by, g, about.get(g[0][0], ("", ""))[: len(extra)]) for g in groups]
    if json:
        print_json(ctx.stdout, rows)
    elif csv:
        write_csv(ctx, [by, *extra, *CSV_COLUMNS], [
            [r[by], *(r[e] for e in extra), *csv_cells(r)] for r in rows
        ])  # fmt: skip
    elif not rows:
        ctx.stdout.write("No requests found.\n")
    else:
        header = [by.upper(), *(e.split("_")[0].upper() for e in extra), *GROUP_HEADER]
        cells = []
        for r in rows:
            name, *figures = _cells((by,), (r[by],), r)
            cells.append(
                [name, *(r[e][:19] if e == "started_at" else r[e] for e in extra), *figures]
            )
        _group_table(ctx, f"Top {len(rows)} by cost", header, cells, lead=False)


def _top_row(by: str, group: Group, about: Sequence[str]) -> dict[str, Any]:
    extra = dict(zip(("started_at", "branch"), about, strict=False))
    return {by: shown_key(by, group[0][0]), **extra, **group[1].as_rollup()}
