"""The npm clients the slow `run` tests drive, installed once per session (pytest plugin).

Pinned versions, installed from the npm registry into a temporary directory with the user's
npm cache (read when this module is imported, before the tests move HOME), so a second session
installs offline. Needs `node` (>= 20, for gemini-cli) and `npm`; the tests skip without them.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

NPM_CLIENTS = {
    "openai": "7.60.0",
    "@anthropic-ai/claude-code": "2.1.332",
    "@openai/codex": "0.171.0",
    "@google/gemini-cli": "0.61.0",
}
NPM_CACHE = os.environ.get("NPM_CONFIG_CACHE") or str(Path.home() / ".npm")


@pytest.fixture(scope="session")
def npm_clients(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A directory whose `node_modules` holds `NPM_CLIENTS` (commands in `node_modules/.bin`)."""
    npm = shutil.which("npm")
    if npm is None or shutil.which("node") is None:
        pytest.skip("node and npm are needed for the npm clients")
    root = tmp_path_factory.mktemp("npm")
    (root / "package.json").write_text('{"name": "run-clients", "private": true}\n')
    packages = [f"{name}@{version}" for name, version in NPM_CLIENTS.items()]
    installed = subprocess.run(
        [npm, "install", "--no-audit", "--no-fund", "--prefer-offline", *packages],
        cwd=root, capture_output=True, text=True, timeout=900, check=False,
        env={**os.environ, "NPM_CONFIG_CACHE": NPM_CACHE},
    )  # fmt: skip
    assert installed.returncode == 0, installed.stdout + installed.stderr
    return root
