"""The server's request parser and response head writer, made cheaper, against their versions
before (`http_parser_reference.py`, `http_response_reference.py`, kept verbatim): on generated
requests (valid, pipelined, chunked, split at random points, malformed and smuggling ones,
heads and trailers around a size limit drawn small) the parsers must call their sink alike,
return and raise alike (status, reason, and what they tell of the request), and agree on
`idle` and `closed` after every piece; on generated responses (hostile header names and
values, every framing case) the head writers must write the same bytes and framing, or
refuse alike."""

from __future__ import annotations

import socket
from email.utils import formatdate
from typing import Any

import pytest
import trio
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from tests.services import http_parser_reference as old_parser
from tests.services import http_response_reference as old_response
from tests.services.test_http_differential import MUTATIONS, request, split

from tokenomics.services import asgi
from tokenomics.services import http_parser as new_parser
from tokenomics.services import http_response as new_response
from tokenomics.services.http_connection import ASGI, Connection, Limits, _decoded
from tokenomics.services.http_request import CLIENT_GONE, WHOLE_BODY, Request
from tokenomics.upstream.tcp import TCPStream

# More shapes than the h11 comparison needs: what the rewritten callbacks branch on.
EXTRA_MUTATIONS: list[tuple[bytes, bytes]] = [
    (b"\r\n\r\n", b"\r\nExpect: 100-continue\r\n\r\n"),
    (b"\r\n\r\n", b"\r\nEXPECT:  100-Continue \t\r\n\r\n"),
    (b"\r\n\r\n", b"\r\nExpect: 100-continue\r\nExpect: other\r\n\r\n"),
    (b"\r\n\r\n", b"\r\nexpect: nothing\r\n\r\n"),
    (b"\r\n\r\n", b"\r\nTRANSFER-ENCODING: Chunked\r\n\r\n"),
    (b"\r\n\r\n", b"\r\nX-Pad: " + b"p" * 300 + b"\r\n\r\n"),
    (b"\r\n\r\n", b"\r\nX-Spaces:   a b \t \r\n\r\n"),
    (b"\r\n\r\n", b"\r\nHOST: again.test\r\n\r\n"),
    (b"\r\n\r\n", b"\r\nUpgrade: h2c\r\nConnection: upgrade\r\n\r\n"),
    (b"\r\n\r\n", b"\r\nConnection: close\r\n\r\n"),
    (b"0\r\n\r\n", b"0\r\nx-t: " + b"t" * 300 + b"\r\n\r\n"),
    (b"0\r\n\r\n", b"0\r\nx-a: 1\r\nx-b: 2\r\n\r\n"),
    (b" /", b" /#frag"),
    (b" /", b" /a%20b?c#"),
    (b"GET ", b"PROPFIND "),
    (b"POST ", b"M-SEARCH "),
    (b"HTTP/1.1\r\n", b"HTTP/1.1\r\nHost: x\r\n"),
]
ALL_MUTATIONS = [*MUTATIONS, *EXTRA_MUTATIONS]


class Record:
    """A sink writing down every call, with everything a head holds."""

    def __init__(self) -> None:
        self.calls: list[tuple[Any, ...]] = []

    def on_head(self, head: Any) -> None:
        self.calls.append((
            "head", head.method, head.target, head.version, list(head.headers),
            head.keep_alive, head.upgrade, head.expect_continue,
        ))  # fmt: skip

    def on_body(self, data: bytes) -> None:
        self.calls.append(("body", bytes(data)))

    def on_end(self) -> None:
        self.calls.append(("end",))


def run(module: Any, pieces: list[bytes], max_head: int) -> list[tuple[Any, ...]]:
    """Every observable step of parsing `pieces`, up to the first refusal."""
    sink = Record()
    parser = module.RequestParser(sink, max_head=max_head)
    steps: list[tuple[Any, ...]] = []
    for piece in pieces:
        try:
            rest = parser.feed(piece)
        except module.BadRequest as refused:
            steps.append((
                "refused", sink.calls, refused.status, refused.reason, refused.method,
                refused.target, list(refused.headers),
            ))  # fmt: skip
            return steps
        steps.append(("fed", sink.calls, rest, parser.idle, parser.closed))
        sink.calls = []
        if rest is not None:
            break
    return steps


