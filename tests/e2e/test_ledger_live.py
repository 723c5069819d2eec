"""`tokenomics ledger` day to day, over the sessions of a real in-process server: a live session
is listed from its journal (marked running, with its pid) before it has a request and while it
has them, then as ended; `show --requests` lists each request; an ended session without a
request is left out of `ledger sessions` unless `--all`."""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any

import trio
from tests.conftest import Result
from tests.e2e.test_ledger import CHAT, OPENAI, post, sessions_dir
from tests.support.proxy import start_proxy

from tokenomics.cli.ledger_requests import REQUESTS_HEADER

Cli = Callable[..., Result]


async def ledger(cli: Cli, root: Path, *args: str) -> Result:
    """`tokenomics ledger <args> --dir <the server's data dir>`, off the event loop (it reads
    files) while the server serves on it."""
    result: Result = await trio.to_thread.run_sync(
        partial(cli, "ledger", *args, "--dir", str(root / "data"))
    )
    assert result.code == 0, result.err
    return result


async def listed(cli: Cli, root: Path, *args: str) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = json.loads(
        (await ledger(cli, root, "sessions", "--json", *args)).out
    )
    return found


async def test_a_live_server_is_listed_as_running_then_as_ended(tmp_path: Path, cli: Cli) -> None:
    async with start_proxy(tmp_path) as proxy, proxy.client() as client:
        journal = sessions_dir(tmp_path) / f"{proxy.server.ledger.base.name}.journal"  # type: ignore[union-attr]
        assert journal.exists()  # opened before the server serves
        (live,) = await listed(cli, tmp_path)
        assert (live["session_id"], live["running"], live["pid"]) == (
            proxy.server.session_id, True, os.getpid(),
        )  # fmt: skip
        assert live["totals"]["request_count"] == 0
        assert (await post(client, proxy.token(OPENAI))).status_code == 200
        # journaled right after the response's last byte
        assert sum('"request"' in line for line in journal.read_text().splitlines()) == 1
        (live,) = await listed(cli, tmp_path)
        assert live["running"] is True and live["totals"]["request_count"] == 1
        table = (await ledger(cli, tmp_path, "sessions")).out.splitlines()
        assert table[1].startswith(proxy.server.session_id) and "(running)" in table[1]
        shown = (await ledger(cli, tmp_path, "show", proxy.server.session_id)).out
        assert f"Ended:   (running, pid {os.getpid()})" in shown.splitlines()
    (ended,) = await listed(cli, tmp_path)
    assert "running" not in ended and "pid" not in ended
    assert ended["totals"]["request_count"] == 1
    assert "(running)" not in (await ledger(cli, tmp_path, "sessions")).out


async def test_show_requests_lists_each_request(tmp_path: Path, cli: Cli) -> None:
    rule = {"name": "no-sql", "type": "keyword", "keywords": ["drop table"], "action": "fail"}
    async with start_proxy(tmp_path) as proxy, proxy.client() as client:
        token = proxy.token({**OPENAI, "rules": [rule]})
        assert (await post(client, token)).status_code == 200
        blocked = {**CHAT, "messages": [{"role": "user", "content": "please drop table users"}]}
        assert (await post(client, token, blocked)).status_code == 403
        session_id = proxy.server.session_id
    out = (await ledger(cli, tmp_path, "show", session_id, "--requests")).out.splitlines()
    table = out[out.index("Requests:") + 1 :]
    assert table[0].split() == ["TIME", *REQUESTS_HEADER[1:]]
    ok, refused = (row.split() for row in table[1:])
    assert ok[1:4] == ["/v1/chat/completions", "gpt-4o", "200"]
    assert int(ok[4]) > 0 and int(ok[5]) > 0 and ok[6].startswith("$") and ok[7].endswith("s")
    assert refused[1:4] == ["/v1/chat/completions", "gpt-4o", "403"]
    assert refused[4:7] == ["0", "0", "$0.0000"] and refused[-1] == "no-sql:fail"
    assert table[1].index("/v1") == table[0].index("PATH")  # columns aligned
    requests = json.loads(
        (await ledger(cli, tmp_path, "show", session_id, "--requests", "--json")).out
    )
    assert [(r["path"], r["status_code"]) for r in requests] == [
        ("/v1/chat/completions", 200), ("/v1/chat/completions", 403),
    ]  # fmt: skip


async def test_an_ended_session_without_requests_is_listed_only_with_all(
    tmp_path: Path, cli: Cli
) -> None:
    """What a `run` whose command made no request leaves (a session file, as §7.1 says)."""
    async with start_proxy(tmp_path) as proxy:
        idle = proxy.server.session_id
    async with start_proxy(tmp_path) as proxy, proxy.client() as client:
        assert (await post(client, proxy.token(OPENAI))).status_code == 200
        busy = proxy.server.session_id
    assert [s["session_id"] for s in await listed(cli, tmp_path)] == [busy]
    # Both may start and end within one second, the precision of the session times (§7.1).
    assert sorted(s["session_id"] for s in await listed(cli, tmp_path, "--all")) == sorted(
        [idle, busy]
    )
    assert idle not in (await ledger(cli, tmp_path, "sessions")).out
    assert "Session: " + idle in (await ledger(cli, tmp_path, "show", idle)).out
