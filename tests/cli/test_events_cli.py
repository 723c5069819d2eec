"""`tokenomics events list|retry` and the `doctor` line per webhook (issue 15): the outbox as an
operator sees it, secrets never printed."""

from __future__ import annotations

import json
import socket
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from tests.conftest import Result
from tests.support.daemons import free_port

from tokenomics.store.db import Database
from tokenomics.store.outbox import Outbox

Cli = Callable[..., Result]
POLICY = '{"base_key_env":"OPENAI_API_KEY"}'


@pytest.fixture
def listening() -> Iterator[int]:
    """A port something listens on (doctor only connects)."""
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen()
        yield server.getsockname()[1]


@pytest.fixture
def hooks(monkeypatch: pytest.MonkeyPatch, listening: int) -> tuple[str, str]:
    up = f"http://127.0.0.1:{listening}/hook"
    down = f"http://127.0.0.1:{free_port()}/down"
    config = [
        {"url": up, "signing_key": "sign-me", "secret": "s3cret-value", "events": ["token.*"]},
        {"url": down + "?key=query-secret", "secret": "other-secret"},
    ]
    monkeypatch.setenv("TOKENOMICS_EVENTS_WEBHOOKS", json.dumps(config))
    return up, down


def test_list_shows_pending_events_per_webhook_without_secrets(
    cli: Cli, hooks: tuple[str, str]
) -> None:
    up, down = hooks
    assert cli("token", "create", "--policy", POLICY).code == 0
    listed = cli("events", "list")
    assert listed.code == 0, listed.err
    lines = listed.out.splitlines()
    assert lines[0].split() == ["WEBHOOK", "STATE", "EVENT", "TYPE", "CREATED", "ATTEMPTS", "ERROR"]
    assert [line.split()[:2] for line in lines[1:]] == [[up, "pending"], [down, "pending"]]
    assert all("token.created" in line for line in lines[1:])
    for secret in ("s3cret-value", "other-secret", "sign-me", "query-secret"):
        assert secret not in listed.out
    rows = json.loads(cli("events", "list", "--pending", "--json").out)
    assert {r["webhook"] for r in rows} == {up, down}
    assert {r["type"] for r in rows} == {"token.created"}
    assert rows[0]["id"].startswith("evt_") and rows[0]["attempts"] == 0
    assert json.loads(cli("events", "list", "--dead", "--json").out) == []
    only = json.loads(cli("events", "list", "--json", "--webhook", down).out)
    assert [r["webhook"] for r in only] == [down]


def test_dead_letters_are_listed_and_retry_sends_them_round_again(
    cli: Cli, hooks: tuple[str, str], home: Path
) -> None:
    up, _ = hooks
    assert cli("token", "create", "--policy", POLICY).code == 0
    outbox = Outbox(Database.open(home / ".tokenomics" / "tokenomics.db"))
    (item,) = outbox.page(up, ("token.*",), 10)
    outbox.dead_letter(up, item, 7, "HTTP 400", 0.0)
    dead = json.loads(cli("events", "list", "--dead", "--json").out)
    assert [(r["id"], r["state"], r["attempts"], r["error"]) for r in dead] == [
        (item.id, "dead", 7, "HTTP 400")
    ]
    retried = cli("events", "retry", "--webhook", up)
    assert retried.out == "1 dead-lettered event(s) queued for delivery again.\n"
    again = json.loads(cli("events", "list", "--dead", "--json").out)
    assert [(r["id"], r["state"]) for r in again] == [(item.id, "retry")]
    assert cli("events", "retry").out.startswith("0 ")


def test_list_refuses_pending_with_dead_and_unknown_webhooks(
    cli: Cli, hooks: tuple[str, str]
) -> None:
    both = cli("events", "list", "--pending", "--dead")
    assert both.code == 1 and "exclude each other" in both.err
    unknown = cli("events", "list", "--webhook", "http://nowhere")
    assert unknown.code == 1 and "no webhook named" in unknown.err


def test_without_webhooks_list_says_so(cli: Cli) -> None:
    result = cli("events", "list")
    assert (result.code, result.out) == (0, "No webhooks configured (events.webhooks).\n")
    assert json.loads(cli("events", "list", "--json").out) == []


def test_doctor_has_a_line_per_webhook_reachable_and_signed(
    cli: Cli, hooks: tuple[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    up, down = hooks
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test")
    assert cli("token", "create", "--policy", POLICY).code == 0
    result = cli("doctor")
    lines = [line for line in result.out.splitlines() if " webhook " in line]
    assert len(lines) == 2, result.out
    assert (
        lines[0] == f"[ok]   webhook            {up}: reachable, signed, 1 pending, 0 dead-lettered"
    )
    assert lines[1].startswith(f"[!!]   webhook            {down}: cannot connect")
    assert "(unsigned, 1 pending, 0 dead-lettered)" in lines[1]
    assert "fix: start the receiver" in lines[1]
    for secret in ("s3cret-value", "other-secret", "sign-me", "query-secret"):
        assert secret not in result.out
