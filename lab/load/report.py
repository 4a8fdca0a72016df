"""Human-readable summary and JSON of a :class:`LoadResult`."""

from __future__ import annotations

import json

from lab.load.progress import human_bytes
from lab.load.result import LoadResult, Mode

#: Error lines shown in a summary before "... and N more" (the counts are always complete).
MAX_ERROR_LINES = 20


def summary(result: LoadResult) -> str:
    """A few lines: verdict, rates, latency, per-target status and every error class."""
    verdict = "PASS" if result.ok else "FAIL"
    lines = [
        f"lab load: {verdict}  mode {result.mode}  {result.duration:.2f}s  loop {result.loop}  "
        f"{len(result.connections)} connection slots",
        f"  echoed {human_bytes(result.bytes_echoed)} of {human_bytes(result.bytes_sent)} sent"
        f"  {human_bytes(result.throughput)}/s",
    ]
    if result.mode is not Mode.STREAM:
        unit = "round trips" if result.mode is Mode.PING else "connections"
        lines.append(f"  {result.ops:,} {unit}  {result.ops_per_second:,.0f}/s")
    if result.latency is not None:
        lat = result.latency
        lines.append(
            f"  latency us: p50 {lat.p50:.1f}  p90 {lat.p90:.1f}  p99 {lat.p99:.1f}  "
            f"p99.9 {lat.p999:.1f}  max {lat.max:.1f}  (n={lat.count:,})"
        )
    for tgt in result.targets:
        state = "ok" if not tgt.affected else "AFFECTED " + ", ".join(
            f"{cls} x{n}" for cls, n in sorted(tgt.errors.items())
        )
        when = ""
        if tgt.first_error is not None and tgt.last_error is not None:
            when = f" at {tgt.first_error:.2f}s..{tgt.last_error:.2f}s"
        lines.append(
            f"  target {tgt.target}: {tgt.connections} connects, "
            f"{human_bytes(tgt.bytes)}, {tgt.ops:,} ops: {state}{when}"
        )
    if result.errors:
        counts = ", ".join(f"{cls} {n}" for cls, n in sorted(result.error_counts.items()))
        lines.append(f"  errors: {len(result.errors)} ({counts})")
        lines += ["    " + e.describe() for e in result.errors[:MAX_ERROR_LINES]]
        if len(result.errors) > MAX_ERROR_LINES:
            lines.append(f"    ... and {len(result.errors) - MAX_ERROR_LINES} more (see --json)")
    elif not result.ok:
        lines.append("  no data was echoed")
    return "\n".join(lines)


def to_json(result: LoadResult) -> str:
    return json.dumps(result.to_dict(), indent=1, default=str)
