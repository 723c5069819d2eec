"""`tokenomics remote`: the central token server a fleet of proxies syncs from (`cli.md`
§6.7, D20). Runs in the foreground until SIGINT/SIGTERM (5 s grace)."""

from __future__ import annotations

import ipaddress
import signal
import sys
from functools import partial
from typing import Annotated

import trio
from cyclopts import Parameter

from tokenomics.cli.context import Context
from tokenomics.cli.serve import run_trio
from tokenomics.domain.errors import SecurityError
from tokenomics.remote_app import RemoteServer, run_remote, split_addr
from tokenomics.services import logs

KEY_HELP = (
    "API key clients must send as a Bearer token (default: remote.api_key, "
    "$TOKENOMICS_REMOTE_API_KEY; prefer the variable, flags show in ps)."
)


def _loopback(host: str) -> bool:
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return host == "localhost"


async def _run(ctx: Context, addr: str, api_key: str, client_ttl: int) -> None:
    settings, hash_key = ctx.settings(), ctx.hash_key()
    with trio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
        async with trio.open_nursery() as nursery:
            server: RemoteServer = await nursery.start(
                partial(run_remote, settings, ctx.environ, hash_key, addr=addr,
                        api_key=api_key, client_ttl=client_ttl)
            )  # fmt: skip
            print(f"Tokenomics remote listening on {', '.join(server.urls)}", file=ctx.stderr,
                  flush=True)  # fmt: skip
            async for signum in signals:
                name = signal.Signals(signum).name
                print(f"{name}: shutting down", file=ctx.stderr, flush=True)
                server.shutdown()
                break


def remote(
    *,
    addr: Annotated[str, Parameter(help="Address to listen on (host:port).")] = "127.0.0.1:9090",
    api_key: Annotated[
        str,
        Parameter(help=KEY_HELP),
    ] = "",
    insecure_no_auth: Annotated[
        bool, Parameter(help="Serve without an API key (loopback tests only).", negative="")
    ] = False,
    client_ttl: Annotated[
        int, Parameter(help="Seconds a client registration lives unless renewed.")
    ] = 600,
    ctx: Annotated[Context, Parameter(parse=False)],
) -> None:
    """Run the central token server that proxies with remote.url sync from."""
    key = api_key or ctx.settings().remote.api_key
    if not key and not insecure_no_auth:
        raise SecurityError(
            "the remote server needs an API key: export TOKENOMICS_REMOTE_API_KEY (or pass "
            "--api-key), or pass --insecure-no-auth to serve without one"
        )
    if not key and not _loopback(split_addr(addr)[0]):
        raise SecurityError(f"--insecure-no-auth serves only on a loopback address, not {addr}")
    if client_ttl <= 0:
        raise SecurityError("--client-ttl must be positive")
    ctx.hash_key()  # D7: created tokens are hashed with the fleet's key
    handlers = logs.configure(ctx.settings().logging, stream=sys.stderr)
    try:
        run_trio(_run, ctx, addr, key, client_ttl)
    finally:
        logs.remove(handlers)
