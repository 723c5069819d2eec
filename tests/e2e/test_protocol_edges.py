"""Protocol edges and surfaces through the real server (issue 12, items 8 and 10): a request
framed with both Content-Length and Transfer-Encoding is refused and its connection closed
(RFC 9112 §6.1); HTTP/2 is not served, in clear or over TLS (only HTTP/1.1 is documented);
`/stats` and `/metrics` follow `admin.enabled` (`cli.md` §8.1)."""

from __future__ import annotations

import ssl
from contextlib import suppress
from pathlib import Path

import h2.config
import h2.connection
import h2.events
import pytest
import trio
from tests.support.mock_upstream import MockUpstream
from tests.support.proxy import Proxy, start_proxy
from tests.support.raw_wire import (
    OPENAI,
    ROUTES,
    answer,
    closes,
    connection,
    error_message,
    head,
)


@pytest.mark.parametrize(("path", "family"), ROUTES)
async def test_content_length_with_transfer_encoding_is_refused_and_the_connection_closed(
    limited: Proxy, mock_upstream_server: MockUpstream, path: str, family: str
) -> None:
    """RFC 9112 §6.1: the framing a smuggler uses is answered 400, and the connection closed."""
    token = limited.token(OPENAI)
    body = b'{"model": "gpt-4o", "messages": [{"role": "user", "content": "hi"}]}'
    chunk = b"%x\r\n%s\r\n0\r\n\r\n" % (len(body), body)
    request = head(path, token, content_length=str(len(body)), transfer_encoding="chunked")
    async with connection(limited) as stream:
        await stream.send_all(request + chunk)
        with trio.fail_after(5):
            refused = await answer(stream)
            await closes(stream)
    assert refused.status == 400 and refused.headers["connection"] == "close"
    assert error_message(refused, family) == (
        "request has both Content-Length and Transfer-Encoding"
    )
    assert mock_upstream_server.requests == []


async def test_a_request_smuggled_behind_both_framings_is_never_served(
    limited: Proxy, mock_upstream_server: MockUpstream
) -> None:
    """What follows the refused request on its connection is not read as a request; the 400
    still arrives (the server sends EOF and drains before it closes)."""
    token = limited.token(OPENAI)
    smuggled = f"GET /v1/models HTTP/1.1\r\nhost: proxy\r\nx-api-key: {token}\r\n\r\n"
    request = head("/v1/chat/completions", token, content_length="5", transfer_encoding="chunked")
    received = b""
    async with connection(limited) as stream:
        await stream.send_all(request + b"0\r\n\r\n" + smuggled.encode())
        with trio.fail_after(5), suppress(trio.BrokenResourceError):
            while chunk := await stream.receive_some():
                received += chunk
    assert received.startswith(b"HTTP/1.1 400 ")
    assert b"HTTP/1.1 200" not in received
    assert mock_upstream_server.requests == []


async def test_an_h2c_upgrade_is_refused_with_505(limited: Proxy) -> None:
    """The server switches no protocol: the request asking for h2c is answered in HTTP/1.1,
    505 in the route's family, and the connection closes (nothing after it is read)."""
    settings = "AAMAAABkAARAAAAAAAIAAAAA"
    request = (
        "GET /v1/models HTTP/1.1\r\nhost: proxy\r\nconnection: Upgrade, HTTP2-Settings\r\n"
        f"upgrade: h2c\r\nhttp2-settings: {settings}\r\n\r\n"
    )
    async with connection(limited) as stream:
        await stream.send_all(request.encode())
        with trio.fail_after(5):
            refused = await answer(stream)
            await closes(stream)
    assert refused.status == 505 and refused.headers["connection"] == "close"
    assert error_message(refused, "openai") == "HTTP/2 is not served; use HTTP/1.1"


async def test_http2_with_prior_knowledge_opens_no_stream(
    limited: Proxy, mock_upstream_server: MockUpstream
) -> None:
    client = h2.connection.H2Connection(h2.config.H2Configuration(client_side=True))
    client.initiate_connection()
    token = limited.token(OPENAI)
    request = [(":method", "GET"), (":path", "/v1/models"), (":scheme", "http"),
               (":authority", "proxy"), ("x-api-key", token)]  # fmt: skip
    client.send_headers(1, request, end_stream=True)
    events: list[h2.events.Event] = []
    async with connection(limited) as stream:
        await stream.send_all(client.data_to_send())
        with trio.fail_after(5):
            while data := await stream.receive_some():
                events += client.receive_data(data)
                await stream.send_all(client.data_to_send())
    assert any(isinstance(e, h2.events.ConnectionTerminated) for e in events)
    assert not any(isinstance(e, h2.events.ResponseReceived) for e in events)
    assert mock_upstream_server.requests == []


# --- admin.enabled (item 8) -------------------------------------------------------------------


@pytest.mark.parametrize("path", ["/stats", "/metrics"])
async def test_with_admin_disabled_stats_and_metrics_are_the_proxys_paths(
    mock_upstream_server: MockUpstream, tmp_path: Path, path: str
) -> None:
    """`cli.md` §8.1: with admin off its paths fall through to the proxy (401 without a
    token; with one, passed through like any other path)."""
    config = "admin:\n  enabled: false\n"
    async with start_proxy(tmp_path, mock_upstream_server.url, config=config) as proxy:
        token = proxy.token(OPENAI)
        async with proxy.client() as client:
            anonymous = await client.get(path)
            passed = await client.get(path, headers={"x-api-key": token})
    assert anonymous.status_code == 401
    assert anonymous.json()["error"]["type"] == "tokenomics_error"
    assert [r.path for r in mock_upstream_server.requests] == [path]
    assert "totals" not in passed.text and "tokenomics_requests" not in passed.text


async def test_tls_offers_http_1_1_only(mock_upstream_server: MockUpstream, tmp_path: Path) -> None:
    """HTTP/1.1 is what is documented: a client offering h2 first still gets HTTP/1.1."""
    env = {"TOKENOMICS_SERVER_TLS_ENABLED": "true"}
    async with start_proxy(tmp_path, mock_upstream_server.url, env=env) as proxy:
        (url,) = [u for u in proxy.server.urls if u.startswith("https://")]
        context = ssl.create_default_context(cafile=tmp_path / "data" / "certs" / "ca.crt")
        context.set_alpn_protocols(["h2", "http/1.1"])
        host, port = url.removeprefix("https://").rsplit(":", 1)
        tcp = await trio.open_tcp_stream(host, int(port))
        stream = trio.SSLStream(tcp, context, server_hostname="localhost")
        await stream.do_handshake()
        assert stream.selected_alpn_protocol() == "http/1.1"
        await stream.send_all(b"GET /ping HTTP/1.1\r\nhost: localhost\r\n\r\n")
        assert (await stream.receive_some()).startswith(b"HTTP/1.1 200")
        await stream.aclose()
