"""Usage, assistant text and metadata of a streamed response, event by event (decision D13):
OpenAI chat/completions and Responses, Anthropic, Gemini. Sans-I/O: fed SSE payloads.

`StreamAccounting` reads every event; `lazy_stream_usage.LazyStreamAccounting`, for the relay,
gives its answers while parsing only the events that may carry more than text."""

from __future__ import annotations

import json
import math
from dataclasses import replace
from typing import TYPE_CHECKING, Any

import orjson

from tokenomics.domain.usage import (
    ANTHROPIC_FIELDS,
    ResponseMeta,
    Usage,
    anthropic_usage,
    body_id,
    body_model,
    int_field,
    map_field,
    meta_with_headers,
    openai_usage,
    str_field,
    usage_from_gemini,
)

if TYPE_CHECKING:
    from collections.abc import Callable, Iterable, Mapping

    from tokenomics.domain.usage import Family

Event = tuple[str | None, bytes]  # an SSE event's name (or None) and its `data`

DEFAULT_MAX_TEXT_BYTES = 512 * 1024  # assistant text kept from a stream (for memory capture)
MAX_KEPT_BYTES = 8 * 1024  # raw events a lazy accounting keeps before it reads them all
# Keys of a chunk and of a delta that carry nothing but text (or nothing we read): anything
# else sends the chunk through the full field checks.
_PLAIN_CHUNK = frozenset({"id", "object", "created", "model", "choices", "system_fingerprint",
                          "service_tier", "obfuscation", "provider"})  # fmt: skip
_PLAIN_DELTA = frozenset({"role", "content", "refusal"})


JOIN_EVERY = 32  # text pieces joined into one as they come (each character copied once more)


class _Capped:
    """Text pieces kept up to `cap` UTF-8 bytes; the size of what did not fit is still counted."""

    __slots__ = ("cap", "overflow", "parts", "size", "truncated")

    def __init__(self, cap: int) -> None:
        self.cap = cap
        self.parts: list[str] = []
        self.size = 0
        self.overflow = 0  # bytes seen but not kept
        self.truncated = False

    def add(self, piece: str) -> None:
        if not piece:
            return
        size = len(piece) if piece.isascii() else len(piece.encode())
        if self.size + size <= self.cap:
            parts = self.parts
            parts.append(piece)
            self.size += size
            if len(parts) % JOIN_EVERY == 0:  # a stream's deltas are a few characters each:
                parts[-JOIN_EVERY:] = ["".join(parts[-JOIN_EVERY:])]  # a str apiece cost ~12x
            return
        self.truncated = True
        kept = piece.encode()[: self.cap - self.size].decode("utf-8", "ignore")
        if kept:
            self.parts.append(kept)
        kept_size = len(kept.encode())
        self.size += kept_size
        self.overflow += size - kept_size

    def text(self) -> str:
        return "".join(self.parts)


