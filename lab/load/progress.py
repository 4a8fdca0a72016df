"""A one-line progress display on stderr, only for interactive, longer runs."""

from __future__ import annotations

import sys
from typing import TextIO

from lab.load.result import LoadSpec, Mode

#: Runs shorter than this get no progress line.
MIN_SECONDS = 2.0
#: Seconds between redraws.
EVERY = 0.5


def human_bytes(n: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if abs(n) < 1024 or unit == "GiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.2f} {unit}"
        n /= 1024
    return f"{n:.2f} GiB"  # pragma: no cover


class Progress:
    """Redraws ``elapsed  rate  errors`` in place."""

    def __init__(self, spec: LoadSpec, stream: TextIO) -> None:
        self.spec = spec
        self.stream = stream
        self._drawn_at = 0.0
        self._last = (0.0, 0, 0)

    @classmethod
    def auto(cls, spec: LoadSpec, stream: TextIO | None = None) -> Progress | None:
        """A Progress if ``spec.progress`` asks for it, or (None) stderr is a TTY and the
        run is long enough; else None."""
        out = stream if stream is not None else sys.stderr
        if spec.progress is None:
            long_run = spec.duration is None or spec.duration > MIN_SECONDS
            wanted = long_run and out.isatty()
        else:
            wanted = spec.progress
        return cls(spec, out) if wanted else None

    def update(self, now: float, total_bytes: int, ops: int, errors: int) -> None:
        if now - self._drawn_at < EVERY:
            return
        t0, b0, o0 = self._last
        span = max(now - t0, 1e-9)
        if self.spec.mode is Mode.STREAM:
            rate = human_bytes((total_bytes - b0) / span) + "/s"
        else:
            rate = f"{(ops - o0) / span:,.0f} ops/s"
        of = f"/{self.spec.duration:g}s" if self.spec.duration else "s"
        self.stream.write(f"\r\x1b[Klab load: {now:5.1f}{of}  {rate}  errors {errors}")
        self.stream.flush()
        self._drawn_at = now
        self._last = (now, total_bytes, ops)

    def close(self) -> None:
        if self._drawn_at:
            self.stream.write("\r\x1b[K")
            self.stream.flush()
