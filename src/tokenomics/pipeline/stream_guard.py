"""Output rules on streamed responses (D12), sans-I/O.

A `StreamGuard` is fed the whole SSE events of one response (raw bytes, event name, parsed
payload) and returns the bytes to send now. Where the text is comes from the family's reader
(`formats/stream_text.py`); what to do with it is decided here.

What is held, and when it goes out. Each text channel keeps the text it has not released yet.
Of that text only the part up to its last whitespace is *stable*: rules are run on it, and
what a rule finds there stays true whatever comes next (a match ending right before a
whitespace cannot grow, and `\\b` or a detector's look at the next character sees the same
whitespace then as later). Of the stable part the last `W` characters are held back, so a
match that is still arriving — a secret split across chunks, at any position — is released
only once it is whole, and masked as a whole:

* `W` is the longest text the `mask` and `fail` rules can match (`engine.max_match_len`:
  SSN 11, card 23, phone 46, a keyword's length …). When one of them is unbounded (email, API
  keys, JWTs, connection strings, private keys, non-literal regexes, jailbreak) `W` is 256 and,
  in addition, the cut never falls inside a word: such secrets contain no whitespace, so each
  is held until it is complete, however long. A PEM block is held from `-----BEGIN ` until its
  `-----END …-----` line (its body has line breaks). The price: text without whitespace (a
  long URL, tool-call JSON without spaces) waits for the next whitespace, and nothing waits
  for more than `MAX_HOLD` characters, so a single secret longer than that is cut.
* Text goes out in steps of at least `max(16, W/8)` characters: each release scans the window
  (64 characters of context, what is released, what stays held: `64 + W + step` and the
  partial word) for at least `step` new characters, so every streamed character is scanned
  about 6-12 times whatever the length of the answer — never the answer so far per chunk.
* The 64 characters released last are kept as context, so detectors that look back (a phone
  number's "call me at", "version 1.2.3.4", `api_key=`) see them.
* Events without text pass at once, also while text is held (that text then follows them); an
  event that ends a channel or the stream (`finish_reason`, `[DONE]`, `content_block_stop`,
  `message_delta`, `response.output_text.done`, a Gemini `finishReason`, the upstream's end)
  first gets the channel's remaining text, masked, in a delta event of the channel's own shape.
  Responses' closing events repeat the full text: they carry the masked text actually sent.

`fail`, `warn` and `log` rules run on the same window before any of its text is released, so
a blocked match never reaches the client whole; a `fail` records the violation and ends the
stream with an error event in the API's own format. Rules whose matches are unbounded also run
on the whole released text of the channel each time it doubles, and once at its end, which
catches a match longer than the window (after part of it was sent). Every rule is recorded at
most once per channel; a channel whose text was rewritten records one `rule.mask`.

Known differences from the buffered path: masking uses `engine.spans` (every mask rule on the
original text, not on the previous rule's output); a jailbreak `mask` rule can only replace
the text not yet sent; a regex anchored with `$` also matches before a whitespace.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

import orjson

from tokenomics.domain.engine import REDACTED, Match, applies, evaluate, mask, max_match_len, spans
from tokenomics.domain.errors import Blocked
from tokenomics.formats.errors import stream_error_event
from tokenomics.formats.stream_text import Channel, Piece, StreamText, closes, stream_text
from tokenomics.pipeline.rules import record_mask, record_matches

if TYPE_CHECKING:
    from collections.abc import Sequence

    from tokenomics.domain.rules import Rule
    from tokenomics.domain.usage import Family
    from tokenomics.pipeline.exchange import Exchange

OUTPUT = "output"
DEFAULT_WINDOW = 256  # held back when a rule's matches have no known longest length
CONTEXT = 64  # released characters kept for detectors that look back
MAX_HOLD = 8192  # no text waits behind more than this many characters
MIN_STEP = 16  # released at least this many characters at a time (fewer scans)
_SPACES = (" ", "\n", "\t", "\r")
_RESCAN_FROM = 512  # full-text rescans start at this length and double


class Recorder(Protocol):
    """Where the guard reports what it found (the exchange's matches and events)."""

    def matched(self, matches: Sequence[Match], event: str | None) -> None: ...

    def masked(self) -> None: ...


@dataclass(slots=True, eq=False)
class _Channel:
    """One growing text: what is held, and what was released."""

    template: dict[str, Any]  # the last text event, for synthetic flush events
    name: str | None  # its SSE event name
    held: str = ""
    context: str = ""  # the last CONTEXT released characters, unmasked
    matched: set[int] = field(default_factory=set)  # rules already recorded
    masked: bool = False
    sent: list[str] | None = None  # the masked text sent, for Responses' snapshots
    released: list[str] | None = None  # the unmasked text released, for full rescans
    released_len: int = 0
    rescanned_len: int = 0


def _after_space(text: str, end: int) -> int:
    """The position right after the last whitespace in `text[:end]`, 0 if there is none."""
    return 1 + max(text.rfind(space, 0, end) for space in _SPACES)


def _open_block(text: str) -> int:
    """Where an unfinished `-----BEGIN …` block starts in `text`, else len(text)."""
    begin = text.rfind("-----BEGIN ")
    if begin < 0:
        return len(text)
    end = text.find("-----END ", begin)
    if end >= 0 and text.find("-----", end + 9) >= 0:
        return len(text)
    return begin


def _redact(text: str, found: Sequence[tuple[int, int]]) -> str:
    parts: list[str] = []
    last = 0
    for start, end in found:
        parts += (text[last:start], REDACTED)
        last = end
    parts.append(text[last:])
    return "".join(parts)


def _serialise(name: str | None, payload: Any) -> bytes:
    head = b"event: " + name.encode() + b"\n" if name else b""
    return head + b"data: " + orjson.dumps(payload) + b"\n\n"


class StreamGuard:
    """Output rules on one streamed response; `blocked` is set once a `fail` rule ended it."""

    def __init__(
        self, rules: Sequence[Rule], reader: StreamText, family: Family, recorder: Recorder
    ) -> None:
        self._rules = rules
        self._reader = reader
        self._family: Family = family
        self._recorder = recorder
        self._checked = [(i, rule) for i, rule in enumerate(rules) if applies(rule, OUTPUT)]
        held = [rule for _, rule in self._checked if rule.action in ("mask", "fail")]
        bound = max_match_len(held)
        self._hold = bool(held)
        self._window = DEFAULT_WINDOW if bound is None else bound
        self._step = max(MIN_STEP, self._window // 8)
        self._words = bound is None
        self._pem = any(rule.type == "pii" and "private_key" in rule.detect for rule in held)
        self._masks = any(rule.action == "mask" for _, rule in self._checked)
        self._rescan = [
            (i, rule)
            for i, rule in self._checked
            if rule.action != "mask" and max_match_len([rule]) is None
        ]
        self._channels: dict[Channel, _Channel] = {}
        self._finished: dict[Channel, str] = {}  # the text sent on closed channels
        self.blocked: Blocked | None = None

    @property
    def window(self) -> int:
        return self._window if self._hold else 0

    def feed(self, raw: bytes, name: str | None, payload: Any) -> bytes:
        """One whole event: `raw` as received, its event name and its JSON payload (or the
        `data` string when it is not JSON). The bytes to send now."""
        if self.blocked is not None:
            return b""
        out: list[bytes] = []
        try:
            self._event(raw, name, payload, out)
        except Blocked as blocked:
            out.append(self._block(blocked))
        return b"".join(out)

    def close(self) -> bytes:
        """The upstream ended: every held text, masked (or the error event of a late `fail`)."""
        if self.blocked is not None:
            return b""
        out: list[bytes] = []
        try:
            for channel in list(self._channels):
                out.append(self._flush(channel))
        except Blocked as blocked:
            out.append(self._block(blocked))
        return b"".join(out)

    # ── events ───────────────────────────────────────────────────────────────────────────────

    def _event(self, raw: bytes, name: str | None, payload: Any, out: list[bytes]) -> None:
        reader = self._reader
        pieces = reader.pieces(name, payload)
        ends = reader.closes(name, payload)
        snapshots = reader.snapshots(name, payload) if reader.has_snapshots else []
        if not (pieces or ends or snapshots):
            out.append(raw)
            return
        groups: dict[Channel, list[Piece]] = {}
        for piece in pieces:
            groups.setdefault(piece.channel, []).append(piece)
        for channel, group in groups.items():
            state = self._channels.get(channel) or self._open(channel)
            state.template, state.name = payload, name
            state.held += "".join(piece.slot.text for piece in group)
        closing = [c for c in self._channels if closes(ends, c)] if ends else []
        for channel in closing:
            if channel not in groups:
                out.append(self._flush(channel))
        changed = False
        for channel, group in groups.items():
            text = self._release(self._channels[channel], final=channel in closing)
            for piece, value in zip(group, [text] + [""] * (len(group) - 1), strict=True):
                changed |= piece.slot.text != value
                piece.slot.set(value)
        for channel in closing:
            self._end(channel)
        changed |= self._snapshots(snapshots)
        out.append(_serialise(name, payload) if changed else raw)

    def _open(self, channel: Channel) -> _Channel:
        state = self._channels[channel] = _Channel({}, None)
        if self._reader.has_snapshots:
            state.sent = []
        if self._rescan:
            state.released = []
        return state

    def _flush(self, channel: Channel) -> bytes:
        """A channel ends without a text of its own in the closing event: its held text goes
        out in a synthetic delta event."""
        state = self._channels[channel]
        text = self._release(state, final=True)
        self._end(channel)
        if not text:
            return b""
        return _serialise(state.name, self._reader.synthetic(state.template, channel, text))

    def _end(self, channel: Channel) -> None:
        state = self._channels.pop(channel, None)
        if state is not None and state.sent is not None:
            self._finished[channel] = "".join(state.sent)

    def _snapshots(self, snapshots: list[Piece]) -> bool:
        """Full texts repeated at the end carry what was sent (masked on their own if their
        channel never streamed)."""
        changed = False
        for piece in snapshots:
            text = piece.slot.text
            sent = self._finished.get(piece.channel)
            if sent is None:
                sent = mask(self._rules, text, OUTPUT)
            if sent != text:
                piece.slot.set(sent)
                changed = True
        return changed

    def _block(self, blocked: Blocked) -> bytes:
        self.blocked = blocked
        self._channels.clear()
        self._recorder.matched(blocked.matches, "rule.violation")
        message = blocked.message.replace("request", "response", 1)
        return stream_error_event(self._family, 403, message)

    # ── holding, checking, masking ───────────────────────────────────────────────────────────

    def _cut(self, held: str) -> tuple[int, int]:
        """(stable, cut): rules run on `held[:stable]`; `held[:cut]` may be released."""
        end = len(held)
        stable = _after_space(held, end)
        cut = stable - self._window
        if self._words and cut > 0:
            cut = _after_space(held, cut)
        if self._pem:
            cut = min(cut, _open_block(held[:stable]))
        if end - cut > MAX_HOLD:
            cut, stable = end - MAX_HOLD, end
        return stable, cut

    def _release(self, state: _Channel, *, final: bool) -> str:
        """Check the channel's held text and release what may go out now, masked."""
        held = state.held
        if final:
            stable = cut = len(held)
        elif not self._hold:  # warn/log rules only: everything goes, matches are recorded
            stable, cut = _after_space(held, len(held)), len(held)
        else:
            stable, cut = self._cut(held)
            if cut < self._step:
                return ""
        scan = state.context + held[:stable]
        offset = len(state.context)
        found = [
            (start - offset, end - offset)
            for start, end in (spans(self._rules, scan, OUTPUT) if self._masks else [])
            if end > offset
        ]
        for start, end in found:
            if 0 <= start < cut < end:
                cut = start
        self._check(state, scan, self._checked, bool(found))
        if self._rescan and (final or state.released_len + cut >= 2 * state.rescanned_len):
            assert state.released is not None
            self._check(state, "".join(state.released) + held[:cut], self._rescan, False)
            state.rescanned_len = max(state.released_len + cut, _RESCAN_FROM)
        if cut <= 0:
            return ""
        released = held[:cut]
        text = _redact(released, [(max(s, 0), min(e, cut)) for s, e in found if s < cut])
        self._commit(state, released, text)
        return text

    def _commit(self, state: _Channel, released: str, text: str) -> None:
        state.held = state.held[len(released) :]
        state.context = (state.context + released)[-CONTEXT:]
        if state.sent is not None:
            state.sent.append(text)
        if state.released is not None:
            state.released.append(released)
            state.released_len += len(released)
        if text != released and not state.masked:
            state.masked = True
            self._recorder.masked()

    def _check(
        self,
        state: _Channel,
        text: str,
        rules: Sequence[tuple[int, Rule]],
        mask_hit: bool,
    ) -> None:
        """Record the rules matching `text` (each once per channel); raise on a `fail`."""
        new: list[Match] = []
        for index, rule in rules:
            if index in state.matched or (rule.action == "mask" and not mask_hit):
                continue
            match = evaluate(rule, index, text)
            if match is None:
                continue
            if rule.action == "fail":
                raise Blocked([*new, match])
            state.matched.add(index)
            new.append(match)
        if new:
            self._recorder.matched(new, None)


class _ExchangeRecorder:
    def __init__(self, ex: Exchange) -> None:
        self._ex = ex

    def matched(self, matches: Sequence[Match], event: str | None) -> None:
        record_matches(self._ex, matches, event)

    def masked(self) -> None:
        record_mask(self._ex, OUTPUT)


def guard_for(ex: Exchange) -> StreamGuard | None:
    """The guard for a streamed response, or None (and no cost at all) when the policy has no
    output rules or the route's streams carry no text."""
    route, resolved = ex.route, ex.resolved
    if route is None or route.adapter is None or resolved is None:
        return None
    rules = resolved.rules
    if not any(applies(rule, OUTPUT) for rule in rules):
        return None
    reader = stream_text(route.adapter.kind)
    if reader is None:
        return None
    return StreamGuard(rules, reader, route.family, _ExchangeRecorder(ex))