class StreamAccounting:
    """Usage, assistant text and metadata of one streamed response, whatever its API family.

    Feed it every parsed JSON payload of the stream with its SSE event name. The texts are
    read from each event's own structure; the usage as the stream's API family (`family`)
    reports it: OpenAI chat usage chunks and Responses `response.completed`, Anthropic
    `message_start` merged with `message_delta`, Gemini `usageMetadata` (cumulative; the last
    non-zero one wins). With `family` None only the texts and metadata are read (memory).
    """

    __slots__ = (
        "_anthropic",
        "_anthropic_final",
        "_extra",
        "_family",
        "_reported",
        "_text",
        "actual_model",
        "finish_reason",
        "upstream_id",
    )

    def __init__(self, family: Family | None, max_text_bytes: int = DEFAULT_MAX_TEXT_BYTES) -> None:
        self._family = family
        self._text = _Capped(max_text_bytes)  # the assistant text, for memory and estimates
        self._extra = _Capped(max_text_bytes)  # tool-call arguments and reasoning: estimates only
        self._reported: Usage | None = None
        # Raw Anthropic usage fields, merged across events (`output_tokens_details` whole).
        self._anthropic: dict[str, Any] = {}
        self._anthropic_final = False  # a message_delta carried the cumulative output
        self.upstream_id = ""
        self.actual_model = ""
        self.finish_reason = ""

    @property
    def text(self) -> str:
        return self._text.text()

    @property
    def text_truncated(self) -> bool:
        return self._text.truncated

    @property
    def usage_seen(self) -> bool:
        return self._reported is not None or bool(self._anthropic)

    def feed(self, event_name: str | None, data: Mapping[str, Any]) -> None:
        """Account for one parsed `data:` payload (`[DONE]` and non-JSON are the caller's)."""
        if not self.upstream_id:
            self.upstream_id = body_id(data)
        if not self.actual_model:
            self.actual_model = body_model(data)
        kind = data.get("type")
        if kind is None and event_name is None:  # a chat or Gemini chunk: the usual event
            self._chunk(data)
            return
        if not (kind and isinstance(kind, str)):
            kind = event_name or ""
        if kind.startswith("response."):
            self._responses_event(kind, data)
        elif kind in ("message_start", "message_delta", "content_block_delta"):
            self._anthropic_event(kind, data)
        else:
            self._chunk(data)

    @classmethod
    def of_events(
        cls,
        events: Iterable[Event],
        family: Family | None,
        max_text_bytes: int = DEFAULT_MAX_TEXT_BYTES,
    ) -> StreamAccounting:
        """The accounting of a whole stream's events."""
        accounting = cls(family, max_text_bytes)
        for name, data in events:
            accounting.feed_data(name, data)
        return accounting

    def feed_data(self, name: str | None, data: bytes) -> Any:
        """Account for one event's raw `data`; returns its JSON (None: `[DONE]`, not JSON)."""
        payload = event_json(data)
        if isinstance(payload, dict):
            self.feed(name, payload)
        return payload

    def feed_plain(self, payloads: Iterable[bytes]) -> None:
        """`feed_data(None, data)` for the `data` of unnamed events, in order. The usual chunk
        (once the id and model are known: one choice, a text delta, no finish reason, no key
        that `feed` reads more from) only adds its text, without `feed`'s field checks: a
        stream is mostly these (the memory capture reads every one)."""
        loads, add, plain, plain_delta = orjson.loads, self._text.add, _PLAIN_CHUNK, _PLAIN_DELTA
        family = self._family
        for data in payloads:
            if data == b"[DONE]":  # every stream ends so: no exception built for it
                continue
            try:
                payload = loads(data)
            except orjson.JSONDecodeError:
                payload = event_json(data)
            if type(payload) is not dict:
                continue
            choices = payload.get("choices")
            if (
                self.actual_model
                and self.upstream_id
                and type(choices) is list
                and len(choices) == 1
                and type(choice := choices[0]) is dict
                and type(delta := choice.get("delta")) is dict
                and type(content := delta.get("content")) is str
                and content
                and not choice.get("finish_reason")
                and (len(delta) == 1 or plain_delta.issuperset(delta))
                and payload.get("type") is None
                and "candidates" not in payload
                and (family is None or plain.issuperset(payload))  # None: no usage is read
            ):
                add(content)
            else:
                self.feed(None, payload)

    def _reported_usage(self) -> Usage | None:
        return anthropic_usage(self._anthropic) if self._anthropic else self._reported

    def final_usage(self) -> Usage | None:
        """The usage as reported, when it needs no estimate from the text."""
        reported = self._reported_usage()
        if reported is not None and (self._anthropic_final or not self._anthropic):
            return reported
        return None

    @property
    def needs_estimate(self) -> bool:
        """`result` will count the text (no final usage was reported)."""
        return self.final_usage() is None

    def result(self, estimate: Callable[[str], int]) -> Usage:
        """Reported usage if any was seen, else the output estimated from the text (input 0)."""
        final = self.final_usage()
        if final is not None:
            return final
        reported = self._reported_usage()
        guess = self._estimate_output(estimate)
        if reported is None:
            return Usage(output_tokens=guess, estimated=True)
        if guess > reported.output_tokens:  # cut off before message_delta: output is provisional
            return replace(reported, output_tokens=guess, estimated=True)
        return reported

    def meta(self, headers: Mapping[str, str]) -> ResponseMeta:
        return meta_with_headers(
            headers,
            upstream_id=self.upstream_id,
            actual_model=self.actual_model,
            finish_reason=self.finish_reason,
        )

    # ── per family ───────────────────────────────────────────────────────────────────────────

    def _report(self, usage: Usage | None) -> None:
        if usage is not None and (self._reported is None or usage.total_tokens > 0):
            self._reported = usage

    def _responses_event(self, kind: str, data: Mapping[str, Any]) -> None:
        if kind == "response.output_text.delta":
            self._text.add(str_field(data, "delta"))
        elif kind in ("response.function_call_arguments.delta", "response.reasoning_text.delta"):
            self._extra.add(str_field(data, "delta"))
        elif (response := map_field(data, "response")) is not None:
            self.finish_reason = str_field(response, "status") or self.finish_reason
            usage = map_field(response, "usage")
            if usage is not None and self._family == "openai":
                self._report(openai_usage(usage))

    def _anthropic_event(self, kind: str, data: Mapping[str, Any]) -> None:
        if kind == "content_block_delta":
            delta = map_field(data, "delta")
            sort = str_field(delta, "type")
            if sort == "text_delta":
                self._text.add(str_field(delta, "text"))
            else:
                self._extra.add(str_field(delta, "partial_json") or str_field(delta, "thinking"))
            return
        usage = map_field(map_field(data, "message"), "usage") or map_field(data, "usage")
        if self._family == "anthropic":
            self._merge_anthropic(usage)
        if kind == "message_delta":
            if int_field(usage, "output_tokens") is not None:
                self._anthropic_final = True
            stop = str_field(map_field(data, "delta"), "stop_reason")
            self.finish_reason = stop or self.finish_reason

    def _merge_anthropic(self, usage: Mapping[str, Any] | None) -> None:
        """Later events repeat or update the figures of earlier ones (they are cumulative)."""
        for key in ANTHROPIC_FIELDS:
            if (value := int_field(usage, key)) is not None:
                self._anthropic[key] = value
        if (details := map_field(usage, "output_tokens_details")) is not None:
            self._anthropic["output_tokens_details"] = details

    def _chunk(self, data: Mapping[str, Any]) -> None:
        """OpenAI chat/completions chunks and Gemini stream chunks.

        This runs for every chunk of every stream, so the rare fields are looked for only when
        their key is there; a plain text delta is a handful of dict lookups."""
        choices = data.get("choices")
        for choice in choices if isinstance(choices, list) else ():
            if not isinstance(choice, dict):
                continue
            delta = choice.get("delta")
            if isinstance(delta, dict):
                content = delta.get("content")
                if content and isinstance(content, str):
                    self._text.add(content)
                else:
                    self._text.add(str_field(choice, "text"))
                if not _PLAIN_DELTA.issuperset(delta):
                    self._delta_extras(delta)
            else:
                self._text.add(str_field(choice, "text"))
            reason = choice.get("finish_reason")
            if reason and isinstance(reason, str):
                self.finish_reason = reason
        if "candidates" in data:
            self._candidates(data)
        if not _PLAIN_CHUNK.issuperset(data):
            self._report(_chunk_usage(data, self._family))

    def _delta_extras(self, delta: Mapping[str, Any]) -> None:
        self._extra.add(str_field(delta, "reasoning_content") or str_field(delta, "reasoning"))
        for call in _mappings(delta, "tool_calls"):
            self._add_call(map_field(call, "function"))
        self._add_call(map_field(delta, "function_call"))

    def _candidates(self, data: Mapping[str, Any]) -> None:
        for candidate in _mappings(data, "candidates"):
            for part in _mappings(map_field(candidate, "content"), "parts"):
                thought = part.get("thought") is True
                (self._extra if thought else self._text).add(str_field(part, "text"))
                if (function_call := map_field(part, "functionCall")) is not None:
                    self._extra.add(json.dumps(function_call, ensure_ascii=False))
            self.finish_reason = str_field(candidate, "finishReason") or self.finish_reason

    def _add_call(self, function: Mapping[str, Any] | None) -> None:
        name = str_field(function, "name")
        self._extra.add(f"{name}\n" if name else "")
        self._extra.add(str_field(function, "arguments"))

    def _estimate_output(self, estimate: Callable[[str], int]) -> int:
        tokens = estimate(self._text.text()) + estimate(self._extra.text())
        return tokens + math.ceil((self._text.overflow + self._extra.overflow) / 4)


def event_json(data: bytes) -> Any:
    """An event's `data` as JSON (None for `[DONE]` and anything else that is not JSON)."""
    if data == b"[DONE]":
        return None
    try:
        return orjson.loads(data)
    except orjson.JSONDecodeError:  # not JSON, or invalid UTF-8 inside it: read as replaced
        try:
            return orjson.loads(data.decode("utf-8", "replace"))
        except orjson.JSONDecodeError:
            return None


def _mappings(obj: Any, key: str) -> list[Mapping[str, Any]]:
    items = obj.get(key) if isinstance(obj, dict) else None
    if not isinstance(items, list):
        return []
    return [item for item in items if isinstance(item, dict)]


def _chunk_usage(data: Mapping[str, Any], family: Family | None) -> Usage | None:
    """The usage of an OpenAI chat/completions chunk (Groq's in `x_groq`) or a Gemini chunk."""
    if family == "openai":
        usage = map_field(data, "usage") or map_field(map_field(data, "x_groq"), "usage")
        return openai_usage(usage) if usage is not None else None
    if family == "gemini":
        metadata = map_field(data, "usageMetadata")
        return usage_from_gemini(metadata) if metadata is not None else None
    return None
