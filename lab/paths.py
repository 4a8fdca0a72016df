"""Every path under a lab's state directory, named in one place (as naming.py does for libvirt).

A path that appears anywhere else as ``state_dir / "..."`` is a bug: tools,
the pytest plugin and the report must agree on where things are.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class StatePaths:
    """The layout of one lab's state directory."""

    root: Path

    @property
    def inventory(self) -> Path:
        """What `lab up` made (JSON, written atomically)."""
        return self.root / "inventory.json"

    @property
    def known_hosts(self) -> Path:
        return self.root / "known_hosts"

    @property
    def keys(self) -> Path:
        """The lab's SSH key pair and the micro guest's host key."""
        return self.root / "keys"

    @property
    def client_key(self) -> Path:
        return self.keys / "id_ed25519"

    @property
    def consoles(self) -> Path:
        return self.root / "consoles"

    def console_log(self, vm: str) -> Path:
        """The serial console log of one VM (appended across boots)."""
        return self.consoles / f"{vm}.log"

    @property
    def leases(self) -> Path:
        """File locks of the VMs leased by pytest workers."""
        return self.root / "leases"

    @property
    def lease_log(self) -> Path:
        return self.leases / "leases.jsonl"

    @property
    def history(self) -> Path:
        """The run history database (`lab history`, SQLite)."""
        return self.root / "history.sqlite"

    @property
    def accel_cache(self) -> Path:
        return self.root / "accel.json"

    @property
    def images(self) -> Path:
        return self.root / "images"

    @property
    def cache(self) -> Path:
        """Downloaded packages (the micro guest's kernel)."""
        return self.root / "cache"

    @property
    def lab_log(self) -> Path:
        return self.root / "logs" / "lab.log"
