"""SSE parsing cost: `EventSplitter` + `event_fields` (upstream/sse.py) turning a realistic
stream into (event, data) pairs, against the same from an older revision of the module, and
against the line-by-line `SSEParser` (decoded `str` events) where that revision still has it
(it was removed in favour of the splitter, which measured faster and is what the relay
needs: whole events as received).

Streams: an OpenAI chat completion (300 content deltas, a usage chunk, `[DONE]`) and an
Anthropic message (named events), LF line ends, delivered in network-sized pieces (random
cuts of 40-1400 bytes, fixed seed) and one event per piece. CPU time per event, best of
rounds, interleaved (a ratio on a shared machine):

    .venv/bin/python bench/sse_parsers.py [--against REV] [ROUNDS]   # REV default: HEAD~1

Measured when the parsers were unified (against aa880b7, us per event, ratio old/new):
SSEParser 2.1-3.2, old splitter 2.0-3.6, new splitter 1.7-2.5; new vs SSEParser 1.10-1.43x.
"""

from __future__ import annotations

import random
import subprocess
import sys
import time
import types
from pathlib import Path
from typing import TYPE_CHECKING, Any

import orjson

from tokenomics.upstream import sse

if TYPE_CHECKING:
    from collections.abc import Callable

SOURCE = "src/tokenomics/upstream/sse.py"


def openai_stream(n: int = 300) -> bytes:
    head = {"id": "chatcmpl-0123456789", "object": "chat.completion.chunk", "created": 1733000000,
            "model": "gpt-4o-mini-2024-07-18", "system_fingerprint": "fp_0123456789"}  # fmt: skip
    events = []
    for i in range(n):
        delta = {"content": f" word{i}"} if i else {"role": "assistant", "content": ""}
        choice = {"index": 0, "delta": delta, "logprobs": None, "finish_reason": None}
        events.append(orjson.dumps({**head, "choices": [choice]}))
    usage = {"prompt_tokens": 12, "completion_tokens": n, "total_tokens": 12 + n}
    events.append(orjson.dumps({**head, "choices": [], "usage": usage}))
    return b"".join(b"data: " + e + b"\n\n" for e in events) + b"data: [DONE]\n\n"


def anthropic_stream(n: int = 300) -> bytes:
    parts = [(b"message_start", {"type": "message_start", "message": {"id": "msg_01", "usage":
              {"input_tokens": 12, "output_tokens": 1}}})]  # fmt: skip
    for i in range(n):
        delta = {"type": "content_block_delta", "index": 0,
                 "delta": {"type": "text_delta", "text": f" word{i}"}}  # fmt: skip
        parts.append((b"content_block_delta", delta))
    parts.append((b"message_delta", {"type": "message_delta", "usage": {"output_tokens": n}}))
    parts.append((b"message_stop", {"type": "message_stop"}))
    return b"".join(b"event: " + k + b"\ndata: " + orjson.dumps(v) + b"\n\n" for k, v in parts)


def network_pieces(stream: bytes, seed: int = 7) -> list[bytes]:
    rng, pieces, at = random.Random(seed), [], 0
    while at < len(stream):
        step = rng.randint(40, 1400)
        pieces.append(stream[at : at + step])
        at += step
    return pieces


def event_pieces(stream: bytes) -> list[bytes]:
    return [event + b"\n\n" for event in stream.split(b"\n\n")[:-1]]


def load(rev: str) -> Any:
    """upstream/sse.py as it was at `rev`, as a module of its own."""
    root = Path(__file__).resolve().parent.parent
    text = subprocess.run(
        ["git", "-C", str(root), "show", f"{rev}:{SOURCE}"], check=True, capture_output=True
    ).stdout
    module = types.ModuleType(f"sse_{rev}")
    sys.modules[module.__name__] = module  # dataclasses look their module up
    exec(compile(text, f"{rev}:{SOURCE}", "exec"), module.__dict__)
    return module


def with_parser(module: Any, pieces: list[bytes]) -> list[tuple[str | None, bytes]]:
    parser = module.SSEParser()
    out = [(e.event, e.data.encode()) for piece in pieces for e in parser.feed(piece)]
    return out + [(e.event, e.data.encode()) for e in parser.close()]


def with_splitter(module: Any, pieces: list[bytes]) -> list[tuple[str | None, bytes]]:
    splitter, fields_of, out = module.EventSplitter(), module.event_fields, []
    for piece in pieces:
        for raw in splitter.feed(piece):
            if (fields := fields_of(raw)) is not None:
                out.append(fields)
    if (rest := splitter.flush()) and (fields := fields_of(rest)) is not None:
        out.append(fields)
    return out


def best(run: Callable[[], object], rounds: int) -> float:
    times = []
    for _ in range(rounds):
        start = time.process_time()
        for _ in range(20):
            run()
        times.append((time.process_time() - start) / 20)
    return min(times)


def main() -> None:
    args = sys.argv[1:]
    rev = "HEAD~1"
    if args[:1] == ["--against"]:
        rev, args = args[1], args[2:]
    rounds = int(args[0]) if args else 15
    old = load(rev)
    runs: list[tuple[str, Callable[[list[bytes]], list[tuple[str | None, bytes]]]]] = []
    if hasattr(old, "SSEParser"):
        runs.append((f"SSEParser@{rev}", lambda p: with_parser(old, p)))
    runs.append((f"splitter@{rev}", lambda p: with_splitter(old, p)))
    runs.append(("splitter (now)", lambda p: with_splitter(sse, p)))
    print(f"{'us per event':<26}" + "".join(f"{name:>22}" for name, _ in runs) + "   old/now")
    for name, stream in (("openai", openai_stream()), ("anthropic", anthropic_stream())):
        for cut, pieces in (("network", network_pieces(stream)), ("event", event_pieces(stream))):
            expected = with_splitter(sse, pieces)
            assert all(run(pieces) == expected for _, run in runs)
            found = [float("inf")] * len(runs)
            for _ in range(3):  # interleaved
                for i, (_, run) in enumerate(runs):
                    found[i] = min(found[i], best(lambda r=run, p=pieces: r(p), rounds))
            per = [f / len(expected) * 1e6 for f in found]
            ratios = " ".join(f"{p / per[-1]:.2f}x" for p in per[:-1])
            label = f"{name}, {cut} pieces"
            print(f"{label:<26}" + "".join(f"{p:>22.3f}" for p in per) + f"   {ratios}")


if __name__ == "__main__":
    main()
