"""Typed inputs and outputs of a load run: :class:`LoadSpec` in, :class:`LoadResult` out."""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from enum import StrEnum
from typing import Any

from lab.errors import LabFailure


class LoadConfigError(LabFailure):
    """A load run was asked for something impossible (bad target, negative duration...)."""


class Mode(StrEnum):
    """What each connection does."""

    STREAM = "stream"
    """Send a verifiable byte stream and read it back, continuously."""
    CONNECT = "connect"
    """Connect, send a message, read the echo, close; repeat (connection rate)."""
    PING = "ping"
    """One message in flight per connection; measure the round-trip latency."""


class ErrorClass(StrEnum):
    """Why a connection failed. Every failed connection gets exactly one."""

    REFUSED = "refused"
    """The connect was actively refused (nothing listening, RST to SYN)."""
    RESET = "reset"
    """The peer reset (or the host aborted) an established connection."""
    TIMEOUT = "timeout"
    """A connect, or the echo of outstanding bytes, did not finish in time (a stall)."""
    SHORT_ECHO = "short-echo"
    """The peer closed cleanly before echoing every byte it was sent."""
    MISMATCH = "mismatch"
    """The echoed data differs from what was sent -- any data error. ``ConnError.fault``
    says how: :class:`DataFault` loss, reorder or corrupt."""
    OTHER = "os-error"
    """Any other socket error (unreachable, no such address...); detail names it."""


class DataFault(StrEnum):
    """How echoed data differs from what was sent (a :attr:`ErrorClass.MISMATCH`)."""

    LOSS = "loss"
    """Bytes are missing: what came back is the stream with ``lost`` bytes cut out at
    ``offset``."""
    REORDER = "reorder"
    """What came back at ``offset`` is the stream's data from another offset
    (``found_at``): chunks swapped, or data duplicated."""
    CORRUPT = "corrupt"
    """Bytes changed: found nowhere near in the stream (flipped or garbage)."""


