"""The one loader of settings: flags > `TOKENOMICS_*` environment > config file > defaults.

Every error names the key, the offending value and where it came from (file:line, env var, flag).
Loading never writes anything; directories are created by whoever first writes into them.
"""

from __future__ import annotations

import dataclasses
import functools
import types
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, Union, cast, get_args, get_origin, get_type_hints

import yaml

from tokenomics.config.paths import resolve_paths
from tokenomics.config.settings import Settings
from tokenomics.config.yamlfile import YamlDoc, load_yaml
from tokenomics.domain.errors import ConfigError

ENV_PREFIX = "TOKENOMICS_"
_TRUE = ("1", "t", "true", "yes", "on")
_FALSE = ("0", "f", "false", "no", "off")
_NOT_KEYS = ("config_file",)  # Settings fields that are not configuration keys


@dataclass(frozen=True, slots=True)
class Key:
    """One configuration key: its dotted name, environment variable, type, default and the
    description declared with it (`Annotated[type, "text"]` in `config.settings`)."""

    name: str
    env: str
    type: Any
    default: Any
    doc: str = ""


def env_name(key: str) -> str:
    return ENV_PREFIX + key.upper().replace(".", "_")


def _hints(cls: type) -> dict[str, Any]:
    return get_type_hints(cls)


@functools.cache
def field_docs(cls: type) -> dict[str, str]:
    """The description declared with each field of a settings class ("" when it has none)."""
    return {
        name: next((m for m in getattr(hint, "__metadata__", ()) if isinstance(m, str)), "")
        for name, hint in get_type_hints(cls, include_extras=True).items()
    }


def _is_settings_class(tp: Any) -> bool:
    return isinstance(tp, type) and dataclasses.is_dataclass(tp)


def iter_keys(cls: type = Settings, prefix: str = "") -> Iterator[Key]:
    """Every leaf key of the settings tree, in declaration order."""
    hints = _hints(cls)
    for f in dataclasses.fields(cls):
        if f.name in _NOT_KEYS:
            continue
        name = f"{prefix}{f.name}"
        tp = hints[f.name]
        if _is_settings_class(tp):
            yield from iter_keys(tp, name + ".")
            continue
        if f.default is not dataclasses.MISSING:
            default = f.default
        else:
            default = cast("Callable[[], Any]", f.default_factory)()
        yield Key(name, env_name(name), tp, default, field_docs(cls)[f.name])


# ── conversion of one raw value to a field's type ───────────────────────────────────────────


class _Bad(Exception):
    pass


def _describe(value: Any) -> str:
    text = (
        value if isinstance(value, str) else yaml.safe_dump(value, default_flow_style=True).strip()
    )
    if isinstance(text, str) and text.endswith("\n..."):
        text = text[:-4]
    return f'"{text}"' if isinstance(value, str) else str(text)


def _to_bool(raw: Any) -> bool:
    if isinstance(raw, bool):
        return raw
    if isinstance(raw, str) and raw.strip().lower() in _TRUE + _FALSE:
        return raw.strip().lower() in _TRUE
    raise _Bad("must be true or false")


def _to_int(raw: Any) -> int:
    if isinstance(raw, int) and not isinstance(raw, bool):
        return raw
    if isinstance(raw, str):
        try:
            return int(raw.strip(), 10)
        except ValueError:
            pass
    raise _Bad("must be a whole number")


def _from_text(raw: Any, tp: Any) -> Any:
    """Lists and maps given as text (environment, flags) are read as YAML/JSON."""
    origin = get_origin(tp)
    if isinstance(raw, str) and origin in (tuple, dict):
        try:
            return yaml.safe_load(raw)
        except yaml.YAMLError:
            raise _Bad("must be a YAML or JSON list/map") from None
    return raw


