"""Benchmark: one instrument round trip on the local host vs through a remote host's agent.

Issue 12's target: a remote instrument costs at most 1.2x the local figure. The
"remote" host is a namespace host (lab/nshost.py: its own network + mount namespace
and sshd) reached over real SSH; the agent runs there with the host's own python3,
each agent through the OpenSSH client as the lab runs it (lab/agent_pipes.py); the
short load is also timed over a channel of the paramiko connection (the fallback when
ssh is not installed), for comparison.
Both sides get the same targets as tests/lab/test_hostagent.py (an L2 echo responder
on a veth pair, a TCP echo server on a host-only address). Measured after the agent
was pushed once (the push is once per content hash, not per call).
"""

from __future__ import annotations

import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path, PurePosixPath

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "tests" / "lab"))

from test_hostagent import (  # noqa: E402  (the test's targets, shared)
    NOBODY_MAC,
    RESPONDER_MAC,
    Side,
    _spec,
    start_targets,
)

from lab import netns  # noqa: E402
from lab.config import NAMESPACE_PYTHON  # noqa: E402
from lab.hostagent import LocalInstruments, RemoteInstruments  # noqa: E402
from lab.nshost import HostSpec, NamespaceHost  # noqa: E402
from lab.sandbox import RUN_DIR  # noqa: E402

CONTROLLER_NS = "dlbenchia"
TARGET = 1.2
#: rounds per measurement: many for the calls of a few ms (the machine's noise is of
#: their size), few for the 2 s loads
ROUNDS = {"L2 probe (answered)": 21, "L2 probe (silent, 0.5 s)": 7, "load 2 x 1 MiB": 41,
          "load 2 conns x 2 s": 3}


def medians_s(local: Callable[[], object], remote: Callable[[], object],
              rounds: int) -> tuple[float, float]:
    """Median seconds of ``local`` and of ``remote``, their rounds interleaved (a change
    in the machine's load meets both sides alike)."""
    times: tuple[list[float], list[float]] = ([], [])
    for _ in range(rounds):
        for fn, out in ((local, times[0]), (remote, times[1])):
            t0 = time.monotonic()
            fn()
            out.append(time.monotonic() - t0)
    return statistics.median(times[0]), statistics.median(times[1])


def line(what: str, local: float, remote: float) -> str:
    ratio = remote / local
    verdict = "PASS" if ratio <= TARGET else "FAIL"
    return (f"instrument round trip, {what:<28} local {local * 1000:8.1f} ms  remote "
            f"{remote * 1000:8.1f} ms  ratio {ratio:6.2f}x (target <= {TARGET}x) {verdict}")


def measure(local: Side, remote: Side, channel: Side) -> list[str]:
    # the load engine's event loop on each side (uvloop when that python has it): a
    # remote host without python3-uvloop runs its loads on asyncio's own loop
    lines = [f"load engine event loop: local {local.run_load(_spec()).loop}, remote "
             f"{remote.run_load(_spec()).loop}"]
    for what, run in (
            ("L2 probe (answered)", lambda s: s.probe(RESPONDER_MAC)),
            ("L2 probe (silent, 0.5 s)", lambda s: s.probe(NOBODY_MAC, timeout=0.5)),
            ("load 2 x 1 MiB", lambda s: s.run_load(_spec())),
            ("load 2 conns x 2 s", lambda s: s.run_load(_spec(duration=2.0,
                                                              bytes_per_connection=None)))):
        lines.append(line(what, *medians_s(partial(run, local), partial(run, remote),
                                            ROUNDS[what])))
    # the same short call over an exec channel of the paramiko connection (the pipe the
    # lab uses when ssh is not installed): for comparison, no goal
    short = "load 2 x 1 MiB"
    base, over_channel = medians_s(partial(local.run_load, _spec()),
                                   partial(channel.run_load, _spec()), ROUNDS[short])
    lines.append(f"(for comparison) {short} over a paramiko channel: local "
                 f"{base * 1000:.1f} ms  remote {over_channel * 1000:.1f} ms  ratio "
                 f"{over_channel / base:.2f}x")
    return lines


def main() -> int:
    netns.delete(CONTROLLER_NS)
    netns.create(CONTROLLER_NS)
    host = NamespaceHost(HostSpec(name="hib", netns="dlhostib", subnet="192.168.200.20/30",
                                  controller_netns=CONTROLLER_NS,
                                  run_dir=RUN_DIR / "hostagent-bench" / "hib"))
    procs: list[subprocess.Popen[str]] = []
    try:
        host.start()
        client = host.ssh_client()
        transport = client.get_transport()
        assert transport is not None
        echo, index = start_targets(CONTROLLER_NS, lambda a: ["ip", "netns", "exec",
                                                              CONTROLLER_NS, *a], procs)
        local = Side(CONTROLLER_NS, LocalInstruments(), echo, index, CONTROLLER_NS)
        echo, index = start_targets(host.spec.netns, host.in_host, procs)
        agent_dir = PurePosixPath(host.spec.run_dir / "agent")
        # as the lab's namespace host: its python; each agent through the OpenSSH client
        # (made in the controller's namespace, where the client connects from)
        with netns.inside(CONTROLLER_NS):
            agents = RemoteInstruments("hib", transport, agent_dir=agent_dir,
                                       cache_dir=host.spec.run_dir / "cache",
                                       python=NAMESPACE_PYTHON, ssh=host.openssh())
        remote = Side(host.spec.netns, agents, echo, index, None)
        channel_agents = RemoteInstruments("hib", transport, agent_dir=agent_dir,
                                           cache_dir=host.spec.run_dir / "cache",
                                           python=NAMESPACE_PYTHON)
        channel = Side(host.spec.netns, channel_agents, echo, index, None)
        t0 = time.monotonic()
        remote.probe(NOBODY_MAC, timeout=0.01)  # builds and pushes the agent
        print(f"agent build + push + first call: {(time.monotonic() - t0) * 1000:.0f} ms")
        for text in measure(local, remote, channel):
            print(text)
        agents.close()
        channel_agents.close()
        client.close()
    finally:
        for proc in procs:
            proc.kill()
            proc.wait(timeout=10)
        host.stop()
        netns.delete(CONTROLLER_NS)
    return 0


if __name__ == "__main__":
    sys.exit(main())
