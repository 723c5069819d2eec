"""The npm clients the slow `run` tests drive (pytest plugin, and a script for `scripts/check`).

    python -m tests.support.npm .venv/npm-clients    # what scripts/check runs, when npm exists

Pinned versions, from the npm registry with the user's npm cache (read when this module is
imported, before the tests move HOME). The fixture uses `.venv/npm-clients` when it holds
exactly these versions, else installs them once per session into a temporary directory. Needs
`node` (>= 20, for gemini-cli) and `npm`; the tests skip without them.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

NPM_CLIENTS = {
    "openai": "7.60.0",
    "@anthropic-ai/claude-code": "2.1.332",
    "@openai/codex": "0.171.0",
    "@google/gemini-cli": "0.61.0",
}
NPM_CACHE = os.environ.get("NPM_CONFIG_CACHE") or str(Path.home() / ".npm")
PREINSTALLED = Path(__file__).resolve().parents[2] / ".venv" / "npm-clients"


def installed(root: Path) -> bool:
    """Whether `root/node_modules` holds every client at its pinned version."""
    for name, version in NPM_CLIENTS.items():
        try:
            found = json.loads((root / "node_modules" / name / "package.json").read_text())
        except (OSError, ValueError):
            return False
        if found.get("version") != version:
            return False
    return True


def install(npm: str, root: Path) -> subprocess.CompletedProcess[str]:
    root.mkdir(parents=True, exist_ok=True)
    (root / "package.json").write_text('{"name": "run-clients", "private": true}\n')
    packages = [f"{name}@{version}" for name, version in NPM_CLIENTS.items()]
    return subprocess.run(
        [npm, "install", "--no-audit", "--no-fund", "--prefer-offline", *packages],
        cwd=root, capture_output=True, text=True, timeout=900, check=False,
        env={**os.environ, "NPM_CONFIG_CACHE": NPM_CACHE},
    )  # fmt: skip


@pytest.fixture(scope="session")
def npm_clients(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A directory whose `node_modules` holds `NPM_CLIENTS` (commands in `node_modules/.bin`)."""
    npm = shutil.which("npm")
    if npm is None or shutil.which("node") is None:
        pytest.skip("node and npm are needed for the npm clients")
    if installed(PREINSTALLED):
        return PREINSTALLED
    root = tmp_path_factory.mktemp("npm")
    done = install(npm, root)
    assert done.returncode == 0, done.stdout + done.stderr
    return root


if __name__ == "__main__":
    target = Path(sys.argv[1])
    if not installed(target):
        result = install(shutil.which("npm") or "npm", target)
        sys.stderr.write(result.stderr if result.returncode else "")
        sys.exit(result.returncode)
