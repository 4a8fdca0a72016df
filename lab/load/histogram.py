"""Latency histogram: a thin typed wrapper over HdrHistogram (the ``hdrhistogram`` package).

Values are recorded in nanoseconds (1 ns .. 60 s, 3 significant digits) and
reported in microseconds. Percentiles come from the histogram, never a sorted list.
"""

from __future__ import annotations

from typing import Protocol, cast

from hdrh.histogram import HdrHistogram  # type: ignore[import-untyped]

from lab.load.result import Latency

_LOWEST_NS = 1
_HIGHEST_NS = 60 * 1_000_000_000
_DIGITS = 3


class _Hdr(Protocol):
    def record_value(self, value: int) -> bool: ...
    def get_value_at_percentile(self, percentile: float) -> int: ...
    def get_max_value(self) -> int: ...
    def get_mean_value(self) -> float: ...
    def get_total_count(self) -> int: ...


class LatencyHistogram:
    """Round-trip times of one run."""

    def __init__(self) -> None:
        self._hdr = cast(_Hdr, HdrHistogram(_LOWEST_NS, _HIGHEST_NS, _DIGITS))

    def record_ns(self, value: int) -> None:
        self._hdr.record_value(min(max(value, _LOWEST_NS), _HIGHEST_NS))

    @property
    def count(self) -> int:
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
