"""Token estimates with tiktoken and BUNDLED vocabularies (no download, ever).

`tiktoken.get_encoding` fetches its BPE files from the internet on first use; the machines
this runs on have none. So the two vocabularies we need ship inside the package
(`formats/vocab/{cl100k_base,o200k_base}.tiktoken.gz`: OpenAI's files, gzip-compressed,
checked against tiktoken's published SHA-256) and the `tiktoken.Encoding` objects are built
here from them, with the split patterns and special tokens of `tiktoken_ext/openai_public.py`.

Model -> encoding follows tiktoken's model table (o200k_base for gpt-4o, gpt-4.1, gpt-4.5,
gpt-5, o1, o3, o4, gpt-oss; cl100k_base for gpt-4, gpt-3.5 and the embeddings). Every other
model (claude, gemini, llama, ...) is counted with cl100k_base: an estimate, not the truth.

If a vocabulary cannot be loaded (file missing or corrupt, tiktoken not importable) the
estimator falls back to `ceil(utf8_bytes / 4)` and sets `fallback_used`; it never raises.

A vocabulary is loaded only when a count needs it (one encoding, not both: o200k_base alone
holds about 75 MB, cl100k_base about 40 MB), and the event loop does not do it: callers await
`prepare(model)`, which loads in a worker thread. Admission does not need one at all in the
common case: `bound_texts`/`bound_bytes` give, without a vocabulary, a number never below what
`count_texts`/`count_bytes` would give (every BPE token is at least one UTF-8 byte), and the
exact count is made only when that bound is refused (docs/DECISIONS.md, "Vocabularies").

Estimates run on the event loop, and tiktoken takes about 0.1 ms per KiB: one estimate gives it
at most `ENCODE_LIMIT` characters (a few ms). Text beyond is estimated from its size: the
larger of `ceil(utf8_bytes / 4)` and the tokens per character of the part counted (so a 10 MiB
body costs microseconds, and CJK-heavy text is not undercounted fourfold).
"""

from __future__ import annotations

import gzip
import hashlib
import math
import re
import threading
from binascii import a2b_base64
from collections.abc import Callable, Iterable, Mapping, Sequence
from functools import lru_cache, partial
from importlib import resources
from types import MappingProxyType
from typing import TYPE_CHECKING, Any, Final

import orjson
import trio

if TYPE_CHECKING:
    from tiktoken import Encoding

CL100K: Final = "cl100k_base"
O200K: Final = "o200k_base"
ENCODINGS: Final = (CL100K, O200K)

# Split patterns and special tokens, copied from tiktoken_ext/openai_public.py (tiktoken 0.14).
_CL100K_PATTERN: Final = (
    r"""'(?i:[sdmt]|ll|ve|re)|[^\r\n\p{L}\p{N}]?+\p{L}++|\p{N}{1,3}+| ?[^\s\p{L}\p{N}]++[\r\n]*+"""
    r"""|\s++$|\s*[\r\n]|\s+(?!\S)|\s"""
)
_O200K_PATTERN: Final = "|".join(
    (
        r"""[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]*[\p{Ll}\p{Lm}\p{Lo}\p{M}]+"""
        r"""(?i:'s|'t|'re|'ve|'m|'ll|'d)?""",
        r"""[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]+[\p{Ll}\p{Lm}\p{Lo}\p{M}]*"""
        r"""(?i:'s|'t|'re|'ve|'m|'ll|'d)?""",
        r"""\p{N}{1,3}""",
        r""" ?[^\s\p{L}\p{N}]+[\r\n/]*""",
        r"""\s*[\r\n]+""",
        r"""\s+(?!\S)""",
        r"""\s+""",
    )
)
_PATTERNS: Final = MappingProxyType({CL100K: _CL100K_PATTERN, O200K: _O200K_PATTERN})
_SPECIAL_TOKENS: Final = MappingProxyType(
    {
        CL100K: (
            ("<|endoftext|>", 100257),
            ("<|fim_prefix|>", 100258),
            ("<|fim_middle|>", 100259),
            ("<|fim_suffix|>", 100260),
            ("<|endofprompt|>", 100276),
        ),
        O200K: (("<|endoftext|>", 199999), ("<|endofprompt|>", 200018)),
    }
)
_SHA256: Final = MappingProxyType(
    {  # of the decompressed files, as tiktoken expects them
        CL100K: "223921b76ee99bde995b7ff738513eef100fb51d18c93597a113bcffe865b2a7",
        O200K: "446a9538cb6c348e3516120d7c08b09f57c36495e2acfffe59a5bf8b0cfb1a2d",
    }
)
# Names tiktoken may not know yet but that are surely o200k_base (gpt-5.1, o4, ...).
_O200K_NAMES: Final = re.compile(r"(?:chatgpt-4o|gpt-4o|gpt-4\.[15]|gpt-5|gpt-oss|o[134])(?:\b|-)")
# Message content parts counted as JSON (tool calls and results); images and files count 0.
_JSON_PART_TYPES: Final = frozenset(
    ("tool_use", "tool_result", "function_call", "function_call_output")
)
_JSON_PART_KEYS: Final = ("functionCall", "functionResponse")  # Gemini parts
_JSON_KEYS: Final = ("tool_calls", "function_call", *_JSON_PART_KEYS)

