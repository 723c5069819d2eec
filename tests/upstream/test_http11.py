"""The sans-I/O HTTP/1.1 client codec: request bytes, response heads, body framing, keep-alive."""

from __future__ import annotations

from collections.abc import Iterable, Iterator

import pytest

from tokenomics.upstream.http11 import Head, ProtocolError, ResponseReader, encode_request

OK = b"HTTP/1.1 200 OK\r\n"
EMPTY = b"Content-Length: 0\r\n\r\n"
TE_CHUNKED = OK + b"Transfer-Encoding: chunked\r\n\r\n"
ZZ = b"2\r\nzz\r\n0\r\n\r\n"  # one chunk, then the last chunk

CONTENT_LENGTH = OK + b'Content-Type: application/json\r\nContent-Length: 11\r\n\r\n{"ok":true}'
CHUNKED = (
    TE_CHUNKED + b"5;name=value;flag\r\nhello\r\n"
    b"1\r\n \r\n"
    b"A\r\n0123456789\r\n"
    b"b\r\nabcdefghijk\r\n"
    b"0\r\nX-Checksum: abc\r\nX-Other: 1\r\n\r\n"
)
CHUNKED_BODY = b"hello 0123456789abcdefghijk"
# Bare LF line ends are tolerated in the head and the trailers, never in the chunk framing.
BARE_LF = (
    b"HTTP/1.1 200 OK\nTransfer-Encoding: chunked\n\n5;ext\r\nhello\r\n3 \r\n!!!\r\n0\r\nX-T: 1\n\n"
)
CONTINUE_THEN_CHUNKED = b"HTTP/1.1 100 Continue\r\n\r\n" + CHUNKED
EARLY_HINTS = (
    b"HTTP/1.1 103 Early Hints\nLink: </style.css>; rel=preload\n\n"
    b"HTTP/1.1 200 OK\nContent-Length: 2\n\nhi"
)
UNTIL_EOF = OK + b"Content-Type: text/plain\r\n\r\nstreamed until the end"


def read_response(
    chunks: Iterable[bytes], *, method: str = "GET", eof: bool = False
) -> tuple[Head | None, bytes, ResponseReader]:
    """Feed the chunks one by one, collecting the head and the body after each; then EOF if so."""
    reader = ResponseReader(method)
    head: Head | None = None
    body = bytearray()
    for piece in [*chunks, b""] if eof else chunks:
        reader.feed(piece)
        head = reader.head()
        if head is not None:
            body += reader.body()
    return head, bytes(body), reader


def every_split(data: bytes) -> Iterator[list[bytes]]:
    """The data cut in two at every position (no empty piece: b"" means EOF), then byte by byte."""
    for i in range(1, len(data)):
        yield [data[:i], data[i:]]
    yield [data[i : i + 1] for i in range(len(data))]


def drain(reader: ResponseReader) -> None:
    """Read the head and whatever body there is, so that a pending error is raised."""
    if reader.head() is not None:
        reader.body()
        reader.body()


def fails(data: bytes, *, eof: bool = False) -> None:
    reader = ResponseReader("GET")
    reader.feed(data)
    if eof:
        reader.feed(b"")
    with pytest.raises(ProtocolError):
        drain(reader)


def test_simple_content_length_response_gives_head_body_and_keep_alive() -> None:
    head, body, reader = read_response([CONTENT_LENGTH])
    assert head == Head(
        status=200, fields=[("content-type", "application/json"), ("content-length", "11")]
    )
    assert head.headers == [(b"content-type", b"application/json"), (b"content-length", b"11")]
    assert body == b'{"ok":true}'
    assert reader.done
    assert reader.keep_alive
    assert reader.head() is reader.head()
    assert reader.body() == b""


