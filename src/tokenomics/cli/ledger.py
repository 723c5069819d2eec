"""`tokenomics ledger`: summary, sessions and show over `{dir}/sessions` (`cli.md` §7.8).

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

from tokenomics.cli.context import Context
from tokenomics.cli.ledger_requests import request_rows
from tokenomics.cli.output import print_json
from tokenomics.cli.token import CommandError
from tokenomics.domain.ledger_session import format_duration, session_requests, summary
from tokenomics.domain.money import describe_cost, format_cost
from tokenomics.services.ledger_files import read_sessions

if TYPE_CHECKING:
    from collections.abc import Mapping, Sequence

app = App(name="ledger", help="Token usage and cost recorded per proxy session.")
Ctx = Annotated[Context, Parameter(parse=False)]
Dir = Annotated[str, Parameter(help="Ledger directory (default: the configured dir).")]
Json = Annotated[bool, Parameter(help="Output as JSON.", negative="")]
All = Annotated[bool, Parameter(help="Include ended sessions without requests.", negative="")]
Requests = Annotated[
    bool, Parameter(help="List each request (with --json: the requests array).", negative="")
]

NONE = "No sessions found.\n"
ROLLUP_HEADER = ("NAME", "REQUESTS", "INPUT", "OUTPUT", "TOTAL", "COST")
SESSIONS_HEADER = ("SESSION", "STARTED", "DURATION", "REQUESTS", "TOKENS", "BRANCH", "COST")
LABEL = 16


def tabwrite(rows: Sequence[Sequence[str]], indent: str = "") -> list[str]:
    """Rows aligned like Go's tabwriter with padding 2 (the last column is not padded)."""
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]) - 1)]
    return [
        (indent + "".join(c.ljust(w + 2) for c, w in zip(row, widths, strict=False)) + row[-1])
        .rstrip()
        for row in rows
    ]  # fmt: skip


def load(ctx: Context, directory: str) -> list[dict[str, Any]]:
    base = Path(directory).expanduser() if directory else ctx.settings().data_dir
    return read_sessions(base / "sessions")


def _n(rollup: Mapping[str, Any], key: str) -> int:
    value = rollup.get(key, 0)
    return value if isinstance(value, int) else 0


def totals_block(totals: Mapping[str, Any], *, full: bool) -> list[str]:
    """The `Totals:` lines; `full` (summary) adds Cache creation and Retries."""
    lines = [("Requests", "request_count"), ("Input tokens", "input_tokens")]
    lines += [("Output tokens", "output_tokens"), ("Total tokens", "total_tokens")]
    optional = [("Cached input", "cached_input_tokens")]
    optional += [("Cache creation", "cache_creation_tokens")] if full else []
    optional += [("Reasoning", "reasoning_tokens"), ("Errors", "error_count")]
    optional += [("Retries", "retry_count")] if full else []
    shown = lines + [(label, key) for label, key in optional if _n(totals, key) > 0]
    out = ["Totals:", *(f"  {label:<{LABEL}}{_n(totals, key)}" for label, key in shown)]
    return [*out, f"  {'Cost':<{LABEL}}{describe_cost(totals)}"]


def rollup_table(title: str, rollups: Mapping[str, Mapping[str, Any]]) -> list[str]:
    if not rollups:
        return []
    rows: list[Sequence[str]] = [ROLLUP_HEADER]
    for name in sorted(rollups):
        r = rollups[name]
        counts = (str(_n(r, k)) for k in ("request_count", "input_tokens", "output_tokens"))
        rows.append((name or "(none)", *counts, str(_n(r, "total_tokens")), format_cost(r)))
    return ["", f"{title}:", *tabwrite(rows, "  ")]


def _write(ctx: Context, lines: Sequence[str]) -> None:
    ctx.stdout.write("".join(f"{line}\n" for line in lines))


@app.command(name="summary")
def summary_(*, dir: Dir = "", json: Json = False, ctx: Ctx) -> None:
    """Totals over every session, by model and by provider."""
    sessions = load(ctx, dir)
    merged = summary(sessions)
    if json:
        print_json(ctx.stdout, merged)
        return
    if not sessions:
        ctx.stdout.write(NONE)
        return
    lines = [f"Sessions: {merged['sessions']}", "", *totals_block(merged["totals"], full=True)]
    lines += rollup_table("By Model", merged["by_model"])
    lines += rollup_table("By Provider", merged["by_provider"])
    _write(ctx, lines)


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
    text = format_duration(_n(session, "duration_ms"))
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
            str(_n(totals, "request_count")), str(_n(totals, "total_tokens")), _branch(s),
            format_cost(totals),
        ))  # fmt: skip
    _write(ctx, tabwrite(rows))


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
    _write(ctx, lines)
