"""Shared fixtures: an isolated home and working directory, and an in-process CLI runner."""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest

from tokenomics.cli.main import run

HASH_KEY = "test-hash-key"
pytest_plugins = ["tests.support.fixtures", "tests.support.npm"]


@dataclass
class Result:
    code: int
    out: str
    err: str


@pytest.fixture(autouse=True)
def isolated(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Every test runs with HOME and the working directory in its own temporary folder."""
    for name in list(os.environ):
        if name.startswith("TOKENOMICS_"):
            monkeypatch.delenv(name)
    home = tmp_path / "home"
    work = tmp_path / "work"
    home.mkdir()
    work.mkdir()
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.chdir(work)
    return tmp_path


@pytest.fixture
def home(isolated: Path) -> Path:
    return isolated / "home"


@pytest.fixture
def work(isolated: Path) -> Path:
    return isolated / "work"


@pytest.fixture
def cli(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> Callable[..., Result]:
    """Run the CLI in-process: `cli("token", "list")` -> Result(code, out, err)."""
    monkeypatch.setenv("TOKENOMICS_HASH_KEY", HASH_KEY)

    def invoke(*argv: str) -> Result:
        capsys.readouterr()
        code = run(list(argv))
        captured = capsys.readouterr()
        return Result(code, captured.out, captured.err)

    return invoke
