#!/usr/bin/env python3
"""Load-engine bench: iperf3, the C epoll echo server, the C streaming echo client and
`lab load`, side by side in one run on loopback. Writes the table to --out (default
artifacts/bench/load.md: bench/results/load.md is the tracked record the README quotes,
copied there by hand), prints it, then PASS or FAIL per goal; exits 1 when a goal is missed.

Usage: run_bench.py --bin DIR [--out FILE] [--seconds S] [--reps N]
Each measurement runs N times, C reference and engine alternating, and the best run of
each is kept (the host is shared; best-of-N filters out a neighbour's burst).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

HOST = "127.0.0.1"  # loopback only
WINDOW = 256 * 1024  # bytes in flight per connection, the same for both clients
DEADLINE_SLACK = 30.0


@dataclass
class Row:
    what: str
    ref_name: str
    ref: float | None
    engine: float | None
    unit: str
    goal: float | None = None
    """The ratio the engine must reach (``>= goal``), or None when there is no goal."""
    higher_is_better: bool = True

    @property
    def goal_text(self) -> str:
        return "" if self.goal is None else f">= {self.goal:g}x"

    def verdict(self) -> str:
        """PASS / FAIL against the goal ('' without a goal; FAIL when nothing was measured)."""
        if self.goal is None:
            return ""
        ratio = self.ratio()
        return "PASS" if ratio is not None and ratio >= self.goal else "FAIL"

    def ratio(self) -> float | None:
        if not self.ref or not self.engine:
            return None
        return self.engine / self.ref if self.higher_is_better else self.ref / self.engine


def run_json(cmd: list[str], timeout: float) -> dict[str, Any]:
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, check=False)
    try:
        data: dict[str, Any] = json.loads(out.stdout)
    except json.JSONDecodeError:
        sys.exit(f"bench: {' '.join(cmd)} failed ({out.returncode}): {out.stderr.strip()[:400]}")
    return data


def free_port() -> int:
    with socket.socket() as s:
        s.bind((HOST, 0))
        return int(s.getsockname()[1])


def iperf3(seconds: float) -> float:
    port = free_port()
    server = subprocess.Popen(
        ["iperf3", "-s", "-B", HOST, "-p", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        end = time.monotonic() + 10
        while True:  # no probe connect: it would count as a test; retry the client instead
            data = run_json(
                ["iperf3", "-c", HOST, "-p", str(port), "-t", str(seconds), "-J"],
                seconds + DEADLINE_SLACK,
            )
            if "error" not in data:
                return float(data["end"]["sum_received"]["bits_per_second"]) / 8
            if time.monotonic() > end:
                sys.exit(f"bench: iperf3 failed: {data['error']}")
            time.sleep(0.1)
    finally:
        server.send_signal(signal.SIGTERM)
        server.wait(10)


class Bench:
    def __init__(self, bindir: Path, seconds: float, reps: int) -> None:
        self.bindir = bindir
        self.seconds = seconds
        self.reps = reps
        self.python = sys.executable

    def start_server(self) -> None:
        self.server = subprocess.Popen(
            [str(self.bindir / "echo_server"), HOST], stdout=subprocess.PIPE, text=True
        )
        assert self.server.stdout is not None
        line = self.server.stdout.readline()  # "PORT n", printed once listening
        if not line.startswith("PORT "):
            sys.exit(f"bench: echo_server did not start: {line!r}")
        self.port = int(line.split()[1])

    def stop_server(self) -> None:
        self.server.send_signal(signal.SIGTERM)
        self.server.wait(10)

    def c_client(self, mode: str, conns: int) -> dict[str, Any]:
        cmd = [str(self.bindir / "echo_client"), "-m", mode, "-c", str(conns),
               "-t", str(self.seconds), "-w", str(WINDOW), "-s", "64", HOST, str(self.port)]
        data = run_json(cmd, self.seconds + DEADLINE_SLACK)
        if data["errors"]:
            sys.exit(f"bench: the C client saw {data['errors']} errors in {mode} x{conns}")
        return data

    def engine(self, mode: str, conns: int, *extra: str) -> dict[str, Any]:
        cmd = [self.python, "-m", "lab", "load", f"{HOST}:{self.port}", "-m", mode,
               "-c", str(conns), "-t", str(self.seconds), "-w", str(WINDOW), "-s", "64",
               "--no-progress", "--json", "-", *extra]
        data = run_json(cmd, self.seconds + DEADLINE_SLACK)
        if not data["ok"]:
            sys.exit(f"bench: the engine failed in {mode} x{conns}: {data['error_counts']}")
        return data

    def best(
        self, mode: str, conns: int, key: Callable[[dict[str, Any]], float], lower: bool = False,
        extra: tuple[str, ...] = (), unit: str = "MB/s",
    ) -> tuple[float, float]:
        refs, engs = [], []
        for _ in range(self.reps):
            refs.append(key(self.c_client(mode, conns)))
            engs.append(key(self.engine(mode, conns, *extra)))
        pick = min if lower else max
        print(f"  {mode:8} x{conns:<3} C: {', '.join(fmt(v, unit) for v in refs)}   "
              f"lab load: {', '.join(fmt(v, unit) for v in engs)}", file=sys.stderr)
        return pick(refs), pick(engs)


def c_tp(d: dict[str, Any]) -> float:
    return float(d["throughput"])


def measure(bench: Bench) -> list[Row]:
    rows = [Row("loopback limit, 1 TCP stream", "iperf3", iperf3(bench.seconds), None, "MB/s")]
    goals: dict[int, float | None] = {1: 0.5, 8: 0.8, 64: None}
    for conns in (1, 8, 64):
        ref, eng = bench.best("stream", conns, c_tp)
        rows.append(Row(f"echo stream, {conns} conn", "C client", ref, eng, "MB/s", goals[conns]))
    ref, eng = bench.best("stream", 8, c_tp, extra=("--no-uvloop",))
    rows.append(Row("echo stream, 8 conn, stock asyncio loop", "C client", ref, eng, "MB/s"))
    def lat(name: str) -> Callable[[dict[str, Any]], float]:
        return lambda d: float(d[name] if name in d else d["latency"][name.removesuffix("_us")])

    ref, eng = bench.best("ping", 1, lat("p99_us"), lower=True, unit="us")
    rows.append(Row("ping 64 B, 1 conn: p99 latency", "C client", ref, eng, "us",
                    higher_is_better=False))
    ref, eng = bench.best("ping", 1, lat("p50_us"), lower=True, unit="us")
    rows.append(Row("ping 64 B, 1 conn: p50 latency", "C client", ref, eng, "us",
                    higher_is_better=False))
    ref, eng = bench.best("ping", 1, lambda d: float(d["ops_per_second"]), unit="/s")
    rows.append(Row("ping 64 B, 1 conn: round trips", "C client", ref, eng, "/s"))
    ref, eng = bench.best("connect", 8, lambda d: float(d["ops_per_second"]), unit="conn/s")
    rows.append(Row("connect-echo-close, 8 conn", "C client", ref, eng, "conn/s"))
    return rows


def fmt(value: float | None, unit: str) -> str:
    if value is None:
        return "-"
    if unit == "MB/s":
        return f"{value / 1e6:,.0f} MB/s"
    if unit == "us":
        return f"{value:,.1f} us"
    return f"{value:,.0f} {unit}"


def table(rows: list[Row], bench: Bench) -> str:
    lines = [
        "# Load engine bench (loopback)",
        "",
        f"{datetime.now(UTC):%Y-%m-%d %H:%M} UTC, {platform.node()}, "
        f"{os.cpu_count()} CPUs, Python {platform.python_version()}, "
        f"{bench.seconds:g} s per run, best of {bench.reps}, window {WINDOW // 1024} KiB, "
        "server: bench/load/echo_server (C, epoll, 1 thread)",
        "",
        "| measurement | reference | reference | lab load | ratio (engine/ref) | goal | met |",
        "|---|---|---:|---:|---:|---|---|",
    ]
    for r in rows:
        ratio = r.ratio()
        lines.append(
            f"| {r.what} | {r.ref_name} | {fmt(r.ref, r.unit)} | {fmt(r.engine, r.unit)} | "
            f"{'-' if ratio is None else f'{ratio:.2f}x'} | {r.goal_text} | {r.verdict()} |"
        )
    lines += [
        "",
        "Ratios are engine/reference for rates and reference/engine for latency, so higher "
        "is better for the engine everywhere; iperf3 shows the loopback limit for one stream.",
    ]
    return "\n".join(lines) + "\n"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--bin", type=Path, required=True, help="directory of echo_server, echo_client")
    ap.add_argument("--out", type=Path, default=Path("artifacts/bench/load.md"))
    ap.add_argument("--seconds", type=float, default=float(os.environ.get("LOAD_BENCH_SECONDS", 3)))
    ap.add_argument("--reps", type=int, default=int(os.environ.get("LOAD_BENCH_REPS", 2)))
    args = ap.parse_args()
    bench = Bench(args.bin, args.seconds, args.reps)
    bench.start_server()
    try:
        rows = measure(bench)
    finally:
        bench.stop_server()
    text = table(rows, bench)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(text, encoding="utf-8")
    print(text)
    return report_goals(rows, args.out)


def goal_lines(rows: list[Row]) -> list[str]:
    """One line per goal: ``PASS echo stream, 1 conn: 0.94x (goal >= 0.5x)``."""
    lines = []
    for r in rows:
        if r.goal is not None:
            ratio = r.ratio()
            got = "not measured" if ratio is None else f"{ratio:.2f}x"
            lines.append(f"{r.verdict()} {r.what}: {got} (goal {r.goal_text})")
    return lines


def report_goals(rows: list[Row], out: Path) -> int:
    lines = goal_lines(rows)
    missed = sum(line.startswith("FAIL") for line in lines)
    print("\n".join(lines))
    print(f"bench-load: {len(lines) - missed} of {len(lines)} goals met; table in {out}")
    return 1 if missed else 0


if __name__ == "__main__":
    sys.exit(main())
