"""Vocabularies on demand (issue 14): nothing loads until a count needs it, then only the
model's own encoding, in a worker thread; and the vocabulary-free bounds that admission uses
are never below the counts, whatever the text (hypothesis, against the real vocabularies)."""

from __future__ import annotations

import threading

import pytest
import trio
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tokenomics.formats.estimate import (
    CL100K,
    ENCODE_LIMIT,
    O200K,
    TokenEstimator,
    bound_bytes,
    bound_texts,
    read_bundled_vocab,
    utf8_size,
)

MODELS = ("gpt-4o", "gpt-4")  # o200k_base, cl100k_base


@pytest.fixture(scope="module")
def estimator() -> TokenEstimator:
    shared = TokenEstimator()
    shared.warm_up()
    return shared


# Text that tokenises badly (every byte its own token is the worst case): emoji, CJK, control
# characters, combining marks, lone surrogates, as well as plain words and spaces.
TEXT = st.text(st.characters(codec=None, exclude_categories=()), max_size=300) | st.from_regex(
    r"[a-z ]{0,200}", fullmatch=True
)
# Past `ENCODE_LIMIT`, where the rest is estimated from the rate counted so far: a short text
# repeated, after another (the rate of the head and of the rest can differ widely).
LONG = st.tuples(TEXT, TEXT.filter(bool), st.integers(1, 3)).map(
    lambda t: t[0] * (ENCODE_LIMIT // max(len(t[0]), 1)) + t[1] * (t[2] * 20_000)
)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(texts=st.lists(TEXT, max_size=6), per_text=st.sampled_from((0, 3)))
def test_the_bound_of_texts_is_never_below_their_count(
    estimator: TokenEstimator, texts: list[str], per_text: int
) -> None:
    bound = bound_texts(texts, per_text=per_text)
    for model in MODELS:
        assert estimator.count_texts(model, texts, per_text=per_text) <= bound


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(head=st.lists(TEXT, max_size=2), long=LONG, tail=st.lists(TEXT, max_size=2))
def test_the_bound_holds_past_the_encode_limit(
    estimator: TokenEstimator, head: list[str], long: str, tail: list[str]
) -> None:
    texts = [*head, long, *tail]
    for model in MODELS:
        assert estimator.count_texts(model, texts) <= bound_texts(texts)


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.binary(max_size=600) | TEXT.map(lambda t: t.encode("utf-8", "surrogatepass")))
def test_the_bound_of_a_body_is_never_below_its_count(
    estimator: TokenEstimator, data: bytes
) -> None:
    for model in MODELS:
        assert estimator.count_bytes(model, data) <= bound_bytes(data)


@settings(max_examples=10, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(head=st.binary(min_size=1, max_size=50), rest=st.binary(min_size=1, max_size=50))
def test_the_bound_of_a_body_past_the_limit_is_never_below_its_count(
    estimator: TokenEstimator, head: bytes, rest: bytes
) -> None:
    data = head * (4 * ENCODE_LIMIT // len(head) + 1) + rest * 5_000
    for model in MODELS:
        assert estimator.count_bytes(model, data) <= bound_bytes(data)


def test_the_bound_is_the_utf8_size_under_the_limit() -> None:
    assert bound_texts(["hello world", "héllo"], per_text=3) == 3 + 11 + 3 + 6
    assert bound_bytes(b'{"a": "\xff"}') == utf8_size('{"a": "\ufffd"}')  # as decoded
    assert utf8_size("a\ud800") == 4


def test_nothing_loads_until_a_count_needs_it_then_only_that_models_encoding() -> None:
    fresh = TokenEstimator()
    bound_texts(["hello world"])
    assert fresh.loaded == ()
    assert fresh.missing("gpt-4o") == O200K and fresh.missing("claude-x") == CL100K
    assert fresh.count("gpt-4o", "hello world") == 2
    assert fresh.loaded == (O200K,)
    assert fresh.missing("gpt-4o") is None and fresh.missing("gpt-4") == CL100K


def test_a_vocabulary_that_failed_to_load_is_not_missing() -> None:
    def missing_file(name: str) -> bytes:
        raise FileNotFoundError(name)

    broken = TokenEstimator(read_vocab=missing_file)
    assert broken.count("gpt-4o", "hello world") == 3  # the byte-based fallback
    assert broken.missing("gpt-4o") is None  # nothing to wait for: counts fall back
    trio.run(broken.prepare, "gpt-4o")
    assert broken.loaded == ()


def test_prepare_loads_in_a_worker_thread_while_the_event_loop_runs() -> None:
    """The reader blocks until a task on the event loop lets it go: if `prepare` loaded on the
    loop, that task could not run and the load would time out into the fallback."""
    released = threading.Event()
    readers: list[str] = []

    def gated_reader(name: str) -> bytes:
        readers.append(threading.current_thread().name)
        if not released.wait(10):
            raise OSError("the event loop did not run while the vocabulary loaded")
        return read_bundled_vocab(name)

    lazy = TokenEstimator(read_vocab=gated_reader)

    async def main() -> None:
        async with trio.open_nursery() as nursery:
            nursery.start_soon(lazy.prepare, "gpt-4o-mini")
            await trio.sleep(0.01)
            released.set()  # runs only because the loop is free

    trio.run(main)
    assert lazy.loaded == (O200K,)
    assert not lazy.fallback_used
    assert readers and readers[0] != threading.main_thread().name
    trio.run(lazy.prepare, "gpt-4o")  # loaded: nothing more is read
    assert len(readers) == 1
