"""`proxy.md` §5.1 and decision D14: budget totals persisted in the embedded SQLite store."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from tokenomics.domain.budget import Budgets, Spend
from tokenomics.domain.errors import BudgetExceeded, StoreError
from tokenomics.store.db import MIGRATIONS, SCHEMA_VERSION, Database
from tokenomics.store.usage import UsageStore

A, B = "a" * 64, "b" * 64
T1, T2 = "2026-01-01T00:00:00Z", "2026-01-01T00:00:01Z"


@pytest.fixture
def db_path(tmp_path: Path) -> Path:
    return tmp_path / "data" / "tokenomics.db"


def raw_rows(path: Path) -> list[tuple[object, ...]]:
    with sqlite3.connect(path) as conn:
        return conn.execute("SELECT * FROM usage ORDER BY hash").fetchall()


def test_a_new_store_has_an_empty_usage_table(db_path: Path) -> None:
    db = Database.open(db_path)
    assert db.schema_version == SCHEMA_VERSION == len(MIGRATIONS)
    assert UsageStore(db).load() == {}


def test_save_upserts_totals_and_load_reads_them_back(db_path: Path) -> None:
    db = Database.open(db_path)
    store = UsageStore(db)
    store.save({A: Spend(10, 0.5), B: Spend(3, 0.0)}, T1)
    store.save({A: Spend(25, 1.25)}, T2)
    assert store.load() == {A: Spend(25, 1.25), B: Spend(3, 0.0)}
    assert raw_rows(db_path) == [(A, 25, 1.25, T2), (B, 3, 0.0, T1)]


def test_saving_nothing_writes_nothing(db_path: Path) -> None:
    store = UsageStore(Database.open(db_path))
    store.save({}, T1)
    assert raw_rows(db_path) == []


def test_reset_forgets_one_total(db_path: Path) -> None:
    store = UsageStore(Database.open(db_path))
    store.save({A: Spend(10, 0.5), B: Spend(3, 0.0)}, T1)
    store.reset(A)
    store.reset("unknown")
    assert store.load() == {B: Spend(3, 0.0)}


def test_budget_totals_survive_reopening_the_store(db_path: Path) -> None:
    budgets = Budgets(UsageStore(Database.open(db_path)).load())
    reservation = budgets.reserve(
        A, max_tokens=100, max_cost_usd=1.0, input_tokens=40, cost_estimate_usd=0.4
    )
    reservation.settle(60, 0.6)
    first = Database.open(db_path)
    UsageStore(first).save(budgets.take_dirty(), T1)
    first.close()

    reopened = Budgets(UsageStore(Database.open(db_path)).load())
    assert reopened.used(A) == Spend(60, 0.6)
    with pytest.raises(BudgetExceeded, match=r"used 60 \+ input 41 > limit 100"):
        reopened.reserve(A, max_tokens=100, max_cost_usd=0, input_tokens=41, cost_estimate_usd=0)


def test_a_failing_save_raises_store_error_and_saves_nothing(db_path: Path) -> None:
    store = UsageStore(Database.open(db_path))
    with sqlite3.connect(db_path) as conn:
        conn.execute(
            "CREATE TRIGGER full BEFORE INSERT ON usage WHEN NEW.hash = 'bad'"
            " BEGIN SELECT RAISE(ABORT, 'database or disk is full'); END"
        )
    with pytest.raises(StoreError, match="database or disk is full") as info:
        store.save({A: Spend(1, 0.0), "bad": Spend(2, 0.0)}, T1)
    assert info.value.status == 503
    assert store.load() == {}  # one transaction: all or nothing


def test_a_missing_table_is_a_store_error(db_path: Path) -> None:
    store = UsageStore(Database.open(db_path))
    with sqlite3.connect(db_path) as conn:
        conn.execute("DROP TABLE usage")
    with pytest.raises(StoreError, match="no such table"):
        store.save({A: Spend(1, 0.0)}, T1)
    with pytest.raises(StoreError, match="no such table"):
        store.reset(A)
    with pytest.raises(StoreError, match="no such table"):
        store.load()


def test_a_store_at_the_first_schema_version_gains_the_usage_table(db_path: Path) -> None:
    db_path.parent.mkdir()
    with sqlite3.connect(db_path) as conn:
        for statement in MIGRATIONS[0]:
            conn.execute(statement)
        conn.execute("INSERT INTO tokens (hash, created_at) VALUES ('h', 'now')")
        conn.execute("PRAGMA user_version = 1")
    db = Database.open(db_path)
    assert db.schema_version == SCHEMA_VERSION
    assert db.query("SELECT hash FROM tokens") == [("h",)]
    assert UsageStore(db).load() == {}
