"""`cli.md` §6.6 and §10 scenario 109: `completion bash|zsh|fish|powershell`.

The bash script is also exercised in a real bash (when one is installed): it must complete
commands, subcommands, options and choices from the command tree.
"""

from __future__ import annotations

import shlex
import shutil
import subprocess
from pathlib import Path

import pytest

from tokenomics.cli.completion import FILES, SHELLS, completion_script
from tokenomics.cli.main import build_app

BASH = shutil.which("bash")


@pytest.mark.parametrize("shell", SHELLS)
def test_each_shell_gets_the_script_generated_from_the_command_tree(cli, shell: str) -> None:
    result = cli("completion", shell)
    assert result.code == 0, result.err
    assert result.err == ""
    assert result.out == completion_script(build_app(), shell)  # type: ignore[arg-type]
    for command in ("provider", "token", "completion", "version"):
        assert command in result.out


def test_bash_script_registers_the_completion_function(cli) -> None:
    result = cli("completion", "bash")
    assert "_tokenomics()" in result.out
    assert "complete -F _tokenomics tokenomics" in result.out


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        ((), "requires an argument"),
        (("foo",), 'Invalid value "foo"'),
        (("bash", "zsh"), "zsh"),
        (("BASH",), "BASH"),
    ],
)
def test_missing_extra_or_invalid_shell_exits_1(cli, argv: tuple[str, ...], message: str) -> None:
    result = cli("completion", *argv)
    assert result.code == 1
    assert result.out == ""
    assert result.err.startswith("Error: ") and message in result.err


def test_help_names_the_shells(cli) -> None:
    result = cli("completion", "--help")
    assert result.code == 0
    assert "bash" in result.out and "powershell" in result.out


def test_committed_file_names_follow_each_shells_convention() -> None:
    assert FILES == {
        "bash": "completions/tokenomics.bash",
        "zsh": "completions/_tokenomics",
        "fish": "completions/tokenomics.fish",
        "powershell": "completions/tokenomics.ps1",
    }


def bash_complete(script: Path, *words: str) -> list[str]:
    """Candidates the bash script offers for `words` (the last one is being completed)."""
    assert BASH is not None
    program = (
        f"source {shlex.quote(str(script))}\n"
        f"COMP_WORDS=({' '.join(shlex.quote(w) for w in words)})\n"
        "COMP_CWORD=$(( ${#COMP_WORDS[@]} - 1 ))\n"
        "COMPREPLY=()\n"
        "_tokenomics\n"
        'printf "%s\\n" "${COMPREPLY[@]}"\n'
    )
    done = subprocess.run(
        [BASH, "--norc", "--noprofile", "-c", program],
        capture_output=True,
        text=True,
        timeout=30,
        check=True,
    )
    return [line for line in done.stdout.splitlines() if line]


@pytest.mark.skipif(BASH is None, reason="bash is not installed")
def test_bash_completes_commands_options_and_choices(cli, tmp_path: Path) -> None:
    script = tmp_path / "tokenomics.bash"
    script.write_text(cli("completion", "bash").out, encoding="utf-8")
    subprocess.run([BASH, "-n", str(script)], check=True, timeout=30)
    assert bash_complete(script, "tokenomics", "pro") == ["provider"]
    assert sorted(bash_complete(script, "tokenomics", "provider", "")) == [
        "list",
        "models",
        "test",
    ]
    assert sorted(bash_complete(script, "tokenomics", "completion", "")) == sorted(SHELLS)
    assert bash_complete(script, "tokenomics", "provider", "list", "--output", "") == [
        "table",
        "json",
    ]
    assert "--insecure" in bash_complete(script, "tokenomics", "provider", "test", "--")
    assert "--config" in bash_complete(script, "tokenomics", "--")
