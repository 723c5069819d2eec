"""Undoing `content-encoding` on upstream replies, chunk by chunk."""

from __future__ import annotations

import gzip
import zlib

import pytest

from tokenomics.upstream.decoding import decoder_for

TEXT = b'{"choices":[{"message":{"content":"hello"}}]}' * 50


def feed(encoding: str, data: bytes, size: int = 7) -> bytes:
    decoder = decoder_for(encoding)
    assert decoder is not None
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


@pytest.mark.parametrize("encoding", ["", "identity", "br", "zstd, identity"])
def test_nothing_to_undo_means_no_decoder(encoding: str) -> None:
    assert decoder_for(encoding) is None


def test_corrupt_data_raises_zlib_error() -> None:
    decoder = decoder_for("gzip")
    assert decoder is not None
    with pytest.raises(zlib.error):
        decoder.decode(b"this is not gzip at all")
