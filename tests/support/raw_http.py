"""One HTTP/1.1 request with its request target sent byte for byte, for hostile-path tests.

HTTP clients normalise what they send (dot segments, percent-escapes); an attacker does not.
"""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import urlsplit

import h11
import orjson
import trio


@dataclass(frozen=True, slots=True)
class RawReply:
    status: int
    body: bytes

    def json(self) -> object:
        return orjson.loads(self.body)


async def raw_request(
    url: str, method: str, target: bytes, headers: dict[str, str], body: bytes = b""
) -> RawReply:
    """Send `target` as is on a fresh connection to `url`'s host and read the whole reply."""
    parts = urlsplit(url)
    assert parts.hostname is not None and parts.port is not None
    head = [f"{method} ".encode() + target + b" HTTP/1.1", f"host: {parts.netloc}".encode()]
    head += [f"{name}: {value}".encode() for name, value in headers.items()]
    head += [f"content-length: {len(body)}".encode(), b"connection: close"]
    stream = await trio.open_tcp_stream(parts.hostname, parts.port)
    async with stream:
        await stream.send_all(b"\r\n".join(head) + b"\r\n\r\n" + body)
        return await _read_reply(stream)


async def _read_reply(stream: trio.SocketStream) -> RawReply:
    connection = h11.Connection(h11.CLIENT)
    # h11 must have sent a request to read a response: tell it what we wrote ourselves
    connection.send(h11.Request(method="GET", target="/", headers=[("host", "x")]))
    connection.send(h11.EndOfMessage())
    status, parts = 0, []
    while True:
        event = connection.next_event()
        if event is h11.NEED_DATA:
            connection.receive_data(await stream.receive_some(65536))
        elif isinstance(event, h11.Response):
            status = event.status_code
        elif isinstance(event, h11.Data):
            parts.append(bytes(event.data))
        elif isinstance(event, h11.EndOfMessage | h11.ConnectionClosed):
            return RawReply(status, b"".join(parts))
