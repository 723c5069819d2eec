"""JSON mode for the mock: a request that asks for JSON gets valid JSON, shaped by its schema.

    json_request(body)          # None (plain text), or the schema asked for ({} when none)
    shaped(schema, "Mock reply to: hi")   # a value the schema accepts, strings = the reply

Where each family asks for JSON:

* OpenAI chat: `response_format` `{"type": "json_object"}` or `{"type": "json_schema",
  "json_schema": {"schema": …}}`;
* OpenAI Responses: `text.format` `{"type": "json_object"}` or `{"type": "json_schema",
  "schema": …}`;
* Anthropic: `output_format` or `output_config.format` `{"type": "json_schema", "schema": …}`;
* Gemini (also wrapped in `generateContentRequest` or `request`, as Code Assist sends it):
  `generationConfig.responseMimeType: application/json` with `responseSchema` (OpenAPI
  subset, upper-case types) or `responseJsonSchema`.

Agents such as gemini-cli retry until the answer parses, so plain text there costs minutes.
The schema is client input: `shaped` follows at most `MAX_DEPTH` levels (and `$ref`s) and
`MAX_PROPERTIES` properties per object, and ignores anything that is not a schema.
"""

from __future__ import annotations

import math
from typing import Any

Json = dict[str, Any]

MAX_DEPTH = 8
MAX_PROPERTIES = 64
_JSON_TYPES = ("json_object", "json_schema")
_SCALARS: dict[str, Any] = {"boolean": False, "null": None}
_BOUNDS = ("minimum", "exclusiveMinimum", "maximum", "exclusiveMaximum")


def _dict(value: Any) -> Json:
    return value if isinstance(value, dict) else {}


def _format_schema(spec: Json) -> Json | None:
    """The schema of an OpenAI/Anthropic format object, {} for json_object, None for text."""
    if spec.get("type") not in _JSON_TYPES:
        return None
    nested = _dict(spec.get("json_schema"))  # chat completions nest it one level down
    return _dict(nested.get("schema", spec.get("schema")))


def _gemini_schema(body: Json) -> Json | None:
    for request in (body, _dict(body.get("generateContentRequest")), _dict(body.get("request"))):
        config = _dict(request.get("generationConfig", request.get("generation_config")))
        mime = config.get("responseMimeType", config.get("response_mime_type"))
        if mime == "application/json":
            for key in ("responseJsonSchema", "responseSchema", "response_schema"):
                if isinstance(schema := config.get(key), dict):
                    return schema
            return {}
    return None


def json_request(body: Json) -> Json | None:
    """The schema the request asks its answer to follow ({} for any JSON), else None."""
    formats = (
        _dict(body.get("response_format")),
        _dict(_dict(body.get("text")).get("format")),
        _dict(body.get("output_format")),
        _dict(_dict(body.get("output_config")).get("format")),
    )
    for spec in formats:
        if (schema := _format_schema(spec)) is not None:
            return schema
    return _gemini_schema(body)


def _resolve(schema: Json, root: Json) -> Json:
    ref = schema.get("$ref")
    if not isinstance(ref, str) or not ref.startswith("#"):
        return schema
    found: Any = root
    for part in ref[2:].split("/") if ref.startswith("#/") else ():
        found = _dict(found).get(part.replace("~1", "/").replace("~0", "~"))
    return _dict(found)


def _type(schema: Json) -> str:
    kind = schema.get("type")
    if isinstance(kind, list):
        kind = next((k for k in kind if isinstance(k, str) and k.lower() != "null"), "null")
    if isinstance(kind, str):
        return kind.lower()
    if "properties" in schema:
        return "object"
    return "array" if "items" in schema else "string"


def _object(schema: Json, text: str, root: Json, depth: int) -> Json:
    properties = _dict(schema.get("properties"))
    return {
        name: _value(_dict(sub), text, root, depth + 1)
        for name, sub in list(properties.items())[:MAX_PROPERTIES]
    }


def _value(schema: Json, text: str, root: Json, depth: int) -> Any:
    if depth > MAX_DEPTH:
        return None
    schema = _resolve(schema, root)
    if "const" in schema:
        return schema["const"]
    enum = schema.get("enum")
    if isinstance(enum, list) and enum:
        return enum[0]
    for key in ("anyOf", "oneOf", "allOf"):
        options = schema.get(key)
        if isinstance(options, list) and options:
            return _value(_dict(options[0]), text, root, depth + 1)
    kind = _type(schema)
    if kind == "object":
        return _object(schema, text, root, depth)
    if kind == "array":
        minimum = str(schema.get("minItems", schema.get("min_items", 0)))
        wanted = min(int(minimum), MAX_PROPERTIES) if minimum.isdigit() else 0
        return [_value(_dict(schema.get("items")), text, root, depth + 1)] * wanted
    if kind in ("integer", "number"):
        return _number(schema, kind)
    return _SCALARS.get(kind, text)


def _number(schema: Json, kind: str) -> float | int:
    """1, or the nearest value `minimum`/`maximum` (also exclusive ones) allow."""
    bounds = {k: v for k in _BOUNDS if isinstance(v := schema.get(k), int | float)}
    bounds = {k: v for k, v in bounds.items() if not isinstance(v, bool) and abs(v) < 2**53}
    value: float = 1  # a count or a score: 0 is often out of range
    if "minimum" in bounds or "exclusiveMinimum" in bounds:
        low = bounds.get("minimum", bounds.get("exclusiveMinimum", 0) + 1)
        value = max(value, low)
    if "maximum" in bounds or "exclusiveMaximum" in bounds:
        high = bounds.get("maximum", bounds.get("exclusiveMaximum", 0) - 1)
        value = min(value, high)
    return math.ceil(value) if kind == "integer" else value


def shaped(schema: Json, text: str) -> Any:
    """A JSON value the schema accepts; every string is `text`. No schema: `{"reply": text}`."""
    if not schema:
        return {"reply": text}
    return _value(schema, text, schema, 0)
