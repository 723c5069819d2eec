"""RE2 regular expressions: linear-time matching with the same syntax as the Go original.

The only module that imports `re2` (google-re2). User patterns (model_regex, rule patterns)
can never backtrack catastrophically.
"""

from __future__ import annotations

from typing import Any

import re2

_OPTIONS = re2.Options()
_OPTIONS.log_errors = False

Pattern = Any  # re2 ships no type information


class RegexError(ValueError):
    """A pattern is not valid RE2; the message is RE2's own explanation."""


def compile_re2(pattern: str) -> Pattern:
    try:
        return re2.compile(pattern, _OPTIONS)
    except re2.error as exc:
        detail = exc.args[0] if exc.args else "invalid pattern"
        if isinstance(detail, bytes):
            detail = detail.decode("utf-8", "replace")
        raise RegexError(str(detail)) from None


_QUOTE_META = frozenset("\\.+*?()|[]{}^$")


def escape(text: str) -> str:
    """Go's `regexp.QuoteMeta`: only the metacharacters get a backslash, so a keyword rule's
    compiled text reads like the original's (`(?i)\\bdrop table\\b`, not `drop\\ table`)."""
    return "".join("\\" + ch if ch in _QUOTE_META else ch for ch in text)
