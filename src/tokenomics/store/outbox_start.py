"""Where a new webhook target starts reading the event outbox (`store/outbox.py`).

A proxy that registers with the central server wants the events from now on, not the
server's whole history (which its replay window would refuse anyway)."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from tokenomics.store.db import Database


def start_at_end(db: Database, target: str) -> None:
    """Create `target`'s cursor at the newest event (no-op when it already has one)."""
    with db.write() as conn:
        conn.execute(
            "INSERT OR IGNORE INTO outbox_targets (name, cursor) VALUES"
            " (?, (SELECT coalesce(max(seq), 0) FROM outbox_events))",
            (target,),
        )
