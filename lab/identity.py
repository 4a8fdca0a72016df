"""Which lab this is: lab name + config file + state dir + an install id.

The first command on a state dir claims it in ``<state>/identity.json`` with a random
install id; every libvirt object the lab makes carries that id (and the state dir)
in its metadata, so a second config with the same lab name can neither adopt nor
remove the first one's objects, and two configs can never share a state dir.
Objects made before install ids existed carry none: the lab name decides for them.
"""

from __future__ import annotations

import json
import secrets
from dataclasses import asdict, dataclass
from pathlib import Path

from lab import naming
from lab.errors import NotOurs
from lab.inventory import write_text_atomic


@dataclass(frozen=True)
class Identity:
    """The owner stamp of one lab install."""

    lab: str
    config: str
    state_dir: str
    install: str


def identity_path(state_dir: Path) -> Path:
    return state_dir / "identity.json"


def read(state_dir: Path) -> Identity | None:
    """The recorded identity; None when there is none (or it is unreadable: a lost claim
    is re-made by the next `lab up`, objects stamped with the old id stay foreign)."""
    try:
        data = json.loads(identity_path(state_dir).read_text())
        return Identity(lab=str(data["lab"]), config=str(data["config"]),
                        state_dir=str(data["state_dir"]), install=str(data["install"]))
    except (OSError, ValueError, KeyError, TypeError):
        return None


def conflict(found: Identity, lab: str, config: Path) -> str | None:
    """Why ``found`` is not this config's identity (None when it is)."""
    if found.lab != lab or found.config != str(config):
        return (f"{found.state_dir} belongs to lab {found.lab} of {found.config}; "
                f"two configs cannot share a state dir")
    return None


def claim(lab: str, config: Path, state_dir: Path) -> Identity:
    """This config's identity for ``state_dir``, recording it on first use (call under the
    lab lock). NotOurs when another config (or lab name) already claimed the directory."""
    config = config.resolve()
    found = read(state_dir)
    if found is not None:
        why = conflict(found, lab, config)
        if why is not None:
            raise NotOurs(f"{config}: [lab] state_dir: {why}",
                          hint=f"give this config its own [lab] state_dir (or, if it replaces "
                               f"{found.config}, run `lab down` with that one and delete "
                               f"{identity_path(state_dir)})")
        return found
    me = Identity(lab=lab, config=str(config), state_dir=str(state_dir),
                  install=secrets.token_hex(6))
    write_text_atomic(identity_path(state_dir), json.dumps(asdict(me), indent=2) + "\n")
    return me


def owns(me: Identity | None, lab: str, owner_lab: str, owner_install: str | None) -> bool:
    """Whether an object stamped (owner_lab, owner_install) is this lab's.

    Unstamped (pre-install-id) objects of the same lab name are ours; stamped ones only
    when the install id is ours."""
    if owner_lab != lab:
        return False
    if owner_install is None:
        return True
    return me is not None and owner_install == me.install


#: Name suffix of the empty volume that stamps a pool with an install id
#: (``<lab>.<install>.driver-lab-install``), beside the lab's owner marker.
INSTALL_MARKER_SUFFIX = ".driver-lab-install"
#: Name infix of the empty volume that says an upload finished (``<volume>.complete-<sha>``).
DONE_INFIX = ".complete-"


def install_marker(lab: str, install: str) -> str:
    return f"{lab}.{install}{INSTALL_MARKER_SUFFIX}"


def pool_is_ours(volumes: list[str], lab: str, owner_marker: str, me: Identity | None) -> bool:
    """A pool is this lab's when it carries the lab's owner marker and, if it is stamped
    with install ids at all, this install's."""
    if owner_marker not in volumes:
        return False
    stamps = [v for v in volumes if v.startswith(f"{lab}.") and v.endswith(INSTALL_MARKER_SUFFIX)]
    return not stamps or (me is not None and install_marker(lab, me.install) in stamps)


def done_marker(volume: str, sha256: str) -> str:
    return f"{volume}{DONE_INFIX}{sha256[:16]}"


def is_lab_volume(name: str, lab: str, vms: list[str]) -> bool:
    """Whether a file in the pool is one the lab makes (uploads, overlays, markers)."""
    # the image's uploads and the lab's template (lab.template.volume_name), with marks
    if name.startswith(("kernel-", "initrd-", "golden-", "template-")):
        return True
    if name.startswith(f"{lab}.") and name.endswith((INSTALL_MARKER_SUFFIX, ".driver-lab-owner")):
        return True
    # a VM's identity media (lab.guests.windows_identity.volume_name) and its done marks
    for vol in (f"ident-{vm}.iso" for vm in [*vms, naming.TEMPLATE_VM]):
        if name == vol or name.startswith(vol + DONE_INFIX):
            return True
    return name in {f"{vm}.qcow2" for vm in vms}
