"""Guest kinds, resolved from the config's ``[image] kind`` through one registry.

A new guest kind is one new module here plus one line in :data:`KINDS`.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

from lab.errors import ConfigError

if TYPE_CHECKING:
    from lab.config import LabConfig
    from lab.guests.base import GuestKind

#: ``[image] kind`` value -> "module:class" of its GuestKind (imported on first use).
KINDS: dict[str, str] = {
    "linux-micro": "lab.guests.linux_micro:LinuxMicro",
    "windows": "lab.guests.windows:Windows",
}


def kind_class(name: str) -> type[GuestKind]:
    """The GuestKind class registered for ``name``."""
    try:
        target = KINDS[name]
    except KeyError:
        raise ConfigError("lab.toml", "image.kind", f"{name!r} is not a guest kind",
                          f"use one of: {', '.join(KINDS)}") from None
    module, _, attr = target.partition(":")
    cls: type[GuestKind] = getattr(importlib.import_module(module), attr)
    return cls


def guest_kind(config: LabConfig) -> GuestKind:
    """The guest kind of a lab (the one place a kind is chosen)."""
    return kind_class(str(config.image.kind))(config)


__all__ = ["KINDS", "guest_kind", "kind_class"]
