"""The connection protocols of the three modes, as asyncio BufferedProtocols.

Received bytes land in the run's one preallocated receive buffer (shared by all
connections: the loop fills it and calls ``buffer_updated`` before the next read, and
one buffer stays in the CPU cache where one per connection would not) and are
checked against the pattern in place (one memcmp per read); sends are zero-copy
memoryview slices of the pattern. Each connection records at most one error,
through :meth:`EchoConn.finish`, and then resolves ``done``.

When echoed bytes differ from the stream, the connection stops counting and keeps
up to ``DIAG_BYTES`` more bytes (until they stop coming for ``DIAG_QUIET`` s, at
most ``DIAG_MAX`` s, or the peer closes) so :meth:`Pattern.diagnose` can tell a
loss from a reorder from a corruption.
"""

from __future__ import annotations

import asyncio
import errno
import time
from typing import TYPE_CHECKING, cast

from lab.load.pattern import Diagnosis
from lab.load.result import ErrorClass

if TYPE_CHECKING:
    from lab.load.engine import Lane, Run

#: Bytes kept after the first difference to classify it (bounded lookahead).
DIAG_BYTES = 1 << 16
#: Classify once no more bytes came for this long...
DIAG_QUIET = 0.2
#: ...or this long after the difference at the latest.
DIAG_MAX = 1.0


def classify(exc: BaseException) -> ErrorClass:
    """Map a socket-level exception to its error class (by type and errno, never text)."""
    if isinstance(exc, ConnectionRefusedError):
        return ErrorClass.REFUSED
    if isinstance(exc, ConnectionResetError | ConnectionAbortedError | BrokenPipeError):
        return ErrorClass.RESET
    if isinstance(exc, TimeoutError) or (
        isinstance(exc, OSError) and exc.errno == errno.ETIMEDOUT
    ):
        return ErrorClass.TIMEOUT
    return ErrorClass.OTHER


def describe_exc(exc: BaseException) -> str:
    if isinstance(exc, OSError) and exc.strerror:
        return f"{type(exc).__name__}: {exc.strerror}"
    return type(exc).__name__ + (f": {exc}" if str(exc) else "")


class EchoConn(asyncio.BufferedProtocol):
    """One TCP connection to an echo target. Subclasses decide what and when to send."""

    def __init__(self, run: Run, lane: Lane, attempt: int) -> None:
        self.run = run
        self.lane = lane
        self.attempt = attempt
        self.pattern = run.pattern
        self.start = run.pattern.start_for(lane.conn * 1_000_003 + attempt)
        self.sent = 0
        self.received = 0
        self.ok = False
        self.finished = False
        self.stopping = False
        self.transport: asyncio.Transport | None = None
        self.done: asyncio.Future[None] = run.loop.create_future()
        self._view = run.rbuf
        # Mismatch diagnosis: bytes received from the first bad offset on.
        self._diag: bytearray | None = None
        self._diag_at = 0
        self._diag_end = 0.0
        self._diag_timer: asyncio.TimerHandle | None = None
        # Watchdog state, maintained by the run's ticker.
        self.seen_received = 0
        self.seen_at = run.loop.time()

    # -- asyncio callbacks -------------------------------------------------------------
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports implement asyncio.Transport without subclassing it. Both
        # loops set TCP_NODELAY on TCP transports themselves (asyncio since 3.6), so the
        # socket is not looked up here (in uvloop that wraps the fd: 4 syscalls a connect).
        self.transport = cast(asyncio.Transport, transport)
        self.on_start()

    def get_buffer(self, sizehint: int) -> memoryview:
        return self._view

    def buffer_updated(self, nbytes: int) -> None:
        if self.finished:
            return
        chunk = self._view[:nbytes]
        if self._diag is not None:
            self._collect(chunk)
            return
        if self.received + nbytes > self.sent or not self.pattern.matches(
            self.start, self.received, chunk
        ):
            self._begin_diagnosis(chunk)
            return
        self.received += nbytes
        self.lane.received += nbytes
        self.on_progress()

    def eof_received(self) -> bool:
        if self._diag is not None:
            self._end_diagnosis()
        elif not self.finished:
            self.on_eof()
        return False

    def connection_lost(self, exc: Exception | None) -> None:
        if self._diag is not None:
            self._end_diagnosis()
        if self.finished:
            return
        if exc is None:
            self.on_eof()
        else:
            self.finish(classify(exc), describe_exc(exc), offset=self.received)

    # -- mode hooks --------------------------------------------------------------------
    def on_start(self) -> None:
        raise NotImplementedError

    def on_progress(self) -> None:
        raise NotImplementedError

    def on_eof(self) -> None:
        self._short_echo()

    def stop(self) -> None:
        """The run is over: finish the exchange in flight, then close."""
        self.stopping = True
        if self.received == self.sent and self._diag is None:
            self.finish()

    def busy(self) -> bool:
        """True while the connection waits for the peer (for the stall watchdog; a
        mismatch diagnosis has its own deadline)."""
        return not self.finished and self._diag is None and self.waiting()

    def waiting(self) -> bool:
        """True while bytes (or a close) are due from the peer."""
        return self.received < self.sent

    # -- mismatch diagnosis ------------------------------------------------------------
    def _begin_diagnosis(self, chunk: memoryview) -> None:
        """Count the good prefix of ``chunk``, keep the rest from the first bad byte."""
        good = min(len(chunk), self.sent - self.received)
        bad = self.pattern.find_mismatch(self.start, self.received, chunk[:good])
        cut = bad.offset - self.received if bad is not None else good
        self.received += cut
        self.lane.received += cut
        self._diag = bytearray(chunk[cut : cut + DIAG_BYTES])
        self._diag_at = self.received
        self._diag_end = self.run.loop.time() + DIAG_MAX
        self._collect(chunk[:0])

    def _collect(self, chunk: memoryview) -> None:
        assert self._diag is not None
        self._diag += chunk[: DIAG_BYTES - len(self._diag)]
        if self._diag_timer is not None:
            self._diag_timer.cancel()
        if len(self._diag) >= min(DIAG_BYTES, self.sent - self._diag_at):
            self._end_diagnosis()  # a full lookahead, or all that was sent
            return
        loop = self.run.loop
        when = min(loop.time() + DIAG_QUIET, self._diag_end)
        self._diag_timer = loop.call_at(when, self._end_diagnosis)

    def _end_diagnosis(self) -> None:
        tail, self._diag = self._diag, None
        if self._diag_timer is not None:
            self._diag_timer.cancel()
            self._diag_timer = None
        if not tail or self.finished:
            return
        found = self.pattern.diagnose(self.start, self._diag_at, tail, self.sent)
        self._fail_data(found)

    def _fail_data(self, d: Diagnosis) -> None:
        self.finish(
            ErrorClass.MISMATCH, d.describe(), offset=d.offset, expected=d.expected,
            got=d.got, diagnosis=d,
        )

    # -- helpers -----------------------------------------------------------------------

    def _short_echo(self) -> None:
        self.finish(
            ErrorClass.SHORT_ECHO,
            f"peer closed after echoing {self.received} of {self.sent} bytes",
            offset=self.received,
        )

    def finish(
        self,
        cls: ErrorClass | None = None,
        detail: str = "",
        *,
        offset: int | None = None,
        expected: int | None = None,
        got: int | None = None,
        diagnosis: Diagnosis | None = None,
    ) -> None:
        """End this connection: record ``cls`` (None: success), close, resolve ``done``."""
        if self.finished:
            return
        self.finished = True
        self.ok = cls is None
        if cls is not None:
            self.run.fail(self.lane, self.attempt, cls, detail, offset, expected, got,
                          diagnosis)
        if self.transport is not None:
            if cls is None:
                self.transport.close()
            else:
                self.transport.abort()
        if not self.done.done():
            self.done.set_result(None)


