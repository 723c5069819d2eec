"""The import layering of `design.md`: imports point downward only.

domain < config < (store, upstream, formats) < pipeline < services < app_deps < app < cli.
Packages on the same level do not import each other.
"""

from __future__ import annotations

import ast
from pathlib import Path

SRC = Path(__file__).resolve().parents[1] / "src" / "tokenomics"
LEVELS = {
    "domain": 0,
    "config": 1,
    "store": 2,
    "upstream": 2,
    "formats": 2,
    "pipeline": 3,
    "services": 4,
    "app_deps": 5,
    "app": 6,
    "remote_app": 6,
    "cli": 7,
    "__main__": 8,
}


def layer_of(module: str) -> str | None:
    parts = module.split(".")
    if parts[0] != "tokenomics" or len(parts) < 2:
        return None
    return parts[1]


def imports_of(path: Path) -> list[tuple[int, str]]:
    found = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.append((node.lineno, node.module))
    return found


def test_every_source_module_belongs_to_a_layer() -> None:
    for path in SRC.rglob("*.py"):
        relative = path.relative_to(SRC)
        if relative.parts == ("__init__.py",):
            continue
        assert relative.parts[0].removesuffix(".py") in LEVELS, f"{relative} is outside the layers"


def test_imports_point_downward_only() -> None:
    problems = []
    for path in sorted(SRC.rglob("*.py")):
        relative = path.relative_to(SRC)
        here = relative.parts[0].removesuffix(".py")
        if here not in LEVELS:
            continue
        for line, module in imports_of(path):
            there = layer_of(module)
            if there is None or there == here or there not in LEVELS:
                continue
            if LEVELS[there] >= LEVELS[here]:
                problems.append(f"{relative}:{line} imports {module} ({here} -> {there})")
    assert problems == []


def test_third_party_libraries_stay_behind_their_module() -> None:
    owners = {
        "sqlite3": {"store"},
        "httpx2": {"upstream"},
        "httptools": {"services"},
        "rich": {"cli"},
        "re2": {"domain"},
        "cyclopts": {"cli"},
    }
    problems = []
    for path in sorted(SRC.rglob("*.py")):
        here = path.relative_to(SRC).parts[0].removesuffix(".py")
        for line, module in imports_of(path):
            root = module.split(".")[0]
            if root in owners and here not in owners[root]:
                problems.append(f"{path.relative_to(SRC)}:{line} imports {root}")
    assert problems == []
