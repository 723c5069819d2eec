"""The bundled price table (`prices.embedded.yaml`) with per-model overrides (decision D15).

An override entry is merged field by field onto the bundled entry of the same model (so
`{output: 12}` changes only the output price) or adds a new model, which then needs at least
`input` and `output`. Every malformed entry or field is a `ConfigError` naming the model and
the field.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from importlib import resources
from typing import Any

from tokenomics.config.yamlfile import load_yaml
from tokenomics.domain.errors import ConfigError
from tokenomics.domain.pricing import Price, PriceTable

EMBEDDED_FILE = "prices.embedded.yaml"  # inside the `tokenomics.config` package
FIELDS = ("input", "output", "cached_input", "cache_write")
REQUIRED = ("input", "output")

Where = Callable[[str], str]  # "model.field" -> "file:line" (or any label)


def load_prices(
    overrides: Mapping[str, Mapping[str, float]] | None = None,
    *,
    where: Where | None = None,
) -> PriceTable:
    """The bundled prices with `overrides` (model -> {field: USD per 1M tokens}) applied."""
    raw = _embedded()
    if overrides:
        locate = where or (lambda key: "price override")
        if not isinstance(overrides, Mapping):
            raise ConfigError(f"{locate('prices')}: prices must be a map of model names")
        for model, entry in overrides.items():
            name = str(model).lower()
            fields = _fields(str(model), entry, locate)
            raw[name] = {**raw.get(name, {}), **fields}
    return PriceTable({name: _price(name, fields) for name, fields in raw.items()})


def _embedded() -> dict[str, dict[str, float]]:
    resource = resources.files("tokenomics.config").joinpath(EMBEDDED_FILE)
    with resources.as_file(resource) as path:
        doc = load_yaml(path)
    prices = {}
    for model, entry in doc.data.items():
        fields = _fields(str(model), entry, doc.where)
        missing = [name for name in REQUIRED if name not in fields]
        if missing:
            raise ConfigError(
                f"{doc.where(str(model))}: price of model {model!r} lacks {', '.join(missing)}"
            )
        prices[str(model).lower()] = fields
    return prices


def _fields(model: str, entry: Any, where: Where) -> dict[str, float]:
    """Validate one entry: a map of known fields to finite non-negative numbers."""
    if not isinstance(entry, Mapping):
        raise ConfigError(
            f"{where(model)}: price of model {model!r} must be a map of "
            f"{', '.join(FIELDS)} (USD per million tokens), got {entry!r}"
        )
    fields: dict[str, float] = {}
    for key, value in entry.items():
        if key not in FIELDS:
            raise ConfigError(
                f"{where(f'{model}.{key}')}: price of model {model!r} has unknown field "
                f"{key!r}; use {', '.join(FIELDS)}"
            )
        if isinstance(value, bool) or not isinstance(value, int | float) or not _valid(value):
            raise ConfigError(
                f"{where(f'{model}.{key}')}: price of model {model!r}, field {key!r} must be a "
                f"number >= 0 (USD per million tokens), got {value!r}"
            )
        fields[key] = float(value)
    return fields


def _valid(value: float) -> bool:
    return math.isfinite(value) and value >= 0


def _price(model: str, fields: Mapping[str, float]) -> Price:
    missing = [name for name in REQUIRED if name not in fields]
    if missing:
        raise ConfigError(
            f"price of model {model!r} needs {' and '.join(missing)} "
            "(USD per million tokens) for a model that is not in the bundled table"
        )
    return Price(
        fields["input"],
        fields["output"],
        cached_input=fields.get("cached_input"),
        cache_write=fields.get("cache_write"),
    )
