"""Undoing `content-encoding` on upstream replies, chunk by chunk."""

from __future__ import annotations

import gzip
import zlib

import pytest

from tokenomics.upstream.decoding import MAX_DECODED, decoder_for

TEXT = b'{"choices":[{"message":{"content":"hello"}}]}' * 50


def feed(encoding: str, data: bytes, size: int = 7) -> bytes:
    decoder, rest = decoder_for(encoding)
    assert decoder is not None and rest == ""
    out = b"".join(decoder.decode(data[i : i + size]) for i in range(0, len(data), size))
    return out + decoder.flush()


def raw_deflate(data: bytes) -> bytes:
    compressor = zlib.compressobj(wbits=-zlib.MAX_WBITS)
    return compressor.compress(data) + compressor.flush()


def test_gzip_is_decoded_across_small_chunks() -> None:
    assert feed("gzip", gzip.compress(TEXT)) == TEXT


@pytest.mark.parametrize("compress", [zlib.compress, raw_deflate], ids=["zlib", "raw"])
def test_deflate_is_decoded_whether_zlib_wrapped_or_raw(compress: object) -> None:
    assert callable(compress)
    assert feed("deflate", compress(TEXT)) == TEXT


def test_several_codings_are_undone_in_reverse_order() -> None:
    assert feed("deflate, gzip", gzip.compress(zlib.compress(TEXT))) == TEXT
    assert feed("GZIP , gzip", gzip.compress(gzip.compress(TEXT)), size=3) == TEXT


@pytest.mark.parametrize("encoding", ["", "br", "zstd, identity", "gzip, br", "Gzip, ZSTD"])
def test_nothing_to_undo_means_no_decoder_and_the_value_unchanged(encoding: str) -> None:
    assert decoder_for(encoding) == (None, encoding)


def test_identity_alone_is_nothing_to_undo() -> None:
    assert decoder_for("identity") == (None, "identity")


@pytest.mark.parametrize(
    ("encoding", "left"),
    [("br, gzip", "br"), ("zstd, identity, gzip", "zstd"), ("br,deflate", "br")],
)
def test_codings_applied_before_one_we_cannot_undo_stay_named(encoding: str, left: str) -> None:
    inner = b"\x8b\x00brotli bytes we do not decode"
    decoder, rest = decoder_for(encoding)
    assert decoder is not None and rest == left
    compressed = gzip.compress(inner) if "gzip" in encoding else zlib.compress(inner)
    assert decoder.decode(compressed) + decoder.flush() == inner


def test_corrupt_data_raises_zlib_error() -> None:
    decoder, _ = decoder_for("gzip")
    assert decoder is not None
    with pytest.raises(zlib.error):
        decoder.decode(b"this is not gzip at all")


@pytest.mark.parametrize("encoding", ["gzip", "gzip, gzip"])
def test_a_decompression_bomb_is_refused_not_expanded(encoding: str) -> None:
    body = bytes(MAX_DECODED + 1)
    for coding in encoding.split(", "):
        assert coding == "gzip"
        body = gzip.compress(body)
    decoder, _ = decoder_for(encoding)
    assert decoder is not None
    with pytest.raises(zlib.error):
        decoder.decode(body)
