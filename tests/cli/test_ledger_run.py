"""The ledger of a `tokenomics run` whose command ends at once and makes no request (a real
process in a git repository whose `git` answers slowly, like a large one): the session has its
git branch, and `ledger sessions` leaves it out unless `--all`."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest
from tests.cli.test_run import MOCK_POLICY, PY, tokenomics
from tests.conftest import Result

pytestmark = pytest.mark.slow


def git(repo: Path, *args: str) -> None:
    subprocess.run(
        ["git", "-c", "user.name=t", "-c", "user.email=t@example.com", *args],
        cwd=repo, check=True, capture_output=True,
    )  # fmt: skip


def slow_git(directory: Path, seconds: float) -> str:
    """A PATH whose `git` waits `seconds` before running the real one."""
    real = shutil.which("git")
    assert real is not None
    directory.mkdir()
    wrapper = directory / "git"
    wrapper.write_text(f'#!/bin/sh\nsleep {seconds}\nexec {real} "$@"\n')
    wrapper.chmod(0o755)
    return f"{directory}{os.pathsep}{os.environ['PATH']}"


def test_a_run_of_under_a_second_has_its_branch_and_is_listed_only_with_all(
    cli: Callable[..., Result], work: Path, tmp_path: Path
) -> None:
    git(work, "init", "-q", "-b", "quick-run")
    (work / "a.txt").write_text("a")
    git(work, "add", "a.txt")
    git(work, "commit", "-q", "-m", "a")
    created = cli("token", "create", "--policy", MOCK_POLICY, "--json")
    token = json.loads(created.out)["token"]

    path = slow_git(tmp_path / "bin", 0.5)  # the command is over before git answers

    result = tokenomics("run", "--token", token, PY, "-c", "pass", env={"PATH": path})

    assert result.returncode == 0, result.stderr
    (session,) = json.loads(cli("ledger", "sessions", "--json", "--all").out)
    assert session["git"]["branch"] == "quick-run"
    assert session["totals"]["request_count"] == 0
    assert json.loads(cli("ledger", "sessions", "--json").out) == []
    assert cli("ledger", "sessions").out == "No sessions found.\n"
