"""The `tokenomics` command: global flags, the command tree, and error printing.

Exit codes: 0 success, 1 any error (`Error: <message>` on stderr), 130 on Ctrl-C.
"""

from __future__ import annotations

import os
import sys
import traceback
from collections.abc import Sequence
from pathlib import Path
from typing import Annotated, TextIO

import cyclopts
from cyclopts import App, Parameter

from tokenomics.cli import (
    completion,
    doctor,
    events,
    init,
    ledger,
    provider,
    remote,
    serve,
    start,
    status,
    stop,
    token,
    version,
)
from tokenomics.cli import run as run_command
from tokenomics.cli.context import Context
from tokenomics.config.dotenv import load_dotenv_files
from tokenomics.domain.errors import ErrorGroup, TokenomicsError

HELP = """Tokenomics: a self-hosted gateway for LLM APIs.

Issue wrapper tokens (tkn_...) bound to policies (models, budgets, rate limits, content
rules) instead of handing out real API keys, and account every request in a session ledger."""


def build_app() -> App:
    app = App(
        name="tokenomics",
        help=HELP,
        version=version.version_text,
        help_on_error=False,
        version_format="plaintext",
        result_action="return_value",
        # An option's value may start with a hyphen (`--policy -` is stdin, `--port -1` gets
        # its own range error), as with getopt: the word after a value-taking option is its
        # value. Positional parameters say allow_leading_hyphen=False: they keep refusing
        # unknown options and leave global ones (`run --dir D cmd`) to the meta app.
        default_parameter=Parameter(allow_leading_hyphen=True),
    )
    app.command(token.app)
    app.command(serve.serve)
    app.command(run_command.run)
    app.command(version.version)
    app.command(init.init)
    app.command(provider.app)
    app.command(ledger.app)
    app.command(completion.completion)
    app.command(start.start)
    app.command(stop.stop)
    app.command(status.status)
    app.command(doctor.doctor)
    app.command(remote.remote)
    app.command(events.app)

    @app.meta.default
    def meta(
        *tokens: Annotated[str, Parameter(show=False, allow_leading_hyphen=True)],
        config: Annotated[
            str,
            Parameter(help="Config file (default: ./config.yaml, then ~/.tokenomics/config.yaml)."),
        ] = "",
        db: Annotated[str, Parameter(help="Token database path (overrides storage.db_path).")] = "",
        dir: Annotated[
            str, Parameter(help="Data directory for everything (default ~/.tokenomics).")
        ] = "",
        debug: Annotated[bool, Parameter(help="Show tracebacks for errors.", negative="")] = False,
    ) -> int:
        ctx = Context(config=config, db=db, dir=dir, debug=debug)
        command, bound, injected = app.parse_args(tokens, exit_on_error=False, print_error=False)
        try:
            result = command(*bound.args, **bound.kwargs, **{name: ctx for name in injected})
        except TokenomicsError as exc:
            if debug:
                traceback.print_exc()
            report(exc, sys.stderr)
            return 1
        return result if isinstance(result, int) else 0

    return app


def report(error: TokenomicsError, stderr: TextIO) -> None:
    """One `Error:` line per error (an `ErrorGroup` holds several); the exit code is 1 for
    any of ours, so the first and the most severe agree."""
    for each in error.errors if isinstance(error, ErrorGroup) else (error,):
        stderr.write(f"Error: {each}\n")


def _parse_error(exc: cyclopts.CycloptsError) -> str:
    if isinstance(exc, cyclopts.UnknownCommandError) and exc.unused_tokens:
        return f'unknown command "{exc.unused_tokens[0]}" for "tokenomics"'
    return str(exc).strip()


def run(argv: Sequence[str]) -> int:
    """Run the CLI with `argv` (without the program name); returns the exit code."""
    load_dotenv_files(
        os.environ, Path.cwd(), Path(os.environ["HOME"]) if os.environ.get("HOME") else None
    )
    app = build_app()
    try:
        argv = run_command.mark_child_argv(argv)  # `run`'s options end at its command
        code = app.meta(argv, exit_on_error=False, print_error=False)
    except cyclopts.CycloptsError as exc:
        sys.stderr.write(f"Error: {_parse_error(exc)}\nRun 'tokenomics --help' for usage.\n")
        return 1
    except KeyboardInterrupt:
        return 130
    return code if isinstance(code, int) else 0


def main() -> None:
    sys.exit(run(sys.argv[1:]))
