"""The connection protocols of the three modes, as asyncio BufferedProtocols.

Received bytes land in a per-connection preallocated buffer and are checked
against the pattern in place (one memcmp per read); sends are zero-copy
memoryview slices of the pattern. Each connection records at most one error,
through :meth:`EchoConn.finish`, and then resolves ``done``.
"""

from __future__ import annotations

import asyncio
import errno
import socket
import time
from typing import TYPE_CHECKING, cast

from lab.load.pattern import MAX_CHUNK
from lab.load.result import ErrorClass

if TYPE_CHECKING:
    from lab.load.engine import Lane, Run


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
        self._buf = bytearray(MAX_CHUNK)
        self._view = memoryview(self._buf)
        # Watchdog state, maintained by the run's ticker.
        self.seen_received = 0
        self.seen_at = run.loop.time()

    # -- asyncio callbacks -------------------------------------------------------------
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports implement asyncio.Transport without subclassing it.
        self.transport = cast(asyncio.Transport, transport)
        sock = transport.get_extra_info("socket")
        if sock is not None:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.on_start()

    def get_buffer(self, sizehint: int) -> memoryview:
        return self._view

    def buffer_updated(self, nbytes: int) -> None:
        if self.finished:
            return
        chunk = self._view[:nbytes]
        if self.received + nbytes > self.sent:
            self.finish(
                ErrorClass.MISMATCH,
                f"echoed more bytes than sent ({self.received + nbytes} > {self.sent})",
                offset=self.sent,
            )
            return
        if not self.pattern.data.startswith(
            chunk, (self.start + self.received) % self.pattern.period
        ):
            self._report_mismatch(chunk)
            return
        self.received += nbytes
        self.lane.received += nbytes
        self.on_progress()

    def eof_received(self) -> bool:
        if not self.finished:
            self.on_eof()
        return False

    def connection_lost(self, exc: Exception | None) -> None:
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
        if self.received == self.sent:
            self.finish()

    def busy(self) -> bool:
        """True while the connection waits for the peer (for the stall watchdog)."""
        return not self.finished and self.received < self.sent

    # -- helpers -----------------------------------------------------------------------
    def _report_mismatch(self, chunk: memoryview) -> None:
        bad = self.pattern.find_mismatch(self.start, self.received, chunk)
        if bad is None:  # pragma: no cover - startswith and the byte search disagree
            bad_offset, want, got = self.received, None, None
        else:
            bad_offset, want, got = bad.offset, bad.expected, bad.got
        # Bytes before the bad one were good: count them.
        good = bad_offset - self.received
        self.received += good
        self.lane.received += good
        self.finish(
            ErrorClass.MISMATCH, "echoed byte differs", offset=bad_offset, expected=want, got=got
        )

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
    ) -> None:
        """End this connection: record ``cls`` (None: success), close, resolve ``done``."""
        if self.finished:
            return
        self.finished = True
        self.ok = cls is None
        if cls is not None:
            self.run.fail(self.lane, self.attempt, cls, detail, offset, expected, got)
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

    def busy(self) -> bool:
        return not self.finished and (self.received < self.sent or self.closing)
