"""The event outbox (D19): token writes append in their own transaction; per-target cursors,
attempts, dead letters, retry and pruning."""

from pathlib import Path

import orjson
import pytest

from tokenomics.domain import events
from tokenomics.domain.errors import ConflictError, NotFoundError
from tokenomics.store.db import Database
from tokenomics.store.outbox import Outbox
from tokenomics.store.tokens import TokenStore

POLICY = '{"base_key_env":"OPENAI_API_KEY"}'
CREATED = "2026-01-01T00:00:00Z"
H1 = "a" * 64


@pytest.fixture
def db_path(tmp_path: Path) -> Path:
    return tmp_path / "data" / "tokenomics.db"


def types(outbox: Outbox, target: str = "t", filters: tuple[str, ...] = ()) -> list[str]:
    return [item.type for item in outbox.page(target, filters, 100)]


def test_token_writes_append_their_events_in_the_same_transaction(db_path: Path) -> None:
    store = TokenStore.open(db_path)
    store.create(H1, POLICY, None, CREATED)
    with pytest.raises(ConflictError):
        store.create(H1, POLICY, None, CREATED)  # rolled back: no second token.created
    store.update(H1, None, "2030-01-01T00:00:00Z")
    store.delete(H1)
    with pytest.raises(NotFoundError):
        store.delete(H1)
    outbox = Outbox(Database.open(db_path))  # another connection (another process)
    page = outbox.page("t", (), 100)
    assert [item.type for item in page] == ["token.created", "token.updated", "token.deleted"]
    bodies = [orjson.loads(item.body) for item in page]
    assert bodies[1]["data"] == {"token_hash": H1[:16], "expires_at": "2030-01-01T00:00:00Z"}
    assert all(body["id"] == item.id for body, item in zip(bodies, page, strict=True))
    assert H1 not in b"".join(item.body for item in page).decode()


def test_delivered_moves_the_cursor_and_failures_keep_their_attempts(db_path: Path) -> None:
    outbox = Outbox(Database.open(db_path))
    outbox.append([events.token_deleted(H1), events.budget_update(H1, "m", 1)])
    first, second = outbox.page("t", (), 100)
    outbox.failed("t", first, 2, 123.0, "HTTP 500")
    again = outbox.page("t", (), 100)[0]
    assert (again.seq, again.attempts, again.next_attempt_at) == (first.seq, 2, 123.0)
    outbox.delivered("t", again)
    assert [item.seq for item in outbox.page("t", (), 100)] == [second.seq]
    assert outbox.pending_count("t", ()) == 1
    assert outbox.page("other", (), 100)[0].seq == first.seq  # targets are independent


def test_filters_select_in_sql_and_unwanted_events_move_the_cursor(db_path: Path) -> None:
    outbox = Outbox(Database.open(db_path))
    outbox.append([events.token_deleted(H1), events.budget_update(H1, "m", 1),
                   events.rule_event("rule.mask", H1, "m", {})])  # fmt: skip
    assert types(outbox, filters=("rule.*",)) == ["rule.mask"]
    assert types(outbox, "u", ("token.deleted", "budget.update")) == [
        "token.deleted",
        "budget.update",
    ]
    assert types(outbox, "v", ("server.*",)) == []
    assert outbox.pending_count("v", ("server.*",)) == 0
    assert outbox.prune(["v"], 0) == 3  # v passed them all


def test_dead_letters_are_listed_retried_and_not_pruned(db_path: Path) -> None:
    outbox = Outbox(Database.open(db_path))
    outbox.append([events.token_deleted(H1)])
    (item,) = outbox.page("t", (), 100)
    outbox.dead_letter("t", item, 3, "HTTP 400", 0.0)
    assert outbox.page("t", (), 100) == []
    assert outbox.dead_count("t") == 1
    assert [(r.state, r.error) for r in outbox.rows([("t", ())], "dead")] == [("dead", "HTTP 400")]
    assert outbox.prune(["t"], 0) == 0  # kept: still listed and retryable
    assert outbox.retry_dead() == 1
    (again,) = outbox.page("t", (), 100)
    assert again.retry and again.id == item.id
    outbox.delivered("t", again)
    assert outbox.dead_count("t") == 0 and outbox.page("t", (), 100) == []
    assert outbox.prune(["t"], 0) == 1


def test_token_expired_is_appended_once_per_token_and_expiry(db_path: Path) -> None:
    store = TokenStore.open(db_path, None)
    store.create(H1, POLICY, "2020-01-01T00:00:00Z", CREATED)
    outbox = Outbox(store.db)
    expired = events.token_expired(H1, "2020-01-01T00:00:00Z")
    assert outbox.append_expired(H1, "2020-01-01T00:00:00Z", expired)
    assert not outbox.append_expired(H1, "2020-01-01T00:00:00Z", expired)
    store.update(H1, None, "2021-01-01T00:00:00Z")  # a new expiry is announced again
    assert outbox.append_expired(H1, "2021-01-01T00:00:00Z", expired)
    assert types(outbox).count("token.expired") == 2


def test_prune_keeps_events_a_target_has_not_seen(db_path: Path) -> None:
    outbox = Outbox(Database.open(db_path))
    outbox.append([events.token_deleted(H1)])
    (item,) = outbox.page("a", (), 100)
    outbox.delivered("a", item)
    assert outbox.prune(["a", "b"], 0) == 0  # b never read
    outbox.page("b", (), 100)
    outbox.delivered("b", item)
    assert outbox.prune(["a", "b"], 0) == 1
    assert outbox.last_seq() == item.seq
