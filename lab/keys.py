"""The lab's key pair (client login) and the guests' pinned host key.

Both are made once per lab state directory: the client key with `cryptography`
(OpenSSH format, usable by `ssh -i` too), the guest host key with dropbearkey.
The guest host key is baked into the golden image at build time, so the lab
knows it before any guest boots and never has to trust a key blindly.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from lab.errors import LabFailure
from lab.hosttools import run_tool


@dataclass(frozen=True)
class LabKeys:
    client_private: Path  # OpenSSH private key the lab logs in with
    client_public: str  # "ssh-ed25519 AAAA... driver-lab"
    host_key_dropbear: Path  # guest host key, dropbear format
    host_public: str  # "ssh-ed25519 AAAA..." pinned in known_hosts


def ensure_keys(key_dir: Path) -> LabKeys:
    key_dir.mkdir(parents=True, exist_ok=True)
    os.chmod(key_dir, 0o700)
    client = key_dir / "id_ed25519"
    if not client.exists():
        _write_client_key(client)
    host = key_dir / "guest_host_ed25519.dropbear"
    if not host.exists():  # made aside, then renamed: a cut key (full disk) is never kept
        tmp = host.with_suffix(".tmp")
        tmp.unlink(missing_ok=True)
        run_tool(["dropbearkey", "-t", "ed25519", "-f", str(tmp)],
                 "generating the guest host key", timeout=60)
        os.replace(tmp, host)
    host_pub = _host_public(host)
    return LabKeys(client_private=client,
                   client_public=(key_dir / "id_ed25519.pub").read_text().strip(),
                   host_key_dropbear=host, host_public=host_pub)


def _write_client_key(path: Path) -> None:
    key = Ed25519PrivateKey.generate()
    private = key.private_bytes(serialization.Encoding.PEM,
                                serialization.PrivateFormat.OpenSSH,
                                serialization.NoEncryption())
    public = key.public_key().public_bytes(serialization.Encoding.OpenSSH,
                                           serialization.PublicFormat.OpenSSH)
    # The public half first, both atomically: the private key's presence says the pair
    # is complete (a full disk never leaves a private key without its public line).
    pub_tmp = path.with_suffix(".pub.tmp")
    pub_tmp.write_text(public.decode() + " driver-lab\n")
    os.replace(pub_tmp, path.with_suffix(".pub"))
    tmp = path.with_suffix(".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as fh:
        fh.write(private)
    os.replace(tmp, path)


def host_public_line(host_key: Path) -> str:
    """The "ssh-ed25519 AAAA..." line of a dropbear private key file."""
    return _host_public(host_key)


def _host_public(host_key: Path) -> str:
    out = run_tool(["dropbearkey", "-y", "-f", str(host_key)],
                   "reading the guest host key", timeout=60)
    for line in out.splitlines():
        if line.startswith("ssh-ed25519 "):
            kind, blob = line.split()[:2]
            return f"{kind} {blob}"
    raise LabFailure(f"dropbearkey printed no public key for {host_key}")
