"""RESP2 on the wire: encoding commands and parsing replies, no I/O (the connection and the
client are in `resp.py`).

Every byte from Redis is treated as untrusted: lengths are bounded and a malformed reply is a
`RedisUnavailable`, never a crash.
"""

from __future__ import annotations

import re
from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import TYPE_CHECKING, Union

from tokenomics.domain.errors import RedisUnavailable
from tokenomics.domain.memo import remember

if TYPE_CHECKING:
    from collections.abc import Sequence

Reply = Union[bytes, int, None, "RespError", list["Reply"]]
Arg = bytes | str | int | float

MAX_BULK = 64 * 1024 * 1024
MAX_ARRAY = 1_000_000
MAX_LINE = 64 * 1024
MAX_DEPTH = 8  # our scripts reply with flat arrays; a deeper reply is not ours


@dataclass(frozen=True, slots=True)
class RespError:
    """An error reply (`-ERR ...`, `-NOSCRIPT ...`): a value, so pipelines keep their order."""

    message: str

    @property
    def code(self) -> str:
        return self.message.split(" ", 1)[0]


class Stamped(ABC):
    """A command completed by the connection that sends it: `stamp` gets the connection's
    stream (an id drawn when it opened) and the command's number on it (1, 2, ...: Redis runs
    a connection's commands in that order), so a script can tell whether it already ran
    (`redis_calls.SettleCommand`)."""

    __slots__ = ()

    @abstractmethod
    def stamp(self, stream: str, seq: int) -> Sequence[Arg]:
        """The command's arguments, with the stream and number in their places."""


def _arg(value: Arg) -> bytes:
    if isinstance(value, bytes):
        return value
    if isinstance(value, str):
        return value.encode()
    if isinstance(value, float):
        return repr(value).encode()
    return str(value).encode()


def _bulk(data: bytes) -> bytes:
    return b"$%d\r\n%s\r\n" % (len(data), data)


# Encoded short strings and ints: most of a call's arguments repeat from call to call (the
# keys of a token, the script's SHA, limits, TTLs) and formatting each costs more than a dict
# lookup. Bounded: emptied when full (the ids of each request fill it slowly).
BULK_CACHE: dict[str | int, bytes] = {}
MAX_CACHED_BULKS = 4096
MAX_BULK_CACHED = 128


class Pre(bytes):
    """Arguments encoded once, sent as they are (`encode` counts them as `items`): the part
    of a command that is the same from call to call (EVALSHA, a script's SHA, a token's keys,
    a limit's rules), which cost more to encode each time than the rest of the call."""

    items: int

    @classmethod
    def of(cls, *args: Arg) -> Pre:
        pre = cls(b"".join([_bulk(_arg(arg)) for arg in args]))
        pre.items = len(args)
        return pre


def encode(*args: Arg) -> bytes:
    parts = [b""]
    append = parts.append
    bulks = BULK_CACHE
    count = len(args)
    for arg in args:  # the common exact types inline (a bool is not an int here: `_arg`)
        if type(arg) is str:
            append(bulks.get(arg) or _cached(arg, arg.encode()))
        elif type(arg) is int:
            append(bulks.get(arg) or _cached(arg, b"%d" % arg))
        elif type(arg) is Pre:
            append(arg)
            count += arg.items - 1
        else:
            append(_bulk(_arg(arg)))
    parts[0] = b"*%d\r\n" % count
    return b"".join(parts)


def _cached(arg: str | int, data: bytes) -> bytes:
    bulk = _bulk(data)
    if len(bulk) <= MAX_BULK_CACHED:
        remember(BULK_CACHE, arg, bulk, MAX_CACHED_BULKS)
    return bulk


# An array of 1 to 4 integers (what our scripts reply) matched whole, in C: parsed item by item
# it cost ~10 function calls a reply. At most 18 digits: below `_int`'s 2**63 bound.
_INT_ARRAYS = [re.compile(rb"\*%d\r\n" % n + rb":(-?[0-9]{1,18})\r\n" * n) for n in range(1, 5)]


class Parser:
    """Incremental RESP2 parser: `feed` bytes, `next()` returns a reply or `Parser.MORE`.

    An incomplete reply is a `None` return inside, not an exception: at concurrency 1 every
    read starts on an empty buffer, and raising and catching cost more than the parse."""

    MORE = object()

    def __init__(self) -> None:
        self._buf = bytearray()
        self._pos = 0

    def feed(self, data: bytes) -> None:
        if self._pos:
            del self._buf[: self._pos]
            self._pos = 0
        self._buf += data

    @property
    def buffered(self) -> bool:
        return self._pos < len(self._buf)

    def next(self) -> object:
        buf, pos = self._buf, self._pos
        if pos >= len(buf):
            return Parser.MORE
        if buf[pos] == 42 and len(buf) > pos + 1 and 49 <= buf[pos + 1] <= 52:  # *1 .. *4
            match = _INT_ARRAYS[buf[pos + 1] - 49].match(buf, pos)
            if match is not None:  # our scripts' replies, at once
                self._pos = match.end()
                return [int(number) for number in match.groups()]
        found = self._reply(pos, 0)
        if found is None:
            return Parser.MORE
        self._pos = found[1]
        return found[0]

    @staticmethod
    def _int(text: bytes, limit: int, least: int = -(2**63)) -> int:
        # digits only (int() would take "1_000", " 7", "+7"); bytes.isdigit is ASCII-only
        if not (text[1:] if text[:1] == b"-" else text).isdigit():
            raise RedisUnavailable("Redis sent a malformed number")
        value = int(text)
        if value > limit:
            raise RedisUnavailable("Redis sent a reply that is too large")
        if value < least:
            raise RedisUnavailable("Redis sent a malformed length")
        return value

    def _reply(self, pos: int, depth: int) -> tuple[Reply, int] | None:
        """The reply at `pos` and where it ends; None when it is not all here yet."""
        buf = self._buf
        end = buf.find(b"\r\n", pos)
        if end < 0:
            if len(buf) - pos > MAX_LINE:
                raise RedisUnavailable("Redis sent a line that is too long")
            return None
        kind, rest = buf[pos], bytes(buf[pos + 1 : end])
        if kind == 58:  # ':'
            return self._int(rest, 2**63), end + 2
        if kind == 36:  # '$'
            return self._bulk(rest, end + 2)
        if kind == 42:  # '*'
            return self._array(rest, end + 2, depth)
        if kind == 43:  # '+'
            return rest, end + 2
        if kind == 45:  # '-'
            return RespError(rest.decode("utf-8", "replace")), end + 2
        raise RedisUnavailable("Redis sent a reply of an unknown type")

    def _array(self, rest: bytes, pos: int, depth: int) -> tuple[Reply, int] | None:
        count = self._int(rest, MAX_ARRAY, least=-1)
        if count < 0:
            return None, pos
        if depth >= MAX_DEPTH:
            raise RedisUnavailable("Redis sent arrays nested too deep")
        items: list[Reply] = []
        for _ in range(count):
            found = self._reply(pos, depth + 1)
            if found is None:
                return None
            items.append(found[0])
            pos = found[1]
        return items, pos

    def _bulk(self, rest: bytes, pos: int) -> tuple[Reply, int] | None:
        size = self._int(rest, MAX_BULK, least=-1)
        if size < 0:
            return None, pos
        buf = self._buf
        if len(buf) - pos < size + 2:
            return None
        end = pos + size
        if buf[end : end + 2] != b"\r\n":  # out of step with the stream
            raise RedisUnavailable("Redis sent a bulk string of the wrong length")
        return bytes(buf[pos:end]), end + 2