@st.composite
def mutated(draw: st.DrawFn) -> bytes:
    data = draw(request())
    for _ in range(draw(st.integers(1, 2))):
        old, new = draw(st.sampled_from(ALL_MUTATIONS))
        if old in data:
            data = data.replace(old, new, 1) if draw(st.booleans()) else data.replace(old, new)
    return data


def agree(data: bytes, pieces: list[bytes], max_head: int) -> None:
    assert run(new_parser, pieces, max_head) == run(old_parser, pieces, max_head), data[:300]


@settings(max_examples=500, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.data())
def test_the_parser_reads_valid_and_pipelined_requests_as_before(st_data: st.DataObject) -> None:
    data = b"".join(st_data.draw(st.lists(request(), min_size=1, max_size=3)))
    max_head = st_data.draw(st.sampled_from([64 * 1024, 200, 120, 60]))
    agree(data, st_data.draw(split(data)), max_head)


@settings(max_examples=800, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.data())
def test_the_parser_refuses_and_bounds_hostile_requests_as_before(
    st_data: st.DataObject,
) -> None:
    requests = st_data.draw(st.lists(st.one_of(request(), mutated()), min_size=1, max_size=3))
    data = b"".join(requests)
    max_head = st_data.draw(st.one_of(st.just(64 * 1024), st.integers(20, 400)))
    agree(data, st_data.draw(split(data)), max_head)


def test_a_head_growing_past_the_limit_piece_by_piece_is_refused_as_before() -> None:
    head = b"POST /x HTTP/1.1\r\nHost: a\r\n" + b"X-A: " + b"a" * 50 + b"\r\n" * 1
    data = head + b"X-B: b\r\nContent-Length: 0\r\n\r\n"
    for limit in range(10, len(data) + 5, 3):
        pieces = [data[i : i + 7] for i in range(0, len(data), 7)]
        assert run(new_parser, pieces, limit) == run(old_parser, pieces, limit), limit


NAMES = st.one_of(
    st.sampled_from([
        b"content-length", b"Content-Length", b"CONNECTION", b"connection", b"Transfer-Encoding",
        b"transfer-encoding", b"Date", b"date", b"content-type", b"x-request-id", b"Server",
    ]),
    st.binary(min_size=0, max_size=12),
)  # fmt: skip
VALUES = st.one_of(
    st.sampled_from([
        b"12", b"0", b"007", b"1e3", b"-1", b"", b"close", b"Keep-Alive, Close", b"keep-alive",
        b"chunked", b"application/json", b"a\rb", b"a\nb", b"a\0b", b"\r\n", b"\xff\xfe",
    ]),
    st.binary(max_size=20),
)  # fmt: skip
STATUSES = st.one_of(
    st.sampled_from([100, 101, 103, 200, 201, 204, 206, 304, 400, 404, 429, 500, 502, 599]),
    st.integers(100, 999),
)


def write(module: Any, *args: Any) -> tuple[Any, ...]:
    status, headers, method, version, keep_alive, whole, date = args
    try:
        head, framing = module.head_bytes(
            status, list(headers), method=method, version=version, keep_alive=keep_alive,
            whole=whole, date=date,
        )  # fmt: skip
    except ValueError as exc:
        return ("refused", str(exc))
    return (head, framing.mode, framing.remaining, framing.close)


@settings(max_examples=1500, deadline=None)
@given(
    STATUSES,
    st.lists(st.tuples(NAMES, VALUES), max_size=6),
    st.sampled_from(["GET", "POST", "HEAD", "PUT"]),
    st.sampled_from(["1.1", "1.0"]),
    st.booleans(),
    st.one_of(st.none(), st.binary(max_size=30)),
    st.sampled_from([b"date: Mon, 07 Dec 2026 02:22:58 GMT\r\n", b"date: x\r\n"]),
)
def test_response_heads_are_written_or_refused_as_before(
    status: int,
    headers: list[tuple[bytes, bytes]],
    method: str,
    version: str,
    keep_alive: bool,
    whole: bytes | None,
    date: bytes,
) -> None:
    args = (status, headers, method, version, keep_alive, whole, date)
    assert write(new_response, *args) == write(old_response, *args)


