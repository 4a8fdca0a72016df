"""Loss, reorder and corruption are told apart: a real echo server on loopback drops a
byte, swaps two chunks, echoes a chunk twice or flips a byte, and the real engine names
the fault, its offset and its size; a healthy but slow server gives no error at all."""

from __future__ import annotations

import contextlib
import socket
import threading
from collections.abc import Callable, Iterator

import pytest
from load_echo_servers import Fault, FaultyEchoServer

from lab.load import ConnError, DataFault, ErrorClass, LoadResult, LoadSpec, Mode, Target, run_load
from lab.load.pattern import MAX_CHUNK, Pattern, pattern_for

AT = 300_000  # beyond the first window (256 KiB) and the first read
SPAN = 4096


def run_against(faulty: list[FaultyEchoServer], fault: Fault, **kw: object) -> LoadResult:
    server = FaultyEchoServer(fault).start()
    faulty.append(server)
    spec_kw: dict[str, object] = {"connections": 1, "duration": 0.6, "stall_timeout": 0.5}
    spec_kw.update(kw)
    spec = LoadSpec(targets=(Target("127.0.0.1", server.port),), **spec_kw)  # type: ignore[arg-type]
    return run_load(spec)


def only_data_error(result: LoadResult) -> ConnError:
    assert not result.ok
    assert len(result.errors) == 1, result.errors
    err = result.errors[0]
    assert err.cls is ErrorClass.MISMATCH and err.data_error  # "any data error" still selects it
    return err


@pytest.mark.parametrize("use_uvloop", [True, False], ids=["uvloop", "asyncio"])
def test_a_dropped_byte_is_a_loss_of_one_byte_at_its_offset(
    faulty: list[FaultyEchoServer], use_uvloop: bool
) -> None:
    result = run_against(faulty, Fault("drop", AT), use_uvloop=use_uvloop)
    err = only_data_error(result)
    assert (err.fault, err.offset, err.lost, err.found_at) == (DataFault.LOSS, AT, 1, AT + 1)
    assert "1 byte lost at offset 300000" in err.describe()
    assert result.connections[0].received == AT  # every byte before it was good


def test_two_swapped_chunks_are_a_reorder(faulty: list[FaultyEchoServer]) -> None:
    err = only_data_error(run_against(faulty, Fault("swap", AT, span=SPAN)))
    assert (err.fault, err.offset, err.found_at) == (DataFault.REORDER, AT, AT + SPAN)
    assert err.lost is None
    assert f"data sent at offset {AT + SPAN} came back at offset {AT}" in err.describe()


def test_a_chunk_echoed_twice_is_a_reorder_from_behind(faulty: list[FaultyEchoServer]) -> None:
    err = only_data_error(run_against(faulty, Fault("dup", AT, span=SPAN)))
    assert (err.fault, err.offset, err.found_at) == (DataFault.REORDER, AT + SPAN, AT)
    assert "duplicated" in err.describe()


def test_a_flipped_byte_is_corrupt_with_expected_and_got(faulty: list[FaultyEchoServer]) -> None:
    err = only_data_error(run_against(faulty, Fault("flip", AT)))
    pattern = pattern_for(1)
    want = pattern.byte_at(pattern.start_for(0), AT)
    got = want ^ 0xFF
    assert (err.fault, err.offset, err.expected, err.got) == (DataFault.CORRUPT, AT, want, got)
    assert f"expected 0x{want:02x} got 0x{want ^ 0xFF:02x} at offset {AT}" in err.detail
    assert " corrupt " in err.describe()
    assert err.describe().endswith(f"conn 0: expected 0x{want:02x} got 0x{got:02x} at offset {AT}")


@pytest.mark.parametrize("use_uvloop", [True, False], ids=["uvloop", "asyncio"])
def test_a_flipped_byte_is_caught_with_a_window_beyond_one_pattern_slice(
    faulty: list[FaultyEchoServer], use_uvloop: bool
) -> None:
    # With a 1 MiB window one read can take more than one pattern slice (MAX_CHUNK): the
    # read is then checked slice by slice, and the flip is still found at its offset.
    at = 3 * MAX_CHUNK + 12_345
    result = run_against(faulty, Fault("flip", at), window=4 * MAX_CHUNK, use_uvloop=use_uvloop)
    err = only_data_error(result)
    pattern = pattern_for(1)
    want = pattern.byte_at(pattern.start_for(0), at)
    assert (err.fault, err.offset, err.expected, err.got) == (DataFault.CORRUPT, at, want,
                                                              want ^ 0xFF)
    assert result.connections[0].received == at


def test_ping_mode_loss_inside_one_message(faulty: list[FaultyEchoServer]) -> None:
    # The drop holds 2 spans; ping messages of 64 bytes give it one message at a time,
    # so use a span of 16: the region is the 10th message's 2nd half plus the next one.
    result = run_against(faulty, Fault("drop", 64 * 10 + 3, span=16), mode=Mode.PING)
    err = only_data_error(result)
    assert (err.fault, err.offset, err.lost) == (DataFault.LOSS, 643, 1)


@pytest.mark.parametrize("mode", [Mode.STREAM, Mode.PING])
def test_a_healthy_but_slow_server_gives_no_error(
    faulty: list[FaultyEchoServer], mode: Mode
) -> None:
    # Echoes in odd-sized pieces, each after a pause: well within the stall timeout.
    result = run_against(
        faulty, Fault(delay=0.02, piece=7919), connections=2, duration=1.0, mode=mode
    )
    assert result.ok, [e.describe() for e in result.errors]
    assert all(c.received == c.sent > 0 for c in result.connections)


