"""Man pages from the command tree: reStructuredText built from the cyclopts app, then roff.

One page for the tool (`tokenomics.1`) and one per top-level command (`tokenomics-token.1`, …);
a command group's page documents each of its subcommands. The text comes from the same help
that `--help` prints (cyclopts' reStructuredText renderer), arranged in the usual man page
sections, and is turned into roff by docutils' manpage writer. The output is deterministic: no
date, no path, no docutils version; only the package version given by the caller.
"""

from __future__ import annotations

import re
import sys
from collections.abc import Iterator
from contextlib import ExitStack
from dataclasses import dataclass

from cyclopts import App
from cyclopts.docs.base import iterate_commands
from cyclopts.docs.rst import generate_rst_docs

from tokenomics.cli.completion import FILES, SHELLS, completion_script

PROG = "tokenomics"
MANUAL = "Tokenomics Manual"
_PANEL = re.compile(r"^\*\*(.+):\*\*$")
_HEADER = re.compile(r"\A(?:\.\. _[^\n]*:\n\n)?(?:([=\-^\"'~])\1*\n)?[^\n]+\n([=\-^\"'~])\2*\n\n")
_META_ONLY = ("**Required**", "Choices: ", "Default: ", "Environment variable: ")
_META = re.compile(  # cyclopts' ` [**Required**, Choices: …, Default: …]` after a description
    r"^(?P<text>.*?)(?P<meta> \[(?:"
    + "|".join(re.escape(prefix) for prefix in _META_ONLY)
    + r").*\])?$"
)
_SPECIAL = re.compile(r"([\\`*_|])")
_CODE_SPAN = re.compile(r"`([^`\n]+)`")
_URL_SCHEME = re.compile(r"\b(https?|mock)://")
_WRITER_LINE = re.compile(r"^\.\\\" by the Docutils [^\n]* manpage writer\.$", re.MULTILINE)


@dataclass(frozen=True, slots=True)
class Command:
    """One node of the command tree: its words after `tokenomics` and the apps leading to it."""

    path: tuple[str, ...]
    apps: tuple[App, ...]

    @property
    def app(self) -> App:
        return self.apps[-1]

    @property
    def line(self) -> str:
        return " ".join((PROG, *self.path))


@dataclass(frozen=True, slots=True)
class Help:
    """A command's help, split: usage lines, description, and panels (title, rst body)."""

    usage: tuple[str, ...]
    description: str
    panels: tuple[tuple[str, str], ...]


def subcommands(command: Command) -> list[Command]:
    return [
        Command((*command.path, name), (*command.apps, sub))
        for name, sub in sorted(iterate_commands(command.app), key=lambda item: item[0])
    ]


def walk(command: Command) -> Iterator[Command]:
    """`command` and every command below it, depth first, sorted by name."""
    yield command
    for sub in subcommands(command):
        yield from walk(sub)


def _rst(command: Command) -> str:
    """cyclopts' reStructuredText for one command (not recursive), without anchor and title."""
    if not command.path:
        return generate_rst_docs(
            command.app, recursive=False, generate_toc=False, no_root_title=True
        )
    with ExitStack() as stack:
        for parent, child in zip(command.apps, command.apps[1:], strict=False):
            stack.enter_context(child.app_stack([parent, child]))
        text = generate_rst_docs(
            command.app,
            command_chain=[PROG, *command.path],
            recursive=False,
            generate_toc=False,
        )
    return _HEADER.sub("", text.lstrip("\n"), count=1)


def _plain(text: str) -> str:
    text = _SPECIAL.sub(r"\\\1", text)
    return _URL_SCHEME.sub(r"\1\\://", text)  # no automatic links (`http://host:<port>`)


def escape(text: str) -> str:
    """Help text (markdown-ish plain text) as reStructuredText.

    Special characters are escaped (`tkn_...` must not become a reference, `*` no emphasis);
    markdown code spans become inline literals."""
    parts = _CODE_SPAN.split(text)
    return "".join(
        _plain(part) if i % 2 == 0 else f"\\ ``{part}``\\ " for i, part in enumerate(parts)
    )


def _escape_panel(body: str) -> str:
    """Escape the help text of cyclopts' definition lists, keeping its own markup."""
    out = []
    for line in body.splitlines():
        stripped = line.lstrip()
        if line.startswith(" ") and not stripped.startswith(_META_ONLY):
            match = _META.match(stripped)
            assert match is not None  # the pattern matches any line
            indent = line[: len(line) - len(stripped)]
            line = indent + escape(match.group("text")) + (match.group("meta") or "")
        out.append(line)
    return "\n".join(out)


def command_help(command: Command) -> Help:
    blocks: list[tuple[str, list[str]]] = [("", [])]
    for line in _rst(command).splitlines():
        match = _PANEL.match(line)
        if match:
            blocks.append((match.group(1), []))
        else:
            blocks[-1][1].append(line)
    preamble = "\n".join(blocks[0][1]).strip("\n")
    usage: tuple[str, ...] = ()
    if preamble.startswith("::\n\n"):
        literal, _, preamble = preamble[4:].partition("\n\n")
        usage = tuple(line.strip() for line in literal.splitlines() if line.strip())
    panels = tuple(
        (title, _escape_panel("\n".join(lines).strip("\n")))
        for title, lines in blocks[1:]
        if title != "Commands" and "\n".join(lines).strip()
    )
    return Help(usage, escape(preamble.strip("\n")), panels)


