#!/usr/bin/env python3
"""Write `requirements.lock`: the exact version of every runtime dependency of Tokenomics
(the closure of `[project] dependencies` in pyproject.toml) as installed in the running
Python's environment. `build_pyz.py` builds the zipapp with these pins as constraints, so the
pyz holds what the tests ran with, not whatever is newest on PyPI that day.

    .venv/bin/python scripts/lock_requirements.py          # rewrite requirements.lock
    .venv/bin/python scripts/lock_requirements.py --check  # exit 1 if it is stale
"""

from __future__ import annotations

import argparse
import sys
import tomllib
from importlib import metadata
from pathlib import Path

from packaging.markers import default_environment
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

ROOT = Path(__file__).resolve().parents[1]
LOCK = ROOT / "requirements.lock"
HEADER = (
    "# Exact runtime dependencies of tokenomics, as tested; used by build_pyz.py (constraints).\n"
    "# Regenerate with: .venv/bin/python scripts/lock_requirements.py\n"
)


def _applies(requirement: Requirement, extras: set[str]) -> bool:
    if requirement.marker is None:
        return True
    environments = [{**default_environment(), "extra": e} for e in extras or {""}]
    return any(requirement.marker.evaluate(env) for env in environments)


def closure(roots: list[str]) -> dict[str, str]:
    """name -> installed version, for `roots` and everything they require here."""
    pins: dict[str, str] = {}
    todo = [(Requirement(r), set[str]()) for r in roots]
    while todo:
        requirement, _ = todo.pop()
        name = canonicalize_name(requirement.name)
        if name in pins:
            continue
        dist = metadata.distribution(requirement.name)
        if not requirement.specifier.contains(dist.version, prereleases=True):
            raise SystemExit(f"{name} {dist.version} is installed but {requirement} is required")
        pins[name] = dist.version
        extras = set(requirement.extras)
        for text in dist.requires or []:
            child = Requirement(text)
            if _applies(child, extras):
                todo.append((child, set(child.extras)))
    return dict(sorted(pins.items()))


def render() -> str:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    pins = closure(project["dependencies"])
    return HEADER + "".join(f"{name}=={version}\n" for name, version in pins.items())


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--check", action="store_true", help="only check the file is current")
    args = parser.parse_args(argv)
    text = render()
    if args.check:
        if LOCK.read_text() != text:
            print("requirements.lock is stale; run scripts/lock_requirements.py", file=sys.stderr)
            return 1
        return 0
    LOCK.write_text(text)
    print(f"wrote {LOCK.relative_to(ROOT)} ({text.count('==')} pins)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
