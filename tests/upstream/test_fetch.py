"""`upstream/fetch.py`: one whole request on the upstream client, as the CLI's probes and the
central-server client make it; and `cli/probe.py` on top of it (its few-word reasons)."""

from __future__ import annotations

import socket
import threading

import pytest
import trio
from tests.upstream.test_client import PROXY_VARS, RawUpstream, running

from tokenomics.cli.probe import http_get
from tokenomics.domain.errors import ProbeError, UpstreamError, UpstreamTimeout, UpstreamTooLarge
from tokenomics.upstream.fetch import fetch_blocking, fetch_once, os_reason

CHUNKED = (
    b"HTTP/1.1 200 OK\r\nx-tokenomics-pid: 42\r\ntransfer-encoding: chunked\r\n\r\n"
    b"1\r\n.\r\n0\r\n\r\n"
)


@pytest.fixture(autouse=True)
def no_proxy_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in PROXY_VARS:
        monkeypatch.delenv(name, raising=False)
        monkeypatch.delenv(name.lower(), raising=False)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


async def test_a_chunked_answer_is_read_whole_with_its_headers() -> None:
    upstream = RawUpstream(reply=CHUNKED)
    async with running(upstream) as url:
        fetched = await fetch_once("GET", url + "/ping", headers=[("User-Agent", "t")], within=5)
    assert (fetched.status, fetched.body) == (200, b".")
    assert fetched.header("x-tokenomics-pid") == "42" and fetched.header("absent") == ""
    head = upstream.requests[0][0].lower()
    assert head.startswith(b"get /ping http/1.1") and b"user-agent: t" in head


async def test_a_refused_connection_says_so_in_a_few_words() -> None:
    with pytest.raises(UpstreamError) as caught:
        await fetch_once("GET", f"http://127.0.0.1:{free_port()}/", within=5)
    assert caught.value.reason == "could not connect to upstream"  # the safe text
    assert os_reason(caught.value) == "connection refused"  # the operator's


@pytest.mark.parametrize("framing", ["length", "chunked"])  # the whole body at once, or not
async def test_a_body_over_the_limit_is_refused_not_cut(framing: str) -> None:
    big = b"HTTP/1.1 200 OK\r\ncontent-length: 2000\r\n\r\n" + b"x" * 2000
    if framing == "chunked":
        big = b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n7d0\r\n" + b"x" * 2000
        big += b"\r\n0\r\n\r\n"
    async with running(RawUpstream(reply=big)) as url:
        with pytest.raises(UpstreamTooLarge):
            await fetch_once("GET", url, within=5, limit=1000)
        assert (await fetch_once("GET", url, within=5, limit=2000)).body == b"x" * 2000


async def test_a_server_that_never_answers_is_a_timeout_of_the_whole_exchange(
    autojump_clock: trio.testing.MockClock,
) -> None:
    async with running(RawUpstream(stall_before_reply=True)) as url:
        with pytest.raises(UpstreamTimeout, match="no answer within 5s"):
            await fetch_once("GET", url, within=5)


async def test_an_answer_that_stops_halfway_is_a_timeout_too(
    autojump_clock: trio.testing.MockClock,
) -> None:
    half = b"HTTP/1.1 200 OK\r\ncontent-length: 10\r\n\r\nabc"
    async with running(RawUpstream(reply=half, stall_after_reply=True)) as url:
        with pytest.raises(UpstreamTimeout):
            await fetch_once("GET", url, within=5)


async def test_the_probe_names_garbage_refusal_and_bad_urls() -> None:
    async with running(
        RawUpstream(reply=b"SSH-2.0-OpenSSH\r\n\r\n", close_after_reply=True)
    ) as url:
        with pytest.raises(ProbeError, match="^not an HTTP answer$"):
            await http_get(url + "/ping", ssl_context=None)
    with pytest.raises(ProbeError, match="^connection refused$"):
        await http_get(f"http://127.0.0.1:{free_port()}/ping", ssl_context=None)
    with pytest.raises(ProbeError, match="not an http"):
        await http_get("ftp://127.0.0.1/ping", ssl_context=None)


async def test_the_probe_never_goes_through_the_environments_proxy(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("HTTP_PROXY", f"http://127.0.0.1:{free_port()}")  # nothing listens
    async with running(RawUpstream(reply=CHUNKED)) as url:
        assert await http_get(url + "/ping", ssl_context=None) == (200, b".")


def test_synchronous_callers_get_the_same_answer() -> None:
    async def serve_one(task_status: trio.TaskStatus[str]) -> None:
        async with running(RawUpstream(reply=CHUNKED)) as url:
            task_status.started(url)
            await trio.sleep_forever()

    # A server on a thread of its own, asked from plain synchronous code.
    found: list[str] = []
    ready, stop = threading.Event(), threading.Event()

    async def host() -> None:
        async with trio.open_nursery() as nursery:
            found.append(await nursery.start(serve_one))
            ready.set()
            await trio.to_thread.run_sync(stop.wait)
            nursery.cancel_scope.cancel()

    thread = threading.Thread(target=trio.run, args=(host,))
    thread.start()
    try:
        ready.wait(10)
        fetched = fetch_blocking("GET", found[0] + "/health", within=5)
    finally:
        stop.set()
        thread.join()
    assert fetched.status == 200 and fetched.header("x-tokenomics-pid") == "42"
