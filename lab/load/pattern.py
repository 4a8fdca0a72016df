"""The verifiable byte stream every load connection sends.

A seeded block of random bytes (the *period*) is computed once. Connection ``k``
sends that block endlessly, starting at a per-connection rotation, so the byte
expected at any stream offset is ``block[(start + offset) % period]``. The block is
stored with its first ``max_chunk`` bytes appended, so any slice of up to
``max_chunk`` bytes is contiguous: sending is a zero-copy memoryview slice, and
checking a received chunk is one ``bytes.startswith(chunk, pos)`` -- a memcmp with
no copy. (``memoryview == memoryview`` is a per-element loop in CPython, ~40x
slower.) Only when a chunk does not match is the exact offset searched for.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from functools import lru_cache

#: Bytes in one period of the pattern. Any drop, duplicate or reorder of data
#: that is not a multiple of this shows up as a mismatch.
DEFAULT_PERIOD = 1 << 20
#: Largest slice handed out or checked in one piece.
MAX_CHUNK = 1 << 18
_GOLDEN = 0x9E3779B97F4A7C15


@dataclass(frozen=True)
class Mismatch:
    """Where a received chunk first differs from the pattern."""

    offset: int
    """Stream offset (bytes since the connection started) of the first bad byte."""
    expected: int
    got: int


class Pattern:
    """A seeded, endlessly repeating byte pattern; see the module docstring."""

    def __init__(self, seed: int, period: int = DEFAULT_PERIOD, max_chunk: int = MAX_CHUNK) -> None:
        if period <= 0 or max_chunk <= 0 or max_chunk > period:
            raise ValueError("need 0 < max_chunk <= period")
        block = random.Random(seed).randbytes(period)
        self.seed = seed
        self.period = period
        self.max_chunk = max_chunk
        self.data: bytes = block + block[:max_chunk]
        self.view = memoryview(self.data)

    def start_for(self, conn: int) -> int:
        """The rotation of connection ``conn``: distinct, deterministic per seed."""
        return ((conn + 1) * _GOLDEN + self.seed) % self.period

    def byte_at(self, start: int, offset: int) -> int:
        """The byte expected at ``offset`` of the stream that begins at ``start``."""
        return self.data[(start + offset) % self.period]

    def chunk(self, start: int, offset: int, size: int) -> memoryview:
        """``size`` (<= max_chunk) bytes of the stream at ``offset``, without copying."""
        pos = (start + offset) % self.period
        return self.view[pos : pos + min(size, self.max_chunk)]

    def expected(self, start: int, offset: int, size: int) -> bytes:
        """Any number of bytes of the stream at ``offset`` (a copy; for reports and tests)."""
        out = bytearray()
        while len(out) < size:
            out += self.chunk(start, offset + len(out), size - len(out))
        return bytes(out)

    def matches(self, start: int, offset: int, chunk: bytes | bytearray | memoryview) -> bool:
        """True when ``chunk`` is exactly the stream's bytes at ``offset``."""
        size = len(chunk)
        if size <= self.max_chunk:
            return self.data.startswith(chunk, (start + offset) % self.period)
        view = memoryview(chunk)
        done = 0
        while done < size:
            piece = view[done : done + self.max_chunk]
            if not self.data.startswith(piece, (start + offset + done) % self.period):
                return False
            done += len(piece)
        return True

    def find_mismatch(
        self, start: int, offset: int, chunk: bytes | bytearray | memoryview
    ) -> Mismatch | None:
        """The first byte of ``chunk`` that differs from the stream, or None."""
        view = memoryview(chunk)
        step = 4096
        for base in range(0, len(view), step):
            piece = view[base : base + step]
            if self.matches(start, offset + base, piece):
                continue
            for i, got in enumerate(piece):
                want = self.byte_at(start, offset + base + i)
                if got != want:
                    return Mismatch(offset=offset + base + i, expected=want, got=got)
        return None


@lru_cache(maxsize=4)
def pattern_for(seed: int) -> Pattern:
    """The shared default-size pattern for ``seed`` (built once; ~1 MiB)."""
    return Pattern(seed)