@pytest.mark.parametrize(
    ("data", "eof", "body"),
    [
        (CONTENT_LENGTH, False, b'{"ok":true}'),
        (CHUNKED, False, CHUNKED_BODY),
        (BARE_LF, False, b"hello!!!"),
        (CONTINUE_THEN_CHUNKED, False, CHUNKED_BODY),
        (EARLY_HINTS, False, b"hi"),
        (UNTIL_EOF, True, b"streamed until the end"),
    ],
    ids=["content-length", "chunked", "bare-lf", "100-continue", "103-bare-lf", "until-eof"],
)
def test_splitting_the_response_anywhere_gives_the_same_result(
    data: bytes, eof: bool, body: bytes
) -> None:
    head, got, whole = read_response([data], eof=eof)
    assert head is not None
    assert head.status == 200
    assert got == body
    expected = (head, body, True, whole.keep_alive)
    for chunks in every_split(data):
        head, got, reader = read_response(chunks, eof=eof)
        assert (head, got, reader.done, reader.keep_alive) == expected, chunks


def test_chunked_body_is_returned_as_it_arrives_even_mid_chunk() -> None:
    reader = ResponseReader("GET")
    reader.feed(TE_CHUNKED)
    assert reader.head() is not None
    assert reader.body() == b""
    assert not reader.done
    reader.feed(b"a\r\nhel")
    assert reader.body() == b"hel"
    assert reader.body() == b""
    reader.feed(b"lo worl")
    assert reader.body() == b"lo worl"
    reader.feed(b"\r\n3\r\n!!!\r\n")
    assert reader.body() == b"!!!"
    assert not reader.done
    reader.feed(b"0\r\n\r\n")
    assert reader.body() == b""
    assert reader.done
    assert reader.keep_alive


def test_content_length_body_is_returned_as_it_arrives_and_eof_mid_body_fails() -> None:
    reader = ResponseReader("POST")
    reader.feed(OK + b"Content-Length: 10\r\n\r\nab")
    assert reader.head() is not None
    assert reader.body() == b"ab"
    reader.feed(b"cdef")
    assert reader.body() == b"cdef"
    assert not reader.done
    reader.feed(b"")
    with pytest.raises(ProtocolError):
        reader.body()


def test_interim_responses_are_skipped_until_the_final_head() -> None:
    reader = ResponseReader("POST")
    reader.feed(b"HTTP/1.1 100 Continue\r\n\r\n")
    assert reader.head() is None
    assert not reader.done
    reader.feed(b"HTTP/1.1 103 Early Hints\r\nLink: </a>\r\n\r\nHTTP/1.1 201 Created\r\n")
    assert reader.head() is None
    reader.feed(EMPTY)
    assert reader.head() == Head(status=201, fields=[("content-length", "0")])
    assert reader.done
    assert reader.keep_alive


