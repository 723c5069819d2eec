"""`tokenomics ledger`: summary, sessions and show over `{dir}/sessions` (`cli.md` §7.8); `summary`,
`top`, `export` and `reindex` read the ledger index (`cli/ledger_report.py`,
`cli/ledger_export.py`), `sessions` and `show` the files.

Sessions are the `*.json` files (unreadable ones skipped) plus, read-only, the journals of
crashed proxies not yet recovered. Tables are aligned like Go's tabwriter (each cell padded to
the widest in its column plus two spaces). Costs are shown by `domain.money`: `$0.0123`;
`$0.0123+` when requests without a price make the figure a lower bound; `n/a` when none had a
price. `--json` always prints JSON
(`[]` for no sessions).

The journal of a running proxy is listed too, marked running (`"running": true` and its `pid` in
JSON). `sessions` leaves out ended sessions without a request (a `run` whose command made none)
unless `--all`; `show --requests` lists the requests of one session.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

from cyclopts import App, Parameter

from tokenomics.cli import ledger_export, ledger_report
from tokenomics.cli.context import Context
from tokenomics.cli.ledger_index import Ctx, Dir, Json
from tokenomics.cli.ledger_requests import request_rows
from tokenomics.cli.ledger_tables import (
    NONE,
    count,
    rollup_table,
    tabwrite,
    totals_block,
    write_lines,
)
from tokenomics.cli.output import print_json
from tokenomics.domain.errors import CommandError
from tokenomics.domain.ledger_session import format_duration, session_requests
from tokenomics.domain.money import format_cost
from tokenomics.services.ledger_files import read_sessions

if TYPE_CHECKING:
    from collections.abc import Mapping, Sequence

app = App(name="ledger", help="Token usage and cost recorded per proxy session.")
app.command(ledger_report.summary, name="summary")
app.command(ledger_report.top, name="top")
app.command(ledger_export.export, name="export")
app.command(ledger_export.reindex, name="reindex")
All = Annotated[bool, Parameter(help="Include ended sessions without requests.", negative="")]
Requests = Annotated[
    bool, Parameter(help="List each request (with --json: the requests array).", negative="")
]

SESSIONS_HEADER = ("SESSION", "STARTED", "DURATION", "REQUESTS", "TOKENS", "BRANCH", "COST")


def load(ctx: Context, directory: str) -> list[dict[str, Any]]:
    base = Path(directory).expanduser() if directory else ctx.settings().data_dir
    return read_sessions(base / "sessions")


def _branch(session: Mapping[str, Any]) -> str:
    git = session.get("git")
    branch = git.get("branch", "") if isinstance(git, dict) else ""
    branch = branch if isinstance(branch, str) else ""
    return branch[:27] + "..." if len(branch) > 30 else branch


def _oldest_first(session: Mapping[str, Any]) -> tuple[str, str]:
    """Times are whole seconds: two sessions started in one second go by their end."""
    ended = session.get("ended_at")
    return _started(session), ended if isinstance(ended, str) else ""


def _started(session: Mapping[str, Any]) -> str:
    started = session.get("started_at")
    return started if isinstance(started, str) else ""


def _listed(session: Mapping[str, Any], everything: bool) -> bool:
    return everything or bool(session.get("running")) or bool(session_requests(session))


def _duration(session: Mapping[str, Any]) -> str:
    text = format_duration(count(session, "duration_ms"))
    return f"{text} (running)" if session.get("running") else text


@app.command
def sessions(*, dir: Dir = "", json: Json = False, all: All = False, ctx: Ctx) -> None:
    """List the sessions, oldest first (running ones marked; empty ended ones only with --all)."""
    found = sorted((s for s in load(ctx, dir) if _listed(s, all)), key=_oldest_first)
    if json:
        print_json(ctx.stdout, found)
        return
    if not found:
        ctx.stdout.write(NONE)
        return
    rows: list[Sequence[str]] = [SESSIONS_HEADER]
    for s in found:
        totals = s.get("totals") if isinstance(s.get("totals"), dict) else {}
        assert isinstance(totals, dict)
        rows.append((
            s["session_id"], _started(s)[:19], _duration(s),
            str(count(totals, "request_count")), str(count(totals, "total_tokens")), _branch(s),
            format_cost(totals),
        ))  # fmt: skip
    write_lines(ctx, tabwrite(rows))


def find(found: Sequence[dict[str, Any]], wanted: str) -> dict[str, Any]:
    """The one session whose id is `wanted` or starts with it."""
    exact = [s for s in found if s["session_id"] == wanted]
    matches = exact or [s for s in found if s["session_id"].startswith(wanted)]
    if not matches or not wanted:
        raise CommandError(f'session "{wanted}" not found')
    ids = sorted({s["session_id"] for s in matches})
    if len(ids) > 1:
        raise CommandError(f'session prefix "{wanted}" is ambiguous: {", ".join(ids)}')
    return matches[0]


def _git_lines(session: Mapping[str, Any]) -> list[str]:
    git = session.get("git")
    if not isinstance(git, dict) or not git.get("branch"):
        return []
    lines = ["", "Git:", f"  Branch: {git['branch']}"]
    if git.get("commit_start"):
        lines.append(f"  Start:  {git['commit_start']}")
    if git.get("commit_end"):
        lines.append(f"  End:    {git['commit_end']}")
    return lines


def _ended(session: Mapping[str, Any]) -> str:
    if session.get("running"):
        pid = session.get("pid")
        return f"(running, pid {pid})" if isinstance(pid, int) else "(running)"
    ended = session.get("ended_at")
    return ended if isinstance(ended, str) else ""


@app.command
def show(
    id: Annotated[str, Parameter(allow_leading_hyphen=False)],
    /,
    *,
    dir: Dir = "",
    json: Json = False,
    requests: Requests = False,
    ctx: Ctx,
) -> None:
    """Show one session; a unique prefix of its id is enough."""
    session = find(load(ctx, dir), id)
    if json:
        print_json(ctx.stdout, session_requests(session) if requests else session)
        return
    lines = [
        f"Session: {session['session_id']}",
        f"Started: {_started(session)}",
        f"Ended:   {_ended(session)}",
        f"Duration: {_duration(session)}",
        *_git_lines(session),
        "",
    ]
    totals = session.get("totals")
    lines += totals_block(totals if isinstance(totals, dict) else {}, full=False)
    for title, key in (("By Model", "by_model"), ("By Provider", "by_provider")):
        rollups = session.get(key)
        lines += rollup_table(title, rollups if isinstance(rollups, dict) else {})
    if requests:
        lines += [
            "",
            "Requests:",
            *tabwrite(request_rows(session_requests(session), format_cost), "  "),
        ]
    write_lines(ctx, lines)
