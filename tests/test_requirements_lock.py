"""The pyz is built from exact pins (`requirements.lock`, issue 14): the lock covers every
runtime dependency at the version installed where the tests run, and the build uses it."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _load(name: str, path: Path) -> object:
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


def test_the_lock_pins_exactly_what_is_installed() -> None:
    lock = _load("lock_requirements", ROOT / "scripts" / "lock_requirements.py")
    assert (ROOT / "requirements.lock").read_text() == lock.render()  # type: ignore[attr-defined]
    pins = [line for line in (ROOT / "requirements.lock").read_text().splitlines()
            if line and not line.startswith("#")]  # fmt: skip
    assert pins and all("==" in line for line in pins)
    assert not any(line.startswith("hypercorn==") for line in pins)  # not a runtime dependency
    assert any(line.startswith("httptools==") for line in pins)


def test_the_build_passes_the_lock_as_constraints(tmp_path: Path) -> None:
    build = _load("build_pyz", ROOT / "build_pyz.py")
    command = build.pex_command("python", tmp_path, tmp_path / "out.pyz")  # type: ignore[attr-defined]
    assert command[command.index("--constraints") + 1] == str(ROOT / "requirements.lock")