ENCODE_LIMIT: Final = 64 * 1024  # characters one estimate hands to tiktoken
VocabReader = Callable[[str], bytes]  # encoding name -> gzip-compressed vocabulary file


def read_bundled_vocab(name: str) -> bytes:
    """The gzip-compressed `<name>.tiktoken` shipped in `tokenomics/formats/vocab/`."""
    resource = (
        resources.files("tokenomics.formats").joinpath("vocab").joinpath(f"{name}.tiktoken.gz")
    )
    return resource.read_bytes()


def parse_ranks(compressed: bytes, expected_sha256: str) -> dict[bytes, int]:
    """`base64-token rank` lines -> {token bytes: rank}; ValueError when the hash differs."""
    contents = gzip.decompress(compressed)
    if hashlib.sha256(contents).hexdigest() != expected_sha256:
        raise ValueError("vocabulary file does not match its expected SHA-256")
    pairs = (line.split() for line in contents.splitlines() if line)
    return {a2b_base64(token): int(rank) for token, rank in pairs}


@lru_cache(maxsize=1024)  # asked for every text of every estimate
def encoding_name(model: str) -> str:
    """`o200k_base` or `cl100k_base` for a model name (provider prefixes are ignored)."""
    name = model.strip().lower().rsplit("/", 1)[-1]
    if _O200K_NAMES.match(name):
        return O200K
    try:
        from tiktoken.model import encoding_name_for_model
    except ImportError:
        return CL100K
    try:
        known = encoding_name_for_model(name)
    except KeyError:
        return CL100K
    return O200K if known.startswith("o200k") else CL100K


def fallback_count(text: str) -> int:
    """The deterministic estimate used without a vocabulary: one token per 4 UTF-8 bytes."""
    return math.ceil(utf8_size(text) / 4)


class TokenEstimator:
    """Counts tokens for a model; each encoding is loaded lazily, once per instance.

    Share one instance per process (the composition root makes it): loading a vocabulary takes
    a few hundred milliseconds. Thread-safe; counting itself does not take the lock.
    """

    __slots__ = ("_encodings", "_failed", "_lock", "_read")

    def __init__(self, read_vocab: VocabReader = read_bundled_vocab) -> None:
        self._read = read_vocab
        self._lock = threading.Lock()
        self._encodings: dict[str, Encoding] = {}
        self._failed: set[str] = set()

    @property
    def fallback_used(self) -> bool:
        """True when a vocabulary could not be loaded and counts are byte-based estimates."""
        return bool(self._failed)

    @property
    def loaded(self) -> tuple[str, ...]:
        return tuple(sorted(self._encodings))

    def warm_up(self, *names: str) -> None:
        """Load encodings now (default: both), in this thread, instead of on the first count."""
        for name in names or ENCODINGS:
            self._encoding(name, wait=True)

    def missing(self, model: str) -> str | None:
        """The encoding `model` is counted with when it is not loaded yet (None: loaded, or
        it failed to load and counts use the fallback)."""
        name = encoding_name(model)
        return None if name in self._encodings or name in self._failed else name

    async def prepare(self, model: str) -> None:
        """Make the encoding of `model` ready for counting, loading it (a few hundred ms) in
        a worker thread so that the event loop goes on serving meanwhile. Call it before the
        counts of an async caller; the counts themselves never load on the event loop for
        long: while another thread is loading they fall back (`_encoding`)."""
        if (name := self.missing(model)) is not None:
            await trio.to_thread.run_sync(partial(self.warm_up, name), abandon_on_cancel=True)

    def count(self, model: str, text: str) -> int:
        """Tokens of `text` (beyond `ENCODE_LIMIT` characters, estimated from its size)."""
        return self.count_texts(model, [text], per_text=0)

    def count_texts(self, model: str, texts: Iterable[str], *, per_text: int = 3) -> int:
        """Σ (`per_text` + tokens) over `texts`, tiktoken counting at most `ENCODE_LIMIT`
        characters of them all; the rest is estimated from its size."""
        return _total(partial(_count, self._encoding(encoding_name(model))), texts, per_text)

    def count_bytes(self, model: str, data: bytes) -> int:
        """Tokens of UTF-8 `data` (a request body): only its first `4 * ENCODE_LIMIT` bytes
        are decoded and counted as `count` does; the rest is estimated from its size, like the
        text past the limit (so a 10 MiB body is not decoded and copied on the event loop)."""
        return _of_bytes(partial(self.count_texts, model, per_text=0), data)

    def count_json(self, model: str, value: Any) -> int:
        """Tokens of `value` serialised as compact JSON (tool definitions, schemas, ...)."""
        if isinstance(value, str):
            return self.count(model, value)
        return self.count(model, _json(value))

    def count_messages(self, model: str, messages: Sequence[Mapping[str, Any]]) -> int:
        """3 + Σ (3 + tokens of the message's texts) over the messages.

        Texts: every string value (role, content, name, tool_call_id, ...), the text parts of
        array content (OpenAI `content`, Gemini `parts`), tool calls and tool results as JSON.
        """
        encoding = self._encoding(encoding_name(model))
        total = 3
        for message in messages:
            total += 3
            if isinstance(message, Mapping):
                total += sum(_count(encoding, text) for text in _message_texts(message))
        return total

    def _encoding(self, name: str, *, wait: bool = False) -> Encoding | None:
        """The encoding, loading it on first use. While another thread is loading it (the
        server's warm-up), return None at once unless `wait`: the event loop never waits, the
        caller counts that text with the byte-based fallback instead."""
        encoding = self._encodings.get(name)
        if encoding is not None or name in self._failed:
            return encoding
        if not self._lock.acquire(blocking=wait):
            return None
        try:
            if name not in self._encodings and name not in self._failed:
                try:
                    self._encodings[name] = self._load(name)
                except (ImportError, OSError, EOFError, ValueError, KeyError):
                    self._failed.add(name)
            return self._encodings.get(name)
        finally:
            self._lock.release()

    def _load(self, name: str) -> Encoding:
        from tiktoken import Encoding

        return Encoding(
            name,
            pat_str=_PATTERNS[name],
            mergeable_ranks=parse_ranks(self._read(name), _SHA256[name]),
            special_tokens=dict(_SPECIAL_TOKENS[name]),
        )


