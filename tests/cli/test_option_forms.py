"""Every value-taking option of every command parses as `--opt V` and as `--opt=V`.

The commands and their options come from the app itself (cyclopts' `assemble_argument_collection`
on each node of the command tree), so a new option is covered without touching this test. The
argument vector goes through the same steps as `tokenomics.cli.main.run`: `run`'s child
marking, the meta app (global options), then the command's own parser. Values start with a
hyphen on purpose: `--policy -` means stdin, `--port -1` gets the command's range error.
"""

from __future__ import annotations

import inspect
import io
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Literal, get_args, get_origin

import pytest
from cyclopts import App

from tokenomics.cli import docs
from tokenomics.cli.main import build_app
from tokenomics.cli.run import mark_child_argv

APP = build_app()
VALUE_FOR: dict[Any, tuple[str, Any]] = {str: ("-", "-"), int: ("-3", -3), float: ("-2.5", -2.5)}


def sample(hint: Any) -> tuple[str, Any]:
    """A value for an option of type `hint`, as typed and as parsed."""
    if get_origin(hint) is Literal:
        choice = get_args(hint)[0]
        return str(choice), choice
    if get_origin(hint) is tuple:  # a repeatable option (`--by day --by model`): one value
        typed, value = sample(get_args(hint)[0])
        return typed, (value,)
    members = [h for h in get_args(hint) if h is not type(None)] or [hint]
    return VALUE_FOR[members[0]]


def arguments(app: App) -> list[Any]:
    return [arg for arg in app.assemble_argument_collection() if arg.parameter.parse is not False]


def is_flag(hint: Any) -> bool:
    return hint is bool or bool in get_args(hint)


def takes_value(arg: Any) -> bool:
    return not is_flag(arg.hint) and arg.field_info.kind in (
        inspect.Parameter.KEYWORD_ONLY,
        inspect.Parameter.POSITIONAL_OR_KEYWORD,
    )


def required_rest(app: App, skip: str) -> tuple[list[str], list[str]]:
    """Other required options (`--hash V`) and the required positional arguments."""
    options: list[str] = []
    positionals: list[str] = []
    for arg in arguments(app):
        if arg.field_info.name == skip:
            continue
        if arg.field_info.kind is inspect.Parameter.VAR_POSITIONAL:
            positionals.append("true")  # `run`'s command
        elif (
            arg.required
            and takes_value(arg)
            and arg.field_info.kind is not (inspect.Parameter.POSITIONAL_OR_KEYWORD)
        ):
            options += [arg.name, sample(arg.hint)[0]]
        elif arg.required:  # positional arguments take no leading hyphen
            positionals.append("bash" if get_origin(arg.hint) is Literal else "abc")
    return options, positionals


def commands() -> Iterator[docs.Command]:
    """Every command that runs (groups are walked into, not run)."""
    for command in docs.walk(docs.Command((), (APP,))):
        if command.path and command.app.default_command is not None:
            yield command


def value_options(app: App) -> Iterator[tuple[Any, str]]:
    for arg in arguments(app):
        if takes_value(arg):
            yield from ((arg, name) for name in arg.names if name.startswith("--"))


def cases() -> Iterator[Any]:
    """Each command's own options, and the global options written after each command."""
    for command in commands():
        for arg, name in value_options(command.app):
            yield pytest.param(command.path, arg, name, id=f"{command.line} {name}")
        for arg, name in value_options(APP.meta):
            yield pytest.param(command.path, arg, name, id=f"{command.line} {name} (global)")
    for arg, name in value_options(APP.meta):
        yield pytest.param((), arg, name, id=f"tokenomics {name} version")


def parse(argv: list[str]) -> dict[str, Any]:
    """The bound arguments of the meta app and of the command, as `main.run` parses them."""
    _, meta, _ = APP.meta.parse_args(mark_child_argv(argv), exit_on_error=False, print_error=False)
    values = {k: v for k, v in meta.arguments.items() if k != "tokens"}
    _, bound, _ = APP.parse_args(meta.arguments["tokens"], exit_on_error=False, print_error=False)
    return {**values, **bound.arguments}


def command_app(path: tuple[str, ...]) -> App:
    app = APP
    for word in path:
        app = app[word]
    return app


@pytest.mark.parametrize(("path", "arg", "name"), list(cases()))
def test_option_takes_its_value_in_both_forms(path: tuple[str, ...], arg: Any, name: str) -> None:
    typed, expected = sample(arg.hint)
    app = command_app(path or ("version",))
    options, positionals = required_rest(app, arg.field_info.name)
    words = list(path) or ["version"]
    for form in ([name, typed], [f"{name}={typed}"]):
        argv = [*form, *words] if not path else [*words, *form, *options, *positionals]
        assert parse(argv)[arg.field_info.name] == expected, argv


def test_every_command_with_options_is_walked() -> None:
    walked = {case.id.split(" --")[0] for case in cases()}
    expected = {"tokenomics", "tokenomics token create", "tokenomics run", "tokenomics stop"}
    assert expected <= walked
    assert len(walked) == len(list(commands())) + 1  # every command takes --config, --db, --dir


def test_global_options_after_run_are_not_the_childs() -> None:
    assert parse(["run", "--dir", "/d", "--port", "9", "node", "--dir", "x"]) == {
        "dir": "/d",
        "port": 9,
        "command": ("node", "--dir", "x"),
    }


def test_token_create_reads_the_policy_from_stdin(cli, monkeypatch) -> None:
    monkeypatch.setattr("sys.stdin", io.StringIO('{"base_key_env": "OPENAI_API_KEY"}'))
    result = cli("token", "create", "--policy", "-", "--json")
    assert result.code == 0, result.err
    assert json.loads(result.out)["policy"] == {"base_key_env": "OPENAI_API_KEY"}


def test_run_takes_the_data_dir_after_the_command_word(cli, tmp_path: Path) -> None:
    data = tmp_path / "data"
    result = cli("run", "--dir", str(data), "--token", "tkn_x", "true")
    assert result.code == 0, result.err
    assert (data / "sessions").is_dir()
