"""Output rules on streamed responses (D12), sans-I/O: `StreamGuard` fed whole SSE events of
every API family, as the upstream would send them, split anywhere."""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import orjson
import pytest

from tokenomics.domain.engine import REDACTED, Match, mask
from tokenomics.domain.policy import parse_policy
from tokenomics.domain.resolve import resolve_for_model
from tokenomics.domain.rules import Rule, compile_rule, parse_rule_list
from tokenomics.domain.usage import Family as ApiFamily
from tokenomics.formats.classify import classify
from tokenomics.formats.stream_text import stream_text
from tokenomics.pipeline import stream_guard
from tokenomics.pipeline.exchange import Exchange, Incoming
from tokenomics.pipeline.stream_guard import (
    DEFAULT_WINDOW,
    MAX_HOLD,
    MIN_STEP,
    StreamGuard,
    guard_for,
)
from tokenomics.upstream.sse import all_event_fields, event_fields

Json = dict[str, Any]


def rules_of(*raw: Any) -> list[Rule]:
    return [compile_rule(item) for item in parse_rule_list(list(raw))]


def pii(*detect: str, action: str = "mask") -> Json:
    return {"type": "pii", "detect": list(detect), "action": action, "scope": "output"}


def sse(payload: Any, name: str | None = None, end: str = "\n\n") -> bytes:
    head = f"event: {name}\n" if name else ""
    return f"{head}data: ".encode() + orjson.dumps(payload) + end.encode()


def payloads(raw: bytes) -> list[tuple[str | None, Any]]:
    return [(name, parsed(data)) for name, data in all_event_fields(raw)]


def parsed(data: bytes) -> Any:
    """An event's data as the guard gets it: JSON, or text (`[DONE]`)."""
    return data.decode() if data == b"[DONE]" else orjson.loads(data)


# ── the families: a stream of given text pieces, and the text a client reads from one ───────


