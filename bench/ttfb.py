"""Time to first byte of a stream: direct to the upstream against through the proxy (stdlib).

    python bench/ttfb.py N STREAM NAME=URL[,TOKEN] ...

For each target, N requests one after the other on one keep-alive connection (the body of
`bench/post.lua`), after 20 warm-up ones, alternating between the targets request by request
so that drift on a shared VM hits them alike. Per request it times, from the last byte of the
request sent: the first byte of the response (its head), the first byte of its first SSE
event (`data:`; for a buffered reply, of its body), and the whole response. Prints the median
and p90 of each in milliseconds, and each later target minus the first (the added time).
`bench/ttfb.sh` runs it against nginx and a proxy of a source tree.
"""

from __future__ import annotations

import socket
import statistics
import sys
import time
from dataclasses import dataclass, field
from urllib.parse import urlsplit

from responses import request_body  # bench/ is on sys.path when this file runs as a script

WARMUP = 20


@dataclass
class Target:
    name: str
    host: str
    port: int
    request: bytes
    sock: socket.socket | None = None
    head: list[float] = field(default_factory=list)
    first: list[float] = field(default_factory=list)
    whole: list[float] = field(default_factory=list)


def target(spec: str, stream: bool) -> Target:
    name, _, rest = spec.partition("=")
    url, _, token = rest.partition(",")
    parts = urlsplit(url)
    body = request_body(stream).encode()
    lines = [
        f"POST {parts.path or '/'} HTTP/1.1",
        f"Host: {parts.hostname}:{parts.port}",
        "Content-Type: application/json",
        f"Content-Length: {len(body)}",
    ]
    if token:
        lines.append(f"Authorization: Bearer {token}")
    request = ("\r\n".join(lines) + "\r\n\r\n").encode() + body
    return Target(name, parts.hostname or "127.0.0.1", parts.port or 80, request)


def _connect(t: Target) -> socket.socket:
    if t.sock is None:
        t.sock = socket.create_connection((t.host, t.port))
        t.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return t.sock


def _body_done(head: bytes, body: bytes) -> bool:
    lower = head.lower()
    if b"transfer-encoding: chunked" in lower:
        return body.endswith(b"0\r\n\r\n")
    for line in lower.split(b"\r\n"):
        if line.startswith(b"content-length:"):
            return len(body) >= int(line.split(b":", 1)[1])
    raise SystemExit("ttfb: a response without a length")


def once(t: Target, stream: bool) -> tuple[float, float, float]:
    """(head, first event, whole) in seconds for one request."""
    sock = _connect(t)
    marker = b"data:" if stream else b"{"
    sock.sendall(t.request)
    start = time.perf_counter()
    data = b""
    head_at = first_at = 0.0
    head_end = -1
    while True:
        chunk = sock.recv(65536)
        now = time.perf_counter()
        if not chunk:
            raise SystemExit(f"ttfb: {t.name} closed the connection")
        data += chunk
        head_at = head_at or now
        if head_end < 0 and (head_end := data.find(b"\r\n\r\n")) >= 0:
            status = data[: data.find(b"\r\n")]
            if status.split(b" ")[1:2] != [b"200"]:
                raise SystemExit(f"ttfb: {t.name} answered {status.decode()}")
        if head_end >= 0:
            body = data[head_end + 4 :]
            if not first_at and marker in body:
                first_at = now
            if _body_done(data[:head_end], body):
                return head_at - start, first_at - start, now - start


def main(count: int, stream: bool, specs: list[str]) -> None:
    targets = [target(spec, stream) for spec in specs]
    for _ in range(WARMUP):
        for t in targets:
            once(t, stream)
    for _ in range(count):
        for t in targets:
            head, first, whole = once(t, stream)
            t.head.append(head)
            t.first.append(first)
            t.whole.append(whole)
    base = targets[0]
    what = "first event" if stream else "first body byte"
    print(f"{'':12s} {'head p50':>9s} {what + ' p50':>18s} {'p90':>7s} {'whole p50':>10s}  (ms)")
    for t in targets:
        row = [_p(t.head, 50), _p(t.first, 50), _p(t.first, 90), _p(t.whole, 50)]
        print(f"{t.name:12s} {row[0]:9.3f} {row[1]:18.3f} {row[2]:7.3f} {row[3]:10.3f}")
        if t is not base:
            added = [
                _p(t.head, 50) - _p(base.head, 50),
                _p(t.first, 50) - _p(base.first, 50),
                _p(t.first, 90) - _p(base.first, 90),
                _p(t.whole, 50) - _p(base.whole, 50),
            ]
            print(f"{'  added':12s} {added[0]:+9.3f} {added[1]:+18.3f} {added[2]:+7.3f} {added[3]:+10.3f}")


def _p(values: list[float], percent: int) -> float:
    if len(values) < 2:
        return values[0] * 1000 if values else 0.0
    return statistics.quantiles(values, n=100)[percent - 1] * 1000


if __name__ == "__main__":
    if len(sys.argv) < 4:
        sys.exit(__doc__)
    main(int(sys.argv[1]), sys.argv[2] == "1", sys.argv[3:])
