"""`tokenomics version`: version, commit, build date, Python and OS/arch (`cli.md` §6.5)."""

from __future__ import annotations

import json
import platform
from importlib import resources
from typing import Annotated

from cyclopts import Parameter

from tokenomics import __version__
from tokenomics.cli.context import Context


def build_info() -> dict[str, str]:
    """Commit and date written into the package by `build_pyz.py`; `unknown` in a checkout."""
    try:
        text = resources.files("tokenomics").joinpath("_build_info.json").read_text("utf-8")
        data = json.loads(text)
    except (OSError, ValueError):
        data = {}
    return {
        "commit": str(data.get("commit", "unknown")),
        "built": str(data.get("built", "unknown")),
    }


def version_text() -> str:
    info = build_info()
    machine = platform.machine().lower() or "unknown"
    return "\n".join(
        [
            f"tokenomics {__version__}",
            f"  commit:  {info['commit']}",
            f"  built:   {info['built']}",
            f"  python:  {platform.python_version()}",
            f"  os/arch: {platform.system().lower()}/{machine}",
        ]
    )


def version(*, ctx: Annotated[Context, Parameter(parse=False)]) -> None:
    """Print version, commit, build date, Python version and OS/arch."""
    ctx.stdout.write(version_text() + "\n")
