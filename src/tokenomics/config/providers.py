"""The LLM provider catalogue: embedded defaults < `providers.yaml` < inline `providers:`.

Entries are replaced whole (no field merge). Every malformed file, entry or field is a
`ConfigError` naming the provider, the field, the value and where it came from (file:line).
"""

from __future__ import annotations

import dataclasses
import json
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from importlib import resources
from typing import TYPE_CHECKING, Any, Literal, get_args
from urllib.parse import urlsplit

from tokenomics.config.yamlfile import YamlDoc, load_yaml
from tokenomics.domain.errors import ConfigError

if TYPE_CHECKING:
    from pathlib import Path

AuthScheme = Literal["bearer", "header", "query", "none"]
ApiFormat = Literal["openai", "anthropic", "gemini"]
AUTH_SCHEMES: tuple[AuthScheme, ...] = get_args(AuthScheme)
API_FORMATS: tuple[ApiFormat, ...] = get_args(ApiFormat)
EMBEDDED_FILE = "providers.embedded.yaml"  # inside the `tokenomics.config` package
PROVIDERS_FILE = "providers.yaml"

Where = Callable[[str], str]  # key relative to the source ("openai.auth_scheme") -> "file:line"


@dataclass(frozen=True, slots=True)
class ProviderConfig:
    """One upstream provider. `upstream_url` is a root: the request path is appended to it."""

    name: str
    upstream_url: str = ""
    api_key_env: str = ""
    base_url_env: str = ""
    auth_header: str = "Authorization"
    auth_scheme: AuthScheme = "bearer"
    headers: dict[str, str] = field(default_factory=dict)
    query: dict[str, str] = field(default_factory=dict)  # added when the client did not send them
    models: tuple[str, ...] = ()
    chat_path: str = ""
    formats: tuple[ApiFormat, ...] = ("openai",)
    # Per-model price overrides (USD per million tokens: input, output, cached_input,
    # cache_write), layered over the bundled price table (D15).
    prices: dict[str, dict[str, float]] = field(default_factory=dict)


FIELDS: tuple[str, ...] = tuple(f.name for f in dataclasses.fields(ProviderConfig))[1:]


# ── one field ────────────────────────────────────────────────────────────────────────────────


class _Bad(Exception):
    """A field value is wrong: `problem` is the sentence, `suffix`/`value` locate an item."""

    def __init__(self, problem: str, suffix: str = "", value: Any = None) -> None:
        super().__init__(problem)
        self.problem, self.suffix, self.value = problem, suffix, value


_HEADER_NAME = re.compile(r"[!#$%&'*+.^_`|~0-9A-Za-z-]+")


def _text(raw: Any) -> str:
    if raw is None or isinstance(raw, bool | list | dict):
        raise _Bad("must be a string")
    return str(raw)


def _url(raw: Any) -> str:
    text = _text(raw).strip().rstrip("/")
    if not text or text.startswith("mock://"):
        return text
    try:
        parts = urlsplit(text)
    except ValueError:
        parts = urlsplit("")
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise _Bad("must be an http:// or https:// URL (or mock://…)")
    return text


def _header_name(raw: Any) -> str:
    text = _text(raw).strip()
    if text and not _HEADER_NAME.fullmatch(text):
        raise _Bad("is not a valid HTTP header name")
    return text or "Authorization"


def _path(raw: Any) -> str:
    text = _text(raw).strip()
    if text and not text.startswith("/"):
        raise _Bad('must start with "/"')
    return text


def _choice(raw: Any, allowed: tuple[str, ...]) -> str:
    text = raw.strip().lower() if isinstance(raw, str) else raw
    if text not in allowed:
        raise _Bad("must be one of " + ", ".join(allowed))
    return str(text)


def _str_map(raw: Any, *, header_names: bool) -> dict[str, str]:
    if not isinstance(raw, dict):
        raise _Bad("must be a map of names to strings")
    out: dict[str, str] = {}
    for key, value in raw.items():
        name = str(key)
        if header_names and not _HEADER_NAME.fullmatch(name):
            raise _Bad("is not a valid HTTP header name", f".{name}", name)
        try:
            text = _text(value)
        except _Bad as exc:
            raise _Bad(exc.problem, f".{name}", value) from None
        if "\r" in text or "\n" in text:
            raise _Bad("must not contain line breaks", f".{name}", value)
        out[name] = text
    return out


def _str_list(raw: Any, allowed: tuple[str, ...] = ()) -> tuple[str, ...]:
    if not isinstance(raw, list):
        raise _Bad("must be a list")
    out: list[str] = []
    for i, item in enumerate(raw):
        try:
            text = _choice(item, allowed) if allowed else _text(item)
        except _Bad as exc:
            raise _Bad(exc.problem, f"[{i}]", item) from None
        if text not in out:
            out.append(text)
    if allowed and not out:
        raise _Bad("must list at least one of " + ", ".join(allowed))
    return tuple(out)


