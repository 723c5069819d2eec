"""The eleven built-in PII detectors: RE2 finds candidates, Python validates them.

Better than the Go original's patterns (`core.md` §2.5), deliberately, under the same names:

* `ssn`: `ddd-dd-dddd`, without areas 000/666/9xx, group 00, serial 0000 or a longer dashed run.
* `credit_card`: 13-19 digits, unbroken or grouped by one separator (4-4-4-4, 4-6-5, 4-6-4,
  4-4-4-4-3), with a card network's prefix and length and a valid Luhn checksum.
* `email`: as before, plus `_` and non-ASCII letters (`jürgen@münchen.de`).
* `phone`: `+<country>` numbers of 8-15 digits grouped by spaces, dots, dashes or parentheses;
  NANP numbers with separators; a bare 10/11-digit run only after a cue ("call me at").
  The match covers the whole number, `+` and parentheses included.
* `ip_address`: IPv4 (octets 0-255, no leading zeros, not inside a longer dotted run, not
  after "version"/"build"/"section"…) and IPv6 checked by `ipaddress` (not times, MACs,
  `std::` or `[1::2]`).
* `aws_key`: access key ids, and a 40-character value assigned to `aws_secret_access_key`.
* `api_key`: `sk-proj-`, `sk-svcacct-`, `sk-admin-`, `sk-ant-…-`, `AIza`, `xox?-`, `glpat-`,
  `sk_live_`/`rk_test_`, `hf_`; and, when they mix letters and digits, the original's
  `(sk|key|api|token|secret)[-_]…` (also after `_`, as in `my_key_…`), `Bearer` tokens and
  values assigned to `api_key`, `access_token`, `client_secret`… (the value only).
* `jwt`: `eyJ…` with three (or five) base64url parts.
* `private_key`: the whole PEM block, BEGIN through END, for every `… PRIVATE KEY` variant
  (RSA, EC, DSA, OPENSSH, ENCRYPTED, PGP … BLOCK); a lone BEGIN line still counts.
* `connection_string`: database/broker URLs (`postgres[ql]`, `mongodb+srv`, `rediss`, `amqp`,
  `mysql+pymysql`, `jdbc:…`) to the end, path and query included, minus trailing punctuation.
* `github_token`: `ghp_`, `gho_`, `ghu_`, `ghs_`, `ghr_` and `github_pat_`.

Known misses: secrets with neither a known prefix nor a key name, PEM bodies without BEGIN,
key=value DSNs, SSNs without dashes, national phone formats without `+` (`020 7946 0958`).

Scanning runs on UTF-8 bytes (ASCII `\\b \\d \\w`, as in Go); findings carry `str` offsets.
Findings of different kinds never overlap: leftmost, then longest, then a structural match
over one found through context (`Bearer …`, `api_key=…`), then earlier in `kinds` wins; an
overhanging finding stretches the kept one.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from tokenomics.domain.regex import Pattern, compile_re2

_KINDS: dict[str, tuple[str, int | None]] = {
    "ssn": ("Social Security Number", 11),
    "credit_card": ("Credit Card Number", 23),
    "email": ("Email Address", None),
    "phone": ("Phone Number", 46),
    "ip_address": ("IP Address", 45),
    "aws_key": ("AWS Access Key", 40),
    "api_key": ("API Key", None),
    "jwt": ("JSON Web Token", None),
    "private_key": ("Private Key", None),
    "connection_string": ("Database Connection String", None),
    "github_token": ("GitHub Token", None),
}
PII_LABELS: dict[str, str] = {kind: label for kind, (label, _) in _KINDS.items()}
# The longest text a detector matches, None if unbounded (stream masking). Phones and IPv4
# also look at up to 40 characters before the match (cue words, "version").
MAX_LENGTHS: dict[str, int | None] = {kind: bound for kind, (_, bound) in _KINDS.items()}

Span = tuple[int, int]


@dataclass(frozen=True, slots=True)
class Finding:
    kind: str
    label: str
    start: int
    end: int


_DIGITS = frozenset(b"0123456789")
_ALPHA = frozenset(b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz")
_ALNUM = _DIGITS | _ALPHA
_WORD = _ALNUM | {ord("_")}


def _at(data: bytes, i: int) -> int:
    """The byte at `i`, or 0 outside the text."""
    return data[i] if 0 <= i < len(data) else 0


def _whole(data: bytes, m: Any) -> Span | None:
    return m.span()  # type: ignore[no-any-return]


def _char_before(data: bytes, s: int) -> str:
    """The whole (UTF-8) character that ends right before byte `s`, or ""."""
    i = s - 1
    while i > 0 and 0x80 <= data[i] < 0xC0:
        i -= 1
    return data[max(i, 0) : s].decode("utf-8", "replace")


def _email(data: bytes, m: Any) -> Span | None:
    """Not the `user:password@host` of a URL, nor a tail of a longer local part."""
    s, e = m.span()
    prev = _char_before(data, s)
    if prev.isalnum() or prev in ("_", ".", "%", "+", "-"):
        return None
    if prev == ":" and data[max(0, s - 7) : s].lower() != b"mailto:":
        return None
    return s, e


def _ssn(data: bytes, m: Any) -> Span | None:
    s, e = m.span()
    area, group, serial = data[s : s + 3], data[s + 4 : s + 6], data[s + 7 : e]
    if area in (b"000", b"666") or area[0] == ord("9") or group == b"00" or serial == b"0000":
        return None
    if _at(data, s - 1) in b"-." and _at(data, s - 2) in _ALNUM:
        return None
    if _at(data, e) in b"-." and _at(data, e + 1) in _DIGITS:
        return None
    return s, e


_CARD_LAYOUTS = {(4, 4, 4, 4), (4, 6, 5), (4, 6, 4), (4, 4, 4, 4, 3)}


def _card_network(d: bytes) -> bool:
    n, p2, p3, p4 = len(d), int(d[:2]), int(d[:3]), int(d[:4])
    if d[0] == ord("4"):
        return n in (13, 16, 19)
    if 51 <= p2 <= 55 or 2221 <= p4 <= 2720:
        return n == 16
    if p2 in (34, 37):
        return n == 15
    if p4 == 6011 or p2 in (62, 65) or 644 <= p3 <= 649 or 3528 <= p4 <= 3589:
        return 16 <= n <= 19
    if 300 <= p3 <= 305 or p2 in (36, 38, 39):
        return 14 <= n <= 19
    return False


def _luhn(d: bytes) -> bool:
    total = 0
    for i, c in enumerate(reversed(d)):
        v = c - 48
        if i % 2:
            v = v * 2 - 9 if v > 4 else v * 2
        total += v
    return total % 10 == 0


def _card(data: bytes, m: Any) -> Span | None:
    s, e = m.span()
    raw = data[s:e]
    seps = {c for c in raw if c not in _DIGITS}
    digits = raw
    if seps:
        sep = bytes(seps)
        if len(sep) > 1 or tuple(len(g) for g in raw.split(sep)) not in _CARD_LAYOUTS:
            return None
        digits = raw.replace(sep, b"")
    if not (_card_network(digits) and _luhn(digits)):
        return None
    if _at(data, s - 1) in b"-." and _at(data, s - 2) in _DIGITS:
        return None
    if _at(data, e) in b"-." and _at(data, e + 1) in _DIGITS:
        return None
    return s, e


_PHONE_CUE = compile_re2(
    r"(?i)\b(?:phone|tel|telephone|mobile|cell|cellphone|call|text|sms|fax|whatsapp|contact"
    r"|dial|ring|reach\s+(?:me|us|him|her|them))\b[^\w\n]{0,3}(?:\w+[^\w\n]{1,3}){0,3}$"
)


def _phone_international(data: bytes, s: int, e: int) -> Span | None:
    """Cut the candidate after the last digit group that keeps it at 8-15 digits."""
    best, count = None, 0
    for j in range(s + 1, e + 1):
        before, here = data[j - 1], _at(data, j)
        if before in _DIGITS:
            count += 1
        if count > 15:
            break
        group_end = (before in _DIGITS or before == ord(")")) and here not in _DIGITS
        inside_parentheses = here == ord(")") and j < e
        if group_end and not inside_parentheses and count >= 8 and here not in _ALPHA:
            best = (s, j)
    return best


def _phone(data: bytes, m: Any) -> Span | None:
    s, e = m.span()
    prev = _at(data, s - 1)
    if prev in _WORD or (prev in b"-." and _at(data, s - 2) in _DIGITS):
        return None
    if data[s] == ord("+"):
        return _phone_international(data, s, e)
    if prev == ord("+") or (_at(data, e) in b"-." and _at(data, e + 1) in _DIGITS):
        return None
    if all(c in _DIGITS for c in data[s:e]):  # a bare run: only after a cue word
        area = data[s + 1] if e - s == 11 else data[s]
        if area in b"01" or _PHONE_CUE.search(data[max(0, s - 40) : s]) is None:
            return None
    return s, e


_VERSION_CUE = compile_re2(
    r"(?i)(?:\b(?:v|ver|version|versions|release|rel|build|firmware|fw|rev|revision|patch"
    r"|sdk|section|sec|chapter|clause|step|item|figure|fig|table|paragraph|para)"
    r"(?:\s+(?:is|was|no|number))?|§)\.?\s*[:=#-]?\s*$"
)


def _ipv4(data: bytes, s: int, e: int) -> Span | None:
    if _at(data, s - 1) == ord(".") or (_at(data, e) == ord(".") and _at(data, e + 1) in _DIGITS):
        return None
    for part in data[s:e].split(b"."):
        if int(part) > 255 or (len(part) > 1 and part[0] == ord("0")):
            return None
    if _VERSION_CUE.search(data[max(0, s - 24) : s]) is not None:
        return None
    return s, e


def _ipv6(data: bytes, s: int, e: int) -> Span | None:
    prev, nxt = _at(data, s - 1), _at(data, e)
    if prev in _WORD or prev in b":." or nxt in _WORD or nxt == ord(":"):
        return None
    if nxt == ord(".") and _at(data, e + 1) in _DIGITS:
        return None
    text = data[s:e].decode("ascii")
    try:
        ipaddress.IPv6Address(text)
    except ValueError:
        return None
    groups = [g for g in text.split(":") if g]
    if len(groups) < 3 and max((len(g) for g in groups), default=0) < 3:
        return None  # `::1`, `1::2`, `a::b`: slices and scope operators, not addresses
    return s, e


def _ip(data: bytes, m: Any) -> Span | None:
    s, e = m.span()
    return _ipv6(data, s, e) if b":" in data[s:e] else _ipv4(data, s, e)


def _secret(data: bytes, m: Any) -> Span | None:
    """The captured group: group 1 is a key in a known format as is; a later group (generic
    prefix, `Bearer`, `api_key=`) only when it mixes letters and digits."""
    s = e = group = -1
    for group in range(1, m.re.groups + 1):
        s, e = m.span(group)
        if s >= 0:
            break
    value = data[s:e]
    if group > 1 and not (any(c in _DIGITS for c in value) and any(c in _ALPHA for c in value)):
        return None
    if _at(data, s - 1) in _ALNUM or _at(data, e) in _ALNUM:
        return None
    return s, e


def _url(data: bytes, m: Any) -> Span | None:
    s, e = m.span()
    while data[e - 1] in b".,;:!?)]}":
        e -= 1
    return (s, e) if data[s:e].find(b"://") + 3 < e - s else None


_Check = Callable[[bytes, Any], Span | None]

_PATTERNS: dict[str, tuple[str, _Check]] = {
    "ssn": (r"\b\d{3}-\d{2}-\d{4}\b", _ssn),
    "credit_card": (r"\b\d(?:[ -]?\d){12,18}\b", _card),
    "email": (
        r"[\pL\pN_%+-][\pL\pN._%+-]*@[\pL\pN](?:[\pL\pN-]*[\pL\pN])?"
        r"(?:\.[\pL\pN](?:[\pL\pN-]*[\pL\pN])?)*\.\pL{2,}\b",
        _email,
    ),
    "phone": (
        r"\+[1-9]\d{0,2}(?:[ .-]?(?:\(\d{1,4}\)|\d{1,6})){1,6}"
        r"|(?:\b1[ .-]?)?(?:\(\d{3}\)[ .-]?|\b\d{3}[ .-])\d{3}[ .-]\d{4}\b"
        r"|\b1?\d{10}\b",
        _phone,
    ),
    "ip_address": (
        r"(?:[0-9A-Fa-f]{0,4}:){2,7}(?:\d{1,3}(?:\.\d{1,3}){3}|[0-9A-Fa-f]{1,4})?"
        r"|\b\d{1,3}(?:\.\d{1,3}){3}\b",
        _ip,
    ),
    "aws_key": (
        r"\b((?:AKIA|ABIA|ACCA|ASIA)[0-9A-Z]{16})\b"
        r"|(?i:\b(?:aws_?)?secret_?access_?key)[\"']?\s*[:=]\s*[\"']?([A-Za-z0-9/+]{40})",
        _secret,
    ),
    "api_key": (
        r"\b(sk-(?:proj|svcacct|admin)-[\w-]{20,}|sk-ant-[a-z]+\d*-[\w-]{20,}"
        r"|AIza[\w-]{35}|xox[abeoprs]-[0-9A-Za-z-]{10,}|glpat-[\w-]{20,}"
        r"|[rs]k_(?:live|test)_[0-9A-Za-z]{16,}|hf_[A-Za-z0-9]{30,})"
        r"|((?:sk|key|api|token|secret)[-_][A-Za-z0-9]{20,})"
        r"|(?i:\bbearer\s+)([\w.~+/-]{20,}=*)"
        r"|(?i:\b(?:api[_-]?key|api[_-]?token|secret[_-]?key|access[_-]?token|auth[_-]?token"
        r"|client[_-]?secret|x-api-key)[\"']?\s*[:=]\s*[\"']?)([\w.~+/-]{16,})",
        _secret,
    ),
    "jwt": (r"\beyJ[\w-]{10,}\.[\w-]{2,}\.[\w-]*(?:\.[\w-]+\.[\w-]+)?", _whole),
    "private_key": (
        r"-----BEGIN (?:[A-Z0-9]+ )*PRIVATE KEY(?: BLOCK)?-----"  # the body stops at "-----"
        r"(?:(?:[^-]|-{1,4}[^-])*-----END (?:[A-Z0-9]+ )*PRIVATE KEY(?: BLOCK)?-----)?",
        _whole,
    ),
    "connection_string": (
        r"(?i)\b(?:jdbc:)?(?:postgres(?:ql)?|mongodb|mysql|mariadb|rediss?|amqps?|mssql"
        r"|sqlserver|clickhouse|cockroachdb|couchdb|couchbase|neo4j|bolt|cassandra|memcached"
        r"|ldaps?|oracle|db2|snowflake|kafka|nats|elasticsearch)(?:\+[a-z0-9]+)*://"
        r"[^\s'\"<>`]+",
        _url,
    ),
    "github_token": (r"\b(?:gh[oprsu]_[A-Za-z0-9]{36,}|github_pat_[A-Za-z0-9_]{22,})\b", _whole),
}

_DETECTORS: dict[str, tuple[Pattern, _Check]] = {
    kind: (compile_re2(pattern), check) for kind, (pattern, check) in _PATTERNS.items()
}


def _scan(kind: str, data: bytes, rank: int) -> list[tuple[int, int, int, int]]:
    """Accepted candidates as (start, end, weak, rank), left to right. `weak` marks a value
    found through the context before it."""
    pattern, check = _DETECTORS[kind]
    found: list[tuple[int, int, int, int]] = []
    for m in pattern.finditer(data):
        span = check(data, m)
        if span is not None:
            found.append((span[0], span[1], int(span[0] > m.start()), rank))
    return found


def _resolve(candidates: list[tuple[int, int, int, int]]) -> list[list[int]]:
    """Drop overlaps: leftmost, then longest, then not `weak`, then earliest kind wins; a
    candidate sticking out of the kept one stretches it."""
    candidates.sort(key=lambda c: (c[0], -c[1], c[2], c[3]))
    kept: list[list[int]] = []
    for start, end, _, rank in candidates:
        if kept and start < kept[-1][1]:
            kept[-1][1] = max(kept[-1][1], end)
            continue
        kept.append([start, end, rank])
    return kept


def encode(text: str) -> bytes:
    """The UTF-8 bytes scanned by the detectors (lone surrogates survive)."""
    return text.encode("utf-8", "surrogatepass")


def _decoded_len(chunk: bytes) -> int:
    try:
        return len(chunk.decode("utf-8", "surrogatepass"))
    except UnicodeDecodeError:
        return len(chunk.decode("utf-8", "ignore"))


def char_spans(text: str, data: bytes, spans: Sequence[Span]) -> list[Span]:
    """Byte offsets into `data` (the encoded `text`) as offsets into `text`."""
    if len(data) == len(text):
        return list(spans)
    table: dict[int, int] = {}
    byte_at = char_at = 0
    for point in sorted({p for span in spans for p in span}):
        char_at += _decoded_len(data[byte_at:point])
        byte_at = point
        table[point] = char_at
    return [(table[s], table[e]) for s, e in spans]


def find_pii(text: str, kinds: Sequence[str]) -> list[Finding]:
    """Non-overlapping findings, grouped by kind in `kinds` order, then by position."""
    order = list(dict.fromkeys(kind.lower() for kind in kinds))
    data = encode(text)
    candidates = [found for rank, kind in enumerate(order) for found in _scan(kind, data, rank)]
    if not candidates:
        return []
    kept = sorted(_resolve(candidates), key=lambda k: (k[2], k[0]))  # by kind, then position
    spans = char_spans(text, data, [(start, end) for start, end, _ in kept])
    return [
        Finding(order[rank], PII_LABELS[order[rank]], start, end)
        for (start, end), (_, _, rank) in zip(spans, kept, strict=True)
    ]


def max_length(kind: str) -> int | None:
    return MAX_LENGTHS[kind.lower()]