def short_help(command: Command) -> str:
    """The first paragraph of the help, on one line."""
    return (command.app.help or "").strip().split("\n\n")[0].replace("\n", " ").strip()


def summary(command: Command) -> str:
    """The short help, man-style: `a self-hosted gateway for LLM APIs`."""
    text = short_help(command)
    head, sep, rest = text.partition(": ")
    if sep and head.lower() == (command.path[-1] if command.path else PROG).lower():
        text = rest
    text = text.rstrip(".")
    if len(text) > 1 and text[0].isupper() and text[1].islower():
        text = text[0].lower() + text[1:]
    return text


def _section(title: str, body: str) -> list[str]:
    return [title, "=" * len(title), "", body.strip("\n"), ""] if body.strip() else []


def _subsection(title: str, body: str) -> list[str]:
    return [title, "-" * len(title), "", body.strip("\n"), ""]


def _literal(lines: tuple[str, ...] | list[str]) -> str:
    return "::\n\n" + "\n".join(f"    {line}" for line in lines) if lines else ""


def _panels(panels: tuple[tuple[str, str], ...]) -> str:
    """The panels; titled, unless the only one is the usual `Parameters`."""
    if len(panels) == 1 and panels[0][0] == "Parameters":
        return panels[0][1]
    return "\n\n".join(f"**{title}:**\n\n{body}" for title, body in panels)


def _commands_list(commands: list[Command]) -> str:
    return "\n\n".join(
        f"``{c.path[-1]}``\n    {escape(short_help(c))} See **{page_name(c)}**\\ (1)."
        for c in commands
    )


def page_name(command: Command) -> str:
    return "-".join((PROG, *command.path[:1]))


def _head(name: str, subtitle: str, version: str) -> list[str]:
    subtitle = escape(subtitle)
    bar, sub = "=" * len(name), "-" * len(subtitle)
    fields = [":Manual section: 1", f":Manual group: {MANUAL}", f":Version: {PROG} {version}"]
    return [bar, name, bar, "", sub, subtitle, sub, "", *fields, ""]


def root_page_rst(root: App, version: str) -> str:
    command = Command((), (root,))
    info = command_help(command)
    commands = subcommands(command)
    synopsis = [f"{PROG} [OPTIONS] COMMAND [ARGS]...", f"{PROG} --help", f"{PROG} --version"]
    lines = _head(PROG, summary(command), version)
    lines += _section("SYNOPSIS", _literal(synopsis))
    lines += _section("DESCRIPTION", info.description)
    lines += _section("OPTIONS", _panels(info.panels))
    lines += _section("COMMANDS", _commands_list(commands))
    lines += _section("SEE ALSO", ", ".join(f"**{page_name(c)}**\\ (1)" for c in commands))
    return "\n".join(lines)


def command_page_rst(command: Command, version: str) -> str:
    """The page of a top-level command; a group's page has one subsection per subcommand."""
    info = command_help(command)
    below = [c for c in walk(command) if c is not command]
    usage = [line for c in walk(command) for line in command_help(c).usage]
    lines = _head(page_name(command), summary(command), version)
    lines += _section("SYNOPSIS", _literal(usage or [f"{command.line} COMMAND [ARGS]..."]))
    lines += _section("DESCRIPTION", info.description)
    lines += _section("OPTIONS", _panels(info.panels))
    sections: list[str] = []
    for sub in below:
        sub_info = command_help(sub)
        parts = (_literal(sub_info.usage), sub_info.description, _panels(sub_info.panels))
        body = "\n\n".join(part for part in parts if part)
        sections += _subsection(sub.line, body)
    lines += _section("COMMANDS", "\n".join(sections))
    global_options = (
        f"The options of **{PROG}**\\ (1) (``--config``, ``--db``, ``--dir``, ``--debug``) "
        f"go before the command: ``{PROG} --config FILE {' '.join(command.path)} ...``."
    )
    lines += _section("GLOBAL OPTIONS", global_options)
    lines += _section("SEE ALSO", f"**{PROG}**\\ (1)")
    return "\n".join(lines)


def to_man(rst: str) -> str:
    """Roff from reStructuredText through docutils' manpage writer; warnings are errors."""
    from docutils.core import publish_string  # type: ignore[import-untyped]
    from docutils.writers import manpage  # type: ignore[import-untyped]

    settings = {"report_level": 2, "halt_level": 2, "input_encoding": "utf-8"}
    roff = publish_string(rst, writer=manpage.Writer(), settings_overrides=settings)
    text = roff.decode("utf-8") if isinstance(roff, bytes) else str(roff)
    return _WRITER_LINE.sub('.\\\\" by the Docutils manpage writer.', text)


def man_pages(root: App, version: str) -> dict[str, str]:
    """`man/<page>.1` -> roff, for the tool and each top-level command."""
    pages = {f"man/{PROG}.1": to_man(root_page_rst(root, version))}
    for command in subcommands(Command((), (root,))):
        pages[f"man/{page_name(command)}.1"] = to_man(command_page_rst(command, version))
    return pages


def generated_files(root: App, version: str) -> dict[str, str]:
    """Every generated file (relative path -> text): completion scripts and man pages.

    cyclopts names an app without an explicit name after the running program (`python -m
    pytest` under the tests), so the program name is pinned while generating: the files
    depend only on the command tree and the version."""
    saved, sys.argv[0] = sys.argv[0], PROG
    try:
        files = {FILES[shell]: completion_script(root, shell) for shell in SHELLS}
        files.update(man_pages(root, version))
    finally:
        sys.argv[0] = saved
    return files