def bound_texts(texts: Iterable[str], *, per_text: int = 3) -> int:
    """At least what `count_texts(model, texts, per_text=per_text)` gives, for every model,
    without a vocabulary: the same sum with each text's UTF-8 size in place of its tokens
    (a BPE token is one byte or more, and everything past the limit grows with the count).
    About 4x the count for English, microseconds to compute."""
    if isinstance(texts, list):  # the common case, in one loop without calls
        chars = size = 0
        for text in texts:
            chars += len(text)
            size += len(text) if text.isascii() else utf8_size(text)
        if chars <= ENCODE_LIMIT:  # nothing past the limit: `_total` would cut nothing
            return size + per_text * len(texts)
    return _total(utf8_size, texts, per_text)


def bound_bytes(data: bytes) -> int:
    """At least what `count_bytes(model, data)` gives, for every model (see `bound_texts`)."""
    return _of_bytes(partial(bound_texts, per_text=0), data)


def utf8_size(text: str) -> int:
    """Bytes of `text` in UTF-8 (lone surrogates as 3, as tiktoken's replacement counts)."""
    return len(text) if text.isascii() else len(text.encode("utf-8", "surrogatepass"))


def _total(count: Callable[[str], int], texts: Iterable[str], per_text: int) -> int:
    """Σ (`per_text` + `count`) over `texts`, `count` seeing at most `ENCODE_LIMIT`
    characters of them all; the rest is estimated from its size and the rate counted so far.
    Never smaller when `count` gives more for every text (the bounds rely on that)."""
    total = tokens = chars = 0
    for text in texts:
        head = text[: max(ENCODE_LIMIT - chars, 0)]
        counted = count(head)
        tokens, chars = tokens + counted, chars + len(head)
        total += per_text + counted + _beyond(text[len(head) :], tokens, chars)
    return total


def _of_bytes(count: Callable[[list[str]], int], data: bytes) -> int:
    """`count` of the first `4 * ENCODE_LIMIT` bytes of `data` decoded, the rest from its size."""
    head, rest = data[: 4 * ENCODE_LIMIT], len(data) - min(len(data), 4 * ENCODE_LIMIT)
    counted = count([head.decode("utf-8", "replace")])
    if not rest:
        return counted
    return counted + max(math.ceil(rest / 4), math.ceil(counted * rest / len(head)))


def _beyond(text: str, tokens: int, chars: int) -> int:
    """The estimate of text past the limit: 4 UTF-8 bytes a token, or the rate counted so far."""
    if not text:
        return 0
    return max(fallback_count(text), math.ceil(tokens * len(text) / chars) if chars else 0)


def _count(encoding: Encoding | None, text: str) -> int:
    if not text:
        return 0
    if encoding is None:
        return fallback_count(text)
    return len(encoding.encode_ordinary(text))


def _json(value: Any) -> str:
    try:
        return orjson.dumps(value, default=str, option=orjson.OPT_NON_STR_KEYS).decode()
    except TypeError:
        return str(value)


def _message_texts(message: Mapping[str, Any]) -> list[str]:
    texts: list[str] = []
    for key, value in message.items():
        if isinstance(value, str):
            texts.append(value)
        elif key in _JSON_KEYS and value:
            texts.append(_json(value))
        elif key in ("content", "parts") and isinstance(value, list):
            texts.extend(_part_texts(value))
    return texts


def _part_texts(parts: list[Any]) -> list[str]:
    texts: list[str] = []
    for part in parts:
        if isinstance(part, str):
            texts.append(part)
        elif not isinstance(part, Mapping):
            continue
        elif isinstance(text := part.get("text"), str):
            texts.append(text)
        elif part.get("type") in _JSON_PART_TYPES or any(key in part for key in _JSON_PART_KEYS):
            texts.append(_json(part))
    return texts
