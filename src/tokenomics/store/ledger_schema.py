"""The tables of the ledger index (`store/ledger_index.py`), one migration of `store/db.py`.

The index is a cache of the session files (`{dir}/sessions/*.json`, and journals not yet
turned into one): `ledger_files` has one row per session file, keyed by its directory and
stem, with the size and modification time it was read at; `ledger_requests` one row per
request of that file, the session's git context copied onto each so a summary is one scan
without joins. Timestamps are microseconds since the epoch (UTC), `day` their UTC date.
`cost_usd` is NULL for a request without a price (never 0).

`ledger_daily` holds the same requests summed per session file, UTC day, model, provider, token
and agent (`cost_usd` over the priced ones, `unpriced` counting the others): a summary reads
it for whole days and `ledger_requests` only for the part days a `--since/--until` cuts.
`ledger_facets` sums them once more per session file, day and the value of one `kind` (model,
provider, token or agent) alone: a summary grouped by at most one of those (plus any of the
session's branch, commit, repository, and the day) reads far fewer rows there, however the
requests of a day mix models, tokens and agents.
"""

from __future__ import annotations

# The sums kept per group by `ledger_daily` and `ledger_facets`, after their keys.
SUMS = """
        n                     INTEGER NOT NULL,
        input_tokens          INTEGER NOT NULL,
        output_tokens         INTEGER NOT NULL,
        cached_input_tokens   INTEGER NOT NULL,
        cache_creation_tokens INTEGER NOT NULL,
        reasoning_tokens      INTEGER NOT NULL,
        cost_usd              REAL NOT NULL,
        unpriced              INTEGER NOT NULL,
        estimated             INTEGER NOT NULL,
        errors                INTEGER NOT NULL,
        rate_limited          INTEGER NOT NULL,
        retry_count           INTEGER NOT NULL,
        rule_failures         INTEGER NOT NULL
    )
"""

MIGRATION: tuple[str, ...] = (
    """
    CREATE TABLE ledger_files (
        id            INTEGER PRIMARY KEY,
        dir           TEXT NOT NULL,
        stem          TEXT NOT NULL,
        kind          TEXT NOT NULL,
        mtime_ns      INTEGER NOT NULL,
        size          INTEGER NOT NULL,
        valid         INTEGER NOT NULL,
        session_id    TEXT NOT NULL,
        started_at    TEXT NOT NULL,
        ended_at      TEXT NOT NULL,
        branch        TEXT NOT NULL,
        git_commit    TEXT NOT NULL,
        repo          TEXT NOT NULL,
        request_count INTEGER NOT NULL,
        UNIQUE (dir, stem)
    )
    """,
    """
    CREATE TABLE ledger_requests (
        file_id               INTEGER NOT NULL,
        seq                   INTEGER NOT NULL,
        ts                    INTEGER NOT NULL,
        day                   TEXT NOT NULL,
        session_id            TEXT NOT NULL,
        model                 TEXT NOT NULL,
        provider              TEXT NOT NULL,
        token_hash            TEXT NOT NULL,
        branch                TEXT NOT NULL,
        git_commit            TEXT NOT NULL,
        repo                  TEXT NOT NULL,
        agent                 TEXT NOT NULL,
        status_code           INTEGER NOT NULL,
        input_tokens          INTEGER NOT NULL,
        output_tokens         INTEGER NOT NULL,
        cached_input_tokens   INTEGER NOT NULL,
        cache_creation_tokens INTEGER NOT NULL,
        reasoning_tokens      INTEGER NOT NULL,
        cost_usd              REAL,
        estimated             INTEGER NOT NULL,
        retry_count           INTEGER NOT NULL,
        rule_failures         INTEGER NOT NULL,
        duration_ms           INTEGER NOT NULL,
        path                  TEXT NOT NULL
    )
    """,
    "CREATE INDEX ledger_requests_file ON ledger_requests (file_id, seq)",
    "CREATE INDEX ledger_requests_ts ON ledger_requests (ts)",
    """
    CREATE TABLE ledger_daily (
        file_id               INTEGER NOT NULL,
        day                   TEXT NOT NULL,
        session_id            TEXT NOT NULL,
        model                 TEXT NOT NULL,
        provider              TEXT NOT NULL,
        token_hash            TEXT NOT NULL,
        branch                TEXT NOT NULL,
        git_commit            TEXT NOT NULL,
        repo                  TEXT NOT NULL,
        agent                 TEXT NOT NULL,"""
    + SUMS,
    "CREATE INDEX ledger_daily_file ON ledger_daily (file_id)",
    "CREATE INDEX ledger_daily_day ON ledger_daily (day)",
    """
    CREATE TABLE ledger_facets (
        file_id               INTEGER NOT NULL,
        day                   TEXT NOT NULL,
        kind                  TEXT NOT NULL,
        value                 TEXT NOT NULL,
        session_id            TEXT NOT NULL,
        branch                TEXT NOT NULL,
        git_commit            TEXT NOT NULL,
        repo                  TEXT NOT NULL,"""
    + SUMS,
    "CREATE INDEX ledger_facets_kind ON ledger_facets (kind, day)",
    "CREATE INDEX ledger_facets_file ON ledger_facets (file_id)",
)
