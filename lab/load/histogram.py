"""Latency histogram: a thin typed wrapper over HdrHistogram (the ``hdrhistogram`` package).

Values are recorded in nanoseconds (1 ns .. 60 s, 3 significant digits) and
reported in microseconds. Percentiles come from the histogram, never a sorted list.

Recording is on the engine's hot path (one value per ping or connect), and the pure
Python ``HdrHistogram.record_value`` costs microseconds. So :meth:`record_ns` only
rounds the value down to its histogram bucket (what HdrHistogram keeps of it anyway)
and counts it in a dict; the counts go into the histogram, each bucket with one
``record_value(value, count)``, when the summary is asked for. The result is the
same histogram as recording each value.
"""

from __future__ import annotations

from typing import Protocol, cast

from hdrh.histogram import HdrHistogram  # type: ignore[import-untyped]

from lab.load.result import Latency

_LOWEST_NS = 1
_HIGHEST_NS = 60 * 1_000_000_000
_DIGITS = 3
#: Values below 2**_SUB_BITS are exact in a 3-digit HdrHistogram with unit 1 ns; above,
#: each power-of-two range is split in 2**(_SUB_BITS - 1) buckets.
_SUB_BITS = 11


class _Hdr(Protocol):
    def record_value(self, value: int, count: int = 1) -> bool: ...
    def get_value_at_percentile(self, percentile: float) -> int: ...
    def get_max_value(self) -> int: ...
    def get_mean_value(self) -> float: ...
    def get_total_count(self) -> int: ...


class LatencyHistogram:
    """Round-trip times of one run."""

    def __init__(self) -> None:
        self._hdr = cast(_Hdr, HdrHistogram(_LOWEST_NS, _HIGHEST_NS, _DIGITS))
        self._pending: dict[int, int] = {}

    def record_ns(self, value: int) -> None:
        value = min(max(value, _LOWEST_NS), _HIGHEST_NS)
        shift = value.bit_length() - _SUB_BITS
        if shift > 0:
            value = value >> shift << shift  # the bucket's lowest value
        pending = self._pending
        pending[value] = pending.get(value, 0) + 1

    def _flush(self) -> None:
        for value, count in self._pending.items():
            self._hdr.record_value(value, count)
        self._pending.clear()

    @property
    def count(self) -> int:
        self._flush()
        return self._hdr.get_total_count()

    def summary(self) -> Latency | None:
        """Percentiles in microseconds, or None when nothing was recorded."""
        if self.count == 0:
            return None

        def at(pct: float) -> float:
            return self._hdr.get_value_at_percentile(pct) / 1000.0

        return Latency(
            count=self.count,
            p50=at(50.0),
            p90=at(90.0),
            p99=at(99.0),
            p999=at(99.9),
            max=self._hdr.get_max_value() / 1000.0,
            mean=self._hdr.get_mean_value() / 1000.0,
        )