@dataclass(frozen=True)
class Target:
    """One echo endpoint (one per test NIC), optionally pinned to a source address."""

    host: str
    port: int
    source: str | None = None
    """Local address to bind before connecting (None: the kernel picks)."""

    def __post_init__(self) -> None:
        if not self.host:
            raise LoadConfigError("target host is empty")
        if not 0 < self.port < 65536:
            raise LoadConfigError(f"target port {self.port} is out of range 1-65535")

    def __str__(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{host}:{self.port}"


@dataclass(frozen=True)
class LoadSpec:
    """What to run. ``connections`` is per target; every field has a usable default."""

    targets: tuple[Target, ...]
    mode: Mode = Mode.STREAM
    connections: int = 8
    """Concurrent connections per target."""
    duration: float | None = 3.0
    """Seconds of load; None with ``bytes_per_connection`` runs until the bytes are echoed."""
    bytes_per_connection: int | None = None
    """Stream mode: send exactly this many bytes per connection, then stop."""
    message_size: int = 64
    """Ping/connect modes: bytes per request."""
    window: int = 1 << 18
    """Stream mode: most bytes in flight (sent, not yet echoed) per connection. 256 KiB
    measured fastest on loopback (the pattern and buffers stay in cache); 1 MiB+ is slower."""
    seed: int = 1
    """Seed of the verifiable pattern."""
    connect_timeout: float = 3.0
    stall_timeout: float = 5.0
    """A connection with bytes outstanding and no echo progress for this long is a TIMEOUT."""
    reconnect: bool = False
    """Stream/ping: replace a connection that died (after a short back-off) instead of
    leaving its slot empty -- for churn runs where a NIC comes back."""
    progress: bool | None = None
    """Progress line on stderr; None: only when stderr is a TTY and the run is > 2 s."""
    use_uvloop: bool = True
    """Use uvloop when installed (the engine also runs on the stock asyncio loop)."""

    def __post_init__(self) -> None:
        if not self.targets:
            raise LoadConfigError("no target given", hint="pass at least one HOST:PORT")
        if self.connections < 1:
            raise LoadConfigError(f"connections must be >= 1, not {self.connections}")
        if self.duration is not None and not (0 < self.duration < math.inf):
            raise LoadConfigError(f"duration must be a positive number of seconds: {self.duration}")
        if self.bytes_per_connection is not None:
            if self.bytes_per_connection < 1:
                raise LoadConfigError("bytes per connection must be >= 1")
            if self.mode is not Mode.STREAM:
                raise LoadConfigError("a byte count applies to stream mode only")
        if self.duration is None and self.bytes_per_connection is None:
            raise LoadConfigError("give a duration or (stream mode) a byte count")
        if not 1 <= self.message_size <= 1 << 18:
            raise LoadConfigError(f"message size must be 1..262144 bytes, not {self.message_size}")
        if self.window < 1:
            raise LoadConfigError("window must be >= 1 byte")
        for name in ("connect_timeout", "stall_timeout"):
            if not getattr(self, name) > 0:
                raise LoadConfigError(f"{name} must be > 0")


@dataclass(frozen=True)
class ConnError:
    """One failed connection: which, where, when, why, and for a mismatch, exactly what."""

    conn: int
    """Connection slot number (0-based, across all targets)."""
    attempt: int
    """Which connection of that slot (0 = first; > 0 after reconnects or in connect mode)."""
    target: str
    source: str | None
    time: float
    """Seconds since the run started."""
    cls: ErrorClass
    detail: str
    offset: int | None = None
    """Stream offset of the bad/missing byte (mismatch, short echo, stall)."""
    expected: int | None = None
    got: int | None = None
    fault: DataFault | None = None
    """Mismatch only: loss, reorder or corrupt."""
    lost: int | None = None
    """Loss only: how many bytes are missing at ``offset``."""
    found_at: int | None = None
    """Loss/reorder: the stream offset the bytes received at ``offset`` were sent at."""

    @property
    def data_error(self) -> bool:
        """True for any data error (loss, reorder, corrupt): the echo was not intact."""
        return self.cls is ErrorClass.MISMATCH

    def describe(self) -> str:
        where = f"conn {self.conn}" + (f".{self.attempt}" if self.attempt else "")
        label = self.fault or self.cls
        text = f"{self.time:7.3f}s {label:<10} {self.target} {where}: {self.detail}"
        if self.fault is not None:
            return text  # the diagnosis's detail names offsets and bytes itself
        if self.expected is not None and self.got is not None:
            text += f" (offset {self.offset}, expected 0x{self.expected:02x}, got 0x{self.got:02x})"
        elif self.offset is not None:
            text += f" (at offset {self.offset})"
        return text


@dataclass(frozen=True)
class ConnStats:
    """Per connection slot counters (a slot holds one connection, or a series of them
    in connect mode or with reconnect)."""

    conn: int
    target: str
    source: str | None
    connects: int
    """Connections established by this slot."""
    sent: int
    received: int
    """Bytes echoed back and verified."""
    ops: int
    """Completed round trips (ping) or connect-send-receive-close cycles (connect)."""
    errors: int


@dataclass(frozen=True)
class Interval:
    """One timeline bucket (100 ms; the last one may be shorter)."""

    start: float
    end: float
    bytes: int
    """Bytes echoed back and verified in the bucket (all targets)."""
    per_target: tuple[int, ...]
    """Same, per target, in ``LoadResult.targets`` order."""
    ops: int
    errors: int

    @property
    def throughput(self) -> float:
        span = self.end - self.start
        return self.bytes / span if span > 0 else 0.0


@dataclass(frozen=True)
class Latency:
    """Round-trip latency percentiles in microseconds, from an HDR histogram."""

    count: int
    p50: float
    p90: float
    p99: float
    p999: float
    max: float
    mean: float


@dataclass(frozen=True)
class TargetSummary:
    """What happened at one target: totals and, if it was affected, when."""

    target: str
    connections: int
    bytes: int
    ops: int
    errors: Mapping[str, int] = field(default_factory=dict)
    first_error: float | None = None
    last_error: float | None = None

    @property
    def affected(self) -> bool:
        return bool(self.errors)


@dataclass(frozen=True)
class LoadResult:
    """Everything a run measured. ``ok`` is the pass verdict; nothing is averaged away."""

    mode: Mode
    duration: float
    """Seconds from start to the last connection closing."""
    load_seconds: float
    """Seconds of offered load (the duration, or until the byte count was sent)."""
    loop: str
    targets: tuple[TargetSummary, ...]
    connections: tuple[ConnStats, ...]
    errors: tuple[ConnError, ...]
    timeline: tuple[Interval, ...]
    latency: Latency | None = None

    @property
    def ok(self) -> bool:
        """True only when every byte came back intact and no connection failed."""
        return not self.errors and self.ops_or_bytes > 0

    @property
    def bytes_echoed(self) -> int:
        return sum(c.received for c in self.connections)

    @property
    def bytes_sent(self) -> int:
        return sum(c.sent for c in self.connections)

    @property
    def ops(self) -> int:
        return sum(c.ops for c in self.connections)

    @property
    def ops_or_bytes(self) -> int:
        return self.ops if self.mode is not Mode.STREAM else self.bytes_echoed

    @property
    def throughput(self) -> float:
        """Echoed bytes per second of load."""
        return self.bytes_echoed / self.load_seconds if self.load_seconds > 0 else 0.0

    @property
    def ops_per_second(self) -> float:
        return self.ops / self.load_seconds if self.load_seconds > 0 else 0.0

    @property
    def error_counts(self) -> dict[str, int]:
        counts: dict[str, int] = {}
        for err in self.errors:
            counts[err.cls.value] = counts.get(err.cls.value, 0) + 1
        return counts

    @property
    def affected_targets(self) -> tuple[TargetSummary, ...]:
        return tuple(t for t in self.targets if t.affected)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict (enums as strings, derived figures included)."""
        data = asdict(self)
        data.update(
            ok=self.ok,
            bytes_echoed=self.bytes_echoed,
            bytes_sent=self.bytes_sent,
            ops=self.ops,
            throughput=self.throughput,
            ops_per_second=self.ops_per_second,
            error_counts=self.error_counts,
            affected_targets=[t.target for t in self.affected_targets],
        )
        return data
