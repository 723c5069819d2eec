"""Typed reading of a JSON object with errors that name the path of the bad value
(`policy.providers.openai[0].max_tokens must be an integer, got a string`)."""

from __future__ import annotations

from typing import Any


class SchemaError(Exception):
    pass


def _type_name(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int | float):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "an array"
    return "an object"


def expect(ok: bool, path: str, wanted: str, value: Any) -> None:
    if not ok:
        raise SchemaError(f"{path} must be {wanted}, got {_type_name(value)}")


def object_of(value: Any, path: str, known: tuple[str, ...]) -> dict[str, Any]:
    expect(isinstance(value, dict), path, "an object", value)
    for key in value:
        if key not in known:
            raise SchemaError(f'unknown field "{key}" in {path}')
    return {k: v for k, v in value.items() if v is not None}


def string(obj: dict[str, Any], key: str, path: str) -> str:
    value = obj.get(key, "")
    expect(isinstance(value, str), f"{path}.{key}", "a string", value)
    return str(value)


def integer(obj: dict[str, Any], key: str, path: str) -> int:
    value = obj.get(key, 0)
    expect(type(value) is int, f"{path}.{key}", "an integer", value)
    return int(value)


def number(obj: dict[str, Any], key: str, path: str) -> float:
    value = obj.get(key, 0)
    expect(type(value) in (int, float), f"{path}.{key}", "a number", value)
    return float(value)


def boolean(obj: dict[str, Any], key: str, path: str) -> bool:
    value = obj.get(key, False)
    expect(isinstance(value, bool), f"{path}.{key}", "a boolean", value)
    return bool(value)


def array(obj: dict[str, Any], key: str, path: str) -> list[Any]:
    value = obj.get(key, [])
    expect(isinstance(value, list), f"{path}.{key}", "an array", value)
    return list(value)


def strings(obj: dict[str, Any], key: str, path: str) -> tuple[str, ...]:
    items = array(obj, key, path)
    for i, item in enumerate(items):
        expect(isinstance(item, str), f"{path}.{key}[{i}]", "a string", item)
    return tuple(items)
