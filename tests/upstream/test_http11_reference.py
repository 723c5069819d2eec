"""The response reader whose heads are decoded once and whose known header names skip the
per-line checks reads what the previous one (tests/upstream/reference_http11.py) read: the
same status, headers, body and reusability, or a `ProtocolError` at the same point, over
generated hostile responses (those of test_http11_hostile.py) and heads built to reach both
the fast path (names seen before) and the slow one (new names, folds, blanks to strip, odd
bytes), each fed in random pieces; each response is read twice, so that its names are known
the second time."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from tests.upstream import reference_http11 as reference
from tests.upstream.test_http11_hostile import hostile_response, pieces

from tokenomics.upstream import http11_head
from tokenomics.upstream.http11 import ProtocolError, ResponseReader

Outcome = tuple[Any, ...]

NAMES = st.sampled_from(
    [b"Content-Length", b"content-length", b"CONTENT-LENGTH", b"Transfer-Encoding",
     b"Connection", b"connection", b"Content-Type", b"Server", b"Date", b"X-Request-Id",
     b"x-\xe9", b"Bad Name", b"", b"X(A", b"Content-Length ", b"\tX-A", b" X-A",
     b"K\xc3\xa9", b"Set-Cookie"]
)  # fmt: skip
VALUES = st.one_of(
    st.sampled_from(
        [b"0", b"12", b"5, 5", b"5,6", b" 7 ", b"\t8", b"", b"close", b"Close", b"keep-alive",
         b"keep-alive, close", b"CLOSE ,", b"closed", b"chunked", b"Chunked", b"gzip",
         b"\xb2", b"\xb9\xb3", b"1_0", b"+5", b"0x5", b"123456789012345678",
         b"1234567890123456789", b"caf\xe9 ", b"a: b", b"x\x00", b"x\rx", b"x\x0bx"]
    ),
    st.binary(max_size=6),
)  # fmt: skip
SEPARATORS = st.sampled_from([b": "] * 6 + [b":", b":\t", b": \t ", b" :", b""])
ENDS = st.sampled_from([b"\r\n"] * 12 + [b"\n", b"  \r\n", b"\t\r\n", b"\r"])
FRAMING = st.sampled_from([b"Content-Length", b"Connection", b"Transfer-Encoding"])


@st.composite
def response(draw: Any) -> tuple[str, bytes]:
    method = draw(st.sampled_from(["POST", "GET", "HEAD"]))
    status = draw(st.sampled_from([b"200 OK"] * 4 + [b"204 No Content", b"304 x", b"101 x"]))
    data = b"HTTP/1." + draw(st.sampled_from([b"1", b"1", b"0"])) + b" " + status + b"\r\n"
    for _ in range(draw(st.integers(0, 6))):
        if draw(st.integers(0, 12)) == 0:  # an obsolete fold
            data += draw(st.sampled_from([b" more", b"\tmore", b" "])) + b"\r\n"
            continue
        name = draw(st.one_of(FRAMING, NAMES))
        data += name + draw(SEPARATORS) + draw(VALUES) + draw(ENDS)
    body = draw(st.binary(max_size=16))
    if draw(st.booleans()):  # framed right: whether the connection is kept then shows
        data += b"Content-Length: " + str(len(body)).encode() + b"\r\n"
    return method, data + b"\r\n" + body


def read(reader_class: type[Any], method: str, parts: list[bytes]) -> Outcome:
    """What a reader makes of `parts`: ("error", part index) or the status, headers (bytes),
    body, done and keep_alive once the parts and the end of the connection are fed."""
    reader = reader_class(method)
    head, body = None, b""
    for index, part in enumerate([*parts, b""]):
        try:
            reader.feed(part)
            if head is None:
                head = reader.head()
            if head is not None and not reader.done:
                body += reader.body()
        except ProtocolError:
            return ("error", index)
        except reference.ProtocolError:
            return ("error", index)
    if head is None:
        return ("no head",)
    return head.status, head.headers, body, reader.done, reader.keep_alive


def check(method: str, data: bytes, cuts: list[int]) -> None:
    parts = pieces(data, cuts)
    expected = read(reference.ResponseReader, method, parts)
    assert read(ResponseReader, method, parts) == expected, data  # names maybe new
    assert read(ResponseReader, method, parts) == expected, data  # names known now


@example(case=("POST", b"HTTP/1.1 200 OK\r\nContent-Length: \xb2\r\n\r\n"), cuts=[])
@example(
    case=("GET", b"HTTP/1.1 200 OK\r\nConnection: Close\r\nContent-Length: 0\r\n\r\n"), cuts=[]
)
@example(case=("POST", b"HTTP/1.1 200 OK\r\nContent-Length: 1234567890123456789\r\n\r\n"), cuts=[])
@example(
    case=("POST", b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nContent-Length: 5\r\n\r\n"), cuts=[]
)
@settings(max_examples=600, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(case=response(), cuts=st.lists(st.integers(0, 300), max_size=4))
def test_generated_heads_read_as_the_reference_reads_them(
    case: tuple[str, bytes], cuts: list[int]
) -> None:
    check(*case, cuts)


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(case=hostile_response(), cuts=st.lists(st.integers(0, 500), max_size=4))
def test_hostile_responses_read_as_the_reference_reads_them(
    case: tuple[str, bytes], cuts: list[int]
) -> None:
    check(*case, cuts)


def test_a_head_decodes_once_to_the_text_the_client_hands_on() -> None:
    reader = ResponseReader("POST")
    reader.feed(
        b"HTTP/1.1 200 OK\r\nX-Caf\xe9: no\r\nX-Name: caf\xe9 \r\nContent-Length: 0\r\n\r\n"
    )
    with pytest.raises(ProtocolError):  # a latin-1 letter is no token
        reader.head()
    reader = ResponseReader("POST")
    reader.feed(b"HTTP/1.1 200 OK\r\nX-Name:  caf\xe9 \r\nContent-Length: 0\r\n\r\n")
    head = reader.head()
    assert head is not None
    assert head.fields == [("x-name", "caf\xe9"), ("content-length", "0")]
    assert head.headers == [(b"x-name", b"caf\xe9"), (b"content-length", b"0")]
    assert "X-Name" in http11_head._TEXT_NAMES  # learnt: the next such head takes the fast path


def test_a_known_name_alone_on_a_line_is_no_header() -> None:
    check("GET", b"HTTP/1.1 200 OK\r\nServer: x\r\nContent-Length: 0\r\n\r\n", [])
    check("GET", b"HTTP/1.1 200 OK\r\nServer\r\nContent-Length: 0\r\n\r\n", [])
