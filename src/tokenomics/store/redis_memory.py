"""Policy memory in Redis (`memory.redis: true`, `cli.md` §7.7, proxy.md §5.2): each entry is
`RPUSH`ed to `tokenomics:memory:<full token hash>` as `## <RFC 3339> | <role> | <model>`, a
blank line and the content; the list is trimmed to its newest `max_entries` in the same
pipeline, so it never grows without bound.

Blocking, for the memory writer's worker thread (one batch at a time): one socket kept open,
reopened after an error; every call bounded by `timeout`.
"""

from __future__ import annotations

import socket
from typing import TYPE_CHECKING

from tokenomics.domain.errors import RedisUnavailable
from tokenomics.store.resp_wire import Parser, RespError, encode

if TYPE_CHECKING:
    from collections.abc import Mapping, Sequence

    from tokenomics.store.resp import RedisAddress

DEFAULT_MAX_ENTRIES = 1000


def memory_key(token_hash: str) -> str:
    return f"tokenomics:memory:{token_hash}"


class RedisMemory:
    def __init__(
        self, address: RedisAddress, *, timeout: float, max_entries: int = DEFAULT_MAX_ENTRIES
    ) -> None:
        self.address = address
        self.timeout = timeout
        self.max_entries = max(max_entries, 1)
        self._sock: socket.socket | None = None

    def _connect(self) -> socket.socket:
        sock = socket.create_connection((self.address.host, self.address.port), self.timeout)
        setup: list[Sequence[str | int]] = []
        if self.address.password:
            setup.append(["AUTH", self.address.password])
        if self.address.db:
            setup.append(["SELECT", self.address.db])
        if setup:
            for reply in self._roundtrip(sock, setup):
                if isinstance(reply, RespError):
                    sock.close()
                    raise RedisUnavailable(f"Redis refused the connection setup: {reply.code}")
        return sock

    def _roundtrip(
        self, sock: socket.socket, commands: Sequence[Sequence[str | int]]
    ) -> list[object]:
        sock.sendall(b"".join(encode(*command) for command in commands))
        parser = Parser()
        replies: list[object] = []
        while len(replies) < len(commands):
            reply = parser.next()
            if reply is not Parser.MORE:
                replies.append(reply)
                continue
            data = sock.recv(65536)
            if not data:
                raise RedisUnavailable("Redis closed the connection")
            parser.feed(data)
        return replies

    def push(self, entries: Mapping[str, Sequence[str]]) -> None:
        """Append each token's entries and trim its list; raises `RedisUnavailable`."""
        commands: list[Sequence[str | int]] = []
        for token_hash, items in entries.items():
            if items:
                key = memory_key(token_hash)
                commands += [["RPUSH", key, *items], ["LTRIM", key, -self.max_entries, -1]]
        if not commands:
            return
        try:
            if self._sock is None:
                self._sock = self._connect()
            replies = self._roundtrip(self._sock, commands)
        except (OSError, RedisUnavailable) as exc:
            self.close()
            raise RedisUnavailable(f"memory not written to Redis: {exc}") from None
        bad = next((r for r in replies if isinstance(r, RespError)), None)
        if bad is not None:
            raise RedisUnavailable(f"Redis refused the memory entries: {bad.code}")

    def close(self) -> None:
        if self._sock is not None:
            self._sock.close()
            self._sock = None
