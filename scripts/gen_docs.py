#!/usr/bin/env python3
"""Regenerate the shell completion scripts (`completions/`) and man pages (`man/`) from the CLI,
and the configuration reference (`docs/CONFIGURATION.md`) from the settings declarations.

    python scripts/gen_docs.py            # rewrite completions/ and man/ in the repository
    python scripts/gen_docs.py --out DIR  # write them under DIR instead (the docs test does)
    python scripts/gen_docs.py --check    # exit 1 and list the files that are out of date

Run it after changing a command, an option, a help text or a configuration key, and commit the
result. The output
depends only on the command tree and the version in pyproject.toml (no dates, no paths).
"""

from __future__ import annotations

import argparse
import sys
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
GENERATED_DIRS = ("completions", "man")
GENERATED_FILES = ("docs/CONFIGURATION.md",)  # in a folder that also holds hand-written files


def project_version(root: Path = ROOT) -> str:
    with (root / "pyproject.toml").open("rb") as file:
        return str(tomllib.load(file)["project"]["version"])


def render(root: Path = ROOT) -> dict[str, str]:
    """Relative path -> content of every generated file."""
    if str(root / "src") not in sys.path:
        sys.path.insert(0, str(root / "src"))
    from tokenomics.cli.docs import generated_files
    from tokenomics.cli.main import build_app
    from tokenomics.config import reference

    files = generated_files(build_app(), project_version(root))
    files[reference.PATH] = reference.configuration_reference()
    return files


def existing(out: Path) -> dict[str, str]:
    """The files currently under the generated directories of `out`."""
    found: dict[str, str] = {}
    for name in GENERATED_DIRS:
        folder = out / name
        if folder.is_dir():
            for path in sorted(p for p in folder.rglob("*") if p.is_file()):
                found[path.relative_to(out).as_posix()] = path.read_text(encoding="utf-8")
    for name in GENERATED_FILES:
        if (out / name).is_file():
            found[name] = (out / name).read_text(encoding="utf-8")
    return found


def differences(files: dict[str, str], out: Path) -> list[str]:
    """Files that are missing, different, or no longer generated (relative paths, sorted)."""
    current = existing(out)
    changed = {name for name, text in files.items() if current.get(name) != text}
    stale = set(current) - set(files)
    return sorted(changed | stale)


def write(files: dict[str, str], out: Path) -> list[str]:
    """Write `files` under `out`, removing stale generated files; the paths that changed."""
    changed = differences(files, out)
    for name in changed:
        path = out / name
        if name in files:
            path.parent.mkdir(parents=True, exist_ok=True)
            with path.open("w", encoding="utf-8", newline="\n") as file:
                file.write(files[name])
        else:
            path.unlink()
    return changed


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--out", type=Path, default=ROOT, help="directory to write into")
    parser.add_argument("--check", action="store_true", help="only report out-of-date files")
    args = parser.parse_args(argv)
    files = render()
    if args.check:
        stale = differences(files, args.out)
        for name in stale:
            print(f"out of date: {name}", file=sys.stderr)
        if stale:
            print("run python scripts/gen_docs.py", file=sys.stderr)
        return 1 if stale else 0
    for name in write(files, args.out):
        print(f"wrote {name}" if name in files else f"removed {name}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
