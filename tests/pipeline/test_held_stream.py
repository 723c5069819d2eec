"""An SSE reply that arrived whole with its head is held and sent in one part with the end
(`run._stream`); it must send and record what the relay does when the same reply arrives
apart (the head first, flushed alone; then the body, relayed as it comes). Each case is
served both ways through the real server's handler, with a raw upstream: the client's bytes,
the record (usage, metadata, error, sizes, the stream's capture) and its memory text agree,
under output rules, with a broken or compressed body too."""

from __future__ import annotations

import gzip
from pathlib import Path
from typing import Any

import pytest
import trio
from tests.pipeline.test_reply_writes import (
    CHUNKED_HEAD,
    DONE,
    USAGE,
    Recorder,
    chunk,
    delta,
    payloads,
    serve,
    upstream,
)
from tests.support.proxy import Proxy, start_proxy

from tokenomics.services.finished import Finished
from tokenomics.services.memory_format import response_content

END = b"0\r\n\r\n"
EMAIL_RULE = {"type": "pii", "detect": ["email"], "action": "mask", "scope": "output"}
FAIL_RULE = {"type": "keyword", "keywords": ["forbidden"], "action": "fail", "scope": "output"}

# name: (the upstream's head, its body, the policy's rules)
CASES: dict[str, tuple[bytes, bytes, list[dict[str, Any]]]] = {
    "usage reported (its chunk dropped)": (CHUNKED_HEAD, delta("a") + USAGE + DONE, []),
    "no usage (the text is estimated)": (CHUNKED_HEAD, delta("a") + delta(" b") + DONE, []),
    "an unfinished last event": (CHUNKED_HEAD, delta("a") + USAGE + b"data: [DONE]", []),
    "comments and named events": (
        CHUNKED_HEAD,
        b": keep-alive\n\n" + b"event: x\ndata: {}\n\n" + delta("a") + USAGE + DONE,
        [],
    ),
    "output masked across events": (
        CHUNKED_HEAD,
        delta("write to bob@exa") + delta("mple.com today") + USAGE + DONE,
        [EMAIL_RULE],
    ),
    "output blocked": (
        CHUNKED_HEAD,
        delta("this is ") + delta("forbidden") + delta(" text") + USAGE + DONE,
        [FAIL_RULE],
    ),
    "undecodable gzip": (
        CHUNKED_HEAD.replace(b"\r\n\r\n", b"\r\ncontent-encoding: gzip\r\n\r\n"),
        b"not gzip at all",
        [],
    ),
    "gzip": (
        CHUNKED_HEAD.replace(b"\r\n\r\n", b"\r\ncontent-encoding: gzip\r\n\r\n"),
        gzip.compress(delta("a") + USAGE + DONE),
        [],
    ),
}


def comparable(f: Finished) -> dict[str, Any]:
    """What a record says of the reply, without what differs between two requests (ids,
    times, the token)."""
    capture = f.response_stream
    return {
        "status": f.status,
        "stream": f.stream,
        "error": f.error,
        "usage": f.usage,
        "meta": f.meta,
        "cost": f.cost_usd,
        "body": f.response_body,
        "bytes": f.response_bytes,
        "text": f.response_text,
        "captured": capture.kept_bytes if capture is not None else None,
        "headers": f.response_headers,
        "rule_matches": f.rule_matches,
        "memory": response_content(f),
    }


async def relayed(
    proxy: Proxy, head: bytes, body: bytes, rules: list[dict[str, Any]], whole: bool
) -> tuple[bytes, dict[str, Any], bool]:
    """One streamed request: the client's bytes, the record, and whether the reply went out
    in one part."""
    recorder = Recorder(proxy)
    flushed = recorder.when(lambda m: m["body"] == b"" and m["more_body"])
    rest = chunk(body) + END

    async def script(stream: trio.SocketStream) -> None:
        if whole:
            await stream.send_all(head + rest)
        else:
            await stream.send_all(head)
            await flushed.wait()
            await stream.send_all(rest)

    records: list[Finished] = []
    recorder_of_proxy = proxy.server.deps.recorder
    journal = recorder_of_proxy.journal

    def keep(finished: Finished) -> None:
        records.append(finished)
        if journal is not None:
            journal(finished)

    recorder_of_proxy.journal = keep
    try:
        async with upstream(proxy, script, rules=rules) as token:
            await serve(proxy, token, recorder)
    finally:
        recorder_of_proxy.journal = journal
    [record] = records
    return payloads(recorder.parts()), comparable(record), len(recorder.parts()) == 1


@pytest.mark.parametrize("case", list(CASES))
async def test_a_reply_held_whole_sends_and_records_what_one_relayed_apart_does(
    tmp_path: Path, case: str
) -> None:
    head, body, rules = CASES[case]
    async with start_proxy(tmp_path) as proxy:
        sent_whole, record_whole, held = await relayed(proxy, head, body, rules, True)
        sent_apart, record_apart, held_apart = await relayed(proxy, head, body, rules, False)
    assert held and not held_apart  # each took its way
    assert sent_whole == sent_apart
    assert record_whole == record_apart
    assert record_whole["captured"] == len(sent_whole)