def _convert(raw: Any, tp: Any, key: str, where: str) -> Any:
    origin = get_origin(tp)
    if tp is bool:
        return _to_bool(raw)
    if tp is int:
        return _to_int(raw)
    if tp is str:
        if isinstance(raw, (bool, list | dict)) or raw is None:
            raise _Bad("must be a string")
        return str(raw)
    if origin is Literal:
        allowed = get_args(tp)
        text = raw.strip().lower() if isinstance(raw, str) else raw
        if text not in allowed:
            raise _Bad("must be one of " + ", ".join(allowed))
        return text
    if origin in (Union, types.UnionType):
        raise TypeError(f"unsupported settings type for {key}: {tp}")
    raw = _from_text(raw, tp)
    if origin is tuple:
        (item_type, _) = get_args(tp)
        if raw is None:
            return ()
        if not isinstance(raw, list):
            raise _Bad("must be a list")
        return tuple(
            _convert_item(item, item_type, f"{key}[{i}]", where) for i, item in enumerate(raw)
        )
    if origin is dict:
        _, value_type = get_args(tp)
        if raw is None:
            return {}
        if not isinstance(raw, dict):
            raise _Bad("must be a map of names to values")
        if value_type is Any:
            return {str(k): v for k, v in raw.items()}
        return {str(k): _convert_item(v, value_type, f"{key}.{k}", where) for k, v in raw.items()}
    raise TypeError(f"unsupported settings type for {key}: {tp}")


def _convert_item(raw: Any, tp: Any, key: str, where: str) -> Any:
    if _is_settings_class(tp):
        if not isinstance(raw, dict):
            raise ConfigError(f"{key}: {_describe(raw)} must be a map of keys ({where})")
        return _build_record(tp, raw, key, where)
    try:
        return _convert(raw, tp, key, where)
    except _Bad as exc:
        raise ConfigError(f"{key}: {_describe(raw)} {exc} ({where})") from None


def _build_record(cls: type, raw: dict[str, Any], key: str, where: str) -> Any:
    """A list element such as one webhook: every field from the element or its default."""
    hints = _hints(cls)
    names = [f.name for f in dataclasses.fields(cls)]
    for name in raw:
        if name not in names:
            raise ConfigError(
                f'unknown key "{key}.{name}" ({where}); known keys: {", ".join(names)}'
            )
    values = {
        n: _convert_item(raw[n], hints[n], f"{key}.{n}", where)
        for n in names
        if n in raw and raw[n] is not None
    }
    return cls(**values)


# ── sources ──────────────────────────────────────────────────────────────────────────────────


def _lookup(data: Mapping[str, Any], dotted: str) -> tuple[bool, Any]:
    node: Any = data
    for part in dotted.split("."):
        if not isinstance(node, Mapping) or part not in node:
            return False, None
        node = node[part]
    return True, node


def _check_unknown(doc: YamlDoc, cls: type = Settings, prefix: str = "") -> None:
    hints = _hints(cls)
    node_ok, node = (True, doc.data) if not prefix else _lookup(doc.data, prefix.rstrip("."))
    if not node_ok or node is None:
        return
    key_name = prefix.rstrip(".") or "top level"
    if not isinstance(node, Mapping):
        raise ConfigError(f"{key_name}: must be a map of keys ({doc.where(key_name)})")
    fields = {f.name: f for f in dataclasses.fields(cls) if f.name not in _NOT_KEYS}
    for name in node:
        dotted = f"{prefix}{name}"
        if name not in fields:
            raise ConfigError(
                f'unknown configuration key "{dotted}" ({doc.where(dotted)}); '
                f"known keys here: {', '.join(fields)}"
            )
        if _is_settings_class(hints[name]):
            _check_unknown(doc, hints[name], dotted + ".")


Flags = Mapping[str, tuple[Any, str]]  # dotted key -> (value, the flag as the user typed it)


def _pick(
    key: Key, flags: Flags, environ: Mapping[str, str], doc: YamlDoc | None
) -> tuple[Any, str]:
    """The value of one key from the strongest source, and a description of that source."""
    if key.name in flags:
        value, flag = flags[key.name]
        where = f"flag {flag}"
        return _convert_item(value, key.type, key.name, where), where
    env_value = environ.get(key.env, "")
    if env_value != "":
        where = f"env {key.env}"
        return _convert_item(env_value, key.type, key.name, where), where
    if doc is not None:
        found, value = _lookup(doc.data, key.name)
        if found and value is not None:
            where = doc.where(key.name)
            return _convert_item(value, key.type, key.name, where), where
    return key.default, "default"