def chat_events(pieces: list[str]) -> list[bytes]:
    head = {"id": "chatcmpl-1", "object": "chat.completion.chunk", "created": 1, "model": "m"}

    def chunk(delta: Json, finish: str | None = None) -> bytes:
        choice = {"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}
        return sse({**head, "choices": [choice]})

    return [
        chunk({"role": "assistant", "content": ""}),
        *(chunk({"content": p}) for p in pieces),
        chunk({}, "stop"),
        b"data: [DONE]\n\n",
    ]


def chat_text(raw: bytes) -> str:
    return "".join(
        choice["delta"].get("content") or ""
        for _, p in payloads(raw)
        if isinstance(p, dict)
        for choice in p["choices"]
    )


def completion_events(pieces: list[str]) -> list[bytes]:
    head = {"id": "cmpl-1", "object": "text_completion", "created": 1, "model": "m"}
    texts = [*pieces, ""]
    return [
        *(
            sse(
                {
                    **head,
                    "choices": [
                        {
                            "index": 0,
                            "text": t,
                            "finish_reason": "stop" if i == len(texts) - 1 else None,
                        }
                    ],
                }
            )
            for i, t in enumerate(texts)
        ),
        b"data: [DONE]\n\n",
    ]


def completion_text(raw: bytes) -> str:
    return "".join(c["text"] for _, p in payloads(raw) if isinstance(p, dict) for c in p["choices"])


def responses_events(pieces: list[str]) -> list[bytes]:
    text = "".join(pieces)
    at = {"item_id": "msg_1", "output_index": 0, "content_index": 0}
    part = {"type": "output_text", "text": text, "annotations": []}
    item = {"id": "msg_1", "type": "message", "role": "assistant", "content": [part]}
    response = {"id": "resp_1", "object": "response", "status": "completed", "output": [item]}
    events: list[Json] = [
        {"type": "response.created", "response": {**response, "output": []}},
        {"type": "response.output_item.added", "output_index": 0, "item": {**item, "content": []}},
        {"type": "response.content_part.added", **at, "part": {**part, "text": ""}},
        *({"type": "response.output_text.delta", **at, "delta": p, "logprobs": []} for p in pieces),
        {"type": "response.output_text.done", **at, "text": text, "logprobs": []},
        {"type": "response.content_part.done", **at, "part": part},
        {"type": "response.output_item.done", "output_index": 0, "item": item},
        {"type": "response.completed", "response": response},
    ]
    return [sse({**e, "sequence_number": k}, e["type"]) for k, e in enumerate(events)]


def responses_text(raw: bytes) -> str:
    """The deltas; every repeated full text must be the same."""
    found = [p for _, p in payloads(raw)]
    text = "".join(p["delta"] for p in found if p["type"] == "response.output_text.delta")
    snapshots = {
        "response.output_text.done": lambda p: p["text"],
        "response.content_part.done": lambda p: p["part"]["text"],
        "response.output_item.done": lambda p: p["item"]["content"][0]["text"],
        "response.completed": lambda p: p["response"]["output"][0]["content"][0]["text"],
    }
    for p in found:
        if p["type"] in snapshots:
            assert snapshots[p["type"]](p) == text, p["type"]
    return text


def anthropic_events(pieces: list[str]) -> list[bytes]:
    events: list[Json] = [
        {
            "type": "message_start",
            "message": {
                "id": "msg_1",
                "content": [],
                "usage": {"input_tokens": 3, "output_tokens": 1},
            },
        },
        {"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}},
        {"type": "ping"},
        *(
            {"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": p}}
            for p in pieces
        ),
        {"type": "content_block_stop", "index": 0},
        {
            "type": "message_delta",
            "delta": {"stop_reason": "end_turn"},
            "usage": {"output_tokens": 9},
        },
        {"type": "message_stop"},
    ]
    return [sse(e, e["type"]) for e in events]


def anthropic_text(raw: bytes) -> str:
    return "".join(
        p["delta"].get("text", "") for _, p in payloads(raw) if p["type"] == "content_block_delta"
    )


def gemini_events(pieces: list[str]) -> list[bytes]:
    pieces = pieces or [""]

    def chunk(text: str, final: bool) -> bytes:
        candidate: Json = {"content": {"parts": [{"text": text}], "role": "model"}, "index": 0}
        if final:
            candidate["finishReason"] = "STOP"
        usage = {"promptTokenCount": 3, "candidatesTokenCount": 1, "totalTokenCount": 4}
        return sse({"candidates": [candidate], "usageMetadata": usage}, end="\r\n\r\n")

    return [chunk(p, i == len(pieces) - 1) for i, p in enumerate(pieces)]


def gemini_text(raw: bytes) -> str:
    return "".join(
        part.get("text", "")
        for _, p in payloads(raw)
        for c in p["candidates"]
        for part in c["content"]["parts"]
    )


@dataclass(frozen=True)
class Family:
    name: str
    kind: str
    api: ApiFamily
    events: Callable[[list[str]], list[bytes]]
    text: Callable[[bytes], str]
    closing: int  # how many events at the end close the text (not deltas)


FAMILIES = [
    Family("chat", "openai_chat", "openai", chat_events, chat_text, 2),
    Family("completions", "openai_completions", "openai", completion_events, completion_text, 2),
    Family("responses", "openai_responses", "openai", responses_events, responses_text, 4),
    Family("anthropic", "anthropic_messages", "anthropic", anthropic_events, anthropic_text, 3),
    Family("gemini", "gemini_generate", "gemini", gemini_events, gemini_text, 1),
]
by_family = pytest.mark.parametrize("family", FAMILIES, ids=[f.name for f in FAMILIES])


@dataclass
class Recorded:
    matches: list[tuple[str | None, list[Match]]] = field(default_factory=list)
    masks: int = 0

    def matched(self, matches: Any, event: str | None) -> None:
        self.matches.append((event, list(matches)))

    def masked(self) -> None:
        self.masks += 1


@dataclass
class Run:
    outputs: list[bytes]  # one per event fed, then the output of `close()`
    guard: StreamGuard
    recorded: Recorded

    @property
    def raw(self) -> bytes:
        return b"".join(self.outputs)


def guard(family: Family, rules: list[Rule]) -> tuple[StreamGuard, Recorded]:
    reader = stream_text(family.kind)
    assert reader is not None
    recorded = Recorded()
    return StreamGuard(rules, reader, family.api, recorded), recorded


def run(family: Family, rules: list[Rule], events: list[bytes]) -> Run:
    """Feed whole events as the relay does (one parsed event per raw event)."""
    g, recorded = guard(family, rules)
    outputs = []
    for raw in events:
        fields = event_fields(raw)
        assert fields is not None
        outputs.append(g.feed(raw, fields[0], parsed(fields[1])))
    outputs.append(g.close())
    return Run(outputs, g, recorded)


def streamed(family: Family, rules: list[Rule], pieces: list[str]) -> Run:
    return run(family, rules, family.events(pieces))


def words(text: str) -> list[str]:
    """One piece per word, as the mock upstream and most models send them."""
    return re.findall(r"\s*\S+\s*$|\s*\S+", text)


# ── masking a secret split anywhere ─────────────────────────────────────────────────────────

SECRETS = {
    "ssn": ("123-45-6789", pii("ssn")),
    "email": ("jane.doe@example.com", pii("email")),
    "api_key": ("sk-proj-Abc123Def456Ghi789Jkl012Mno345", pii("api_key")),
    "card_with_spaces": ("4111 1111 1111 1111", pii("credit_card")),
}
by_secret = pytest.mark.parametrize("secret", list(SECRETS), ids=list(SECRETS))


def sentence(secret: str) -> str:
    return f"Sure, here it is: {secret} and nothing else, have a nice day."


@by_family
@by_secret
def test_a_secret_split_across_two_chunks_at_every_position_is_masked_whole(
    family: Family, secret: str
) -> None:
    value, rule = SECRETS[secret]
    rules = rules_of(rule)
    text = sentence(value)
    start = text.index(value)
    expected = text.replace(value, REDACTED)
    assert mask(rules, text, "output") == expected
    for cut in range(start + 1, start + len(value)):
        result = streamed(family, rules, [text[:cut], text[cut:]])
        assert family.text(result.raw) == expected, cut
        assert value not in result.raw.decode()


@by_family
@by_secret
@pytest.mark.parametrize("size", [1, 2, 3, 5, 7])
def test_a_secret_split_across_many_chunks_is_masked_whole(
    family: Family, secret: str, size: int
) -> None:
    value, rule = SECRETS[secret]
    rules = rules_of(rule)
    text = sentence(value)
    for offset in range(size):  # every alignment of the chunk grid
        pieces = [text[:offset]] + [text[i : i + size] for i in range(offset, len(text), size)]
        result = streamed(family, rules, [p for p in pieces if p])
        assert family.text(result.raw) == text.replace(value, REDACTED), (size, offset)


@by_family
def test_two_secrets_and_the_words_around_them_stream_as_the_buffered_mask_would(
    family: Family,
) -> None:
    rules = rules_of(pii("ssn", "email", "credit_card", "phone", "ip_address"))
    text = (
        "Contact jane@example.com or call me at +44 20 7946 0958 today. The card "
        "4111-1111-1111-1111 and SSN 123-45-6789 belong to host 10.0.0.1, version 1.2.3.4 is fine."
    )
    result = streamed(family, rules, words(text))
    assert family.text(result.raw) == mask(rules, text, "output")
    assert result.recorded.masks == 1


# ── text flows before the end of the stream ─────────────────────────────────────────────────


@by_family
def test_text_before_and_after_a_secret_is_released_before_the_stream_ends(
    family: Family,
) -> None:
    rules = rules_of(pii("ssn"))
    text = "one two three four five six seven eight nine ten my number is 123-45-6789 " + " ".join(
        f"word{i}" for i in range(40)
    )
    events = family.events(words(text))
    result = run(family, rules, events)
    before_end = b"".join(result.outputs[: len(events) - family.closing])
    released = family.text(before_end)
    assert released.startswith(
        "one two three four five six seven eight nine ten my number is [REDACTED]"
    )
    assert "word30" in released  # the text after the secret flowed too
    assert len(text) - len(released) < 11 + MIN_STEP + 2 * len(" word39")  # about W is held
    first = next(i for i, out in enumerate(result.outputs) if family.text(out))
    assert first < 10  # one two … are out after a few words, not at the end
    assert family.text(result.raw) == text.replace("123-45-6789", REDACTED)


@by_family
def test_with_unbounded_rules_about_256_characters_are_held_and_words_stay_whole(
    family: Family,
) -> None:
    rules = rules_of(pii("email", "api_key"))
    assert guard(family, rules)[0].window == DEFAULT_WINDOW
    text = " ".join(f"word{i}" for i in range(300)) + " mail jane.doe@example.com now"
    events = family.events(words(text))
    result = run(family, rules, events)
    released = family.text(b"".join(result.outputs[: len(events) - family.closing]))
    assert 0 < len(text) - len(released) < DEFAULT_WINDOW + 50
    assert re.fullmatch(r"(word\d+ )*(word\d+)?", released)  # every cut after a whole word
    assert family.text(result.raw) == text.replace("jane.doe@example.com", REDACTED)


def test_events_without_text_pass_at_once_and_untouched_while_text_is_held() -> None:
    family = FAMILIES[3]  # Anthropic: a ping in the middle of the text
    g, _ = guard(family, rules_of(pii("ssn")))
    start = sse(
        {"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}},
        "content_block_start",
    )
    delta = sse(
        {
            "type": "content_block_delta",
            "index": 0,
            "delta": {"type": "text_delta", "text": "my ssn is 123-"},
        },
        "content_block_delta",
    )
    ping = b'event: ping\r\ndata: {"type":"ping"}\r\n\r\n'
    assert g.feed(start, "content_block_start", orjson.loads(start.split(b"data: ")[1])) == start
    assert (
        anthropic_text(
            g.feed(delta, "content_block_delta", orjson.loads(delta.split(b"data: ")[1]))
        )
        == ""
    )
    assert g.feed(ping, "ping", {"type": "ping"}) == ping
    tail = sse(
        {
            "type": "content_block_delta",
            "index": 0,
            "delta": {"type": "text_delta", "text": "45-6789"},
        },
        "content_block_delta",
    )
    assert (
        anthropic_text(g.feed(tail, "content_block_delta", orjson.loads(tail.split(b"data: ")[1])))
        == ""
    )
    stop = sse({"type": "content_block_stop", "index": 0}, "content_block_stop")
    out = g.feed(stop, "content_block_stop", {"type": "content_block_stop", "index": 0})
    assert out.endswith(stop)  # the held text goes out first, in a delta of its own
    assert anthropic_text(out) == "my ssn is [REDACTED]"
    assert out.startswith(b"event: content_block_delta\ndata: ")


def test_a_stream_that_ends_without_closing_events_still_gets_its_held_text() -> None:
    family = FAMILIES[0]
    rules = rules_of(pii("ssn"))
    events = chat_events(words("the number is 123-45-6789 ok"))[:-2]  # cut before finish/[DONE]
    result = run(family, rules, events)
    assert chat_text(result.outputs[-1]) != ""
    assert chat_text(result.raw) == "the number is [REDACTED] ok"


# ── fail ends the stream with the family's error event ──────────────────────────────────────

ERROR_SHAPES: dict[str, Callable[[Any], str]] = {
    "openai": lambda p: p["error"]["message"],
    "anthropic": lambda p: p["error"]["message"] if p["type"] == "error" else "",
    "gemini": lambda p: (
        p["error"]["message"] if p["error"]["status"] == "PERMISSION_DENIED" else ""
    ),
}


@by_family
@pytest.mark.parametrize("split", ["forb|idden", "forbidden"])
def test_a_fail_rule_ends_the_stream_with_the_family_error_event(
    family: Family, split: str
) -> None:
    rules = rules_of(
        {
            "name": "no-forbidden",
            "type": "keyword",
            "keywords": ["forbidden"],
            "action": "fail",
            "scope": "both",
        }
    )
    text = "this is fine and then the forbidden word arrives, and more text after it."
    pieces = words(text)
    at = pieces.index(" forbidden")
    pieces[at : at + 1] = split.replace("|", "\0").replace("forb", " forb").split("\0")
    assert "".join(pieces) == text
    result = streamed(family, rules, pieces)
    assert "forbidden" not in family.text(
        result.raw.split(b'data: {"error')[0].split(b"event: error")[0]
    )
    name, error = payloads(result.raw)[-1]
    message = ERROR_SHAPES[family.api](error)
    assert message == 'response blocked by rule 0: matched keyword rule "no-forbidden"'
    assert (name == "error") is (family.api == "anthropic")
    assert result.guard.blocked is not None
    stop = next(i for i, out in enumerate(result.outputs) if b"blocked" in out)
    assert not any(result.outputs[stop + 1 :])  # nothing after the error event
    ((event, (match,)),) = result.recorded.matches
    assert (event, match.action, match.name) == ("rule.violation", "fail", "no-forbidden")


def test_a_fail_on_text_that_only_becomes_a_match_later_does_not_fire_early() -> None:
    """`\\bpass\\b` must not fire on "pass" that turns out to be the start of "password"."""
    rules = rules_of({"type": "keyword", "keywords": ["pass"], "action": "fail", "scope": "output"})
    result = streamed(FAMILIES[0], rules, ["my pass", "word is long enough to", " release it all"])
    assert result.guard.blocked is None
    assert chat_text(result.raw) == "my password is long enough to release it all"


def test_a_long_unbounded_fail_match_is_caught_by_the_full_rescan() -> None:
    rules = rules_of(
        {"type": "regex", "pattern": "BEGIN.*END", "action": "fail", "scope": "output"}
    )
    filler = " ".join(f"w{i}" for i in range(400))
    result = streamed(FAMILIES[0], rules, words(f"BEGIN {filler} END of it"))
    assert result.guard.blocked is not None
    assert payloads(result.raw)[-1][1]["error"]["code"] == 403


def test_warn_and_log_rules_are_recorded_once_and_change_nothing() -> None:
    rules = rules_of(
        {
            "name": "w",
            "type": "keyword",
            "keywords": ["hello"],
            "action": "warn",
            "scope": "output",
        },
        {"name": "l", "type": "keyword", "keywords": ["world"], "action": "log", "scope": "both"},
    )
    events = chat_events(words("hello world, hello again world"))
    result = run(FAMILIES[0], rules, events)
    assert result.guard.window == 0
    assert result.outputs[:-1] == events and result.outputs[-1] == b""  # byte for byte
    assert [(e, [m.name for m in ms]) for e, ms in result.recorded.matches] == [
        (None, ["w"]),  # the first word
        (None, ["l"]),  # the second
    ]


# ── the rules, the no-rule path ─────────────────────────────────────────────────────────────


@by_family
def test_without_output_rules_every_event_passes_byte_for_byte(family: Family) -> None:
    rules = rules_of({"type": "keyword", "keywords": ["hello"], "action": "mask", "scope": "input"})
    events = family.events(words("hello there 123-45-6789"))
    result = run(family, rules, events)
    assert result.outputs[:-1] == events
    assert result.recorded == Recorded()


def test_mask_rules_are_recorded_once_per_channel_with_one_mask_record() -> None:
    rules = rules_of(
        pii("ssn"),
        {
            "name": "kw",
            "type": "keyword",
            "keywords": ["secret"],
            "action": "mask",
            "scope": "output",
        },
    )
    result = streamed(FAMILIES[0], rules, words("secret 123-45-6789 secret 987-65-4321 " * 20))
    names = [m.name for _, ms in result.recorded.matches for m in ms]
    assert sorted(names) == ["", "kw"] and result.recorded.masks == 1


# ── Unicode, tool calls, several choices, long secrets ──────────────────────────────────────


@by_family
def test_unicode_text_and_a_unicode_email_split_at_every_position(family: Family) -> None:
    rules = rules_of(pii("email"))
    value = "jürgen@münchen.de"
    text = f"Grüße 👋🏽 — 東京 schreibt an {value} ✓ danke"
    expected = text.replace(value, REDACTED)
    for cut in range(1, len(text)):
        result = streamed(family, rules, [text[:cut], text[cut:]])
        assert family.text(result.raw) == expected, cut


def test_tool_call_arguments_of_openai_chat_are_masked_across_chunks() -> None:
    rules = rules_of(pii("ssn"))
    head = {"id": "c", "object": "chat.completion.chunk", "created": 1, "model": "m"}
    arguments = '{"ssn": "123-45-6789", "note": "ok"}'

    def chunk(delta: Json, finish: str | None = None) -> bytes:
        return sse({**head, "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]})

    first = {
        "index": 0,
        "id": "call_1",
        "type": "function",
        "function": {"name": "save", "arguments": ""},
    }
    events = [
        chunk({"role": "assistant", "content": None, "tool_calls": [first]}),
        *(
            chunk({"tool_calls": [{"index": 0, "function": {"arguments": arguments[i : i + 4]}}]})
            for i in range(0, len(arguments), 4)
        ),
        chunk({}, "tool_calls"),
        b"data: [DONE]\n\n",
    ]
    result = run(FAMILIES[0], rules, events)
    calls = [
        call
        for _, p in payloads(result.raw)
        if isinstance(p, dict)
        for call in p["choices"][0]["delta"].get("tool_calls", [])
    ]
    assert "".join(c["function"]["arguments"] for c in calls) == arguments.replace(
        "123-45-6789", REDACTED
    )
    assert [c["function"].get("name") for c in calls].count("save") == 1  # never repeated
    assert [c.get("id") for c in calls].count("call_1") == 1


def test_anthropic_tool_input_json_is_masked_across_chunks() -> None:
    rules = rules_of(pii("email"))
    arguments = '{"to": "jane.doe@example.com", "body": "hi"}'
    events = [
        sse(
            {
                "type": "content_block_start",
                "index": 1,
                "content_block": {"type": "tool_use", "id": "t", "name": "mail", "input": {}},
            },
            "content_block_start",
        ),
        *(
            sse(
                {
                    "type": "content_block_delta",
                    "index": 1,
                    "delta": {"type": "input_json_delta", "partial_json": arguments[i : i + 3]},
                },
                "content_block_delta",
            )
            for i in range(0, len(arguments), 3)
        ),
        sse({"type": "content_block_stop", "index": 1}, "content_block_stop"),
        sse({"type": "message_stop"}, "message_stop"),
    ]
    result = run(FAMILIES[3], rules, events)
    partial = "".join(
        p["delta"]["partial_json"]
        for _, p in payloads(result.raw)
        if p["type"] == "content_block_delta"
    )
    assert partial == arguments.replace("jane.doe@example.com", REDACTED)


def test_two_chat_choices_are_held_and_masked_each_on_its_own() -> None:
    rules = rules_of(pii("ssn"))
    head = {"id": "c", "object": "chat.completion.chunk", "created": 1, "model": "m"}
    texts = ["first says 123-45-6789 here", "second says 234-56-7890 too"]
    events = []
    for a, b in zip(words(texts[0]), words(texts[1]), strict=True):
        events.append(
            sse({**head, "choices": [{"index": 0, "delta": {"content": a}, "finish_reason": None}]})
        )
        events.append(
            sse({**head, "choices": [{"index": 1, "delta": {"content": b}, "finish_reason": None}]})
        )
    events.append(
        sse(
            {
                **head,
                "choices": [
                    {"index": 0, "delta": {}, "finish_reason": "stop"},
                    {"index": 1, "delta": {}, "finish_reason": "stop"},
                ],
            }
        )
    )
    result = run(FAMILIES[0], rules, events)
    got = ["", ""]
    for _, p in payloads(result.raw):
        for choice in p["choices"]:
            got[choice["index"]] += choice["delta"].get("content") or ""
    assert got == [t.replace(t.split()[2], REDACTED) for t in texts]
    assert result.recorded.masks == 2


def test_a_private_key_block_streamed_line_by_line_is_masked_whole() -> None:
    rules = rules_of(pii("private_key"))
    body = "\n".join("MIIEv" + "A" * 59 for _ in range(20))
    key = f"-----BEGIN RSA PRIVATE KEY-----\n{body}\n-----END RSA PRIVATE KEY-----"
    text = f"Here is the key:\n{key}\nKeep it safe."
    result = streamed(
        FAMILIES[0], rules, [p for line in text.split("\n") for p in (line[:30], line[30:] + "\n")]
    )
    assert chat_text(result.raw) == "Here is the key:\n[REDACTED]\nKeep it safe.\n"
    assert b"MIIEv" not in result.raw


def test_a_long_jwt_in_tiny_chunks_is_masked_whole() -> None:
    rules = rules_of(pii("jwt"))
    jwt = "eyJhbGciOiJIUzI1NiJ9." + "eyJzdWIiOiIx" * 40 + ".c2lnbmF0dXJl"
    text = f"token {jwt} done"
    result = streamed(FAMILIES[0], rules, [text[i : i + 4] for i in range(0, len(text), 4)])
    assert chat_text(result.raw) == "token [REDACTED] done"


def test_nothing_waits_behind_more_than_max_hold_characters() -> None:
    rules = rules_of(pii("email"))
    blob = "x" * (MAX_HOLD + 3000)
    events = chat_events([blob[i : i + 100] for i in range(0, len(blob), 100)])
    result = run(FAMILIES[0], rules, events)
    released = chat_text(b"".join(result.outputs[:-3]))
    assert len(blob) - MAX_HOLD - 100 <= len(released) <= len(blob) - MAX_HOLD
    assert chat_text(result.raw) == blob


# ── cost ────────────────────────────────────────────────────────────────────────────────────


def test_an_answer_streamed_word_by_word_is_scanned_in_linear_time(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Every PII type and a jailbreak fail rule: the guard's work per word stays small (the
    window, not the answer so far): the characters the rules see grow with the answer, not
    with its square."""
    scanned: list[int] = []
    evaluate = stream_guard.evaluate

    def counting(rule: Rule, index: int, text: str) -> Match | None:
        scanned.append(len(text))
        return evaluate(rule, index, text)

    monkeypatch.setattr(stream_guard, "evaluate", counting)
    rules = rules_of(
        pii(
            "ssn",
            "credit_card",
            "email",
            "phone",
            "ip_address",
            "aws_key",
            "api_key",
            "jwt",
            "private_key",
            "connection_string",
            "github_token",
        ),
        {"type": "jailbreak", "action": "fail", "scope": "output"},
    )
    sentence = "The quick brown fox jumps over the lazy dog near the river bank. "

    def characters_scanned(size: int) -> int:
        scanned.clear()
        text = (sentence * (size // len(sentence) + 1))[:size]
        result = run(FAMILIES[0], rules, chat_events(words(text)))
        assert chat_text(result.raw) == text
        return sum(scanned)

    small, large = characters_scanned(4096), characters_scanned(16384)
    assert small > 0 and large <= 5 * small, (small, large)  # quadratic: 16x


def test_a_warn_rule_does_not_fire_on_a_word_still_arriving() -> None:
    rules = rules_of({"type": "keyword", "keywords": ["pass"], "action": "warn", "scope": "output"})
    result = streamed(FAMILIES[0], rules, ["my pass", "word is set", " and the pass is ok"])
    assert [[m.action for m in ms] for _, ms in result.recorded.matches] == [["warn"]]
    assert chat_text(result.raw) == "my password is set and the pass is ok"
    result = streamed(FAMILIES[0], rules, ["my pass", "word is set"])
    assert result.recorded.matches == []


# ── when the guard is on the path ───────────────────────────────────────────────────────────


def exchange(path: str, rules: list[Json]) -> Exchange:
    ex = Exchange(Incoming("POST", [], {}, "peer", 0.0, "", ""), path, "")
    ex.route = classify("POST", path, {})
    ex.resolved = resolve_for_model(
        parse_policy(orjson.dumps({"base_key_env": "K", "rules": rules})), "m"
    )
    return ex


def test_the_guard_is_built_only_for_output_rules_on_a_route_whose_streams_carry_text() -> None:
    assert guard_for(exchange("/v1/chat/completions", [pii("ssn")])) is not None
    assert guard_for(exchange("/v1/messages", [{**pii("ssn"), "scope": "both"}])) is not None
    assert guard_for(exchange("/v1/chat/completions", [{**pii("ssn"), "scope": "input"}])) is None
    assert guard_for(exchange("/v1/chat/completions", [])) is None
    assert guard_for(exchange("/v1/embeddings", [pii("ssn")])) is None
    assert guard_for(exchange("/v1/files", [pii("ssn")])) is None  # passthrough


def test_the_exchange_gets_the_matches_and_events_scan_would_record() -> None:
    ex = exchange("/v1/chat/completions", [{**pii("ssn"), "name": "ssn"}])
    g = guard_for(ex)
    assert g is not None
    for raw in chat_events(words("my ssn is 123-45-6789 ok")):
        fields = event_fields(raw)
        assert fields is not None
        g.feed(raw, fields[0], parsed(fields[1]))
    assert [kind for kind, _ in ex.events] == ["rule.match", "rule.mask"]
    assert ex.events[1][1]["scope"] == "output"
    assert [m["action"] for m in ex.rule_matches] == ["mask", "mask"]


def test_the_deprecated_function_call_arguments_are_masked_and_flushed_in_their_own_shape() -> None:
    rules = rules_of(pii("ssn"))
    head = {"id": "c", "object": "chat.completion.chunk", "created": 1, "model": "m"}
    arguments = '{"ssn": "123-45-6789"}'

    def chunk(delta: Json, finish: str | None = None) -> bytes:
        return sse({**head, "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]})

    events = [
        chunk({"role": "assistant", "function_call": {"name": "save", "arguments": ""}}),
        *(
            chunk({"function_call": {"arguments": arguments[i : i + 5]}})
            for i in range(0, len(arguments), 5)
        ),
        chunk({}, "function_call"),
    ]
    result = run(FAMILIES[0], rules, events)
    calls = [p["choices"][0]["delta"].get("function_call") for _, p in payloads(result.raw)]
    assert "".join(c["arguments"] for c in calls if c) == '{"ssn": "[REDACTED]"}'
    assert [c.get("name") for c in calls if c].count("save") == 1
