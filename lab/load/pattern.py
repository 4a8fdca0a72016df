"""The verifiable byte stream every load connection sends.

A seeded block of random bytes (the *period*) is computed once. Connection ``k``
sends that block endlessly, starting at a per-connection rotation, so the byte
expected at any stream offset is ``block[(start + offset) % period]``. The block is
stored with its first ``max_chunk`` bytes appended, so any slice of up to
``max_chunk`` bytes is contiguous: sending is a zero-copy memoryview slice, and
checking a received chunk is one ``bytes.startswith(chunk, pos)`` -- a memcmp with
no copy. (``memoryview == memoryview`` is a per-element loop in CPython, ~40x
slower.) Only when a chunk does not match is the exact offset searched for, and
then :meth:`Pattern.diagnose` tells loss from reorder from corruption: the bytes
received at the first difference are looked up in the stream within a bounded
window around it (the pattern is random, so 16 bytes found elsewhere in it were
sent there).
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from functools import lru_cache

from lab.load.result import DataFault

#: Bytes in one period of the pattern. Any drop, duplicate or reorder of data
#: that is not a multiple of this shows up as a mismatch.
DEFAULT_PERIOD = 1 << 20
#: Largest slice handed out or checked in one piece.
MAX_CHUNK = 1 << 18
_GOLDEN = 0x9E3779B97F4A7C15
#: Received bytes looked up in the stream to find where they were sent. 16 random
#: bytes repeat by chance with odds ~2**-128: a hit is where they came from.
NEEDLE = 16
#: Fewer received bytes than this after the difference cannot be placed: corrupt.
MIN_NEEDLE = 8
#: How far before/after the difference the received bytes are looked for.
REACH = MAX_CHUNK


@dataclass(frozen=True)
class Mismatch:
    """Where a received chunk first differs from the pattern."""

    offset: int
    """Stream offset (bytes since the connection started) of the first bad byte."""
    expected: int
    got: int


@dataclass(frozen=True)
class Diagnosis:
    """How the echoed bytes from the first difference on relate to the stream."""

    fault: DataFault
    offset: int
    """Stream offset of the first byte that differs."""
    expected: int
    got: int
    lost: int | None = None
    """LOSS: bytes missing at ``offset``."""
    found_at: int | None = None
    """LOSS/REORDER: stream offset where the bytes received at ``offset`` were sent."""

    def describe(self) -> str:
        if self.fault is DataFault.LOSS:
            n = self.lost or 0
            return (f"{n} byte{'s' if n != 1 else ''} lost at offset {self.offset} "
                    f"(the echo goes on with the bytes sent at offset {self.found_at})")
        if self.fault is DataFault.REORDER:
            how = "duplicated" if (self.found_at or 0) < self.offset else "reordered"
            return (f"data sent at offset {self.found_at} came back at offset "
                    f"{self.offset} ({how})")
        return f"expected 0x{self.expected:02x} got 0x{self.got:02x} at offset {self.offset}"


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


    def diagnose(
        self, start: int, offset: int, tail: bytes | bytearray | memoryview, sent: int,
        reach: int = REACH,
    ) -> Diagnosis:
        """Classify the bytes ``tail`` received from stream ``offset`` on, where the first of
        them differs from the stream; only the first ``sent`` bytes were ever sent.

        The first bytes of ``tail`` are looked for within ``reach`` of ``offset``: found
        nowhere, CORRUPT; found earlier, REORDER (a duplicate); found ``k`` bytes later,
        LOSS -- unless the skipped ``k`` bytes show up after that run of ``tail`` (chunks
        swapped: REORDER). A second fault after the run does not change the first one's.
        """
        expected = self.byte_at(start, offset)
        got = tail[0]
        found = self._locate(start, bytes(tail[:NEEDLE]), max(0, offset - reach),
                             min(sent, offset + reach))
        if found is None:
            return Diagnosis(DataFault.CORRUPT, offset, expected, got)
        if found > offset and not self._skipped_bytes_come_later(start, offset, found, tail, sent):
            return Diagnosis(DataFault.LOSS, offset, expected, got, found - offset, found)
        return Diagnosis(DataFault.REORDER, offset, expected, got, None, found)

    def _skipped_bytes_come_later(self, start: int, offset: int, found: int,
                                  tail: bytes | bytearray | memoryview, sent: int) -> bool:
        """Whether, after ``tail``'s run of stream bytes from ``found``, the bytes it
        skipped (stream ``offset`` up to ``found``) are what comes next."""
        run = len(tail)
        end = self.find_mismatch(start, found, tail)
        if end is not None:
            run = end.offset - found
        if found + run > sent:
            return True  # "resumed" past what was sent: not a plain loss
        later = bytes(tail[run : run + NEEDLE])
        hit = self._locate(start, later, offset, min(sent, found + len(later)))
        return hit is not None and hit < found

    def _locate(self, start: int, needle: bytes, lo: int, hi: int) -> int | None:
        """The first stream offset in [lo, hi - len(needle)] that ``needle`` was sent at,
        or None (also for needles too short to place)."""
        if len(needle) < MIN_NEEDLE or hi - lo < len(needle):
            return None
        at = self.expected(start, lo, hi - lo).find(needle)
        return lo + at if at >= 0 else None


@lru_cache(maxsize=4)
def pattern_for(seed: int) -> Pattern:
    """The shared default-size pattern for ``seed`` (built once; ~1 MiB)."""
    return Pattern(seed)
