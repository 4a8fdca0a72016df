"""The `lab` command line. Sub-commands live in their own modules and register here."""

from __future__ import annotations

import argparse
from collections.abc import Callable, Sequence
from importlib import import_module
from pathlib import Path

from lab.crash import run_guarded

#: Modules that contribute sub-commands. Each exposes ``register(subparsers)``,
#: which adds its parsers and sets ``func`` (``Callable[[argparse.Namespace], int]``).
COMMAND_MODULES: tuple[str, ...] = (
    "lab.commands",
    "lab.history_cli",
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
    """Parse, dispatch, and turn any failure into one line (lab.crash.run_guarded)."""
    parsed: list[argparse.Namespace] = []

    def run() -> int:
        parser = build_parser()
        args = parser.parse_args(argv)
        parsed.append(args)
        func: Callable[[argparse.Namespace], int] | None = getattr(args, "func", None)
        if func is None:
            parser.print_help()
            return 2
        return func(args)

    return run_guarded(run, lambda: crash_log_dirs(parsed[0].config if parsed else None))


def crash_log_dirs(config: str | None) -> list[Path]:
    """Where an internal error's traceback goes: the lab's state directory, if it exists."""
    from lab.config import load_config

    state_dir = load_config(config).state_dir
    return [state_dir] if state_dir.is_dir() else []