class StreamConn(EchoConn):
    """Keeps up to ``window`` bytes in flight; every echoed byte is verified."""

    def __init__(self, run: Run, lane: Lane, attempt: int) -> None:
        super().__init__(run, lane, attempt)
        spec = run.spec
        self.window = spec.window
        self.limit = spec.bytes_per_connection
        self.min_write = max(1, min(spec.window // 4, 1 << 16))

    def on_start(self) -> None:
        self._pump()

    def on_progress(self) -> None:
        if self.received == self.sent and (self.stopping or self.sent == self.limit):
            self.finish()
        else:
            self._pump()

    def _pump(self) -> None:
        if self.stopping or self.transport is None:
            return
        room = self.window - (self.sent - self.received)
        last = False
        if self.limit is not None and self.sent + room >= self.limit:
            room = self.limit - self.sent
            last = True
        if room < self.min_write and not last:
            return
        write = self.transport.write
        while room > 0:
            piece = self.pattern.chunk(self.start, self.sent, room)
            write(piece)
            size = len(piece)
            self.sent += size
            self.lane.sent += size
            room -= size


class PingConn(EchoConn):
    """One message in flight; each round trip's time goes into the histogram."""

    def __init__(self, run: Run, lane: Lane, attempt: int) -> None:
        super().__init__(run, lane, attempt)
        self.size = run.spec.message_size
        self.sent_at = 0

    def on_start(self) -> None:
        self._send()

    def on_progress(self) -> None:
        if self.received < self.sent:
            return
        self.run.histogram.record_ns(time.perf_counter_ns() - self.sent_at)
        self.lane.ops += 1
        if self.stopping:
            self.finish()
        else:
            self._send()

    def _send(self) -> None:
        assert self.transport is not None
        piece = self.pattern.chunk(self.start, self.sent, self.size)
        self.sent_at = time.perf_counter_ns()
        self.transport.write(piece)
        self.sent += self.size
        self.lane.sent += self.size


class ConnectConn(EchoConn):
    """Connect, send one message, read the echo, half-close, wait for the peer's close."""

    def __init__(self, run: Run, lane: Lane, attempt: int) -> None:
        super().__init__(run, lane, attempt)
        self.size = run.spec.message_size
        self.began = time.perf_counter_ns()
        self.closing = False

    def on_start(self) -> None:
        assert self.transport is not None
        self.transport.write(self.pattern.chunk(self.start, 0, self.size))
        self.sent = self.size
        self.lane.sent += self.size

    def on_progress(self) -> None:
        if self.received == self.sent and not self.closing:
            self.run.histogram.record_ns(time.perf_counter_ns() - self.began)
            self.closing = True
            assert self.transport is not None
            if self.transport.can_write_eof():
                self.transport.write_eof()
            else:  # pragma: no cover - TCP transports can always half-close
                self.complete()

    def on_eof(self) -> None:
        if self.closing:
            self.complete()
        else:
            self._short_echo()

    def complete(self) -> None:
        self.lane.ops += 1
        self.finish()

    def stop(self) -> None:
        self.stopping = True  # a connect cycle always runs to its end

    def waiting(self) -> bool:
        return self.received < self.sent or self.closing
