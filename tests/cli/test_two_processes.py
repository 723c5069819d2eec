"""Two processes on one token store: a long-running holder (like `serve`) and the CLI."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

HOLDER = textwrap.dedent(
    """
    import sys
    from pathlib import Path
    from tokenomics.store.tokens import TokenStore

    store = TokenStore.open(Path(sys.argv[1]))
    seen = store.db.data_version()
    print("ready", flush=True)
    for i, line in enumerate(sys.stdin):
        if line.strip() == "write":
            store.create(f"{i:064x}", '{"base_key_env":"K"}', None, "2026-01-01T00:00:00Z")
            print("wrote", flush=True)
        else:
            changed = store.db.data_version() != seen
            print(" ".join(["changed" if changed else "same"] + [r.token_hash for r in store.list()]), flush=True)
    """
)


def test_cli_writes_while_another_process_holds_the_store(tmp_path: Path) -> None:
    db = tmp_path / "data" / "tokenomics.db"
    env = {**os.environ, "HOME": str(tmp_path), "TOKENOMICS_HASH_KEY": "k"}
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLDER, str(db)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        env=env,
    )
    assert holder.stdin is not None and holder.stdout is not None
    try:
        assert holder.stdout.readline().strip() == "ready"
        holder.stdin.write("write\n")
        holder.stdin.flush()
        assert holder.stdout.readline().strip() == "wrote"
        created = subprocess.run(
            [sys.executable, "-m", "tokenomics", "--db", str(db), "token", "create",
             "--policy", '{"base_key_env":"OPENAI_API_KEY"}', "--json"],
            capture_output=True, text=True, env=env, timeout=30, check=False,
        )  # fmt: skip
        assert created.returncode == 0, created.stderr
        new_hash = json.loads(created.stdout)["token_hash"]
        holder.stdin.write("list\n")
        holder.stdin.flush()
        changed, *hashes = holder.stdout.readline().split()
        assert changed == "changed"
        assert new_hash in hashes and len(hashes) == 2
        listed = subprocess.run(
            [sys.executable, "-m", "tokenomics", "--db", str(db), "token", "list", "--json"],
            capture_output=True, text=True, env=env, timeout=30, check=True,
        )  # fmt: skip
        assert len(json.loads(listed.stdout)) == 2
    finally:
        holder.stdin.close()
        holder.wait(timeout=10)
    assert holder.returncode == 0
