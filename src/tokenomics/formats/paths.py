"""The one request path the proxy classifies and sends upstream (issue 12.1).

The client's path is taken as sent (percent-encoded) and decoded exactly once. The route is
decided on the decoded path and the upstream URL is built from it, so the upstream, decoding
what it receives once, sees the very path that was classified. Whatever could make the two
differ is refused: a decoded `?` or `#` (a delimiter upstream), an encoded `/` or `\\`, `.` and
`..` segments, a `%` left after decoding (double encoding, decoded again by some servers), `;`
path parameters, control and space characters, escapes that are malformed or not UTF-8, and
`{`/`}` (the upstream URL's placeholders). Runs of `/` are one `/`, as many servers merge them.
"""

from __future__ import annotations

import re
from urllib.parse import unquote

from tokenomics.domain.errors import BadPath
from tokenomics.domain.memo import remember

_MALFORMED_ESCAPE = re.compile(r"%(?![0-9A-Fa-f]{2})")
_ENCODED_SEPARATOR = re.compile(r"%(2[Ff]|5[Cc])")
_REFUSED = frozenset("?#%\\;{}")
_SLASHES = re.compile(r"//+")


def _refuse(reason: str) -> BadPath:
    return BadPath(f"request path refused: {reason}")


def _decode(raw: str) -> str:
    if not raw.startswith("/"):
        raise _refuse("it must start with /")
    if not raw.isascii():
        raise _refuse("it must be ASCII, other characters percent-encoded")
    if _MALFORMED_ESCAPE.search(raw):
        raise _refuse("malformed percent-encoding")
    if _ENCODED_SEPARATOR.search(raw):
        raise _refuse("an encoded / or \\")
    try:
        return unquote(raw, errors="strict")
    except UnicodeDecodeError:
        raise _refuse("percent-encoded bytes that are not UTF-8") from None


# Accepted paths, decoded: a proxy sees the same few on every request, and the check below
# walks every character in Python. Short ones only, and cleared when full (bounded memory).
_ACCEPTED: dict[str, str] = {}
_ACCEPTED_SIZE = 1024
_ACCEPTED_LENGTH = 256


def canonical_path(raw: str) -> str:
    """The decoded path of `raw` (a request target's path, as sent); `BadPath` if ambiguous."""
    path = _ACCEPTED.get(raw)
    if path is None:
        path = _canonical(raw)
        if len(raw) <= _ACCEPTED_LENGTH:
            remember(_ACCEPTED, raw, path, _ACCEPTED_SIZE)
    return path


def _canonical(raw: str) -> str:
    path = _decode(raw)
    for char in path:
        if char in _REFUSED:
            raise _refuse(f"it contains {char!r} (literal or percent-encoded)")
        if char.isspace() or not char.isprintable():
            raise _refuse("it contains a control or space character")
    path = _SLASHES.sub("/", path)
    if any(segment in (".", "..") for segment in path.split("/")):
        raise _refuse('it contains a "." or ".." segment')
    return path