def test_the_date_line_changes_with_the_second_as_before() -> None:
    times = [0.0, 0.5, 0.999, 1.0, 1.2, 86399.99, 86400.0, 5.0, 4.999, 1.7e9 + 0.25, 1.7e9 + 0.75]
    clock = iter(times)
    new = new_response.DateHeader(lambda: next(clock))
    for now in times:
        expected = b"date: " + formatdate(now, usegmt=True).encode() + b"\r\n"
        assert new.line() == expected, now


@pytest.mark.parametrize("status", [200, 204, 304, 101, 500])
def test_a_refused_header_is_refused_alike_whatever_the_status(status: int) -> None:
    for value in (b"a\rb", b"a\nb", b"a\0b", b"x\r\nInjected: 1"):
        args = (status, [(b"x-a", value)], "GET", "1.1", True, b"", b"date: d\r\n")
        assert write(new_response, *args) == write(old_response, *args) == (
            "refused", "a response header holds CR, LF or NUL",
        )  # fmt: skip


def _asks_h2c_before(scope: dict[str, Any]) -> bool:
    """`asgi._asks_h2c` before it was a loop (main 1eb851c)."""
    return any(k == b"upgrade" and b"h2c" in v.lower() for k, v in scope["headers"])


@settings(max_examples=500, deadline=None)
@given(
    st.lists(
        st.tuples(
            st.one_of(st.sampled_from([b"upgrade", b"Upgrade", b"connection"]), st.binary()),
            st.one_of(st.sampled_from([b"h2c", b"H2C, websocket", b"websocket", b""]), st.binary()),
        ),
        max_size=6,
    )
)
def test_an_upgrade_to_h2c_is_found_as_before(headers: list[tuple[bytes, bytes]]) -> None:
    scope = {"headers": headers}
    assert asgi._asks_h2c(scope) == _asks_h2c_before(scope)


def _scope_before(conn: Any, head: Any) -> dict[str, Any]:
    """`Connection.on_head`'s scope before it was a copy of a per-connection template (main
    1eb851c), without its `extensions`."""
    path, _, query = head.target.partition(b"?")
    return {
        "type": "http", "asgi": ASGI, "http_version": head.version, "method": head.method,
        "scheme": conn.scheme, "path": _decoded(path), "raw_path": path,
        "query_string": query, "root_path": "", "headers": head.headers,
        "client": conn.client, "server": conn.server,
    }  # fmt: skip


TARGETS = st.lists(
    st.sampled_from([b"/", b"/v1", b"%2F", b"%zz", b"?", b"a=1", b"&", b"%C3%A9", b"\xe9", b"/x"]),
    max_size=6,
).map(b"".join)


@settings(max_examples=200, deadline=None)
@given(
    st.lists(st.tuples(TARGETS, st.sampled_from(["GET", "POST"]), st.sampled_from(["1.0", "1.1"]))),
    st.sampled_from(["http", "https"]),
    st.one_of(st.none(), st.just(("127.0.0.1", 5))),
)
def test_each_requests_scope_is_the_one_built_before(
    heads: list[tuple[bytes, str, str]], scheme: str, client: tuple[str, int] | None
) -> None:
    async def main() -> None:
        mine, theirs = socket.socketpair()
        limits = Limits(idle_timeout=5, max_head=1000)
        conn = Connection(
            TCPStream(mine), _no_app, limits, new_response.DateHeader(), scheme=scheme, client=client,
            server=("0.0.0.0", 8),
        )  # fmt: skip
        for target, method, version in heads:
            head = new_parser.Head(method, target, version, [(b"host", b"h")], True, False, False)
            conn.on_head(head)
            request = conn.reading
            assert isinstance(request, Request)
            scope = dict(request.scope)
            extensions = scope.pop("extensions")
            assert list(scope.items()) == list(_scope_before(conn, head).items())
            assert extensions == {CLIENT_GONE: request.when_gone, WHOLE_BODY: request.whole_body}
            conn.reading = None
        theirs.close()
        mine.close()

    trio.run(main)


async def _no_app(scope: Any, receive: Any, send: Any) -> None:
    raise AssertionError("not called")
