"""Content rules as declared in policies: parsing and validation (the engine comes later).

Rule messages and defaults follow the Go original (`core.md` §1.3, §1.5).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

from tokenomics.domain.regex import Pattern, RegexError, compile_re2, escape

RuleType = Literal["regex", "keyword", "pii", "jailbreak"]
Action = Literal["fail", "warn", "log", "mask"]
Scope = Literal["input", "output", "both"]

ACTIONS: tuple[Action, ...] = ("fail", "warn", "log", "mask")
SCOPES: tuple[Scope, ...] = ("input", "output", "both")
RULE_TYPES: tuple[RuleType, ...] = ("regex", "keyword", "pii", "jailbreak")
PII_TYPES = (
    "ssn",
    "credit_card",
    "email",
    "phone",
    "ip_address",
    "aws_key",
    "api_key",
    "jwt",
    "private_key",
    "connection_string",
    "github_token",
)
_PII_HINT = "ssn, credit_card, email, phone, ip_address, aws_key, api_key"


class RuleError(ValueError):
    """A rule does not validate; the caller prefixes where it sits."""


class RuleShapeError(ValueError):
    """The rules value is neither a list of rule objects nor a list of strings."""


@dataclass(frozen=True, slots=True)
class Rule:
    type: RuleType
    action: Action
    scope: Scope
    name: str = ""
    pattern: str = ""
    keywords: tuple[str, ...] = ()
    detect: tuple[str, ...] = ()
    compiled: tuple[Pattern, ...] = ()

    @property
    def display_name(self) -> str:
        """The name used in messages: its own, else the pattern (regex) or the type."""
        if self.name:
            return self.name
        return self.pattern if self.type == "regex" else self.type


def _strings(value: Any, key: str) -> tuple[str, ...]:
    if value is None:
        return ()
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise RuleShapeError(f'"{key}" must be an array of strings')
    return tuple(value)


def _string(value: Any, key: str) -> str:
    if value is None:
        return ""
    if not isinstance(value, str):
        raise RuleShapeError(f'"{key}" must be a string')
    return value


_RULE_KEYS = ("name", "type", "pattern", "keywords", "detect", "action", "scope")


def parse_rule_list(value: Any) -> list[dict[str, Any]]:
    """Accept the object form or the legacy list of regex strings; return rule objects."""
    if value is None:
        return []
    if not isinstance(value, list):
        raise RuleShapeError("expected an array")
    if all(isinstance(item, dict) for item in value):
        for item in value:
            unknown = [key for key in item if key not in _RULE_KEYS]
            if unknown:
                raise RuleShapeError(f'unknown rule field "{unknown[0]}"')
        return list(value)
    if all(isinstance(item, str) for item in value):
        return [{"type": "regex", "pattern": item} for item in value]
    raise RuleShapeError("array mixes rule objects and strings, or holds other values")


def compile_rule(raw: dict[str, Any]) -> Rule:
    """Validate one rule object (checks in the original's order) and compile its patterns."""
    try:
        name = _string(raw.get("name"), "name")
        action = _string(raw.get("action"), "action") or "fail"
        scope = _string(raw.get("scope"), "scope") or "input"
        rule_type = _string(raw.get("type"), "type") or "regex"
        pattern = _string(raw.get("pattern"), "pattern")
        keywords = _strings(raw.get("keywords"), "keywords")
        detect = _strings(raw.get("detect"), "detect")
    except RuleShapeError as exc:
        raise RuleError(str(exc)) from None
    if action not in ACTIONS:
        raise RuleError(f'invalid rule action "{action}"; must be fail, warn, log, or mask')
    if scope not in SCOPES:
        raise RuleError(f'invalid rule scope "{scope}"; must be input, output, or both')
    compiled: tuple[Pattern, ...] = ()
    if rule_type == "regex":
        if not pattern:
            raise RuleError("regex rule requires a pattern")
        try:
            compiled = (compile_re2(pattern),)
        except RegexError as exc:
            raise RuleError(f'invalid rule regex "{pattern}": {exc}') from None
    elif rule_type == "keyword":
        if not keywords:
            raise RuleError("keyword rule requires at least one keyword")
        if any(not k.strip() for k in keywords):
            raise RuleError("keyword rule has an empty keyword")
        compiled = tuple(compile_re2(r"(?i)\b" + escape(k) + r"\b") for k in keywords)
    elif rule_type == "pii":
        if not detect:
            raise RuleError(f"pii rule requires at least one detect type ({_PII_HINT})")
        for kind in detect:
            if kind.lower() not in PII_TYPES:
                raise RuleError(f'unknown PII type "{kind}"; available: {", ".join(PII_TYPES)}')
        detect = tuple(kind.lower() for kind in detect)
    elif rule_type == "jailbreak":
        if pattern or keywords or detect:
            raise RuleError("jailbreak rule should not have pattern, keywords, or detect fields")
    else:
        raise RuleError(
            f'invalid rule type "{rule_type}"; must be regex, keyword, pii, or jailbreak'
        )
    return Rule(
        type=rule_type,  # type: ignore[arg-type]
        action=action,
        scope=scope,
        name=name,
        pattern=pattern,
        keywords=keywords,
        detect=detect,
        compiled=compiled,
    )