_PORT = (lambda v: 0 <= v <= 65535, "must be a port number from 0 to 65535")
_NON_NEGATIVE = (lambda v: v >= 0, "must not be negative")
_SECONDS = (lambda v: v > 0, "must be a positive number of seconds")
_RANGES: dict[str, tuple[Callable[[Any], bool], str]] = {
    "server.http_port": _PORT,
    "server.https_port": _PORT,
    "server.max_request_mb": (lambda v: v > 0, "must be a positive number of MiB"),
    "server.max_buffered_mb": (lambda v: v > 0, "must be a positive number of MiB"),
    "server.body_timeout": _SECONDS,
    "server.idle_timeout": _SECONDS,
    "server.stream_idle_timeout": _SECONDS,
    "server.shutdown_grace": _NON_NEGATIVE,
    "session.redis.db": _NON_NEGATIVE,
    "remote.sync": _NON_NEGATIVE,
    "events.webhooks": (
        lambda hooks: all(h.url and h.timeout >= 0 for h in hooks),
        "needs a url for every webhook and a timeout that is not negative",
    ),
}


def _check_ranges(values: dict[str, Any], sources: dict[str, str]) -> None:
    for name, (ok, problem) in _RANGES.items():
        if not ok(values[name]):
            raise ConfigError(
                f"{name}: {_describe_value(values[name])} {problem} ({sources[name]})"
            )


def _describe_value(value: Any) -> str:
    if isinstance(value, tuple):
        return "[" + ", ".join(str(getattr(v, "url", v)) or '""' for v in value) + "]"
    return _describe(value)


def _assemble(cls: type, values: dict[str, Any], prefix: str = "") -> Any:
    hints = _hints(cls)
    kwargs: dict[str, Any] = {}
    for f in dataclasses.fields(cls):
        if f.name in _NOT_KEYS:
            continue
        name = f"{prefix}{f.name}"
        kwargs[f.name] = (
            _assemble(hints[f.name], values, name + ".")
            if _is_settings_class(hints[f.name])
            else values[name]
        )
    return cls(**kwargs)


def find_config_file(cwd: Path, home: Path | None, data_dir: str = "") -> Path | None:
    """The first of ./.tokenomics/, ./, {dir}/ and ~/.tokenomics/ holding a config.yaml."""
    candidates = [cwd / ".tokenomics" / "config.yaml", cwd / "config.yaml"]
    if data_dir:
        candidates.append(Path(data_dir).expanduser() / "config.yaml")
    if home is not None:
        candidates.append(home / ".tokenomics" / "config.yaml")
    return next((c for c in candidates if c.is_file()), None)


def load_settings(
    *,
    cwd: Path,
    home: Path | None,
    environ: Mapping[str, str],
    config_path: str = "",
    flags: Flags | None = None,
) -> Settings:
    """Read the config file (if any), apply environment and flags, resolve every path."""
    flags = flags or {}
    flag_dir = flags.get("dir", ("", ""))[0] or environ.get(env_name("dir"), "")
    if config_path:
        path: Path | None = Path(config_path).expanduser()
        if not path.is_file():  # type: ignore[union-attr]
            raise ConfigError(f"load config: config file not found: {config_path}")
    else:
        path = find_config_file(cwd, home, flag_dir)
    doc = load_yaml(path) if path is not None else None
    if doc is not None:
        _check_unknown(doc)
    picked = {key.name: _pick(key, flags, environ, doc) for key in iter_keys()}
    values = {name: value for name, (value, _) in picked.items()}
    _check_ranges(values, {name: where for name, (_, where) in picked.items()})
    settings = _assemble(Settings, values)
    settings = dataclasses.replace(settings, config_file=str(path) if path else "")
    return resolve_paths(settings, cwd, home)
