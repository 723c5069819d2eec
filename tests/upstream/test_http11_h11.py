"""Our HTTP/1.1 response reader agrees with h11 (the parser httpcore2 used before it) on a few
hundred generated responses, each fed in random pieces: the same status, headers and body, and
the same answer on reusing the connection (h11 calls a body that ends with the connection
"done" too; that connection is closed, so never reused)."""

from __future__ import annotations

import random

import h11
import pytest

from tokenomics.upstream.http11 import ResponseReader

REQUEST = h11.Request(method="POST", target="/v1/x", headers=[("host", "upstream")])


def response(rng: random.Random) -> tuple[str, bytes]:
    """A random response (method it answers, bytes) from the shapes upstreams send."""
    method = rng.choice(["POST", "POST", "GET", "HEAD"])
    status = rng.choice([200, 200, 201, 204, 304, 400, 429, 500, 503])
    version = rng.choice(["1.1", "1.1", "1.1", "1.0"])
    body = rng.randbytes(rng.choice([0, 1, 7, 100, 5000]))
    headers = [("Content-Type", rng.choice(["application/json", "text/event-stream"]))]
    if rng.random() < 0.2:
        headers.append(("Connection", rng.choice(["close", "keep-alive", "Keep-Alive, Close"])))
    headers.append(("X-Request-Id", f"  req_{rng.randrange(10**6)} "))
    framing = rng.choice(["length", "length", "chunked", "eof"])
    if status in (204, 304) or method == "HEAD":
        framing = rng.choice(["length", "none"])
    informational = b"HTTP/1.1 100 Continue\r\n\r\n" if rng.random() < 0.1 else b""
    if framing == "length":
        headers.append(("Content-Length", str(len(body))))
    elif framing == "chunked" and version == "1.1":
        headers.append(("Transfer-Encoding", "chunked"))
        body = chunked(rng, body)
    if status in (204, 304) or method == "HEAD":
        body = b""
    head = f"HTTP/{version} {status} Whatever\r\n" + "".join(f"{k}: {v}\r\n" for k, v in headers)
    return method, informational + head.encode() + b"\r\n" + body


def chunked(rng: random.Random, body: bytes) -> bytes:
    out, rest = [], body
    while rest:
        size = rng.randint(1, 2000)
        piece, rest = rest[:size], rest[size:]
        extension = ";name=value" if rng.random() < 0.2 else ""
        out.append(f"{len(piece):x}{extension}\r\n".encode() + piece + b"\r\n")
    trailer = "x-trailer: 1\r\n" if rng.random() < 0.2 else ""
    return b"".join(out) + f"0\r\n{trailer}\r\n".encode()


def pieces(rng: random.Random, data: bytes) -> list[bytes]:
    cuts = sorted(rng.sample(range(1, len(data)), min(3, len(data) - 1)))
    return [data[a:b] for a, b in zip([0, *cuts], [*cuts, len(data)], strict=True)]


def read_ours(
    method: str, parts: list[bytes]
) -> tuple[int, list[tuple[bytes, bytes]], bytes, bool] | None:
    """What our reader makes of `parts` (status, headers, body, reusable); None when they end
    before the response does. A `ProtocolError` is raised."""
    reader = ResponseReader(method)
    body, head = b"", None
    for part in [*parts, b""]:
        if reader.done:
            break
        reader.feed(part)
        if (head := reader.head()) is not None:
            body += reader.body()
    if head is None or not reader.done:
        return None
    return head.status, head.headers, body, reader.keep_alive


def read_h11(method: str, parts: list[bytes]) -> tuple[int, list[tuple[bytes, bytes]], bytes, bool]:
    connection = h11.Connection(h11.CLIENT)
    connection.send(h11.Request(method=method, target="/v1/x", headers=[("host", "upstream")]))
    connection.send(h11.EndOfMessage())
    status, headers, body = 0, [], b""
    for part in [*parts, b""]:
        connection.receive_data(part)
        while (event := connection.next_event()) not in (h11.NEED_DATA, h11.PAUSED):
            if isinstance(event, h11.Response):
                status, headers = event.status_code, list(event.headers)
            elif isinstance(event, h11.Data):
                body += event.data
            elif isinstance(event, h11.EndOfMessage | h11.ConnectionClosed):
                return status, headers, body, connection.their_state is h11.DONE
    raise AssertionError("h11 did not finish the response")


@pytest.mark.parametrize("seed", range(300))
def test_our_reader_reads_what_h11_reads(seed: int) -> None:
    rng = random.Random(seed)
    method, data = response(rng)
    parts = pieces(rng, data)
    ours = read_ours(method, parts)
    assert ours is not None
    status, headers, body, reusable = ours
    expected_status, expected_headers, expected_body, h11_reusable = read_h11(method, parts)
    assert (status, headers, body) == (expected_status, expected_headers, expected_body)
    names = {name for name, _ in headers}
    until_close = not ({b"content-length", b"transfer-encoding"} & names) and not (
        method == "HEAD" or status in (204, 304)
    )
    assert reusable == (h11_reusable and not until_close)
