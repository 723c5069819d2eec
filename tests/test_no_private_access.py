"""Dependencies are used as published: no code in `src/` reaches into a dependency's private
attributes or modules, or replaces what a dependency defines (issue 14).

- `x._name` is allowed only when `_name` is defined by our own code (a method, an attribute
  assigned on `self`/`cls`, a class attribute, a slot, a module-level name): a private name
  no module of ours defines belongs to someone else.
- No import of a private module (`pkg._impl`, `from pkg._impl import ...`) of another package.
- No assignment to an attribute of an imported module or of a name imported from another
  package (`hypercorn.protocol.H11Protocol = ...`, `SomeClass.method = ...`), nor `setattr`
  on one.
"""

from __future__ import annotations

import ast
import sys
from pathlib import Path

SRC = Path(__file__).resolve().parents[1] / "src" / "tokenomics"
OURS = "tokenomics"
# Public API despite the underscore: namedtuple's methods (named so to not clash with fields).
PUBLIC = {"_replace", "_asdict", "_fields", "_make", "_field_defaults"}


def _private(name: str) -> bool:
    return name.startswith("_") and not (name.startswith("__") and name.endswith("__"))


def _trees() -> dict[Path, ast.Module]:
    return {path: ast.parse(path.read_text(), str(path)) for path in sorted(SRC.rglob("*.py"))}


def _defined_names(trees: dict[Path, ast.Module]) -> set[str]:
    """Every private name our code defines, wherever it is defined."""
    names: set[str] = set()
    for tree in trees.values():
        for node in ast.walk(tree):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
                names.add(node.name)
            elif isinstance(node, ast.Name) and isinstance(node.ctx, ast.Store):
                names.add(node.id)
            elif isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
                names.add(node.target.id)
            elif isinstance(node, ast.Attribute) and isinstance(node.ctx, ast.Store):
                if isinstance(node.value, ast.Name) and node.value.id in ("self", "cls"):
                    names.add(node.attr)
            elif isinstance(node, ast.Constant) and isinstance(node.value, str):
                names.add(node.value)  # __slots__ entries, dataclass field names
    return {name for name in names if _private(name)}


def _foreign_imports(tree: ast.Module) -> set[str]:
    """Local names bound to another package's modules or objects."""
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.split(".")[0] != OURS:
                    names.add((alias.asname or alias.name).split(".")[0])
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            top = node.module.split(".")[0]
            names.update(alias.asname or alias.name for alias in node.names if top != OURS)
    return names


def _aliases(tree: ast.Module, foreign: set[str]) -> set[str]:
    """Local names bound to something reached from a foreign name (`x = pkg.module`)."""
    names = set(foreign)
    for node in ast.walk(tree):
        if isinstance(node, ast.Assign) and _root(node.value) in foreign:
            names.update(t.id for t in node.targets if isinstance(t, ast.Name))
    return names


def _root(node: ast.expr) -> str | None:
    while isinstance(node, ast.Attribute):
        node = node.value
    return node.id if isinstance(node, ast.Name) else None


def _private_module(module: str) -> bool:
    top = module.split(".")[0]
    if top == OURS or (top in sys.stdlib_module_names and "." not in module):
        return False
    return any(_private(part) for part in module.split("."))


def _sets_attribute(node: ast.AST, foreign: set[str]) -> bool:
    return (
        isinstance(node, ast.Call)
        and isinstance(node.func, ast.Name)
        and node.func.id in ("setattr", "delattr")
        and bool(node.args)
        and _root(node.args[0]) in foreign
    )


def problems_in(path: Path, tree: ast.Module, ours: set[str]) -> list[str]:
    found: list[str] = []
    foreign = _aliases(tree, _foreign_imports(tree))
    where = path.relative_to(SRC)
    for node in ast.walk(tree):
        line = getattr(node, "lineno", 0)
        if isinstance(node, ast.ClassDef) and any(_root(b) in foreign for b in node.bases):
            found += [
                f"{where}:{item.lineno} overrides private {node.name}.{item.name}"
                for item in node.body
                if isinstance(item, (ast.FunctionDef, ast.AsyncFunctionDef)) and _private(item.name)
            ]
        if (
            isinstance(node, ast.Attribute)
            and _private(node.attr)
            and node.attr not in ours | PUBLIC
        ):
            found.append(f"{where}:{line} reads private attribute {node.attr}")
        elif isinstance(node, ast.Import):
            found += [
                f"{where}:{line} imports private module {alias.name}"
                for alias in node.names
                if _private_module(alias.name)
            ]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            if _private_module(node.module):
                found.append(f"{where}:{line} imports from private module {node.module}")
        elif isinstance(node, (ast.Assign, ast.AugAssign, ast.AnnAssign)):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            for target in targets:
                if isinstance(target, ast.Attribute) and _root(target.value) in foreign:
                    found.append(f"{where}:{line} replaces {ast.unparse(target)}")
        elif _sets_attribute(node, foreign):
            assert isinstance(node, ast.Call) and isinstance(node.func, ast.Name)
            found.append(f"{where}:{line} {node.func.id} on {ast.unparse(node.args[0])}")
    return sorted(found, key=lambda p: int(p.split(":")[1].split()[0]))


def test_no_private_attribute_or_module_of_a_dependency_is_used() -> None:
    trees = _trees()
    ours = _defined_names(trees)
    problems = [p for path, tree in trees.items() for p in problems_in(path, tree, ours)]
    assert problems == []


def test_the_check_finds_what_the_old_server_did() -> None:
    """The patterns hypercorn was patched with are all caught (else this test is blind)."""
    old = ast.parse(
        "import hypercorn.trio.tcp_server\n"
        "import hypercorn.protocol\n"
        "from hypercorn.protocol.h11 import H11Protocol\n"
        "from trio._core import _run\n"
        "def f(task_group):\n"
        "    task_group._nursery.start_soon(g)\n"
        "    hypercorn.trio.tcp_server.TrioSingleTask = object\n"
        "    H11Protocol.send = None\n"
        "    setattr(hypercorn.protocol, 'H11Protocol', object)\n"
        "    tcp = hypercorn.trio.tcp_server\n"
        "    tcp.TrioSingleTask = object\n"
        "class P(H11Protocol):\n"
        "    async def _send_h11_event(self, event): ...\n"
    )
    found = problems_in(SRC / "example.py", old, ours=set())
    assert found == [
        "example.py:4 imports from private module trio._core",
        "example.py:6 reads private attribute _nursery",
        "example.py:7 replaces hypercorn.trio.tcp_server.TrioSingleTask",
        "example.py:8 replaces H11Protocol.send",
        "example.py:9 setattr on hypercorn.protocol",
        "example.py:11 replaces tcp.TrioSingleTask",
        "example.py:13 overrides private P._send_h11_event",
    ]
