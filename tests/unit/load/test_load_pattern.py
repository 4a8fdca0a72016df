"""The seeded pattern: expected bytes are computable at any offset; mismatches located."""

from __future__ import annotations

import random

import pytest

from lab.load.pattern import Pattern, pattern_for


def test_same_seed_same_stream_other_seed_other_stream() -> None:
    a, b, c = Pattern(7, 4096, 1024), Pattern(7, 4096, 1024), Pattern(8, 4096, 1024)
    assert a.expected(a.start_for(3), 100, 5000) == b.expected(b.start_for(3), 100, 5000)
    assert a.expected(a.start_for(3), 0, 512) != c.expected(c.start_for(3), 0, 512)


def test_connections_get_different_rotations() -> None:
    p = pattern_for(1)
    starts = {p.start_for(k) for k in range(1000)}
    assert len(starts) == 1000


def test_byte_at_agrees_with_chunks_across_the_period_wrap() -> None:
    p = Pattern(3, period=4096, max_chunk=1024)
    start = p.start_for(0)
    stream = p.expected(start, 0, 3 * 4096 + 17)
    assert len(stream) == 3 * 4096 + 17
    assert stream[:4096] == stream[4096:8192]  # it repeats with the period
    for offset in (0, 1, 4095, 4096, 4097, 9000, 3 * 4096 + 16):
        assert stream[offset] == p.byte_at(start, offset)
    assert bytes(p.chunk(start, 4000, 1024)) == stream[4000:5024]


def test_matches_accepts_exact_data_in_any_split() -> None:
    p = Pattern(5, period=8192, max_chunk=2048)
    start = p.start_for(9)
    stream = p.expected(start, 0, 20000)
    rng = random.Random(0)
    offset = 0
    while offset < len(stream):
        size = rng.randint(1, 5000)  # also larger than max_chunk
        assert p.matches(start, offset, stream[offset : offset + size])
        offset += size


@pytest.mark.parametrize("bad", [0, 1, 2047, 2048, 5000, 9999])
def test_find_mismatch_reports_offset_expected_and_got(bad: int) -> None:
    p = Pattern(5, period=8192, max_chunk=2048)
    start = p.start_for(2)
    data = bytearray(p.expected(start, 1000, 10000))
    data[bad] ^= 0x5A
    assert not p.matches(start, 1000, data)
    found = p.find_mismatch(start, 1000, data)
    assert found is not None
    assert found.offset == 1000 + bad
    assert found.expected == p.byte_at(start, 1000 + bad)
    assert found.got == found.expected ^ 0x5A


def test_shifted_data_is_a_mismatch() -> None:
    """A lost byte (everything after it shifted) is caught, not just a flipped one."""
    p = pattern_for(1)
    start = p.start_for(0)
    data = p.expected(start, 0, 4096)
    assert not p.matches(start, 0, data[:100] + data[101:])
    assert p.find_mismatch(start, 0, data) is None


def test_rejects_bad_geometry() -> None:
    with pytest.raises(ValueError):
        Pattern(1, period=1024, max_chunk=4096)
