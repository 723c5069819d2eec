"""The configuration reference (docs/CONFIGURATION.md), generated from the settings declarations.

Every key of `config.settings` with its type, default, environment variable and the description
declared with it, so the reference cannot drift from the code: `scripts/gen_docs.py` writes
it and a test fails when the committed file differs.
"""

from __future__ import annotations

import dataclasses
import types
from typing import Any, Literal, get_args, get_origin

from tokenomics.config.loader import Key, iter_keys

PATH = "docs/CONFIGURATION.md"

INTRO = """\
# Configuration reference

<!-- Generated from src/tokenomics/config/settings.py by scripts/gen_docs.py; do not edit. -->

Values come from, strongest first: command-line flags, `TOKENOMICS_*` environment variables,
the config file, the defaults below. The config file is the first found of
`./.tokenomics/config.yaml`, `./config.yaml`, `{dir}/config.yaml` (when `--dir` or
`TOKENOMICS_DIR` is given) and `~/.tokenomics/config.yaml`, or exactly `--config PATH`. `.env`
files in the working directory and in `~/.tokenomics/` are loaded first, never overriding
variables that are already set. An unknown key is an error, and so is a bad value: one line
naming the key, the value and where it came from (`config.yaml:12`, `env ...`, `flag --port`).

Every key has an environment variable: `TOKENOMICS_` + the key upper-cased with dots as
underscores. Lists and maps given as text (environment, flags) are read as YAML or JSON:
`TOKENOMICS_CLI_MAPS='{"aider": "openai"}'`. Booleans take `true/false`, `1/0`, `yes/no`,
`on/off`.

Paths: `dir` moves everything that has no path of its own (token store, `sessions/`,
`memory/`, `certs/`, logs, the PID file); a relative path you set is taken from the working
directory, except `logging.proxy_log_file`, which is relative to `dir`. Files Tokenomics writes
are 0600 and the directories it creates 0700; `{dir}`, `sessions/`, `memory/` and `certs/` are
narrowed to 0700 when they exist with wider modes.

Global flags, on every command: `--config PATH`, `--dir D` (key `dir`), `--db PATH` (key
`storage.db_path`), `--debug` (tracebacks). `serve`, `start` and `run` take `--host` and
`--port` (keys `server.host` and the port of the listener they start).

Environment variables that are not configuration keys:

{variables}

## Keys

| Key | Type | Default | Environment variable | Description |
|---|---|---|---|---|
"""


VARIABLES = (
    ("`TOKENOMICS_HASH_KEY`", "HMAC key of token hashes; required to create tokens and to "
     "serve (its name is `security.hash_key_env`)."),
    ("`TOKENOMICS_ENCRYPTION_KEY`", "Encrypts policies at rest when set (its name is "
     "`security.encryption_key_env`)."),
    ("`TOKENOMICS_KEY`", "The wrapper token `run` and `init` hand to the client (`--token`)."),
    ("`TOKENOMICS_PROXY_URL`", "A running proxy that `run` and `init` use instead of starting "
     "one (`--proxy-url`)."),
    ("whatever a policy's `base_key_env` or a provider's `api_key_env` names",
     "The real upstream API key."),
)  # fmt: skip


def type_text(tp: Any) -> str:
    """A key's type in words: `bool`, `one of json, text`, `list of strings`, …"""
    origin, args = get_origin(tp), get_args(tp)
    if origin is Literal:
        return "one of " + ", ".join(str(a) for a in args)
    if origin is tuple:
        item = args[0]
        if dataclasses.is_dataclass(item):
            return "list of maps"
        return f"list of {type_text(item)}s"
    if origin is dict:
        return "map" if args[1] is Any else f"map of {type_text(args[1])}s"
    if origin is types.UnionType:
        return " or ".join(type_text(a) for a in args)
    return {bool: "bool", int: "integer", str: "string", float: "number"}.get(tp, str(tp))


def default_text(value: Any) -> str:
    if isinstance(value, bool):
        return "`true`" if value else "`false`"
    if isinstance(value, str):
        return f'`"{value}"`' if value else '`""`'
    if isinstance(value, tuple | list):
        return "`[]`" if not value else "`" + ", ".join(map(str, value)) + "`"
    if isinstance(value, dict):
        return "`{}`" if not value else "`" + str(value) + "`"
    return f"`{value}`"


def _cell(text: str) -> str:
    return text.replace("|", "\\|")


def _row(name: str, tp: Any, default: Any, env: str, doc: str) -> str:
    env_cell = f"`{env}`" if env else "—"
    cells = (f"`{name}`", type_text(tp), default_text(default), env_cell, _cell(doc))
    return "| " + " | ".join(cells) + " |"


def _item_rows(key: Key) -> list[str]:
    """One row per field of a list's elements (`events.webhooks[].url`), when they are maps."""
    origin, args = get_origin(key.type), get_args(key.type)
    if origin is not tuple or not dataclasses.is_dataclass(args[0]):
        return []
    assert isinstance(args[0], type)
    items = iter_keys(args[0], prefix=f"{key.name}[].")
    return [_row(item.name, item.type, item.default, "", item.doc) for item in items]


def configuration_reference() -> str:
    """The markdown of docs/CONFIGURATION.md."""
    rows: list[str] = []
    for key in iter_keys():
        rows.append(_row(key.name, key.type, key.default, key.env, key.doc))
        rows += _item_rows(key)
    variables = "\n".join(
        ["| Variable | Purpose |", "|---|---|", *(f"| {n} | {t} |" for n, t in VARIABLES)]
    )
    return INTRO.replace("{variables}", variables) + "\n".join(rows) + "\n"
