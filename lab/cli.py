"""The `lab` command line. Sub-commands live in their own modules and register here."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence
from importlib import import_module

from lab.errors import LabError

#: Modules that contribute sub-commands. Each exposes ``register(subparsers)``,
#: which adds its parsers and sets ``func`` (``Callable[[argparse.Namespace], int]``).
COMMAND_MODULES: tuple[str, ...] = (
    "lab.commands",
    "lab.load.cli",
    "lab.image.cli",
    "lab.selftest.run",
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="lab",
                                     description="Driver Lab: provision and drive the VM lab")
    parser.add_argument("-c", "--config", default=None,
                        help="lab configuration file (default: ./lab.toml, or built-in defaults)")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMAND_MODULES:
        try:
            module = import_module(name)
        except ModuleNotFoundError as exc:
            if exc.name != name:
                raise
            continue
        module.register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    func: Callable[[argparse.Namespace], int] | None = getattr(args, "func", None)
    if func is None:
        parser.print_help()
        return 2
    try:
        return func(args)
    except LabError as exc:
        print(f"lab: {exc.kind}: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("lab: interrupted", file=sys.stderr)
        return 130
