#!/usr/bin/env python3
"""Build `tokenomics.pyz`: the CLI and all its dependencies in one executable file.

    python3 build_pyz.py [--output PATH]

Needs only Python 3.11+ with pip and access to PyPI. If `pex` is not importable by the Python
running this script, it is installed once into `build/pyz-venv` and reused from then on.

The pex is built in venv mode (compiled dependencies such as cryptography, orjson, google-re2
and tiktoken need real files on disk) with a `/bin/sh` boot script: the first run unpacks a venv
into the pex root (`~/.cache/pex`, or `$PEX_ROOT`), later runs `exec` it directly.
`./tokenomics.pyz ...` and `python3 tokenomics.pyz ...` both work. The file holds wheels for
the Python minor version and platform it was built with.

Every runtime dependency is pinned to the exact version in `requirements.lock` (pex
`--constraints`; written by `scripts/lock_requirements.py` from the environment the tests ran
in), so a new upstream release never changes the pyz unnoticed; the build fails when the lock
is missing or does not satisfy `pyproject.toml`.

The wheel is built from a copy of `pyproject.toml` and `src/` under `build/`, with
`tokenomics/_build_info.json` (commit and UTC build date, shown by `tokenomics version`)
added to the copy only, so the checkout is never modified. Pex keeps its download and build
cache in its default root, so later builds skip most of the work.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parent
BUILD_INFO = ROOT / "src" / "tokenomics" / "_build_info.json"
BOOTSTRAP_VENV = ROOT / "build" / "pyz-venv"
STAGING = ROOT / "build"
# Top-level files a wheel build may read; everything else comes from `src/`.
TOP_LEVEL_FILES = (
    "pyproject.toml",
    "setup.py",
    "setup.cfg",
    "MANIFEST.in",
    "README*",
    "LICEN[CS]E*",
)
PEX_REQUIREMENT = "pex>=2.20,<3"
LOCK = ROOT / "requirements.lock"


class BuildError(Exception):
    """The build failed; the message is printed as one line."""


def git_commit() -> str:
    """Short commit of HEAD, `-dirty` with uncommitted changes, `unknown` without git/commits."""
    try:
        head = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"],
            cwd=ROOT,
            capture_output=True,
            text=True,
            check=False,
        )
        if head.returncode != 0 or not head.stdout.strip():
            return "unknown"
        status = subprocess.run(
            ["git", "status", "--porcelain"],
            cwd=ROOT,
            capture_output=True,
            text=True,
            check=False,
        )
    except OSError:
        return "unknown"
    commit = head.stdout.strip()
    if status.returncode != 0 or status.stdout.strip():
        commit += "-dirty"
    return commit


def build_date() -> str:
    """UTC build time in RFC 3339; honours SOURCE_DATE_EPOCH for reproducible builds."""
    epoch = os.environ.get("SOURCE_DATE_EPOCH", "").strip()
    when = datetime.fromtimestamp(int(epoch), UTC) if epoch.isdigit() else datetime.now(UTC)
    return when.strftime("%Y-%m-%dT%H:%M:%SZ")


def _venv_python(venv: Path) -> Path:
    return venv / ("Scripts/python.exe" if os.name == "nt" else "bin/python")


def _has_pex(python: Path) -> bool:
    if not python.exists():
        return False
    probe = subprocess.run([str(python), "-c", "import pex"], capture_output=True, check=False)
    return probe.returncode == 0


def pex_python() -> str:
    """A Python that can run `-m pex`: this one, else the bootstrap venv (created if needed)."""
    if importlib.util.find_spec("pex") is not None:
        return sys.executable
    python = _venv_python(BOOTSTRAP_VENV)
    if _has_pex(python):
        return str(python)
    print(f"pex not found; installing it into {BOOTSTRAP_VENV.relative_to(ROOT)} ...", flush=True)
    made = subprocess.run(
        [sys.executable, "-m", "venv", "--clear", str(BOOTSTRAP_VENV)], check=False
    )
    if made.returncode == 0:
        install = [str(python), "-m", "pip", "install", "--quiet", PEX_REQUIREMENT]
    else:
        # No ensurepip (e.g. Debian without python3-venv): a bare venv filled by this pip.
        made = subprocess.run(
            [sys.executable, "-m", "venv", "--clear", "--without-pip", str(BOOTSTRAP_VENV)],
            check=False,
        )
        if made.returncode != 0:
            raise BuildError(f"cannot create a virtual environment in {BOOTSTRAP_VENV}")
        install = [sys.executable, "-m", "pip", "--python", str(python), "install", "--quiet"]
        install.append(PEX_REQUIREMENT)
    if subprocess.run(install, check=False).returncode != 0 or not _has_pex(python):
        raise BuildError(f"cannot install {PEX_REQUIREMENT} into {BOOTSTRAP_VENV}")
    return str(python)


def pex_command(python: str, project: Path, output: Path, lock: Path = LOCK) -> list[str]:
    return [
        python,
        "-m",
        "pex",
        str(project),  # the project, with its dependencies from pyproject.toml
        "--constraints",
        str(lock),  # ... each at its exact tested version
        "--console-script",
        "tokenomics",
        "--venv",  # unpack into a real venv on first run: compiled wheels need files on disk
        "--sh-boot",  # later runs exec the cached venv from /bin/sh, no Python bootstrap
        "--python-shebang",
        "/usr/bin/env python3",
        "--resolver-version",
        "pip-2020-resolver",  # pex's vendored pip otherwise uses the legacy resolver
        "--output-file",
        str(output),
    ]


def stage_project(stage: Path, info: dict[str, str]) -> Path:
    """Copy what the wheel is built from into `stage`, plus the build info file.

    Building from a copy keeps the checkout untouched (no build info appearing in `src/` for
    the editable install or concurrent test runs, no stale `build/lib`) and gives a consistent
    snapshot of the sources.
    """
    project = stage / "project"
    project.mkdir()
    for path in sorted(ROOT.iterdir()):
        if path.is_file() and any(path.match(pattern) for pattern in TOP_LEVEL_FILES):
            shutil.copy2(path, project / path.name)
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc", "*.egg-info", BUILD_INFO.name)
    shutil.copytree(ROOT / "src", project / "src", ignore=ignore)
    target = project / BUILD_INFO.relative_to(ROOT)
    target.write_text(json.dumps(info) + "\n", encoding="utf-8")
    return project


def build(output: Path) -> None:
    if not LOCK.is_file():
        raise BuildError(f"{LOCK.name} is missing; run scripts/lock_requirements.py")
    python = pex_python()
    output.parent.mkdir(parents=True, exist_ok=True)
    partial = output.with_name(output.name + ".partial")
    info = {"commit": git_commit(), "built": build_date()}
    print(f"tokenomics {info['commit']} built {info['built']}", flush=True)
    STAGING.mkdir(parents=True, exist_ok=True)
    stage = Path(tempfile.mkdtemp(prefix="pyz-src-", dir=STAGING))
    try:
        project = stage_project(stage, info)
        command = pex_command(python, project, partial)
        print("+ " + " ".join(_quote(arg) for arg in command), flush=True)
        try:
            result = subprocess.run(command, cwd=project, check=False)
        except OSError as exc:
            raise BuildError(f"cannot run pex: {exc}") from None
    except BaseException:  # also Ctrl-C: never leave a half-written file behind
        partial.unlink(missing_ok=True)
        raise
    finally:
        shutil.rmtree(stage, ignore_errors=True)
    if result.returncode != 0 or not partial.is_file():
        partial.unlink(missing_ok=True)
        raise BuildError(f"pex failed with exit status {result.returncode} (see its output above)")
    partial.chmod(partial.stat().st_mode | 0o111)
    os.replace(partial, output)


def _quote(arg: str) -> str:
    return arg if arg and all(c.isalnum() or c in "-_./=:,+@%" for c in arg) else repr(arg)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Build tokenomics.pyz with pex (venv mode).")
    parser.add_argument(
        "--output",
        "-o",
        type=Path,
        default=Path("tokenomics.pyz"),
        help="where to write the file (default: ./tokenomics.pyz)",
    )
    args = parser.parse_args(argv)
    output = args.output.expanduser().absolute()
    if output.is_dir():
        print(f"build_pyz: error: --output {output} is a directory", file=sys.stderr)
        return 1
    if shutil.which("git") is None:
        print("note: git not found; the commit is recorded as 'unknown'", flush=True)
    started = time.monotonic()
    try:
        build(output)
    except BuildError as exc:
        print(f"build_pyz: error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("build_pyz: interrupted", file=sys.stderr)
        return 130
    size = output.stat().st_size
    elapsed = time.monotonic() - started
    print(f"Wrote {output} ({size / 2**20:.1f} MiB, {size} bytes) in {elapsed:.1f}s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
