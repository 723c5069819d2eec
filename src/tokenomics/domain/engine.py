"""Evaluating content rules: check, mask and the spans a mask would redact (`core.md` §2.1-2.3).

A rule applies when its scope is `both` or the scope asked (`input`/`output`). `check` walks
the rules in order and stops at the first `fail` match by raising `Blocked`; `mask` runs every
`mask` rule in order, each on the previous one's output.

Each `Match` carries two texts:

* `message`, the original's wording for logs and events, which may quote the pattern:
  `matched regex rule "<name or pattern>"`, `matched keyword rule "<name>": <compiled regex>`,
  `detected PII in rule "<name>": <labels>`, `detected jailbreak attempt in rule "<name>"`.
* `client_message`, safe to send back (D8): it names the rule, never the pattern. A named
  rule is quoted, an unnamed one is referred to by its type and index:
  `matched regex rule "no-secrets"` / `matched regex rule 1`,
  `matched keyword rule "profanity"` / `matched keyword rule 2`,
  `detected PII in rule "pii-guard": Email Address` / `detected PII in pii rule 0: Email Address`,
  `detected jailbreak attempt in rule "jb"` / `detected jailbreak attempt in jailbreak rule 3`.
  `Blocked` reads `request blocked by rule <i>: <client_message>`.

Deliberate differences from the original: an empty regex match redacts nothing (Go inserted
`[REDACTED]` between characters); a PII rule scans its detectors together with overlaps
resolved (see `pii`), so two detectors never count or mask the same text twice.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from tokenomics.domain.errors import Blocked
from tokenomics.domain.jailbreak import detect_jailbreak
from tokenomics.domain.pii import find_pii, max_length

if TYPE_CHECKING:
    from collections.abc import Sequence

    from tokenomics.domain.regex import Pattern
    from tokenomics.domain.rules import Rule

REDACTED = "[REDACTED]"
JAILBREAK_REDACTED = "[JAILBREAK_ATTEMPT_REDACTED]"
_REGEX_META = frozenset("\\.+*?()|[]{}^$")


@dataclass(frozen=True, slots=True)
class Match:
    index: int
    name: str
    action: str
    message: str
    client_message: str


def applies(rule: Rule, scope: str) -> bool:
    return rule.scope == "both" or rule.scope == scope


_GO_ESCAPES = {"\a": "\\a", "\b": "\\b", "\f": "\\f", "\n": "\\n", "\r": "\\r", "\t": "\\t"}
_GO_ESCAPES |= {"\v": "\\v", "\\": "\\\\", '"': '\\"'}


def _go_quote(text: str) -> str:
    """Go's `%q`: double quotes, backslash escapes, non-printable characters as codes."""
    out = []
    for ch in text:
        if ch in _GO_ESCAPES:
            out.append(_GO_ESCAPES[ch])
        elif ch.isprintable():
            out.append(ch)
        elif ord(ch) < 0x80:
            out.append(f"\\x{ord(ch):02x}")
        else:
            out.append(f"\\u{ord(ch):04x}" if ord(ch) <= 0xFFFF else f"\\U{ord(ch):08x}")
    return '"' + "".join(out) + '"'


def _ref(rule: Rule, index: int, typed: bool) -> str:
    if rule.name:
        return f"rule {_go_quote(rule.name)}"
    return f"{rule.type} rule {index}" if typed else f"rule {index}"


def _texts(rule: Rule, index: int, detail: str) -> tuple[str, str]:
    """(message, client_message) for a rule that matched; `detail` is type-specific."""
    quoted = _go_quote(rule.display_name)
    if rule.type == "regex":
        return f"matched regex rule {quoted}", f"matched regex {_ref(rule, index, False)}"
    if rule.type == "keyword":
        message = f"matched keyword rule {quoted}: {detail}"
        return message, f"matched keyword {_ref(rule, index, False)}"
    if rule.type == "pii":
        message = f"detected PII in rule {quoted}: {detail}"
        return message, f"detected PII in {_ref(rule, index, True)}: {detail}"
    message = f"detected jailbreak attempt in rule {quoted}"
    return message, f"detected jailbreak attempt in {_ref(rule, index, True)}"


def _detail(rule: Rule, text: str) -> str | None:
    """What matched (keyword regex, PII labels, "" for regex/jailbreak), or None."""
    if rule.type == "regex":
        return "" if rule.compiled[0].search(text) is not None else None
    if rule.type == "keyword":
        for pattern in rule.compiled:
            if pattern.search(text) is not None:
                return str(pattern.pattern)
        return None
    if rule.type == "pii":
        findings = find_pii(text, rule.detect)
        return ", ".join(f.label for f in findings) if findings else None
    return "" if detect_jailbreak(text) is not None else None