def test_switching_protocols_is_a_protocol_error() -> None:
    fails(b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n")


@pytest.mark.parametrize(
    ("method", "status_line", "framing"),
    [
        ("HEAD", b"HTTP/1.1 200 OK", b"Content-Length: 100"),
        ("HEAD", b"HTTP/1.1 200 OK", b"Transfer-Encoding: chunked"),
        ("GET", b"HTTP/1.1 204 No Content", b"Content-Length: 100"),
        ("GET", b"HTTP/1.1 304 Not Modified", b"Content-Length: 100"),
        ("GET", b"HTTP/1.1 304 Not Modified", b"Transfer-Encoding: chunked"),
    ],
)
def test_head_requests_204_and_304_have_no_body_and_are_done_after_the_head(
    method: str, status_line: bytes, framing: bytes
) -> None:
    head, body, reader = read_response(
        [status_line + b"\r\n" + framing + b"\r\n\r\n"], method=method
    )
    assert head is not None
    assert body == b""
    assert reader.done
    assert reader.keep_alive


@pytest.mark.parametrize(
    ("data", "body"),
    [
        (UNTIL_EOF, b"streamed until the end"),
        (b"HTTP/1.0 200 OK\r\n\r\nold", b"old"),
    ],
    ids=["no-framing", "http-1.0"],
)
def test_body_until_eof_is_done_at_eof_and_not_keep_alive(data: bytes, body: bytes) -> None:
    head, got, reader = read_response([data])
    assert head is not None
    assert got == body
    assert not reader.done
    reader.feed(b"")
    assert reader.body() == b""
    assert reader.done
    assert not reader.keep_alive


@pytest.mark.parametrize(
    ("data", "body"),
    [
        (b"HTTP/1.1 200\r\nContent-Length: 1\r\n\r\nx", b"x"),
        (b"HTTP/1.1 200 \r\nContent-Length: 1\r\n\r\nx", b"x"),
        (b"HTTP/1.1 200 Fine by me\r\nContent-Length: 1\r\n\r\nx", b"x"),
        (b"HTTP/1.0 200 OK\r\nContent-Length: 1\r\n\r\nx", b"x"),
        (OK + b"Content-Length: 5, 5\r\n\r\nhello", b"hello"),
        (OK + b"Content-Length: 5,5\r\n\r\nhello", b"hello"),
        (OK + b"Content-Length: 5\r\nContent-Length: 5\r\n\r\nhello", b"hello"),
        (OK + b"Transfer-Encoding:  Chunked \r\n\r\n" + ZZ, b"zz"),
        (OK + b"Content-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n" + ZZ, b"zz"),  # TE wins
        (TE_CHUNKED + b"2 \t\r\nzz\r\n0;x=1 \r\n\r\n", b"zz"),  # blanks after the size
        (TE_CHUNKED + b"2\r\nzz\r\n0\r\nX-T: 1\r\n  folded\nX-U:\r\n\r\n", b"zz"),
        (b"HTTP/1.1 200 \x01\x7f\x80\r\nX-A: \x01 \x7f\xff\r\nContent-Length: 1\r\n\r\nx", b"x"),
    ],
)
def test_accepted_status_lines_content_lengths_and_transfer_codings(
    data: bytes, body: bytes
) -> None:
    head, got, reader = read_response([data])
    assert head is not None
    assert head.status == 200
    assert got == body
    assert reader.done


@pytest.mark.parametrize(
    "data",
    [
        # status lines
        b"HTTP/1.2 200 OK\r\n\r\n",
        b"HTTP/2 200 OK\r\n\r\n",
        b"HTTP/0.9 200 OK\r\n\r\n",
        b"http/1.1 200 OK\r\n\r\n",
        b"200 OK\r\n\r\n",
        b"HTTP/1.1 20 OK\r\n\r\n",
        b"HTTP/1.1 2000 OK\r\n\r\n",
        b"HTTP/1.1 abc OK\r\n\r\n",
        b"HTTP/1.1 +20 OK\r\n\r\n",
        b"HTTP/1.1 2_0 OK\r\n\r\n",
        b"HTTP/1.1 200OK\r\n\r\n",
        b"HTTP/1.1\t200 OK\r\n\r\n",
        b"HTTP/1.1 200\tOK\r\n" + EMPTY,
        b"HTTP/1.1 099 Too Low\r\n" + EMPTY,
        b"HTTP/1.1 000 Zero\r\n" + EMPTY,
        b"HTTP/1.1 200 O\x0bK\r\n" + EMPTY,
        b"SSH-2.0-OpenSSH_9.6\r\n\r\n",
        # header lines
        OK + b"Bad Name: x\r\n\r\n",
        OK + b"Name : x\r\n\r\n",
        OK + b"na(me: x\r\n\r\n",
        OK + b": x\r\n\r\n",
        OK + b"NoColonHere\r\n\r\n",
        OK + b" folded: first\r\n" + EMPTY,
        OK + b"X-A: a\x00b\r\n" + EMPTY,
        OK + b"X-A: a\rb\r\n" + EMPTY,
        OK + b"X-A: a\x0bb\r\n" + EMPTY,
        OK + b"X-A: a\x0c\r\n" + EMPTY,
        # transfer-encoding: only `chunked`, once (h11 supports no other)
        OK + b"Transfer-Encoding: gzip\r\n\r\n\x1f\x8b raw",
        OK + b"Transfer-Encoding: identity\r\n\r\nraw",
        OK + b"Transfer-Encoding:\r\n\r\nraw",
        OK + b"Transfer-Encoding: gzip, chunked\r\n\r\n" + ZZ,
        OK + b"Transfer-Encoding: chunked, gzip\r\n\r\n5\r\nabc",
        OK + b"Transfer-Encoding: chunked, chunked\r\n\r\n" + ZZ,
        OK + b"Transfer-Encoding: gzip\r\nTransfer-Encoding: chunked\r\n\r\n" + ZZ,
        OK + b"Transfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n" + ZZ,
        OK + b"Transfer-Encoding: chunked\r\nContent-Length: x\r\n\r\n" + ZZ,
        b"HTTP/1.1 204 No Content\r\nTransfer-Encoding: gzip\r\n\r\n",
        b"HTTP/1.1 100 Continue\r\nTransfer-Encoding: gzip\r\n\r\n" + OK + EMPTY,
        # content-length
        OK + b"Content-Length: 5\r\nContent-Length: 6\r\n\r\nhello!",
        OK + b"Content-Length: 5, 6\r\n\r\nhello!",
        OK + b"Content-Length: -1\r\n\r\n",
        OK + b"Content-Length: 5x\r\n\r\nhello",
        OK + b"Content-Length: +5\r\n\r\nhello",
        OK + b"Content-Length: 1_0\r\n\r\n0123456789",
        OK + b"Content-Length: 0x5\r\n\r\nhello",
        OK + b"Content-Length: \r\n\r\n",
        # chunk framing
        TE_CHUNKED + b"zz\r\n",
        TE_CHUNKED + b"0x5\r\nhello\r\n0\r\n\r\n",
        TE_CHUNKED + b"+5\r\nhello\r\n0\r\n\r\n",
        TE_CHUNKED + b"-5\r\nhello\r\n0\r\n\r\n",
        TE_CHUNKED + b"1_0\r\n0123456789abcdef\r\n0\r\n\r\n",
        TE_CHUNKED + b"\r\nhello\r\n0\r\n\r\n",
        TE_CHUNKED + b"5\r\nhelloXX0\r\n\r\n",
        TE_CHUNKED + b"5\nhello\r\n0\r\n\r\n",  # bare LF after the size
        TE_CHUNKED + b"5\r\nhello\n0\r\n\r\n",  # bare LF after the data (CVE-2025-43859)
        TE_CHUNKED + b"5\r\nhello\r0\r\n\r\n",
        TE_CHUNKED + b" 5\r\nhello\r\n0\r\n\r\n",  # blank before the size
        TE_CHUNKED + b"5 ;x\r\nhello\r\n0\r\n\r\n",  # blank before an extension
        TE_CHUNKED + b"5;a\x00b\r\nhello\r\n0\r\n\r\n",
        TE_CHUNKED + b"5;a\rb\r\nhello\r\n0\r\n\r\n",
        TE_CHUNKED + b"5\r\r\nhello\r\n0\r\n\r\n",
        # trailers are checked like headers
        TE_CHUNKED + ZZ[:-2] + b"Bad Name: x\r\n\r\n",
        TE_CHUNKED + ZZ[:-2] + b" folded: x\r\n\r\n",
        TE_CHUNKED + ZZ[:-2] + b"X-A: a\x00\r\n\r\n",
        TE_CHUNKED + ZZ[:-2] + b"X-A: a\rb\r\n\r\n",
        TE_CHUNKED + ZZ[:-2] + b"X-A: a\r\r\nX-B: b\r\n\r\n",
        TE_CHUNKED + ZZ[:-2] + b"Transfer-Encoding: gzip\r\n\r\n",
        TE_CHUNKED + ZZ[:-2] + b"Content-Length: 1, 2\r\n\r\n",
    ],
)
def test_malformed_responses_are_protocol_errors(data: bytes) -> None:
    fails(data)


@pytest.mark.parametrize(
    "data",
    [
        b"",
        OK + b"Content-",
        b"HTTP/1.1 100 Continue\r\n\r\n",
        OK + b"Content-Length: 10\r\n\r\nabc",
        TE_CHUNKED,
        TE_CHUNKED + b"5\r\nhel",
        TE_CHUNKED + b"5\r\nhello\r\n",
    ],
)
def test_eof_before_the_end_of_the_response_is_a_protocol_error(data: bytes) -> None:
    reader = ResponseReader("GET")
    if data:
        reader.feed(data)
        drain(reader)  # no error while the connection is open
    fails(data, eof=True)


def test_head_larger_than_the_limit_without_its_end_is_a_protocol_error() -> None:
    reader = ResponseReader("GET")
    reader.feed(OK + b"X-Filler: " + b"a" * 100 + b"\r\n")
    assert reader.head() is None
    reader.feed((b"X-Filler: " + b"a" * 100 + b"\r\n") * 630)
    with pytest.raises(ProtocolError):
        reader.head()


def test_max_head_bytes_is_the_limit_while_the_head_trickles_in() -> None:
    reader = ResponseReader("GET", max_head_bytes=1000)
    reader.feed(OK + b"X-Filler: " + b"a" * 400 + b"\r\n" + EMPTY)
    head = reader.head()
    assert head is not None
    assert head.headers[0] == (b"x-filler", b"a" * 400)
    reader = ResponseReader("GET", max_head_bytes=1000)
    reader.feed(OK)
    with pytest.raises(ProtocolError):
        for _ in range(20):
            reader.feed(b"X-Filler: " + b"a" * 88 + b"\r\n")
            assert reader.head() is None


def test_header_names_are_lower_cased_values_stripped_order_and_duplicates_kept() -> None:
    head, _, _ = read_response(
        [
            OK + b"Content-Type:  text/plain \t\r\n"
            b"X-Request-ID:\tabc\r\n"
            b"Set-Cookie: a=1\r\n"
            b"X-Spaces: a  b\r\n"
            b"set-COOKIE: b=2\r\n"
            b"X-Empty:\r\n" + EMPTY
        ]
    )
    assert head is not None
    assert head.headers == [
        (b"content-type", b"text/plain"),
        (b"x-request-id", b"abc"),
        (b"set-cookie", b"a=1"),
        (b"x-spaces", b"a  b"),
        (b"set-cookie", b"b=2"),
        (b"x-empty", b""),
        (b"content-length", b"0"),
    ]


def test_obsolete_line_folding_is_joined_with_one_space() -> None:
    head, _, _ = read_response([OK + b"X-Long: first\r\n   second \r\n\tthird\r\n" + EMPTY])
    assert head is not None
    assert head.headers == [(b"x-long", b"first second third"), (b"content-length", b"0")]


@pytest.mark.parametrize(
    ("data", "keep_alive"),
    [
        (CONTENT_LENGTH, True),
        (CHUNKED, True),
        (b"HTTP/1.1 204 No Content\r\n\r\n", True),
        (OK + b"Connection: keep-alive\r\n" + EMPTY, True),
        (OK + b"Connection: close\r\n" + EMPTY, False),
        (OK + b"Connection: Keep-Alive, Close\r\n" + EMPTY, False),
        (OK + b"Connection: keep-alive\r\nconnection: CLOSE\r\n" + EMPTY, False),
        (b"HTTP/1.1 204 No Content\r\nConnection: close\r\n\r\n", False),
        (b"HTTP/1.0 200 OK\r\n" + EMPTY, False),
        (b"HTTP/1.0 200 OK\r\nConnection: keep-alive\r\n" + EMPTY, False),
        (OK + b"Transfer-Encoding: chunked\r\nContent-Length: 2\r\n\r\n" + ZZ, False),
        (CONTENT_LENGTH + b"HTTP/1.1 200 OK\r\n", False),
        (CHUNKED + b"x", False),
        (b"HTTP/1.1 204 No Content\r\n\r\nsurprise", False),
    ],
)
def test_keep_alive_only_for_a_cleanly_framed_http11_response_without_close(
    data: bytes, keep_alive: bool
) -> None:
    head, _, reader = read_response([data])
    assert head is not None
    assert reader.done
    assert reader.keep_alive is keep_alive


def test_bytes_after_the_end_are_not_body_and_end_keep_alive() -> None:
    reader = ResponseReader("GET")
    reader.feed(OK + b"Content-Length: 2\r\n\r\nhiEXTRA")
    assert reader.head() is not None
    assert reader.body() == b"hi"
    assert reader.done
    assert not reader.keep_alive
    reader = ResponseReader("GET")
    reader.feed(OK + b"Content-Length: 2\r\n\r\nhi")
    drain(reader)
    assert reader.keep_alive
    reader.feed(b"late")
    assert reader.body() == b""
    assert not reader.keep_alive


def test_encode_request_writes_the_exact_bytes() -> None:
    headers = [(b"Host", b"api.example.com"), (b"Content-Length", b"2"), (b"X-Empty", b"")]
    assert encode_request("POST", b"/v1/chat?x=1", headers, b"{}") == (
        b"POST /v1/chat?x=1 HTTP/1.1\r\n"
        b"Host: api.example.com\r\n"
        b"Content-Length: 2\r\n"
        b"X-Empty: \r\n"
        b"\r\n"
        b"{}"
    )
    assert encode_request("GET", b"/", [], b"") == b"GET / HTTP/1.1\r\n\r\n"


@pytest.mark.parametrize(
    ("method", "target", "name", "value"),
    [
        ("", b"/", b"X", b"1"),
        ("GE T", b"/", b"X", b"1"),
        ("GET\r\n", b"/", b"X", b"1"),
        ("G(ET", b"/", b"X", b"1"),
        ("GÉT", b"/", b"X", b"1"),
        ("GET", b"", b"X", b"1"),
        ("GET", b"/a b", b"X", b"1"),
        ("GET", b"/a\r\nX-Injected: 1", b"X", b"1"),
        ("GET", b"/a\x00", b"X", b"1"),
        ("GET", b"/a\x7f", b"X", b"1"),
        ("GET", b"/a\tb", b"X", b"1"),
        ("GET", b"/", b"", b"1"),
        ("GET", b"/", b"Bad Name", b"1"),
        ("GET", b"/", b"X:Y", b"1"),
        ("GET", b"/", b"X\r\nY", b"1"),
        ("GET", b"/", b"X", b"a\r\nX-Injected: 1"),
        ("GET", b"/", b"X", b"a\nb"),
        ("GET", b"/", b"X", b"a\rb"),
        ("GET", b"/", b"X", b"a\x00b"),
    ],
)
def test_encode_request_rejects_what_could_break_the_framing(
    method: str, target: bytes, name: bytes, value: bytes
) -> None:
    with pytest.raises(ValueError):
        encode_request(method, target, [(name, value)], b"")


@pytest.mark.parametrize(
    ("response", "method", "whole"),
    [
        (CONTENT_LENGTH, "GET", True),
        (OK + EMPTY, "GET", True),
        (OK + b"Content-Length: 5\r\n\r\nhi", "GET", False),  # 3 bytes to come
        (OK + b"Content-Length: 5\r\n\r\n", "HEAD", True),  # no body to a HEAD
        (CHUNKED, "GET", False),  # chunked: `whole_buffered` does not parse ahead
        (UNTIL_EOF, "GET", False),
        (OK + b"Content-Length: 5\r\n", "GET", False),  # no head yet
    ],
)
def test_whole_buffered_says_when_body_reads_all_of_the_body(
    response: bytes, method: str, whole: bool
) -> None:
    reader = ResponseReader(method)
    reader.feed(response)
    reader.head()
    assert reader.whole_buffered is whole
    if whole:
        reader.body()
        assert reader.done


@pytest.mark.parametrize(
    ("response", "unread"),
    [
        (CONTENT_LENGTH, True),
        (CHUNKED, True),  # `unread` does not parse: any byte after the head counts
        (OK + EMPTY, False),
        (OK + b"Content-Length: 5\r\n\r\n", False),  # the head alone
        (OK + b"Content-Length: 5\r\n", False),  # no head yet
    ],
)
def test_unread_says_whether_bytes_came_after_the_head(response: bytes, unread: bool) -> None:
    reader = ResponseReader("GET")
    reader.feed(response)
    reader.head()
    assert reader.unread is unread
    reader.body()
    assert not reader.unread  # `body()` took them
