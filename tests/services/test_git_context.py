"""Git context of a session (`cli.md` §7.2, scenario 76): `{}` outside a repository; inside,
branch, short commits at open and close, repo root, and the dirty flags."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import trio
from tests.services.ledger_support import finished

from tokenomics.services.finished import Finished
from tokenomics.services.git_context import close_context, open_context
from tokenomics.services.ledger import Ledger
from tokenomics.services.ledger import run as ledger_run


def git(repo: Path, *args: str) -> str:
    done = subprocess.run(
        ["git", "-c", "user.name=t", "-c", "user.email=t@example.com", *args],
        cwd=repo, check=True, capture_output=True, text=True,
    )  # fmt: skip
    return done.stdout.strip()


def commit(repo: Path, name: str) -> str:
    (repo / name).write_text(name)
    git(repo, "add", name)
    git(repo, "commit", "-q", "-m", name)
    return git(repo, "rev-parse", "--short", "HEAD")


async def test_outside_a_repository_the_context_is_empty(tmp_path: Path) -> None:
    assert await open_context(tmp_path) == {}
    assert await close_context(tmp_path) == {}


async def test_a_session_in_a_repository_records_commits_made_during_it(tmp_path: Path) -> None:
    repo = tmp_path / "repo"
    repo.mkdir()
    git(repo, "init", "-q", "-b", "feature/ledger")
    first = commit(repo, "a.txt")
    (repo / "a.txt").write_text("changed, not committed")
    ledger = await Ledger.open(tmp_path / "sessions", repo)
    assert ledger is not None
    await ledger.take_git_context()  # what `run` does first
    await ledger.write([finished(1)])
    git(repo, "checkout", "-q", "--", "a.txt")
    second = commit(repo, "b.txt")
    await ledger.close()
    session = json.loads(ledger.session_path.read_text())
    assert session["git"] == {
        "branch": "feature/ledger",
        "commit_start": first,
        "repo_root": str(repo.resolve()),
        "dirty": True,
        "commit_end": second,
    }
    assert first != second


async def test_a_session_stopped_at_once_still_has_its_branch(tmp_path: Path) -> None:
    """A `run` whose command ends in under a second: the server closes the channel and cancels
    the ledger while it may still be taking the git context; the close takes it then."""
    repo = tmp_path / "repo"
    repo.mkdir()
    git(repo, "init", "-q", "-b", "quick")
    first = commit(repo, "a.txt")
    ledger = await Ledger.open(tmp_path / "sessions", repo)
    assert ledger is not None
    send, receive = trio.open_memory_channel[Finished](float("inf"))
    async with trio.open_nursery() as nursery:
        await nursery.start(ledger_run, ledger, receive)
        send.close()  # what `run_server` does when it stops: close, then cancel the consumers
        nursery.cancel_scope.cancel()
    session = json.loads(ledger.session_path.read_text())
    assert session["git"]["branch"] == "quick"
    assert session["git"]["commit_start"] == session["git"]["commit_end"] == first
