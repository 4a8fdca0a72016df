"""`lab image windows` (build a Windows golden image from ISOs) and `lab image check`."""

from __future__ import annotations

import argparse
from collections.abc import Callable
from importlib import import_module


def _lazy(target: str) -> Callable[[argparse.Namespace], int]:
    """A command function imported on first use ("module:function")."""
    module, _, name = target.partition(":")

    def run(args: argparse.Namespace) -> int:
        result: int = getattr(import_module(module), name)(args)
        return result

    return run


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    image = sub.add_parser("image", help="build a Windows golden image, check any image")
    image_sub = image.add_subparsers(dest="image_command", metavar="IMAGE_COMMAND",
                                     required=True)
    p = image_sub.add_parser(
        "windows", help="build a test-ready Windows golden image unattended from an ISO")
    p.add_argument("--iso", default=None, help="Windows installation ISO (or [windows_image] iso)")
    p.add_argument("--virtio-win", default=None,
                   help="virtio-win driver ISO (or [windows_image] virtio_win)")
    p.add_argument("--edition", default=None,
                   help="image name or index in install.wim (or [windows_image] edition)")
    p.set_defaults(func=_lazy("lab.image.windows_build:cmd_windows"))
    p = image_sub.add_parser(
        "check", help="boot one VM from the golden image and check its contract over SSH")
    p.set_defaults(func=_lazy("lab.image.check:cmd_check"))
