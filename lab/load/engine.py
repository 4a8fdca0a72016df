"""The load engine: runs a :class:`LoadSpec` and returns a :class:`LoadResult`.

One asyncio task per connection slot ("lane"), one ticker that cuts the 100 ms
timeline, watches for stalls and draws progress. Connection failures are results
(classified, timed, attributed to their target), never exceptions; the only
exception is :class:`DeadlineExceeded` if the engine itself fails to finish.
"""

from __future__ import annotations

import asyncio
import bisect
import gc
import sys
from collections.abc import Callable
from dataclasses import dataclass, field

from lab.errors import DeadlineExceeded
from lab.load.conns import ConnectConn, EchoConn, PingConn, StreamConn, classify, describe_exc
from lab.load.histogram import LatencyHistogram
from lab.load.pattern import MAX_CHUNK, Diagnosis, Pattern, pattern_for
from lab.load.progress import Progress
from lab.load.result import (
    ConnError,
    ConnStats,
    ErrorClass,
    Interval,
    LoadResult,
    LoadSpec,
    Mode,
    Target,
    TargetSummary,
)

#: Width of one timeline bucket, seconds.
TICK = 0.1
#: Pause before a slot reconnects (reconnect / connect mode after a failure).
RECONNECT_BACKOFF = 0.1
#: Bytes of the shared receive buffer: larger than the default window, so a read that
#: takes everything in flight is short of the buffer and uvloop (libuv) does not issue
#: a second read just to get EAGAIN.
RECV_BUFFER = 2 * MAX_CHUNK

_CONN_TYPES: dict[Mode, type[EchoConn]] = {
    Mode.STREAM: StreamConn,
    Mode.PING: PingConn,
    Mode.CONNECT: ConnectConn,
}


@dataclass
class Lane:
    """One connection slot and its cumulative counters."""

    conn: int
    target: Target
    target_index: int
    connects: int = 0
    sent: int = 0
    received: int = 0
    ops: int = 0
    errors: int = 0
    live: EchoConn | None = None


@dataclass
class Run:
    """State shared by the lanes and the ticker of one run."""

    spec: LoadSpec
    pattern: Pattern
    loop: asyncio.AbstractEventLoop
    t0: float
    lanes: list[Lane] = field(default_factory=list)
    errors: list[ConnError] = field(default_factory=list)
    histogram: LatencyHistogram = field(default_factory=LatencyHistogram)
    stopping: bool = False
    stopped_at: float | None = None
    rbuf: memoryview = field(default_factory=lambda: memoryview(bytearray(RECV_BUFFER)))
    """The receive buffer of every connection (each read is checked before the next)."""

    def now(self) -> float:
        return self.loop.time() - self.t0

    def fail(
        self,
        lane: Lane,
        attempt: int,
        cls: ErrorClass,
        detail: str,
        offset: int | None = None,
        expected: int | None = None,
        got: int | None = None,
        diagnosis: Diagnosis | None = None,
    ) -> None:
        lane.errors += 1
        self.errors.append(
            ConnError(
                conn=lane.conn,
                attempt=attempt,
                target=str(lane.target),
                source=lane.target.source,
                time=self.now(),
                cls=cls,
                detail=detail,
                offset=offset,
                expected=expected,
                got=got,
                fault=diagnosis.fault if diagnosis else None,
                lost=diagnosis.lost if diagnosis else None,
                found_at=diagnosis.found_at if diagnosis else None,
            )
        )

    def stop(self) -> None:
        if self.stopping:
            return
        self.stopping = True
        self.stopped_at = self.now()
        for lane in self.lanes:
            if lane.live is not None:
                lane.live.stop()


