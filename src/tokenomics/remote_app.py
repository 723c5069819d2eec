"""The second composition root: `tokenomics remote`, the central token server.

    run_remote
    ├── dispatcher    token.* events of the outbox -> every registered proxy's webhook
    └── http_server   the remote API (`services/remote_api.py`) on --addr, plain HTTP

It serves the same token store as `serve` (SQLite: the CLI can write while it runs, and its
writes reach the outbox too) and keeps the client registry in `{dir}/clients.json`.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING

import trio

from tokenomics.config.private_files import private_dir
from tokenomics.domain.errors import ConfigError
from tokenomics.services.dispatcher import Dispatcher
from tokenomics.services.http_server import serve, server_config
from tokenomics.services.remote_api import RemoteApi
from tokenomics.services.remote_clients import ClientRegistry
from tokenomics.services.webhook_send import HttpSender
from tokenomics.store.db import Database
from tokenomics.store.encryption import Cipher
from tokenomics.store.outbox import Outbox
from tokenomics.store.outbox_start import start_at_end
from tokenomics.store.tokens import TokenStore

if TYPE_CHECKING:
    from collections.abc import Mapping

    from tokenomics.config.settings import Settings
    from tokenomics.domain.tokens import HashKey


@dataclass
class RemoteServer:
    urls: list[str]
    api: RemoteApi
    _stop: trio.Event = field(default_factory=trio.Event)

    def shutdown(self) -> None:
        self._stop.set()


def split_addr(addr: str) -> tuple[str, int]:
    """`host:port`, `:port` (loopback, D21) or `[v6]:port`."""
    host, sep, port = addr.rpartition(":")
    if not sep or not port.isdigit() or int(port) > 65535:
        raise ConfigError(f"invalid --addr {addr!r}: use host:port, e.g. 127.0.0.1:9090")
    return host.strip("[]") or "127.0.0.1", int(port)


async def run_remote(
    settings: Settings,
    environ: Mapping[str, str],
    hash_key: HashKey,
    *,
    addr: str,
    api_key: str,
    client_ttl: float,
    task_status: trio.TaskStatus[RemoteServer] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Serve the remote API until `RemoteServer.shutdown()` or cancellation."""
    host, port = split_addr(addr)
    private_dir(settings.data_dir, owned=True)
    secret = environ.get(settings.security.encryption_key_env, "")
    cipher = Cipher.from_secret(secret) if secret else None
    db_path = Path(settings.storage.db_path)
    store = TokenStore.open(db_path, cipher, settings.security.encryption_key_env)
    outbox_db, cursors, sender = Database.open(db_path), Database.open(db_path), HttpSender()
    outbox = Outbox(outbox_db)
    try:
        registry = ClientRegistry(
            settings.data_dir / "clients.json", client_ttl, time.time,
            on_register=partial(start_at_end, cursors),
        )  # fmt: skip
        api = RemoteApi(store, registry, hash_key, api_key)
        dispatcher = Dispatcher(outbox, registry.targets, sender)
        api.wrote = dispatcher.wake
        config = server_config(
            host=host, http_port=port, https_port=0, tls=None, grace=5, ephemeral=port == 0
        )
        server = RemoteServer([], api)
        async with trio.open_nursery() as consumers:
            await consumers.start(dispatcher.run)
            async with trio.open_nursery() as producers:
                server.urls = await producers.start(
                    partial(serve, api, config, shutdown_trigger=server._stop.wait)
                )
                task_status.started(server)
            dispatcher.stop(grace=2)
            consumers.cancel_scope.cancel()
    finally:
        with trio.CancelScope(shield=True):
            await sender.aclose()
        for db in (store.db, outbox_db, cursors):
            db.close()
