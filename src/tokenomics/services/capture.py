"""What of a captured exchange may be shown in memory files and communication events (sans-I/O).

Headers lose every credential (`is_sensitive`: the known names and any name that looks like
one; the `Finished` record is built with it, and the renderers apply it again to whatever they
are given), bodies become a text sample or a binary marker, and all
text is sanitised: invalid UTF-8 becomes `?`, control characters other than `\\n`, `\\r` and
`\\t` (C0, DEL and C1) become a space (`cli.md` §7.3, §7.6).
"""

from __future__ import annotations

import functools
import re
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from tokenomics.pipeline.headers import CREDENTIALS

if TYPE_CHECKING:
    from collections.abc import Iterable

SENSITIVE = CREDENTIALS | {"set-cookie", "x-auth-token", "x-amz-security-token", "x-csrf-token"}
# Any other header that looks like it carries a secret (`x-goog-api-key`, `anthropic-api-key`,
# `x-session-token`, …). `x-ratelimit-remaining-tokens` and friends stay.
_SECRET_NAME = re.compile(r"api-?key|secret|passw|auth|cookie|(?:^|-)(?:access|session|id)-token$")
_BINARY_TYPES = ("image/", "audio/", "video/", "application/octet-stream")
_UTF8_TAIL = 3  # a body cut at its size limit may end inside a multi-byte sequence

# One `str.translate` pass: lone surrogates from `surrogateescape` (the invalid bytes) → `?`,
# control characters → space.
_SANITISE = {c: " " for c in (*range(0x20), 0x7F, *range(0x80, 0xA0)) if c not in (9, 10, 13)}
_SANITISE.update({c: "?" for c in range(0xDC80, 0xDD00)})
_UNSAFE = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f\udc80-\udcff]")  # _SANITISE's keys
_UNSAFE_ASCII = bytes(c for c in _SANITISE if c < 0x80)


@functools.lru_cache(maxsize=1024)  # header names repeat; the regex is the costly part
def is_sensitive(name: str) -> bool:
    lower = name.lower()
    return lower in SENSITIVE or _SECRET_NAME.search(lower) is not None


@functools.lru_cache(maxsize=1024)
def canonical(name: str) -> str:
    """`content-type` → `Content-Type`, like Go's canonical MIME header keys."""
    return "-".join(part[:1].upper() + part[1:].lower() for part in name.split("-"))


def safe_headers(headers: Iterable[tuple[str, str]]) -> dict[str, list[str]]:
    """Canonical name → values in arrival order, credentials removed."""
    out: dict[str, list[str]] = {}
    for name, value in headers:
        if not is_sensitive(name):
            out.setdefault(canonical(name), []).append(sanitise(value))
    return out


def header_lines(headers: Iterable[tuple[str, str]]) -> list[str]:
    """`  Name: value` lines sorted by name (values of one name in arrival order)."""
    safe = safe_headers(headers)
    return [f"  {name}: {value}" for name in sorted(safe) for value in safe[name]]


def sanitise(text: str) -> str:
    """Control characters (but tab, CR, LF) to spaces, invalid bytes to `?`; a text with none
    (the usual case) is returned as is, without a character-by-character translation."""
    return text.translate(_SANITISE) if _unsafe(text) else text


def _unsafe(text: str) -> bool:
    """Whether `sanitise` has anything to change. ASCII text (known in O(1)) is checked by
    deleting the unsafe bytes in one C pass, ~6x faster than the regex's per-character set
    test; that was the largest part of rendering memory."""
    if text.isascii():
        data = text.encode("ascii")
        return len(data.translate(None, _UNSAFE_ASCII)) != len(data)
    return _UNSAFE.search(text) is not None


def decode(data: bytes) -> str:
    """Bytes as sanitised text, each invalid UTF-8 byte as `?`."""
    return sanitise(data.decode("utf-8", "surrogateescape"))


def is_binary_type(content_type: str) -> bool:
    return content_type.strip().lower().startswith(_BINARY_TYPES)


def text_of(body: bytes, total: int, content_type: str) -> str | None:
    """The body as sanitised text, or None when it is binary (a binary type or invalid UTF-8).

    A body kept short of its `total` size may end in a cut multi-byte sequence; that tail is
    dropped rather than taken for binary.
    """
    if is_binary_type(content_type):
        return None
    try:
        return sanitise(body.decode("utf-8"))
    except UnicodeDecodeError as exc:
        cut = total > len(body) and exc.start >= len(body) - _UTF8_TAIL
        if not cut or exc.reason != "unexpected end of data":
            return None
        return sanitise(body[: exc.start].decode("utf-8"))


def parse_time(text: str, fallback: datetime) -> datetime:
    """An RFC 3339 timestamp as an aware UTC datetime; `fallback` when it does not parse."""
    try:
        parsed = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return fallback
    return parsed.astimezone(UTC) if parsed.tzinfo else parsed.replace(tzinfo=UTC)