def test_diagnose_is_pure_and_bounded() -> None:
    p = Pattern(11, period=1 << 16, max_chunk=1 << 12)
    start = p.start_for(2)
    stream = p.expected(start, 0, 40_000)
    sent = len(stream)
    lost = p.diagnose(start, 1000, stream[1005:3000], sent)
    assert (lost.fault, lost.lost, lost.found_at) == (DataFault.LOSS, 5, 1005)
    swapped = stream[2000:2500] + stream[1500:2000]
    reorder = p.diagnose(start, 1500, swapped, sent)
    assert (reorder.fault, reorder.found_at) == (DataFault.REORDER, 2000)
    flipped = bytes([stream[1200] ^ 0x01]) + stream[1201:1300]
    assert p.diagnose(start, 1200, flipped, sent).fault is DataFault.CORRUPT
    # A byte lost at every mark (like the drops-bytes mutant): the first fault is a loss,
    # whatever comes after its run; a swap is told by the skipped bytes arriving late.
    twice = p.diagnose(start, 1000, stream[1001:2000] + stream[2001:4000], sent)
    assert (twice.fault, twice.lost) == (DataFault.LOSS, 1)
    then_flip = stream[1003:1500] + bytes([stream[1500] ^ 0x80]) + stream[1501:1600]
    assert p.diagnose(start, 1000, then_flip, sent).lost == 3
    # Data from beyond the reach is not looked for: it reads as corrupt, not as a loss.
    far = p.diagnose(start, 1000, stream[30_000:30_100], sent, reach=8192)
    assert far.fault is DataFault.CORRUPT
    # Bytes never sent cannot have been "lost in between".
    assert p.diagnose(start, 1000, stream[1005:3000], sent=2000).fault is DataFault.REORDER
    # Too few bytes to place: corrupt.
    assert p.diagnose(start, 1000, stream[1005:1010], sent).fault is DataFault.CORRUPT


class TinyEchoServer:
    """A thread echo server on loopback whose per-connection loop is ``serve``."""

    def __init__(self, serve: Callable[[socket.socket, threading.Event], None]) -> None:
        self.serve = serve
        self.stopping = threading.Event()
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.sock.settimeout(0.05)
        self.port = int(self.sock.getsockname()[1])
        self.threads = [threading.Thread(target=self._accept)]
        self.threads[0].start()

    def _accept(self) -> None:
        while not self.stopping.is_set():
            try:
                conn, _ = self.sock.accept()
            except TimeoutError:
                continue
            conn.settimeout(0.05)
            thread = threading.Thread(target=self._run, args=(conn,))
            self.threads.append(thread)
            thread.start()

    def _run(self, conn: socket.socket) -> None:
        with conn, contextlib.suppress(OSError):
            self.serve(conn, self.stopping)

    def stop(self) -> None:
        self.stopping.set()
        for thread in list(self.threads):
            thread.join(5)
        self.sock.close()


def recv_some(conn: socket.socket, stopping: threading.Event) -> bytes:
    while not stopping.is_set():
        try:
            return conn.recv(16384)
        except TimeoutError:
            continue
    return b""


def drops_before_marks(conn: socket.socket, stopping: threading.Event) -> None:
    """Like the drops-bytes mutant: the byte before every 64 KiB mark is never echoed."""
    offset = 0  # of the stream received
    while data := recv_some(conn, stopping):
        mark = (offset // MARK + 1) * MARK
        cut = mark - 1 - offset
        conn.sendall(data[:cut] + data[cut + 1 :] if cut < len(data) else data)
        offset += len(data)


def swaps_with_queued(conn: socket.socket, stopping: threading.Event) -> None:
    """Like the reorders-chunks mutant: echoes what already queued before each chunk."""
    while data := recv_some(conn, stopping):
        try:
            queued = conn.recv(16384, socket.MSG_DONTWAIT)
        except BlockingIOError:
            queued = b""
        conn.sendall(queued + data)


MARK = 1 << 16


@pytest.fixture
def tiny() -> Iterator[list[TinyEchoServer]]:
    servers: list[TinyEchoServer] = []
    yield servers
    for server in servers:
        server.stop()


def run_tiny(tiny: list[TinyEchoServer],
             serve: Callable[[socket.socket, threading.Event], None]) -> LoadResult:
    server = TinyEchoServer(serve)
    tiny.append(server)
    spec = LoadSpec(targets=(Target("127.0.0.1", server.port),), connections=2, duration=0.5,
                    stall_timeout=0.5)
    return run_load(spec)


def test_a_byte_lost_at_every_mark_is_a_loss_at_the_first(tiny: list[TinyEchoServer]) -> None:
    result = run_tiny(tiny, drops_before_marks)
    assert len(result.errors) == 2
    for err in result.errors:
        assert (err.fault, err.offset, err.lost) == (DataFault.LOSS, MARK - 1, 1)


def test_chunks_echoed_before_the_one_ahead_are_a_reorder(tiny: list[TinyEchoServer]) -> None:
    result = run_tiny(tiny, swaps_with_queued)
    assert len(result.errors) == 2
    for err in result.errors:
        assert err.fault is DataFault.REORDER
        assert err.found_at is not None and err.offset is not None
        assert err.found_at > err.offset
