"""The head of an upstream's HTTP/1.1 response (and its trailers): the status line, the header
fields and their framing, read from the bytes `http11.ResponseReader` found (the limits, the
rules of RFC 9112 and what is stricter than h11 are in `http11`'s docstring).

A head is decoded to text once; lines whose names were seen before are read in one loop, any
other shape (a new name, a fold, odd whitespace, no colon) by the line-by-line parser, which
learns the names it validated. `tests/upstream/test_http11_reference.py` pins the two to the
earlier reader on generated and hostile heads.
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass
from typing import Final

from tokenomics.domain.memo import remember

RawHeaders = list[tuple[bytes, bytes]]
_NAMES: dict[bytes, bytes] = {}  # header names seen, lower-cased (valid tokens only)
_NAMES_LIMIT: Final = 1024
_TEXT_NAMES: dict[str, str] = {}  # the same, as text: a head's names as sent, lower-cased
_FRAMING: Final = frozenset({"content-length", "transfer-encoding", "connection"})
_TOKEN: Final = re.compile(rb"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")
_STATUS_LINE: Final = re.compile(rb"HTTP/1\.([01]) ([0-9]{3})(?: [^\r\n]*)?")


class ProtocolError(Exception):
    """The upstream sent something that is not an HTTP/1.1 response we can read, or closed the
    connection before the end of it."""


@dataclass(slots=True)  # not frozen: a frozen __init__ costs ~0.25 us per field
class Head:
    status: int
    fields: list[tuple[str, str]]  # names lower-cased, values stripped, in the order received
    # (latin-1 text: what the client hands on, decoded once for the whole head)

    @property
    def headers(self) -> RawHeaders:
        """`fields` as bytes, as they came."""
        return _raw(self.fields)


@functools.lru_cache(maxsize=1024)  # the same few names go out with every request
def valid_name(name: bytes) -> bool:
    return _TOKEN.fullmatch(name) is not None


def check_bytes(raw: bytes) -> None:
    """No NUL, VT, FF or CR outside a CRLF in a head or trailer (h11 refuses them too)."""
    _check_flat(raw.replace(b"\r\n", b"\n"))


def _check_flat(flat: bytes) -> None:
    """`check_bytes` of a head whose CRLFs were made LFs: any CR left is a lone one."""
    if len(flat.translate(None, b"\r\x00\x0b\x0c")) != len(flat):  # one pass
        raise ProtocolError("NUL, VT, FF or a lone CR in the response head or trailers")


def _field_name(name: bytes) -> bytes | None:
    """`name` lower-cased, or None when it is not a token (known names from a memo)."""
    lowered = _NAMES.get(name)
    if lowered is None and valid_name(name):
        lowered = remember(_NAMES, name, name.lower(), _NAMES_LIMIT)
    return lowered


def parse_fields(lines: list[bytes]) -> RawHeaders:
    """Header (or trailer) lines: names lower-cased, values stripped, folds joined."""
    headers: RawHeaders = []
    for line in lines:
        if line[:1] in (b" ", b"\t"):  # obsolete line folding: continues the previous value
            if not headers:
                raise ProtocolError("folded line before the first header")
            name, value = headers[-1]
            headers[-1] = (name, (value + b" " + line.strip(b" \t")).strip(b" \t"))
            continue
        name, colon, value = line.partition(b":")
        lowered = _field_name(name) if colon else None
        if lowered is None:
            raise ProtocolError("invalid header line")
        headers.append((lowered, value.strip(b" \t")))
    return headers


def framing_fields(headers: RawHeaders) -> tuple[bool, int | None]:
    """(chunked?, Content-Length) of a head or trailers, checked whether or not they frame a
    body: at most one Transfer-Encoding, and only `chunked`; one Content-Length of digits."""
    codings: list[bytes] = []
    lengths: set[bytes] = set()
    for name, value in headers:
        if name == b"content-length":
            lengths.update(item.strip(b" \t") for item in value.split(b","))
        elif name == b"transfer-encoding":
            codings.append(value)
    if len(codings) > 1 or (codings and codings[0].lower() != b"chunked"):
        raise ProtocolError("unsupported Transfer-Encoding")
    if not lengths:
        return bool(codings), None
    length = lengths.pop()
    if lengths or not length.isdigit() or len(length) > 18:
        raise ProtocolError("invalid Content-Length")
    return bool(codings), int(length)


def _known_fields(text: str) -> tuple[list[tuple[str, str]], list[tuple[str, str]]] | None:
    """The fields of header lines (`text`, LF-separated) whose names were all seen before
    (`_TEXT_NAMES`), and those of them that frame the body or the connection; None when a
    line is anything else (a new name, a fold, no colon): `parse_fields` then reads them."""
    fields: list[tuple[str, str]] = []
    framing: list[tuple[str, str]] = []
    names = _TEXT_NAMES
    for line in text.split("\n"):
        name, colon, value = line.partition(":")
        lowered = names.get(name)
        if lowered is None or not colon:
            return None
        field = (lowered, value.strip(" \t"))
        fields.append(field)
        if lowered in _FRAMING:
            framing.append(field)
    return fields, framing


def read_head(raw: bytes) -> tuple[int, list[tuple[str, str]], bool, int | None, bool]:
    """One head (without its blank line): status, fields, chunked?, Content-Length, and
    whether the connection may carry another request (HTTP/1.1 and no `close`): the checks
    of `_parse_head` then `framing_fields`, on a head decoded once."""
    flat = raw.replace(b"\r\n", b"\n")
    _check_flat(flat)
    first, line_end, rest = flat.partition(b"\n")
    status_line = _STATUS_LINE.fullmatch(first)
    if status_line is None or status_line[2] < b"100":
        raise ProtocolError("invalid status line")
    known = _known_fields(rest.decode("latin-1")) if line_end else ([], [])
    if known is None:  # a name not seen yet, a fold, a bad line: the line by line parse
        lines = rest.split(b"\n")
        fields = _text(parse_fields(lines))
        _learn_names(lines)
        framing = [field for field in fields if field[0] in _FRAMING]
    else:
        fields, framing = known
    if status_line[2] == b"101":
        raise ProtocolError("unexpected 101 Switching Protocols")
    chunked, length, close = _framing_text(framing)
    return int(status_line[2]), fields, chunked, length, status_line[1] == b"1" and not close


def _learn_names(lines: list[bytes]) -> None:
    """Remember the names (tokens) of these header lines for `_known_fields`."""
    for line in lines:
        name, colon, _ = line.partition(b":")
        if colon and valid_name(name):
            text = name.decode("ascii")
            remember(_TEXT_NAMES, text, text.lower(), _NAMES_LIMIT)


def _framing_text(framing: list[tuple[str, str]]) -> tuple[bool, int | None, bool]:
    """(chunked?, Content-Length, `close`?) of a head's framing fields: `framing_fields`
    (a lone Content-Length of digits read here), and `_tokens` of Connection."""
    length: str | None = None
    close = other = False
    for name, value in framing:
        if name == "connection":  # "close" among its items (a cheap look first)
            close = close or ("close" in value.lower() and "close" in _items(value))
        elif name == "content-length" and length is None:
            length = value
        else:  # a Transfer-Encoding, a second Content-Length
            other = True
    if length is None and not other:
        return False, None, close
    if other or not (length and length.isascii() and length.isdigit() and len(length) < 19):
        return (*framing_fields(_raw(framing)), close)
    return False, int(length), close


def _items(value: str) -> list[str]:
    """The lower-cased items of a comma-separated list value, empty ones left out (`_tokens`:
    no latin-1 letter lowers to an ASCII one, so bytes or text alike)."""
    return [item.strip(" \t").lower() for item in value.split(",") if item.strip(" \t")]


def _text(headers: RawHeaders) -> list[tuple[str, str]]:
    return [(name.decode("latin-1"), value.decode("latin-1")) for name, value in headers]


def _raw(fields: list[tuple[str, str]]) -> RawHeaders:
    return [(name.encode("latin-1"), value.encode("latin-1")) for name, value in fields]
