"""The engine against socat, a real third-party echo server (socat ... EXEC:cat)."""

from __future__ import annotations

import asyncio

import pytest
from load_echo_servers import Fault, FaultyEchoServer, Socat

from lab.load import LoadConfigError, LoadSpec, Mode, Target, run_load, run_load_async
from lab.load.engine import TICK


def target(server: Socat) -> Target:
    return Target(server.host, server.port)


@pytest.mark.parametrize("use_uvloop", [True, False], ids=["uvloop", "asyncio"])
def test_stream_for_a_duration_echoes_every_byte(socat_echo: Socat, use_uvloop: bool) -> None:
    spec = LoadSpec(
        targets=(target(socat_echo),), connections=4, duration=0.6, use_uvloop=use_uvloop
    )
    result = run_load(spec)
    assert result.ok, result.errors
    assert result.loop == ("uvloop" if use_uvloop else "asyncio")
    assert len(result.connections) == 4
    for conn in result.connections:
        assert conn.errors == 0 and conn.connects == 1
        assert conn.received == conn.sent > 0
    assert result.bytes_echoed == sum(iv.bytes for iv in result.timeline)


def test_stream_byte_count_is_exact_per_connection(socat_echo: Socat) -> None:
    size = 3 * (1 << 20) + 12345  # several windows and an odd tail
    spec = LoadSpec(
        targets=(target(socat_echo),), connections=3, duration=None, bytes_per_connection=size
    )
    result = run_load(spec)
    assert result.ok, result.errors
    assert [c.received for c in result.connections] == [size] * 3
    assert [c.sent for c in result.connections] == [size] * 3


def test_timeline_has_100ms_buckets_that_add_up(socat_echo: Socat) -> None:
    result = run_load(LoadSpec(targets=(target(socat_echo),), connections=2, duration=0.5))
    assert result.ok
    assert len(result.timeline) >= 5
    for before, after in zip(result.timeline, result.timeline[1:], strict=False):
        assert after.start == before.end
    full = result.timeline[:-1]
    assert all(iv.end - iv.start == pytest.approx(TICK, abs=0.09) for iv in full)
    assert sum(iv.bytes for iv in result.timeline) == result.bytes_echoed
    assert sum(sum(iv.per_target) for iv in result.timeline) == result.bytes_echoed


def test_several_targets_each_get_their_connections(socat_echo: Socat, socat_echo2: Socat) -> None:
    spec = LoadSpec(targets=(target(socat_echo), target(socat_echo2)), connections=2, duration=0.5)
    result = run_load(spec)
    assert result.ok, result.errors
    assert [t.target for t in result.targets] == [str(target(socat_echo)), str(target(socat_echo2))]
    assert all(t.connections == 2 and t.bytes > 0 for t in result.targets)
    assert not result.affected_targets


def test_connections_are_pinned_to_a_source_address(faulty: list[FaultyEchoServer]) -> None:
    server = FaultyEchoServer(Fault()).start()
    faulty.append(server)
    spec = LoadSpec(
        targets=(Target("127.0.0.1", server.port, source="127.0.0.3"),), connections=2, duration=0.3
    )
    result = run_load(spec)
    assert result.ok, result.errors
    assert {peer[0] for peer in server.peers} == {"127.0.0.3"}


def test_ping_reports_latency_percentiles_from_the_histogram(socat_echo: Socat) -> None:
    spec = LoadSpec(targets=(target(socat_echo),), mode=Mode.PING, connections=2, duration=0.5)
    result = run_load(spec)
    assert result.ok, result.errors
    lat = result.latency
    assert lat is not None
    assert lat.count == result.ops > 0
    assert 0 < lat.p50 <= lat.p90 <= lat.p99 <= lat.p999 <= lat.max
    assert all(c.sent == c.received == c.ops * 64 for c in result.connections)


def test_connect_mode_counts_full_cycles(socat_echo: Socat) -> None:
    spec = LoadSpec(targets=(target(socat_echo),), mode=Mode.CONNECT, connections=4, duration=0.5)
    result = run_load(spec)
    assert result.ok, result.errors
    assert result.ops > 0 and result.ops_per_second > 0
    assert all(c.connects == c.ops for c in result.connections)
    assert result.latency is not None and result.latency.count == result.ops


def test_async_api_runs_inside_an_existing_loop(socat_echo: Socat) -> None:
    spec = LoadSpec(targets=(target(socat_echo),), connections=1, duration=0.3)
    result = asyncio.run(run_load_async(spec))
    assert result.ok and result.loop == "asyncio"


@pytest.mark.parametrize(
    ("kwargs", "words"),
    [
        ({"targets": ()}, "no target"),
        ({"connections": 0}, "connections"),
        ({"duration": -1.0}, "duration"),
        ({"duration": None}, "duration or"),
        ({"mode": Mode.PING, "bytes_per_connection": 10}, "stream mode only"),
        ({"message_size": 0}, "message size"),
    ],
)
def test_impossible_specs_are_config_errors(kwargs: dict[str, object], words: str) -> None:
    base: dict[str, object] = {"targets": (Target("127.0.0.1", 9),)}
    base.update(kwargs)
    with pytest.raises(LoadConfigError, match=words):
        LoadSpec(**base)  # type: ignore[arg-type]


def test_target_port_is_checked() -> None:
    with pytest.raises(LoadConfigError, match="out of range"):
        Target("127.0.0.1", 70000)


def test_progress_line_when_asked(socat_echo: Socat, capsys: pytest.CaptureFixture[str]) -> None:
    spec = LoadSpec(targets=(target(socat_echo),), connections=1, duration=0.8, progress=True)
    assert run_load(spec).ok
    err = capsys.readouterr().err
    assert "\r\x1b[Klab load:" in err and "/s  errors 0" in err
    assert err.endswith("\r\x1b[K")  # the line is wiped at the end


def test_no_progress_when_stderr_is_not_a_tty(
    socat_echo: Socat, capsys: pytest.CaptureFixture[str]
) -> None:
    spec = LoadSpec(targets=(target(socat_echo),), connections=1, duration=0.6)
    assert run_load(spec).ok
    assert capsys.readouterr().err == ""