async def _connect(run: Run, lane: Lane, attempt: int) -> EchoConn | None:
    conn = _CONN_TYPES[run.spec.mode](run, lane, attempt)
    target = lane.target
    local = (target.source, 0) if target.source else None
    try:
        async with asyncio.timeout(run.spec.connect_timeout):  # no extra task, unlike wait_for
            await run.loop.create_connection(
                lambda: conn, target.host, target.port, local_addr=local
            )
    except TimeoutError:
        what = f"connect timed out after {run.spec.connect_timeout:g}s"
        run.fail(lane, attempt, ErrorClass.TIMEOUT, what)
        return None
    except OSError as exc:
        run.fail(lane, attempt, classify(exc), "connect failed: " + describe_exc(exc))
        return None
    lane.connects += 1
    return conn


async def _lane_main(run: Run, lane: Lane) -> None:
    attempt = 0
    while not run.stopping:
        conn = await _connect(run, lane, attempt)
        attempt += 1
        if conn is not None:
            lane.live = conn
            if run.stopping:
                conn.stop()
            try:
                await conn.done
            finally:
                lane.live = None
            if conn.ok and run.spec.mode is not Mode.CONNECT:
                return
        if conn is not None and conn.ok:
            continue
        if run.spec.mode is not Mode.CONNECT and not run.spec.reconnect:
            return
        await asyncio.sleep(RECONNECT_BACKOFF)


class _Ticker:
    """Cuts the timeline, runs the stall watchdog, draws progress."""

    def __init__(self, run: Run, targets: int, progress: Progress | None) -> None:
        self.run = run
        self.progress = progress
        self.timeline: list[Interval] = []
        self._last_t = 0.0
        self._last_bytes = [0] * targets
        self._last_ops = 0

    def cut(self) -> None:
        run = self.run
        now = run.now()
        per_target = [0] * len(self._last_bytes)
        ops = 0
        for lane in run.lanes:
            per_target[lane.target_index] += lane.received
            ops += lane.ops
        delta = tuple(b - a for a, b in zip(self._last_bytes, per_target, strict=True))
        self.timeline.append(
            Interval(
                start=self._last_t,
                end=now,
                bytes=sum(delta),
                per_target=delta,
                ops=ops - self._last_ops,
                errors=0,
            )
        )
        self._last_t, self._last_bytes, self._last_ops = now, per_target, ops
        if self.progress is not None:
            self.progress.update(now, sum(per_target), ops, len(run.errors))

    def watchdog(self) -> None:
        run = self.run
        limit = run.spec.stall_timeout
        mono = run.loop.time()
        for lane in run.lanes:
            conn = lane.live
            if conn is None:
                continue
            if conn.received != conn.seen_received or not conn.busy():
                conn.seen_received, conn.seen_at = conn.received, mono
            elif mono - conn.seen_at >= limit:
                what = "close" if conn.received == conn.sent else "echo"
                conn.finish(
                    ErrorClass.TIMEOUT,
                    f"no {what} from peer for {limit:g}s "
                    f"({conn.sent - conn.received} bytes outstanding)",
                    offset=conn.received,
                )

    async def run_until(self, finished: asyncio.Future[list[None]]) -> None:
        k = 0
        loop = self.run.loop
        while not finished.done():
            k += 1
            delay = self.run.t0 + k * TICK - loop.time()
            if delay > 0:
                await asyncio.wait([finished], timeout=delay)
            if finished.done():
                break
            self.cut()
            self.watchdog()
        self.cut()


def _deadline(spec: LoadSpec) -> float | None:
    if spec.duration is None:
        return None  # byte-count runs: the stall watchdog bounds every connection
    return spec.duration + spec.connect_timeout + 2 * spec.stall_timeout + 10.0


