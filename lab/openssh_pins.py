"""The options every OpenSSH client the lab starts carries, in one place.

The lab runs the system ``ssh`` in four shapes: an agent's pipe
(:func:`lab.agent_pipes.openssh_argv`), ``lab ssh`` to a guest and its gateway hop
(:mod:`lab.commands`), and the ssh wrapper libvirt's ``qemu+ssh://`` runs
(:func:`lab.nshost.write_ssh_wrapper`). Each trusts only the host keys the lab pinned
and offers only the lab's key: no agent, no key from ``~/.ssh``, a host key checked
strictly and never learnt or rewritten, no DNS-vs-address check of the key. The caller
adds the key file itself (``-i`` or ``IdentityFile``) and reads no configuration
(``-F``).
"""

from __future__ import annotations

import os


def pinned(known_hosts: str) -> dict[str, str]:
    """Pinned-host and lab-key-only options (OpenSSH ``-o`` names and values)."""
    return {
        "IdentitiesOnly": "yes",
        "IdentityAgent": "none",
        "UserKnownHostsFile": known_hosts,
        "GlobalKnownHostsFile": os.devnull,
        "StrictHostKeyChecking": "yes",
        "UpdateHostKeys": "no",
        "CheckHostIP": "no",
    }


def as_argv(options: dict[str, str]) -> list[str]:
    """``-o Name=value`` for each option, in order."""
    argv: list[str] = []
    for name, value in options.items():
        argv += ["-o", f"{name}={value}"]
    return argv


def as_config(options: dict[str, str]) -> list[str]:
    """``  Name value`` lines of an ssh_config ``Host`` block."""
    return [f"  {name} {value}" for name, value in options.items()]