_PRICE_FIELDS = ("input", "output", "cached_input", "cache_write")


def _prices(raw: Any) -> dict[str, dict[str, float]]:
    if not isinstance(raw, dict):
        raise _Bad("must be a map of model names to prices")
    out: dict[str, dict[str, float]] = {}
    for model, fields in raw.items():
        if not isinstance(fields, dict):
            raise _Bad("must be a map of " + ", ".join(_PRICE_FIELDS), f".{model}", fields)
        for key, value in fields.items():
            if key not in _PRICE_FIELDS:
                raise _Bad("is not a price field", f".{model}.{key}", value)
            if isinstance(value, bool) or not isinstance(value, int | float) or value < 0:
                raise _Bad("must be a number of USD per million tokens, not negative",
                           f".{model}.{key}", value)  # fmt: skip
        out[str(model)] = {str(k): float(v) for k, v in fields.items()}
    return out


_PARSERS: dict[str, Callable[[Any], Any]] = {
    "upstream_url": _url,
    "api_key_env": lambda raw: _text(raw).strip(),
    "base_url_env": lambda raw: _text(raw).strip(),
    "auth_header": _header_name,
    "auth_scheme": lambda raw: _choice(raw, AUTH_SCHEMES),
    "headers": lambda raw: _str_map(raw, header_names=True),
    "query": lambda raw: _str_map(raw, header_names=False),
    "models": _str_list,
    "chat_path": _path,
    "formats": lambda raw: _str_list(raw, API_FORMATS),
    "prices": _prices,
}


# ── one entry, one source ────────────────────────────────────────────────────────────────────


def _describe(value: Any) -> str:
    return json.dumps(value, default=str, ensure_ascii=False)


def parse_provider(name: str, raw: Any, where: Where) -> ProviderConfig:
    """Validate one entry; `where(key)` locates `name.<field>` keys for messages."""
    if not isinstance(raw, dict):
        raise ConfigError(
            f'{where(name)}: provider "{name}": must be a map of fields, not {_describe(raw)}'
        )
    values: dict[str, Any] = {}
    for key, value in raw.items():
        fname = str(key)
        if fname not in _PARSERS:
            raise ConfigError(
                f'{where(f"{name}.{fname}")}: provider "{name}": unknown field "{fname}"; '
                f"known fields: {', '.join(FIELDS)}"
            )
        if value is None:
            continue
        try:
            values[fname] = _PARSERS[fname](value)
        except _Bad as exc:
            key_path = fname + exc.suffix
            shown = exc.value if exc.suffix else value
            raise ConfigError(
                f'{where(f"{name}.{key_path}")}: provider "{name}": '
                f"{key_path} {_describe(shown)} {exc.problem}"
            ) from None
    if not values.get("api_key_env") and "auth_scheme" not in values:
        values["auth_scheme"] = "none"
    return ProviderConfig(name=name, **values)


def parse_providers(data: Mapping[Any, Any], where: Where) -> dict[str, ProviderConfig]:
    """Every entry of one source (a providers.yaml document or the inline config map)."""
    return {str(name): parse_provider(str(name), raw, where) for name, raw in data.items()}


def _from_doc(doc: YamlDoc) -> dict[str, ProviderConfig]:
    return parse_providers(doc.data, doc.where)


def embedded_doc() -> YamlDoc:
    """The catalogue shipped inside the package."""
    resource = resources.files("tokenomics.config").joinpath(EMBEDDED_FILE)
    with resources.as_file(resource) as path:
        return load_yaml(path)


def find_providers_file(*, cwd: Path, home: Path | None, data_dir: Path) -> Path | None:
    """First found of `./providers.yaml`, `{dir}/providers.yaml`, `~/.tokenomics/providers.yaml`."""
    candidates = [cwd / PROVIDERS_FILE, data_dir / PROVIDERS_FILE]
    if home is not None:
        candidates.append(home / ".tokenomics" / PROVIDERS_FILE)
    return next((c for c in candidates if c.is_file()), None)


def load_providers(
    *,
    cwd: Path,
    home: Path | None,
    data_dir: Path,
    inline: dict[str, Any],
    config_where: Callable[[str], str] | None = None,
) -> dict[str, ProviderConfig]:
    """Embedded < first providers.yaml found < inline config entries; sorted by name."""
    providers = _from_doc(embedded_doc())
    path = find_providers_file(cwd=cwd, home=home, data_dir=data_dir)
    if path is not None:
        providers.update(_from_doc(load_yaml(path)))
    if inline:
        locate = config_where or (lambda key: "config.yaml")
        if not isinstance(inline, dict):
            raise ConfigError(f"{locate('providers')}: providers: must be a map of provider names")
        providers.update(parse_providers(inline, lambda key: locate(f"providers.{key}")))
    return dict(sorted(providers.items()))
