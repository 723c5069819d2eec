"""Parser cost per request, h11 against llhttp (httptools) as our server drives it: the CPU
time to parse a typical proxied request (request line, 8 headers, a JSON body) and write its
response head, per request. A ratio on a shared machine: both run interleaved, best of rounds.

    .venv/bin/python bench/parsers.py [N]
"""

from __future__ import annotations

import sys
import time

import h11

from tokenomics.services.http_parser import Head, RequestParser
from tokenomics.services.http_response import DateHeader, head_bytes

BODY = (
    b'{"model":"gpt-4o-mini","messages":[{"role":"user","content":"Say hello to the benchmark."}]}'
)
REQUEST = (
    b"POST /v1/chat/completions HTTP/1.1\r\nHost: 127.0.0.1:8080\r\n"
    b"Authorization: Bearer tkn_0123456789abcdef0123456789abcdef\r\n"
    b"Content-Type: application/json\r\nUser-Agent: bench\r\nAccept: */*\r\n"
    b"Accept-Encoding: gzip\r\nConnection: keep-alive\r\n"
    b"Content-Length: %d\r\n\r\n%s" % (len(BODY), BODY)
)
RESPONSE_HEADERS = [(b"content-type", b"application/json"), (b"x-request-id", b"req_0123")]


def with_h11(n: int) -> float:
    conn = h11.Connection(h11.SERVER)
    started = time.process_time()
    for _ in range(n):
        conn.receive_data(REQUEST)
        request = conn.next_event()
        assert isinstance(request, h11.Request)
        body = conn.next_event()
        assert isinstance(body, h11.Data)
        assert isinstance(conn.next_event(), h11.EndOfMessage)
        response = h11.Response(
            status_code=200, headers=[*RESPONSE_HEADERS, (b"content-length", b"2")]
        )
        conn.send(response)
        conn.send(h11.Data(data=b"ok"))
        conn.send(h11.EndOfMessage())
        conn.start_next_cycle()
    return time.process_time() - started


class Sink:
    def on_head(self, head: Head) -> None:
        self.head = head

    def on_body(self, data: bytes) -> None:
        self.body = data

    def on_end(self) -> None:
        self.done = True


def with_llhttp(n: int) -> float:
    sink = Sink()
    parser = RequestParser(sink, max_head=64 * 1024)
    date = DateHeader()
    started = time.process_time()
    for _ in range(n):
        parser.feed(REQUEST)
        head = sink.head
        data, framing = head_bytes(
            200, [*RESPONSE_HEADERS, (b"content-length", b"2")], method=head.method,
            version=head.version, keep_alive=head.keep_alive, whole=b"ok", date=date.line(),
        )  # fmt: skip
        data += framing.frame(b"ok", False)
    return time.process_time() - started


def main() -> None:
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 20_000
    best = {"h11": float("inf"), "llhttp": float("inf")}
    for _ in range(5):
        best["h11"] = min(best["h11"], with_h11(n))
        best["llhttp"] = min(best["llhttp"], with_llhttp(n))
    for name, seconds in best.items():
        print(f"{name}: {seconds / n * 1e6:.1f} µs CPU per request (parse + response head)")
    print(f"h11 / llhttp: {best['h11'] / best['llhttp']:.1f}x")


if __name__ == "__main__":
    main()
