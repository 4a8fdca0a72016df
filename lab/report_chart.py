"""Throughput chart geometry: a pure function from a load's buckets to SVG coordinates.

:func:`throughput_chart` computes everything a chart shows (the 100 ms throughput
steps of one target, tick marks, the lab's actions as vertical lines, shaded error
spans); the report's template turns the :class:`Chart` into inline SVG elements.
No I/O, no drawing library: the same input always gives the same chart.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

WIDTH = 760
HEIGHT = 210
LEFT, RIGHT, TOP, BOTTOM = 58, 12, 14, 30
#: Errors closer than this (seconds) are shaded as one span.
SPAN_GAP_S = 0.5
#: The width given to a span of a single error (one bucket).
BUCKET_S = 0.1


@dataclass(frozen=True)
class Tick:
    pos: float
    label: str


@dataclass(frozen=True)
class Marker:
    """A lab action: a vertical line at ``x`` with a short label and the full text."""

    x: float
    label: str
    title: str


@dataclass(frozen=True)
class Span:
    """A shaded error span from ``x`` over ``width`` pixels."""

    x: float
    width: float
    title: str


@dataclass(frozen=True)
class Action:
    """Something that happened at ``t`` on the chart's clock (a lab action, a journal event)."""

    t: float
    text: str


@dataclass(frozen=True)
class Chart:
    title: str
    width: int
    height: int
    left: int
    top: int
    right: int
    bottom: int
    points: str
    """The throughput steps as an SVG ``points`` list."""
    xticks: tuple[Tick, ...]
    yticks: tuple[Tick, ...]
    markers: tuple[Marker, ...]
    spans: tuple[Span, ...]
    journal: tuple[Marker, ...]
    """Driver journal events (per-adapter ones), ticks on the top edge."""
    peak_mbps: float


def nice_step(span: float, ticks: int) -> float:
    """A 1-2-5 step that cuts ``span`` into about ``ticks`` parts."""
    if span <= 0:
        return 1.0
    raw = span / ticks
    power = 10.0 ** math.floor(math.log10(raw))
    return next(m * power for m in (1.0, 2.0, 5.0, 10.0) if m * power >= raw)


def error_spans(times: Sequence[float], gap: float = SPAN_GAP_S) -> list[tuple[float, float]]:
    """Errors grouped into (first, last + one bucket) spans, ``gap`` seconds apart at most."""
    spans: list[tuple[float, float]] = []
    for t in sorted(times):
        if spans and t - spans[-1][1] <= gap:
            spans[-1] = (spans[-1][0], t + BUCKET_S)
        else:
            spans.append((t, t + BUCKET_S))
    return spans


@dataclass(frozen=True)
class _Scale:
    x_min: float
    x_max: float
    y_max: float

    def inside(self, t: float) -> bool:
        return self.x_min <= t <= self.x_max

    def x(self, t: float) -> float:
        t = min(max(t, self.x_min), self.x_max)
        return LEFT + (WIDTH - LEFT - RIGHT) * (t - self.x_min) / (self.x_max - self.x_min)

    def y(self, v: float) -> float:
        return HEIGHT - BOTTOM - (HEIGHT - TOP - BOTTOM) * v / self.y_max


def _steps(scale: _Scale, starts: Sequence[float], ends: Sequence[float],
           mbps: Sequence[float]) -> str:
    points: list[str] = []
    for start, end, value in zip(starts, ends, mbps, strict=True):
        y = scale.y(value)
        points += [f"{scale.x(start):.1f},{y:.1f}", f"{scale.x(end):.1f},{y:.1f}"]
    return " ".join(points)


def _ticks(scale: _Scale) -> tuple[tuple[Tick, ...], tuple[Tick, ...]]:
    xstep, ystep = nice_step(scale.x_max - scale.x_min, 8), nice_step(scale.y_max, 4)
    first = math.ceil(scale.x_min / xstep - 1e-9)
    last = math.floor(scale.x_max / xstep + 1e-9)
    xs = tuple(Tick(scale.x(i * xstep), f"{i * xstep:.6g}s") for i in range(first, last + 1))
    ys = tuple(Tick(scale.y(i * ystep), f"{i * ystep:g}")
               for i in range(int(scale.y_max / ystep + 1e-9) + 1))
    return xs, ys


def _markers(scale: _Scale, actions: Sequence[Action]) -> tuple[Marker, ...]:
    return tuple(Marker(scale.x(a.t), " ".join(a.text.split()[:2]), f"{a.t:.3f}s {a.text}")
                 for a in actions if scale.inside(a.t))


def _spans(scale: _Scale, error_times: Sequence[float]) -> tuple[Span, ...]:
    out = []
    for first, last in error_spans(error_times):
        x0, x1 = scale.x(first), scale.x(last)
        count = sum(first <= t <= last for t in error_times)
        out.append(Span(x0, max(x1 - x0, 1.0),
                        f"{count} errors from {first:.2f}s to {last:.2f}s"))
    return tuple(out)


def throughput_chart(title: str, starts: Sequence[float], ends: Sequence[float],
                     per_bucket: Sequence[int], actions: Sequence[Action] = (),
                     error_times: Sequence[float] = (), offset: float = 0.0,
                     journal: Sequence[Action] = ()) -> Chart:
    """The chart of one target: MB/s per bucket, ``actions`` as vertical lines, errors
    shaded, ``journal`` events as ticks on the top edge.

    Buckets and ``error_times`` count seconds since the load started; the chart's
    clock is that plus ``offset`` (the load's start on the lease clock, which
    ``actions`` and ``journal`` use).
    """
    mbps = [b / (e - s) / 1e6 if e > s else 0.0
            for s, e, b in zip(starts, ends, per_bucket, strict=True)]
    peak = max(mbps, default=0.0)
    scale = _Scale(x_min=offset, x_max=offset + (max(ends, default=0.0) or 1.0),
                   y_max=peak * 1.1 if peak > 0 else 1.0)
    xticks, yticks = _ticks(scale)
    return Chart(title=title, width=WIDTH, height=HEIGHT, left=LEFT, top=TOP,
                 right=WIDTH - RIGHT, bottom=HEIGHT - BOTTOM,
                 points=_steps(scale, [s + offset for s in starts], [e + offset for e in ends],
                               mbps),
                 xticks=xticks, yticks=yticks, markers=_markers(scale, actions),
                 spans=_spans(scale, [t + offset for t in error_times]),
                 journal=_markers(scale, journal), peak_mbps=peak)
