"""A deliberately faulty echo server: each fault is reported with the right class,
connection, offset and time, and the run continues on the other connections."""

from __future__ import annotations

import pytest
from load_echo_servers import Fault, FaultyEchoServer

from lab.load import ErrorClass, LoadResult, LoadSpec, Mode, Target, run_load
from lab.load.pattern import pattern_for

AT = 300_000  # fault offset: beyond the first window (256 KiB) and the first read


def run_against(
    faulty: list[FaultyEchoServer], fault: Fault, connections: int = 3, **kw: object
) -> tuple[LoadResult, FaultyEchoServer]:
    server = FaultyEchoServer(fault).start()
    faulty.append(server)
    spec_kw: dict[str, object] = {"connections": connections, "duration": 0.6, "stall_timeout": 0.5}
    spec_kw.update(kw)
    spec = LoadSpec(targets=(Target("127.0.0.1", server.port),), **spec_kw)  # type: ignore[arg-type]
    return run_load(spec), server


def only_error(result: LoadResult) -> tuple[int, ErrorClass, int | None]:
    assert not result.ok
    assert len(result.errors) == 1, result.errors
    err = result.errors[0]
    return err.conn, err.cls, err.offset


def test_flipped_byte_is_a_mismatch_at_its_exact_offset(faulty: list[FaultyEchoServer]) -> None:
    result, _ = run_against(faulty, Fault("flip", AT, frozenset({0})), connections=1)
    conn, cls, offset = only_error(result)
    err = result.errors[0]
    assert (conn, cls, offset) == (0, ErrorClass.MISMATCH, AT)
    pattern = pattern_for(1)
    want = pattern.byte_at(pattern.start_for(0), AT)  # slot 0, first attempt
    assert (err.expected, err.got) == (want, want ^ 0xFF)
    assert result.connections[0].received == AT  # every byte before it was good
    assert "offset 300000" in err.describe()


def test_one_bad_connection_does_not_stop_the_others(faulty: list[FaultyEchoServer]) -> None:
    result, server = run_against(faulty, Fault("flip", AT, frozenset({1})), connections=4)
    assert len(server.peers) == 4
    assert [e.cls for e in result.errors] == [ErrorClass.MISMATCH]
    bad = result.errors[0].conn
    healthy = [c for c in result.connections if c.conn != bad]
    assert len(healthy) == 3
    assert all(c.errors == 0 and c.received == c.sent > AT for c in healthy)


def test_clean_close_mid_stream_is_a_short_echo(faulty: list[FaultyEchoServer]) -> None:
    result, _ = run_against(faulty, Fault("close", AT, frozenset({0})), connections=1)
    assert only_error(result) == (0, ErrorClass.SHORT_ECHO, AT)
    assert "closed after echoing 300000" in result.errors[0].detail


def test_reset_mid_stream_is_a_reset(faulty: list[FaultyEchoServer]) -> None:
    result, _ = run_against(faulty, Fault("reset", AT, frozenset({0})), connections=1)
    conn, cls, offset = only_error(result)
    assert (conn, cls) == (0, ErrorClass.RESET)
    assert offset is not None and offset <= AT


def test_stall_is_a_timeout_at_the_last_echoed_offset(faulty: list[FaultyEchoServer]) -> None:
    result, _ = run_against(faulty, Fault("stall", AT, frozenset({0})), connections=1)
    assert only_error(result) == (0, ErrorClass.TIMEOUT, AT)
    assert "no echo from peer" in result.errors[0].detail


def test_ping_mismatch_and_stall_are_caught_too(faulty: list[FaultyEchoServer]) -> None:
    result, _ = run_against(faulty, Fault("flip", 64 * 10 + 3), connections=1, mode=Mode.PING)
    assert only_error(result) == (0, ErrorClass.MISMATCH, 643)
    assert result.connections[0].ops == 10


def test_connect_mode_short_echo(faulty: list[FaultyEchoServer]) -> None:
    result, _ = run_against(
        faulty, Fault("close", 10), connections=1, mode=Mode.CONNECT, duration=0.3
    )
    assert not result.ok
    assert {e.cls for e in result.errors} == {ErrorClass.SHORT_ECHO}
    assert all(e.offset == 10 for e in result.errors)


def test_refused_target_is_classified_refused(refusing_port: int) -> None:
    spec = LoadSpec(targets=(Target("127.0.0.1", refusing_port),), connections=2, duration=0.3)
    result = run_load(spec)
    assert not result.ok
    assert [e.cls for e in result.errors] == [ErrorClass.REFUSED] * 2
    assert result.bytes_echoed == 0
    assert result.affected_targets[0].errors == {"refused": 2}


def test_affected_target_is_named_with_time_the_other_is_clean(
    faulty: list[FaultyEchoServer],
) -> None:
    good = FaultyEchoServer(Fault()).start()
    bad = FaultyEchoServer(Fault("reset", AT), host="127.0.0.2").start()
    faulty += [good, bad]
    spec = LoadSpec(
        targets=(Target("127.0.0.1", good.port), Target("127.0.0.2", bad.port)),
        connections=2,
        duration=0.8,
    )
    result = run_load(spec)
    assert not result.ok
    assert [t.target for t in result.affected_targets] == [f"127.0.0.2:{bad.port}"]
    hit = result.affected_targets[0]
    assert hit.errors == {"reset": 2}
    first, last = hit.first_error, hit.last_error
    assert first is not None and last is not None
    assert 0 < first <= last <= result.duration
    clean = result.targets[0]
    assert clean.bytes > 0 and not clean.errors
    # The errors land in the timeline bucket of their time, and the bad target's bytes stop.
    assert sum(iv.errors for iv in result.timeline) == 2
    for iv in result.timeline:
        if iv.start > last + 0.05:
            assert iv.per_target[1] == 0


def test_reconnect_replaces_a_dead_connection(faulty: list[FaultyEchoServer]) -> None:
    result, server = run_against(
        faulty, Fault("close", AT, frozenset({0})), connections=1, reconnect=True
    )
    assert [e.cls for e in result.errors] == [ErrorClass.SHORT_ECHO]
    slot = result.connections[0]
    assert slot.connects == 2 and len(server.peers) == 2
    assert slot.received > AT  # the replacement connection carried on


@pytest.mark.parametrize("kind", ["stall"])
def test_engine_finishes_even_when_the_peer_never_answers(
    faulty: list[FaultyEchoServer], kind: str
) -> None:
    result, _ = run_against(faulty, Fault(kind, 0), connections=2, duration=0.2)
    assert [e.cls for e in result.errors] == [ErrorClass.TIMEOUT] * 2
    assert all(e.offset == 0 for e in result.errors)
