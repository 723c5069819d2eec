from pathlib import Path

from tokenomics.config.dotenv import load_dotenv_files, parse_dotenv


def test_parse_forms() -> None:
    text = """
# comment
PLAIN=value
export EXPORTED=yes
SPACED = padded   # trailing comment
SINGLE='keep $HOME # as is'
DOUBLE="line\\nbreak \\"q\\""
EMPTY=
not a line
"""
    assert parse_dotenv(text) == {
        "PLAIN": "value",
        "EXPORTED": "yes",
        "SPACED": "padded",
        "SINGLE": "keep $HOME # as is",
        "DOUBLE": 'line\nbreak "q"',
        "EMPTY": "",
    }


def test_real_env_beats_cwd_which_beats_home(tmp_path: Path) -> None:
    cwd, home = tmp_path / "cwd", tmp_path / "home"
    (home / ".tokenomics").mkdir(parents=True)
    cwd.mkdir()
    (cwd / ".env").write_text("FOO=cwd\nONLY_CWD=1\n")
    (home / ".tokenomics" / ".env").write_text("FOO=home\nONLY_HOME=1\n")
    environ = {"FOO": "env"}
    load_dotenv_files(environ, cwd, home)
    assert environ == {"FOO": "env", "ONLY_CWD": "1", "ONLY_HOME": "1"}
    environ = {}
    load_dotenv_files(environ, cwd, home)
    assert environ["FOO"] == "cwd"


def test_missing_or_unreadable_files_are_ignored(tmp_path: Path) -> None:
    (tmp_path / ".env").write_bytes(b"\xff\xfe bad")
    environ: dict[str, str] = {}
    load_dotenv_files(environ, tmp_path, None)
    assert environ == {}