def evaluate(rule: Rule, index: int, text: str) -> Match | None:
    """The match of one rule on `text` (scope and action not considered), or None."""
    detail = _detail(rule, text)
    if detail is None:
        return None
    message, client_message = _texts(rule, index, detail)
    return Match(index, rule.name, rule.action, message, client_message)


def check(rules: Sequence[Rule], text: str, scope: str) -> list[Match]:
    """Every match of the rules in scope, in order; the first `fail` match raises `Blocked`."""
    matches: list[Match] = []
    for index, rule in enumerate(rules):
        if not applies(rule, scope):
            continue
        match = evaluate(rule, index, text)
        if match is None:
            continue
        matches.append(match)
        if rule.action == "fail":
            raise Blocked(matches)
    return matches


def _pattern_spans(pattern: Pattern, text: str) -> list[tuple[int, int]]:
    return [m.span() for m in pattern.finditer(text) if m.end() > m.start()]


def _redact(text: str, spans: Sequence[tuple[int, int]]) -> str:
    if not spans:
        return text
    parts: list[str] = []
    last = 0
    for start, end in spans:
        parts += (text[last:start], REDACTED)
        last = end
    parts.append(text[last:])
    return "".join(parts)


def _mask_rule(rule: Rule, text: str) -> str:
    if rule.type == "jailbreak":
        return JAILBREAK_REDACTED if detect_jailbreak(text) is not None else text
    if rule.type == "pii":
        return _redact(text, sorted((f.start, f.end) for f in find_pii(text, rule.detect)))
    for pattern in rule.compiled:  # keyword rules: each keyword in turn
        text = _redact(text, _pattern_spans(pattern, text))
    return text


def mask(rules: Sequence[Rule], text: str, scope: str) -> str:
    """`text` after every `mask` rule in scope, in order, each on the previous output."""
    for rule in rules:
        if rule.action == "mask" and applies(rule, scope):
            text = _mask_rule(rule, text)
    return text


def _merge(found: list[tuple[int, int]]) -> list[tuple[int, int]]:
    merged: list[tuple[int, int]] = []
    for start, end in sorted(found):
        if merged and start <= merged[-1][1]:
            merged[-1] = (merged[-1][0], max(merged[-1][1], end))
        else:
            merged.append((start, end))
    return merged


def spans(rules: Sequence[Rule], text: str, scope: str) -> list[tuple[int, int]]:
    """The sorted, merged regions of `text` that the `mask` rules in scope would redact.

    Each rule is run on the original text (`mask` runs them one after the other), so the
    two can differ only where a later rule would have matched across an earlier redaction.
    A jailbreak mask rule that fires covers the whole text.
    """
    found: list[tuple[int, int]] = []
    for rule in rules:
        if rule.action != "mask" or not applies(rule, scope):
            continue
        if rule.type == "jailbreak":
            if detect_jailbreak(text) is not None:
                return [(0, len(text))] if text else []
        elif rule.type == "pii":
            found += [(f.start, f.end) for f in find_pii(text, rule.detect)]
        else:
            for pattern in rule.compiled:
                found += _pattern_spans(pattern, text)
    return _merge(found)


def _rule_bound(rule: Rule) -> int | None:
    if rule.type == "keyword":
        return max(len(keyword) for keyword in rule.keywords)
    if rule.type == "pii":
        bounds = [max_length(kind) for kind in rule.detect]
        return None if None in bounds else max(b for b in bounds if b is not None)
    if rule.type == "regex":
        literal = rule.pattern.removeprefix("(?i)")
        return None if _REGEX_META & set(literal) else len(literal)
    return None


def max_match_len(rules: Sequence[Rule]) -> int | None:
    """The longest text any of `rules` can match (0 for no rules), or None if unbounded.

    Known for keywords, literal regexes and the bounded PII kinds (ssn, credit_card, phone,
    ip_address, aws_key); None for other regexes, unbounded PII kinds and jailbreak rules
    (which redact the whole text). Pass only the rules that matter, e.g. the mask rules.
    """
    longest = 0
    for rule in rules:
        bound = _rule_bound(rule)
        if bound is None:
            return None
        longest = max(longest, bound)
    return longest
