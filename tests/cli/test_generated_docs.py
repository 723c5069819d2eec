"""The committed `completions/` and `man/` match what `scripts/gen_docs.py` generates now.

When a command, option or help text changes, this test fails until the files are regenerated
with `python scripts/gen_docs.py` (and committed). Also checks that the generator is
deterministic, covers every command, and produces man pages that docutils and groff accept.
"""

from __future__ import annotations

import importlib.util
import re
import shutil
import subprocess
from pathlib import Path
from types import ModuleType

import pytest

from tokenomics.cli import docs
from tokenomics.cli.completion import FILES
from tokenomics.cli.main import build_app

ROOT = Path(__file__).resolve().parents[2]
FIX = "run python scripts/gen_docs.py"


def load_generator() -> ModuleType:
    spec = importlib.util.spec_from_file_location("gen_docs", ROOT / "scripts" / "gen_docs.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def tree(base: Path) -> dict[str, str]:
    return {
        path.relative_to(base).as_posix(): path.read_text(encoding="utf-8")
        for folder in ("completions", "man")
        if (base / folder).is_dir()
        for path in sorted((base / folder).rglob("*"))
        if path.is_file()
    }


@pytest.fixture(scope="module")
def generated(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    out = tmp_path_factory.mktemp("generated")
    assert load_generator().main(["--out", str(out)]) == 0
    return tree(out)


def test_committed_completions_and_man_pages_are_up_to_date(generated: dict[str, str]) -> None:
    committed = tree(ROOT)
    missing = sorted(set(generated) - set(committed))
    stale = sorted(set(committed) - set(generated))
    changed = sorted(n for n in set(generated) & set(committed) if generated[n] != committed[n])
    problems = [f"missing: {n}" for n in missing] + [f"no longer generated: {n}" for n in stale]
    problems += [f"out of date: {n}" for n in changed]
    assert not problems, (
        f"completions/ or man/ differ from the CLI definition; {FIX} and commit the result:\n  "
        + "\n  ".join(problems)
    )


def test_check_mode_reports_a_changed_file(tmp_path: Path, capsys) -> None:
    generator = load_generator()
    assert generator.main(["--out", str(tmp_path)]) == 0
    assert generator.main(["--out", str(tmp_path), "--check"]) == 0
    (tmp_path / "man" / "tokenomics.1").write_text("old\n", encoding="utf-8")
    (tmp_path / "man" / "tokenomics-gone.1").write_text("old\n", encoding="utf-8")
    capsys.readouterr()
    assert generator.main(["--out", str(tmp_path), "--check"]) == 1
    err = capsys.readouterr().err
    assert "out of date: man/tokenomics.1" in err
    assert "out of date: man/tokenomics-gone.1" in err and FIX in err
    generator.main(["--out", str(tmp_path)])
    assert not (tmp_path / "man" / "tokenomics-gone.1").exists()


def test_generation_is_deterministic_and_has_no_paths_or_dates(generated: dict[str, str]) -> None:
    again = docs.generated_files(build_app(), load_generator().project_version())
    assert again == generated
    for name, text in generated.items():
        assert str(ROOT) not in text and str(Path.home()) not in text, name
        assert not re.search(r"\b20\d\d-\d\d-\d\d\b", text), name
        assert "Docutils 0." not in text, name


def test_every_shell_and_every_command_has_a_file(generated: dict[str, str]) -> None:
    root = docs.Command((), (build_app(),))
    commands = [c.path[0] for c in docs.subcommands(root)]
    assert {"completion", "provider", "token", "version"} <= set(commands)
    expected = {"man/tokenomics.1", *(f"man/tokenomics-{c}.1" for c in commands)}
    assert set(generated) == expected | set(FILES.values())


def test_man_pages_document_each_subcommand_and_option(generated: dict[str, str]) -> None:
    token = generated["man/tokenomics-token.1"]
    assert '.TH "tokenomics-token" "1" "" "tokenomics ' in token
    for sub in ("create", "get", "update", "delete", "list"):
        assert f".SS tokenomics token {sub}" in token
    assert r"\-\-policy STR" in token
    provider = generated["man/tokenomics-provider.1"]
    assert r"\-\-insecure" in provider and r"\-\-output, \-o CHOICE" in provider
    root = generated["man/tokenomics.1"]
    assert r"tokenomics\-provider\fP(1)" in root and r"\-\-config STR" in root


def test_help_text_is_escaped_for_restructuredtext() -> None:
    assert docs.escape("tkn_... and *all* of a|b") == r"tkn\_... and \*all\* of a\|b"
    assert docs.escape("see `tokenomics serve` now") == r"see \ ``tokenomics serve``\  now"
    assert docs.escape("http://localhost:8080") == r"http\://localhost:8080"


@pytest.mark.skipif(shutil.which("groff") is None, reason="groff is not installed")
def test_man_pages_render_without_groff_warnings(generated: dict[str, str], tmp_path) -> None:
    for name, text in generated.items():
        if not name.startswith("man/"):
            continue
        page = tmp_path / Path(name).name
        page.write_text(text, encoding="utf-8")
        done = subprocess.run(
            ["groff", "-man", "-Tutf8", "-ww", "-z", str(page)],
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert done.returncode == 0 and done.stderr == "", (name, done.stderr)
