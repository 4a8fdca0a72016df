"""How commands name the lab they look at: name, config file and state directory.

A copied lab.toml keeps its [lab] name but resolves ``state_dir`` next to itself, so
"lab dlab is down" alone can be about another directory than the user thinks. Every
"is down" / "is not up" message names all three:
``lab dlab is down (no inventory.json; config /tmp/x/lab.toml, state dir /tmp/x/var)``.
"""

from __future__ import annotations

from lab import inventory
from lab.config import LabConfig
from lab.errors import LabFailure
from lab.paths import StatePaths


def lab_ref(cfg: LabConfig) -> str:
    """``lab dlab (config /repo/lab.toml, state dir /repo/var)``."""
    return f"lab {cfg.lab.name} ({where(cfg)})"


def where(cfg: LabConfig) -> str:
    """``config /repo/lab.toml, state dir /repo/var``."""
    return f"config {cfg.path}, state dir {cfg.state_dir}"


def down_text(cfg: LabConfig, verb: str = "is not up") -> str:
    """``lab dlab is not up (no inventory.json; config ..., state dir ...)``."""
    inv = StatePaths(cfg.state_dir).inventory
    return f"lab {cfg.lab.name} {verb} (no {inv.name}; {where(cfg)})"


def up_command(cfg: LabConfig) -> str:
    return f"make lab-up CONFIG={cfg.path}"


def not_up(cfg: LabConfig) -> LabFailure:
    return LabFailure(down_text(cfg),
                      hint=f"bring it up with `{up_command(cfg)}`, or pass the --config "
                           "of the lab that is up")


def read_inventory(cfg: LabConfig) -> inventory.Inventory:
    """The lab's inventory; a lab that is not up is a LabFailure naming where it looked."""
    path = StatePaths(cfg.state_dir).inventory
    if not path.exists():
        raise not_up(cfg)
    return inventory.read(path)
