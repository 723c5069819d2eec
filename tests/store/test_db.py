"""The SQLite connection wrapper shared by the stores."""

from __future__ import annotations

import threading
from pathlib import Path

from tokenomics.store.db import Database


def test_threads_sharing_one_connection_write_one_transaction_at_a_time(tmp_path: Path) -> None:
    """Worker threads (trio.to_thread) share a store's connection: their transactions must not
    interleave (before the lock, a second BEGIN failed and the queued Redis settle was lost)."""
    db = Database.open(tmp_path / "t.db")
    with db.write() as conn:
        conn.execute("CREATE TABLE rows (thread INTEGER, n INTEGER)")
    errors: list[BaseException] = []
    start = threading.Barrier(8)

    def writer(thread: int) -> None:
        start.wait()
        try:
            for n in range(50):
                with db.write() as conn:
                    conn.execute("INSERT INTO rows VALUES (?, ?)", (thread, n))
                    db.query("SELECT COUNT(*) FROM rows")
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=writer, args=(i,)) for i in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    assert db.query("SELECT COUNT(*), COUNT(DISTINCT thread) FROM rows") == [(400, 8)]
    db.close()
