"""The latency histogram: batching the hot-path recording changes nothing it reports."""

from __future__ import annotations

import random

from hdrh.histogram import HdrHistogram  # type: ignore[import-untyped]

from lab.load.histogram import LatencyHistogram
from lab.load.result import Latency


def _direct(values: list[int]) -> Latency:
    """The summary of ``values`` recorded one by one into a plain HdrHistogram."""
    hdr = HdrHistogram(1, 60 * 1_000_000_000, 3)
    for v in values:
        hdr.record_value(min(max(v, 1), 60 * 1_000_000_000))

    def at(pct: float) -> float:
        return float(hdr.get_value_at_percentile(pct)) / 1000.0

    return Latency(count=hdr.get_total_count(), p50=at(50.0), p90=at(90.0), p99=at(99.0),
                   p999=at(99.9), max=hdr.get_max_value() / 1000.0,
                   mean=hdr.get_mean_value() / 1000.0)


def test_batched_recording_reports_what_recording_each_value_does() -> None:
    rng = random.Random(4)
    values = [int(rng.lognormvariate(11, 1.5)) for _ in range(20_000)]
    values += [0, 1, 2047, 2048, 2049, 4095, 4096, 123_456_789, 61 * 1_000_000_000]
    rng.shuffle(values)
    hist = LatencyHistogram()
    for v in values:
        hist.record_ns(v)
    assert hist.summary() == _direct(values)
    more = [rng.randrange(10_000, 10_000_000) for _ in range(500)]
    for v in more:  # recording goes on after a summary
        hist.record_ns(v)
    assert hist.summary() == _direct(values + more)


def test_nearby_values_stay_apart_where_the_histogram_can_tell_them() -> None:
    hist = LatencyHistogram()
    for v in (10_000, 10_008, 10_008):
        hist.record_ns(v)
    lat = hist.summary()
    assert lat is not None and lat.count == 3
    assert lat.p50 == 10.015 and lat.max == 10.015  # 8 ns buckets at 10 us: 10008..10015
    assert LatencyHistogram().summary() is None
