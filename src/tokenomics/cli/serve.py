"""`tokenomics serve`: run the proxy in the foreground until SIGINT/SIGTERM."""

from __future__ import annotations

import os
import signal
import sys
from collections.abc import AsyncIterator, Awaitable, Callable
from functools import partial
from typing import Annotated, TextIO, TypeVar, TypeVarTuple

import trio
from cyclopts import Parameter

from tokenomics.app import Server, run_server
from tokenomics.cli import workers
from tokenomics.cli.context import Context
from tokenomics.domain.errors import ErrorGroup, TokenomicsError, flatten
from tokenomics.services import logs

T = TypeVar("T")
Args = TypeVarTuple("Args")


def our_errors(group: BaseExceptionGroup[BaseException]) -> BaseException:
    """What a (nested) exception group means to the CLI: `KeyboardInterrupt` if one is in it;
    our one error, or an `ErrorGroup` of all of ours (each once, in order) when every leaf is
    ours; else the group itself, so a bug is never hidden behind an expected error."""
    leaves = flatten(group)
    if any(isinstance(exc, KeyboardInterrupt) for exc in leaves):
        return KeyboardInterrupt()
    if not all(isinstance(exc, TokenomicsError) for exc in leaves):
        return group
    errors: list[TokenomicsError] = []
    for exc in leaves:
        assert isinstance(exc, TokenomicsError)
        if not any(type(e) is type(exc) and e.message == exc.message for e in errors):
            errors.append(exc)
    return errors[0] if len(errors) == 1 else ErrorGroup(errors)


def run_trio(main: Callable[[*Args], Awaitable[T]], *args: *Args) -> T:
    """`trio.run(main, *args)`, with our errors raised out of the nursery groups they arrive
    in, so the CLI prints each as one `Error:` line (see `our_errors`)."""
    try:
        return trio.run(main, *args)
    except BaseExceptionGroup as group:
        error = our_errors(group)
        if error is group:
            raise
        raise error from None


async def _watch_signals(signals: AsyncIterator[int], server: Server, stderr: TextIO) -> None:
    async for signum in signals:
        name = signal.Signals(signum).name
        print(f"{name}: shutting down (send again to stop at once)", file=stderr, flush=True)
        server.shutdown()
        break
    async for _ in signals:
        raise KeyboardInterrupt


async def watch_supervisor(server: Server, stderr: TextIO) -> None:
    """A worker's stdin is a pipe from its supervisor that nobody writes (`workers.py`): its
    end means the supervisor is gone, and the worker shuts down rather than serve on orphaned."""
    stdin = trio.lowlevel.FdStream(os.dup(0))
    async with stdin:
        while await stdin.receive_some(4096):
            pass
    print("supervisor gone: shutting down", file=stderr, flush=True)
    server.shutdown()


async def _serve(ctx: Context) -> None:
    settings = ctx.settings()
    hash_key = ctx.hash_key()
    # Signals are caught from the start: one that arrives while the server is starting (or
    # right after `listening` is printed) still shuts it down gracefully, after it started.
    with trio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
        async with trio.open_nursery() as nursery:
            server: Server = await nursery.start(
                partial(run_server, settings, ctx.environ, hash_key, cwd=ctx.cwd, home=ctx.home)
            )
            nursery.start_soon(_watch_signals, signals, server, ctx.stderr)
            if workers.is_worker(ctx.environ):
                nursery.start_soon(watch_supervisor, server, ctx.stderr)
            print(f"Tokenomics listening on {', '.join(server.urls)}", file=ctx.stderr, flush=True)
            await server.stopped.wait()
            nursery.cancel_scope.cancel()


def serve(
    *,
    host: Annotated[
        str, Parameter(help="Address to listen on (default: server.host, 127.0.0.1).")
    ] = "",
    port: Annotated[
        int | None,
        Parameter(help="Port of the HTTP listener (default: server.http_port, 8080)."),
    ] = None,
    ctx: Annotated[Context, Parameter(parse=False)],
) -> None:
    """Run the proxy in the foreground (Ctrl-C stops it gracefully)."""
    flags: dict[str, tuple[object, str]] = {}
    if host:
        flags["server__host"] = (host, "--host")
    if port is not None:
        flags["server__http_port"] = (port, "--port")
    ctx.settings(**flags)  # the flags win over environment and config file
    ctx.hash_key()  # D7: refuse to start without the hash key, before anything else
    if workers.check_workers(ctx.settings()) > 1 and not workers.is_worker(ctx.environ):
        run_trio(workers.supervisor(ctx.settings(), ctx.environ, ctx.stderr).run)
        return
    handlers = logs.configure(ctx.settings().logging, stream=sys.stderr)
    try:
        run_trio(_serve, ctx)
    finally:
        logs.remove(handlers)
