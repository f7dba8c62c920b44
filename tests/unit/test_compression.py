"""Streaming compressors: chunked round trips for every kind."""

from __future__ import annotations

import pytest

from backproof.compression import compressor, decompress_stream


@pytest.mark.parametrize("kind", ["zstd", "gzip", "none"])
def test_compression_round_trip_in_chunks(kind: str) -> None:
    data = [bytes([i % 251]) * 70_000 + b"tail" for i in range(20)]
    comp = compressor(kind)
    chunks = [comp.compress(d) for d in data] + [comp.flush()]
    assert b"".join(decompress_stream(kind, chunks)) == b"".join(data)
