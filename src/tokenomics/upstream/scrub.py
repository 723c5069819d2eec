"""Scrubbing our secrets out of what an upstream sends back.

An upstream (a proxy, a self-hosted server) may echo the request's `Authorization`,
`x-goog-api-key` or `?key=` in an error body or a header. Every occurrence of the provider key
the gateway injected (and of the client's wrapper token, had the client put it where the
upstream sees it) is replaced by `[REDACTED]` in the response's headers and body, where they
enter from the upstream: the client, memory, logs and events only ever see the scrubbed bytes.

Forms scrubbed: the secret as is; percent-encoded (an echoed URL), with upper- or lower-case
hex; JSON-escaped (`"`, `\\`, control characters), `/` also as `\\/`. Secrets are assumed to be
printable ASCII, as provider keys are (usually `[A-Za-z0-9_-]`, where every form is the secret
itself); one shorter than `MIN_SECRET` bytes is not scrubbed (it would mangle innocent text).

A body is scrubbed chunk by chunk: the end of a chunk that could begin a secret is held back
until the next chunk, so a secret split across chunks is caught; what is held goes out at the
end. The work per chunk is a C-level search per form, plus, only when the chunk ends with a
byte some secret contains, a search for where a secret could begin in its last bytes.
"""

from __future__ import annotations

import functools
import re
from typing import TYPE_CHECKING, Final
from urllib.parse import quote

import orjson

if TYPE_CHECKING:
    from collections.abc import Iterable

MARKER: Final = b"[REDACTED]"
MIN_SECRET: Final = 8
_PERCENT_HEX: Final = re.compile(r"%[0-9A-F]{2}")


@functools.lru_cache(maxsize=256)  # the same few keys on every request
def _forms(secret: str) -> frozenset[bytes]:
    percent = quote(secret, safe="")
    escaped = orjson.dumps(secret).decode()[1:-1]
    lower_hex = _PERCENT_HEX.sub(lambda hex_: hex_[0].lower(), percent)
    found = {secret, percent, lower_hex, escaped, escaped.replace("/", "\\/")}
    return frozenset(form.encode() for form in found)


def _overlap(data: bytes, form: bytes) -> int:
    """The length of the longest end of `data` that begins `form` (shorter than `form`)."""
    first = form[:1]
    pos = data.find(first, max(0, len(data) - len(form) + 1))
    while pos >= 0:
        if form.startswith(data[pos:]):
            return len(data) - pos
        pos = data.find(first, pos + 1)
    return 0


class _Forms:
    """What scrubbing a set of secrets needs, made once per set (every request of a token
    with one provider key has the same): the forms, a longer one first, their text for
    headers, and the bytes they contain."""

    __slots__ = ("alphabet", "forms", "texts")

    def __init__(self, forms: Iterable[bytes]) -> None:
        self.forms = tuple(sorted(forms, key=len, reverse=True))
        self.texts = tuple(form.decode("latin-1") for form in self.forms)  # headers' decoding
        self.alphabet = frozenset(b"".join(self.forms))


@functools.lru_cache(maxsize=256)
def _forms_of(secrets: tuple[str, ...]) -> _Forms | None:
    forms = {form for secret in secrets if len(secret) >= MIN_SECRET for form in _forms(secret)}
    return _Forms(forms) if forms else None


class Scrubber:
    """Scrubs one response: its headers once, its body chunk by chunk (`feed`, then `flush`)."""

    __slots__ = ("_alphabet", "_forms", "_held", "_texts")

    def __init__(self, forms: Iterable[bytes] | _Forms) -> None:
        made = forms if isinstance(forms, _Forms) else _Forms(forms)
        self._forms, self._texts, self._alphabet = made.forms, made.texts, made.alphabet
        self._held = b""

    @classmethod
    def of(cls, secrets: Iterable[str]) -> Scrubber | None:
        """A scrubber for these secrets; None when none is long enough to scrub."""
        made = _forms_of(tuple(secrets))
        return cls(made) if made is not None else None

    def feed(self, data: bytes) -> bytes:
        """The next part of the body, scrubbed, minus an end that could begin a secret."""
        if self._held:
            data, self._held = self._held + data, b""
        for form in self._forms:
            if form in data:
                data = data.replace(form, MARKER)
        if data and data[-1] in self._alphabet:
            keep = max(_overlap(data, form) for form in self._forms)
            if keep:
                data, self._held = data[:-keep], data[-keep:]
        return data

    def flush(self) -> bytes:
        """What was held back at the end of the body (no secret: it ended before one did)."""
        held, self._held = self._held, b""
        return held

    def headers(self, headers: list[tuple[str, str]]) -> list[tuple[str, str]]:
        """The headers with every secret scrubbed from the values; a header whose name holds
        one is dropped (the marker is not a valid name)."""
        texts = self._texts
        # one string to search: a secret in any part is in it (one across two parts only
        # sends us to the exact replacement below, which finds nothing to replace)
        every = "\0".join(map("\0".join, headers))
        for text in texts:
            if text in every:
                break
        else:
            return headers
        return [(name, self._text(value)) for name, value in headers if self._text(name) == name]

    def _text(self, value: str) -> str:
        for text in self._texts:
            value = value.replace(text, MARKER.decode())
        return value