async def run_load_async(spec: LoadSpec) -> LoadResult:
    """Run ``spec`` on the running event loop and return what was measured."""
    loop = asyncio.get_running_loop()
    run = Run(spec=spec, pattern=pattern_for(spec.seed), loop=loop, t0=loop.time())
    for index, target in enumerate(spec.targets):
        for _ in range(spec.connections):
            run.lanes.append(Lane(conn=len(run.lanes), target=target, target_index=index))
    progress = Progress.auto(spec)
    ticker = _Ticker(run, len(spec.targets), progress)
    lanes = asyncio.gather(*(_lane_main(run, lane) for lane in run.lanes))
    stopper = loop.call_later(spec.duration, run.stop) if spec.duration is not None else None
    deadline = _deadline(spec)
    try:
        async with asyncio.timeout(deadline):
            await asyncio.gather(ticker.run_until(lanes), lanes)
    except TimeoutError:
        for lane in run.lanes:
            if lane.live is not None and lane.live.transport is not None:
                lane.live.transport.abort()
        lanes.cancel()
        what = f"the load run's {len(run.lanes)} connections to finish"
        raise DeadlineExceeded(what, deadline or 0) from None
    finally:
        if stopper is not None:
            stopper.cancel()
        if progress is not None:
            progress.close()
    return _result(run, ticker.timeline)


def _result(run: Run, timeline: list[Interval]) -> LoadResult:
    spec = run.spec
    duration = timeline[-1].end if timeline else run.now()
    timeline = _with_errors(timeline, run.errors)
    return LoadResult(
        mode=spec.mode,
        duration=duration,
        load_seconds=run.stopped_at if run.stopped_at is not None else duration,
        loop=type(run.loop).__module__.split(".")[0],
        targets=tuple(_target_summary(i, t, run) for i, t in enumerate(spec.targets)),
        connections=tuple(
            ConnStats(
                conn=lane.conn,
                target=str(lane.target),
                source=lane.target.source,
                connects=lane.connects,
                sent=lane.sent,
                received=lane.received,
                ops=lane.ops,
                errors=lane.errors,
            )
            for lane in run.lanes
        ),
        errors=tuple(sorted(run.errors, key=lambda e: (e.time, e.conn))),
        timeline=tuple(timeline),
        latency=run.histogram.summary(),
    )


def _with_errors(timeline: list[Interval], errors: list[ConnError]) -> list[Interval]:
    """Count each error into the bucket its time falls in (late ones into the last)."""
    counts = [0] * len(timeline)
    starts = [iv.start for iv in timeline]
    for err in errors:
        if counts:
            counts[max(0, bisect.bisect_right(starts, err.time) - 1)] += 1
    return [
        Interval(iv.start, iv.end, iv.bytes, iv.per_target, iv.ops, count)
        for iv, count in zip(timeline, counts, strict=True)
    ]


def _target_summary(index: int, target: Target, run: Run) -> TargetSummary:
    lanes = [lane for lane in run.lanes if lane.target_index == index]
    errors = [e for e in run.errors if e.target == str(target)]
    counts: dict[str, int] = {}
    for e in errors:
        counts[e.cls.value] = counts.get(e.cls.value, 0) + 1
    return TargetSummary(
        target=str(target),
        connections=sum(lane.connects for lane in lanes),
        bytes=sum(lane.received for lane in lanes),
        ops=sum(lane.ops for lane in lanes),
        errors=counts,
        first_error=min((e.time for e in errors), default=None),
        last_error=max((e.time for e in errors), default=None),
    )


def _loop_factory(use_uvloop: bool) -> Callable[[], asyncio.AbstractEventLoop] | None:
    if not use_uvloop:
        return None
    try:
        import uvloop
    except ImportError:
        return None
    return uvloop.new_event_loop


def run_load(spec: LoadSpec) -> LoadResult:
    """Run ``spec`` on a fresh event loop (uvloop when installed and allowed).

    Call :func:`run_load_async` instead from code that already runs an event loop.
    """
    if sys.platform == "win32":  # pragma: no cover - the lab host is Linux
        raise NotImplementedError("the load engine runs on the Linux host")
    gc.freeze()  # the run's garbage is young: spare its collections the rest of the heap
    try:
        with asyncio.Runner(loop_factory=_loop_factory(spec.use_uvloop)) as runner:
            return runner.run(run_load_async(spec))
    finally:
        gc.unfreeze()
