"""``lab load HOST:PORT [HOST:PORT ...]``: echo load from the command line.

Exit status: 0 only when every byte came back intact and no connection failed;
1 when the run found errors; 2 for bad input.
"""

from __future__ import annotations

import argparse
import ipaddress
import sys
from pathlib import Path
from typing import Any

from lab.load.engine import run_load
from lab.load.report import summary, to_json
from lab.load.result import LoadConfigError, LoadSpec, Mode, Target

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_USAGE = 2


def parse_target(text: str) -> Target:
    """``HOST:PORT``, ``[V6]:PORT``, optionally ``@SOURCE`` to pin the local address."""
    spec, _, source = text.partition("@")
    host, sep, port_text = spec.rpartition(":")
    host = host.removeprefix("[").removesuffix("]")
    if not sep or not host or not port_text.isdigit():
        raise argparse.ArgumentTypeError(f"{text!r} is not HOST:PORT[@SOURCE]")
    if source:
        try:
            ipaddress.ip_address(source)
        except ValueError:
            raise argparse.ArgumentTypeError(f"source {source!r} is not an IP address") from None
    try:
        return Target(host, int(port_text), source or None)
    except LoadConfigError as exc:
        raise argparse.ArgumentTypeError(exc.summary) from None


def _positive(kind: type[int] | type[float]) -> Any:
    def parse(text: str) -> int | float:
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
        if value <= 0:
            raise argparse.ArgumentTypeError(f"{text!r} must be > 0")
        return value

    return parse


def _size(text: str) -> int:
    """Bytes with an optional K/M/G (binary) suffix."""
    units = {"k": 1 << 10, "m": 1 << 20, "g": 1 << 30}
    scale = units.get(text[-1:].lower(), 1)
    digits = text[:-1] if scale != 1 else text
    if not digits.isdigit() or int(digits) <= 0:
        raise argparse.ArgumentTypeError(f"{text!r} is not a size like 65536, 64K or 1M")
    return int(digits) * scale


def register(subparsers: Any) -> None:
    """Add ``lab load`` to the ``lab`` command."""
    p: argparse.ArgumentParser = subparsers.add_parser(
        "load",
        help="TCP echo load against one or more echo targets",
        description="Drive verified TCP echo load at HOST:PORT targets (one per test NIC). "
        "Exit 0 only when every byte came back intact and no connection failed.",
    )
    p.add_argument("targets", nargs="+", type=parse_target, metavar="HOST:PORT[@SOURCE]")
    p.add_argument("-m", "--mode", choices=[m.value for m in Mode], default=Mode.STREAM.value)
    p.add_argument("-c", "--connections", type=_positive(int), default=8,
                   help="connections per target, not in total (default 8; two targets: 16)")
    p.add_argument("-t", "--duration", type=_positive(float), default=None,
                   help="seconds of load (default 3; with --bytes: no time limit)")
    p.add_argument("-n", "--bytes", type=_size, default=None, dest="bytes_per_connection",
                   help="stream mode: bytes per connection, then stop; not a total "
                        "(-n 64M -c 8 with 2 targets echoes 16 x 64M = 1G)")
    p.add_argument("-s", "--message-size", type=_size, default=64,
                   help="ping/connect: bytes per request (default 64)")
    p.add_argument("-w", "--window", type=_size, default=1 << 18,
                   help="stream: bytes in flight per connection (default 256K)")
    p.add_argument("--seed", type=int, default=1, help="pattern seed (default 1)")
    p.add_argument("--connect-timeout", type=_positive(float), default=3.0)
    p.add_argument("--stall-timeout", type=_positive(float), default=5.0,
                   help="seconds without echo progress before a connection is a timeout")
    p.add_argument("--reconnect", action="store_true",
                   help="replace connections that die (churn runs)")
    p.add_argument("--json", metavar="FILE", default=None,
                   help="write the full result as JSON to FILE ('-': to stdout, no summary)")
    p.add_argument("--no-uvloop", action="store_true", help="use the stock asyncio loop")
    p.add_argument("--progress", action=argparse.BooleanOptionalAction, default=None,
                   help="progress line on stderr (default: when stderr is a TTY)")
    p.set_defaults(func=run)


def spec_from_args(args: argparse.Namespace) -> LoadSpec:
    duration = args.duration
    if duration is None and args.bytes_per_connection is None:
        duration = 3.0
    return LoadSpec(
        targets=tuple(args.targets),
        mode=Mode(args.mode),
        connections=args.connections,
        duration=duration,
        bytes_per_connection=args.bytes_per_connection,
        message_size=args.message_size,
        window=args.window,
        seed=args.seed,
        connect_timeout=args.connect_timeout,
        stall_timeout=args.stall_timeout,
        reconnect=args.reconnect,
        progress=args.progress,
        use_uvloop=not args.no_uvloop,
    )


def run(args: argparse.Namespace) -> int:
    try:
        spec = spec_from_args(args)
    except LoadConfigError as exc:
        print(f"lab load: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    from lab.route_guard import require_load_targets

    require_load_targets(getattr(args, "config", None),
                         [(t.host, t.source) for t in spec.targets])
    result = run_load(spec)
    if args.json == "-":
        print(to_json(result))
    else:
        print(summary(result))
        if args.json:
            Path(args.json).write_text(to_json(result) + "\n", encoding="utf-8")
    return EXIT_OK if result.ok else EXIT_FAILED
