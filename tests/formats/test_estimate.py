"""Token estimates: bundled vocabularies, no network, model -> encoding, messages, fallback."""

from __future__ import annotations

import gzip
import math
import socket
import threading
from pathlib import Path
from typing import Any

import orjson
import pytest

from tokenomics.formats.estimate import (
    CL100K,
    ENCODE_LIMIT,
    O200K,
    TokenEstimator,
    encoding_name,
    fallback_count,
    read_bundled_vocab,
)


@pytest.fixture(scope="module")
def estimator() -> TokenEstimator:
    shared = TokenEstimator()
    shared.warm_up()
    return shared


class CountingReader:
    def __init__(self) -> None:
        self.calls: list[str] = []
        self.lock = threading.Lock()

    def __call__(self, name: str) -> bytes:
        with self.lock:
            self.calls.append(name)
        return read_bundled_vocab(name)


def test_no_network_and_no_tiktoken_cache_are_touched(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    cache = tmp_path / "tiktoken-cache"
    cache.mkdir()
    monkeypatch.setenv("TIKTOKEN_CACHE_DIR", str(cache))
    monkeypatch.setenv("DATA_GYM_CACHE_DIR", str(cache))

    def no_network(*args: Any, **kwargs: Any) -> socket.socket:
        raise AssertionError("the estimator tried to open a socket")

    monkeypatch.setattr(socket, "socket", no_network)
    monkeypatch.setattr(socket, "create_connection", no_network)
    fresh = TokenEstimator()
    assert fresh.count("gpt-4o", "hello world") == 2
    assert fresh.count("claude-sonnet-4-5", "hello world") == 2
    assert not fresh.fallback_used
    assert fresh.loaded == (CL100K, O200K)
    assert list(cache.iterdir()) == []


def test_known_small_counts_in_both_encodings(estimator: TokenEstimator) -> None:
    for model in ("gpt-4o", "gpt-4"):
        assert estimator.count(model, "hello world") == 2
        assert estimator.count(model, "tiktoken is great!") == 6
    assert estimator.count("gpt-4o", "") == 0


def test_the_encodings_differ_where_they_should(estimator: TokenEstimator) -> None:
    # o200k has a larger vocabulary: non-English text takes fewer tokens than with cl100k.
    text = "Привет, как дела? Это проверка токенизатора. こんにちは世界。"
    assert estimator.count("gpt-4o", text) < estimator.count("gpt-4", text)


def test_special_token_text_counts_as_ordinary_text(estimator: TokenEstimator) -> None:
    assert estimator.count("gpt-4o", "<|endoftext|>") > 1
    assert estimator.count("gpt-4", "say <|endofprompt|> now") > 3


def test_lone_surrogates_do_not_raise(estimator: TokenEstimator) -> None:
    assert estimator.count("gpt-4o", "a\ud800b") >= 2


@pytest.mark.parametrize(
    ("model", "name"),
    [
        ("gpt-4o", O200K),
        ("gpt-4o-mini-2024-07-18", O200K),
        ("chatgpt-4o-latest", O200K),
        ("gpt-4.1-nano", O200K),
        ("gpt-5", O200K),
        ("gpt-5.1-codex", O200K),
        ("o1", O200K),
        ("o3-mini", O200K),
        ("o4-mini-2025-04-16", O200K),
        ("openai/gpt-4o", O200K),
        ("openai/gpt-oss-120b", O200K),
        ("GPT-4O", O200K),
        ("gpt-4", CL100K),
        ("gpt-4-turbo", CL100K),
        ("gpt-3.5-turbo", CL100K),
        ("text-embedding-3-small", CL100K),
        ("text-davinci-003", CL100K),
        ("claude-sonnet-4-5", CL100K),
        ("gemini-2.5-pro", CL100K),
        ("llama-3.3-70b-versatile", CL100K),
        ("o10-fake", CL100K),
        ("", CL100K),
    ],
)
def test_model_to_encoding(model: str, name: str) -> None:
    assert encoding_name(model) == name


def test_count_messages_empty_is_three(estimator: TokenEstimator) -> None:
    assert estimator.count_messages("gpt-4o", []) == 3


def test_count_messages_counts_every_string_value(estimator: TokenEstimator) -> None:
    message = {"role": "user", "content": "hello world"}
    assert estimator.count_messages("gpt-4o", [message]) == 3 + 3 + 1 + 2
    named = {"role": "tool", "content": "hello world", "tool_call_id": "call_1"}
    extra = estimator.count("gpt-4o", "tool") + 2 + estimator.count("gpt-4o", "call_1")
    assert estimator.count_messages("gpt-4o", [named]) == 3 + 3 + extra


def test_array_content_text_parts_count_like_string_content(estimator: TokenEstimator) -> None:
    plain = [{"role": "user", "content": "hello world"}]
    parts = [
        {
            "role": "user",
            "content": [
                {"type": "text", "text": "hello world"},
                {"type": "image_url", "image_url": {"url": "data:image/png;base64," + "A" * 5000}},
            ],
        }
    ]
    assert estimator.count_messages("gpt-4o", parts) == estimator.count_messages("gpt-4o", plain)


def test_tool_calls_count_as_their_json(estimator: TokenEstimator) -> None:
    calls = [
        {
            "id": "c1",
            "type": "function",
            "function": {"name": "get_weather", "arguments": '{"city":"Paris"}'},
        }
    ]
    with_calls = [{"role": "assistant", "content": None, "tool_calls": calls}]
    expected = 3 + 3 + 1 + estimator.count_json("gpt-4o", calls)
    assert estimator.count_messages("gpt-4o", with_calls) == expected
    assert estimator.count_json("gpt-4o", calls) > 10


def test_anthropic_and_gemini_blocks_are_counted(estimator: TokenEstimator) -> None:
    anthropic = [
        {
            "role": "assistant",
            "content": [
                {"type": "text", "text": "Let me check."},
                {
                    "type": "tool_use",
                    "id": "t1",
                    "name": "lookup",
                    "input": {"q": "weather in Paris"},
                },
            ],
        },
        {
            "role": "user",
            "content": [{"type": "tool_result", "tool_use_id": "t1", "content": "Sunny, 21C"}],
        },
    ]
    gemini = [
        {
            "role": "model",
            "parts": [{"text": "Sure"}, {"functionCall": {"name": "f", "args": {"a": 1}}}],
        }
    ]
    text_only = [{"role": "assistant", "content": "Let me check."}, {"role": "user", "content": ""}]
    assert (
        estimator.count_messages("claude-sonnet-4-5", anthropic)
        > estimator.count_messages("claude-sonnet-4-5", text_only) + 10
    )
    assert estimator.count_messages("gemini-2.5-pro", gemini) > 3 + 3 + 1 + 1 + 5


def test_count_json_matches_compact_serialisation(estimator: TokenEstimator) -> None:
    tools = [{"type": "function", "function": {"name": "f", "parameters": {"type": "object"}}}]
    assert estimator.count_json("gpt-4o", tools) == estimator.count(
        "gpt-4o", orjson.dumps(tools).decode()
    )
    assert estimator.count_json("gpt-4o", "plain") == estimator.count("gpt-4o", "plain")
    assert estimator.count_json("gpt-4o", {1: object()}) > 0


def test_bigger_text_never_counts_fewer_tokens(estimator: TokenEstimator) -> None:
    text = "The quick brown fox jumps over the lazy dog. " * 50
    assert 0 < estimator.count("gpt-4o", text[:100]) < estimator.count("gpt-4o", text)
    assert 400 <= estimator.count("gpt-4o", text) <= 600


# ── loading ──────────────────────────────────────────────────────────────────────────────────


def test_each_encoding_loads_once_per_instance_even_from_many_threads() -> None:
    reader = CountingReader()
    shared = TokenEstimator(read_vocab=reader)
    results: list[int] = []

    def work() -> None:
        results.append(shared.count("gpt-4o", "hello world") + shared.count("gpt-4", "hello world"))

    threads = [threading.Thread(target=work) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    # Exact (2 + 2) once loaded; a thread that arrived during the load got the byte estimate.
    assert set(results) <= {4, 5, 6}
    assert sorted(reader.calls) == [CL100K, O200K]
    work()
    assert results[-1] == 4


def test_a_count_during_a_load_in_another_thread_does_not_wait() -> None:
    loading = threading.Event()
    release = threading.Event()

    def slow_reader(name: str) -> bytes:
        loading.set()
        release.wait(5)
        return read_bundled_vocab(name)

    shared = TokenEstimator(read_vocab=slow_reader)
    warm = threading.Thread(target=shared.warm_up, args=(O200K,))
    warm.start()
    assert loading.wait(5)
    # the fallback's ceil(11 bytes / 4): the count did not wait for the load (that would
    # return only after `release`, with tiktoken's 2)
    assert shared.count("gpt-4o", "hello world") == 3
    release.set()
    warm.join()
    assert shared.count("gpt-4o", "hello world") == 2


def test_each_bundled_encoding_loads_without_the_fallback() -> None:
    fresh = TokenEstimator()
    for name in (CL100K, O200K):
        fresh.warm_up(name)
    assert set(fresh.loaded) >= {CL100K, O200K}
    assert not fresh.fallback_used


def test_constructing_and_importing_loads_nothing() -> None:
    reader = CountingReader()
    TokenEstimator(read_vocab=reader)
    assert reader.calls == []


# ── fallback ─────────────────────────────────────────────────────────────────────────────────


def missing(name: str) -> bytes:
    raise FileNotFoundError(name)


def corrupt(name: str) -> bytes:
    return gzip.compress(b"aGVsbG8= 0\n")  # well-formed, but not the expected file


def truncated(name: str) -> bytes:
    return read_bundled_vocab(name)[:1000]


@pytest.mark.parametrize("reader", [missing, corrupt, truncated])
def test_unloadable_vocabulary_falls_back_to_bytes_over_four(reader: Any) -> None:
    fallback = TokenEstimator(read_vocab=reader)
    assert fallback.count("gpt-4o", "hello world") == 3  # 11 bytes
    assert fallback.count("claude-x", "héllo") == 2  # 6 bytes
    assert fallback.fallback_used
    assert fallback.count_messages("gpt-4o", [{"role": "user", "content": "abcd"}]) == 3 + 3 + 1 + 1


def test_fallback_count_is_ceil_of_utf8_bytes_over_four() -> None:
    assert [fallback_count(t) for t in ("", "a", "abcd", "abcde", "🎉🎉")] == [0, 1, 1, 2, 2]
    assert fallback_count("x" * 4001) == math.ceil(4001 / 4)


# ── bounded work on the event loop (issue 12 item 11) ───────────────────────────────────────


def test_tiktoken_counts_only_the_first_64_ki_characters_of_a_ten_mib_body(
    estimator: TokenEstimator,
) -> None:
    """tiktoken on all 10 MiB takes seconds: past ENCODE_LIMIT the text is estimated from its
    size (here the 4-bytes-a-token floor, above the head's rate), not encoded."""
    head = "a" * ENCODE_LIMIT  # a run tiktoken packs into few tokens
    tail = "lorem ipsum dolor sit amet " * (10 * 1024 * 1024 // 27)
    assert estimator.count("gpt-4o", head + tail) == (
        estimator.count("gpt-4o", head) + fallback_count(tail)
    )


def test_a_ten_mib_body_is_estimated_at_the_rate_of_its_head(estimator: TokenEstimator) -> None:
    text = "lorem ipsum dolor sit amet " * (10 * 1024 * 1024 // 27)
    count = estimator.count_texts("gpt-4o", [text, text])
    counted = estimator.count("gpt-4o", text[:ENCODE_LIMIT])
    exact = counted * 2 * len(text) / ENCODE_LIMIT  # the text repeats itself
    assert exact <= count - 6 <= 1.5 * exact


def test_text_past_the_limit_is_not_undercounted_by_its_byte_size(
    estimator: TokenEstimator,
) -> None:
    runes = "ᚠᚢᚦᚨᚱᚲ " * 40_000  # 3 UTF-8 bytes and about 3 tokens per rune
    exact = sum(
        estimator.count("gpt-4o", runes[i : i + ENCODE_LIMIT])
        for i in range(0, len(runes), ENCODE_LIMIT)
    )
    assert estimator.count("gpt-4o", runes) >= 0.9 * exact
    assert len(runes.encode()) / 4 < exact / 3  # bytes/4 alone would undercount


def test_under_the_limit_the_count_is_tiktokens(estimator: TokenEstimator) -> None:
    texts = ["hello world"] * 10
    assert estimator.count_texts("gpt-4o", texts) == 10 * (3 + estimator.count("gpt-4o", texts[0]))


def test_a_body_is_counted_from_its_bytes_like_its_text(estimator: TokenEstimator) -> None:
    small = '{"model": "gpt-4o", "input": "héllo wörld"}'.encode()
    assert estimator.count_bytes("gpt-4o", small) == estimator.count("gpt-4o", small.decode())
    big = ("lorem ipsum dolor sit amet " * (10 * 1024 * 1024 // 27)).encode()
    whole = estimator.count("gpt-4o", big.decode())
    assert whole <= estimator.count_bytes("gpt-4o", big) <= 1.5 * whole
    assert estimator.count_bytes("gpt-4o", b"") == 0
