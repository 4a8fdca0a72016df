"""Checks on `lab.toml` values that reach the host: paths, the libvirt URI, subnets, sizes.

Each value here ends up in a command line, a Makefile ``$(shell ...)``, a libvirt
XML document or a directory the lab writes and later deletes. A dangerous or
absurd value is refused at load time with a :class:`~lab.errors.ConfigError`
(file, key, fix) instead of failing late or doing harm.
"""

from __future__ import annotations

import ipaddress
import os
import re
from collections.abc import Iterable
from pathlib import Path
from urllib.parse import parse_qsl, urlsplit

from lab.errors import ConfigError

#: Characters a path the lab hands to make, shells or libvirt may contain.
SAFE_PATH_RE = re.compile(r"^[A-Za-z0-9._/+-]+$")
_SAFE_PATH_FIX = "use only letters, digits and . _ + - / (no spaces, quotes, $, ;, backticks)"

#: Directories the lab must never write into or delete (the directory itself).
SYSTEM_DIRS: frozenset[str] = frozenset({
    "/", "/bin", "/boot", "/dev", "/etc", "/home", "/lib", "/lib32", "/lib64", "/libx32",
    "/media", "/mnt", "/opt", "/proc", "/root", "/run", "/sbin", "/srv", "/sys", "/tmp",
    "/usr", "/var", "/var/lib", "/var/lib/libvirt", "/var/lib/libvirt/images", "/var/log",
    "/var/tmp", "/var/cache", "/var/run", "/var/spool", "/var/mail", "/var/opt",
    "/var/local", "/var/backups",
})
#: Trees nothing of the lab's may live in.
SYSTEM_TREES: tuple[str, ...] = ("/bin", "/boot", "/dev", "/etc", "/lib", "/lib32", "/lib64",
                                 "/libx32", "/proc", "/sbin", "/sys", "/usr")

#: The private IPv4 ranges of RFC 1918; lab networks must sit inside one of them.
RFC1918: tuple[ipaddress.IPv4Network, ...] = tuple(
    ipaddress.IPv4Network(n) for n in ("10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16"))

#: libvirt transports the lab accepts ("" is qemu:///...). ``ext`` runs an arbitrary
#: local command and is refused.
URI_TRANSPORTS: frozenset[str] = frozenset({"", "unix", "ssh", "libssh", "libssh2", "tcp",
                                            "tls"})
#: URI parameters the lab accepts; ``command``, ``netcat`` and ``proxy`` choose what
#: runs on the far side and are refused.
URI_PARAMS: frozenset[str] = frozenset({"socket", "keyfile", "no_verify", "no_tty", "sshauth",
                                        "known_hosts", "known_hosts_verify", "pkipath", "mode"})
_URI_HOST_RE = re.compile(
    r"^(?:[A-Za-z0-9](?:[A-Za-z0-9.-]{0,251}[A-Za-z0-9])?|\[[0-9A-Fa-f:.]+\])$")
_URI_USER_RE = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9._-]{0,31}$")
_URI_VALUE_RE = re.compile(r"^[A-Za-z0-9._/+,:=][A-Za-z0-9._/+,:=-]*$")
_URI_FIX = 'write it like "qemu:///system" or "qemu+ssh://user@host/system"'

#: Debian package names (Policy 5.6.1); also keeps option-like values off apt's argv.
_DEB_PACKAGE_RE = re.compile(r"^[a-z0-9][a-z0-9+.-]{1,99}$")
QCOW2_MAGIC = b"QFI\xfb"
#: Longest file name Linux file systems take (NAME_MAX).
NAME_MAX = 255


def project_root() -> Path | None:
    """The Driver Lab checkout this package runs from (None when installed elsewhere)."""
    root = Path(__file__).resolve().parents[1]
    return root if (root / "pyproject.toml").is_file() else None


def _inside(path: Path, parent: Path) -> bool:
    return path == parent or parent in path.parents


def _system_dir(path: Path) -> bool:
    text = str(path)
    return (text in SYSTEM_DIRS or path.parent == Path("/home") or path == Path.home()
            or any(_inside(path, Path(tree)) for tree in SYSTEM_TREES))


def check_safe_path(where: str, key: str, text: str, what: str = "") -> None:
    """``text`` must be made of characters no shell, make or libvirt reads specially."""
    if not SAFE_PATH_RE.match(text):
        bad = sorted({c for c in text if not SAFE_PATH_RE.match(c)})
        raise ConfigError(where, key, f"{what or repr(text)} contains {''.join(bad)!r}, "
                          "which the Makefile and shell commands would interpret",
                          _SAFE_PATH_FIX)
    if any(len(part.encode()) > NAME_MAX for part in text.split("/")):
        raise ConfigError(where, key, f"{what or repr(text)[:60]} has a name longer than "
                          f"{NAME_MAX} bytes", "use shorter directory names")


def path_exists(where: str, key: str, path: Path) -> bool:
    """Whether ``path`` exists; a path that cannot even be looked at (too long, no
    permission on a parent) is a ConfigError rather than an OSError later."""
    try:
        os.stat(path)
    except (FileNotFoundError, NotADirectoryError):
        return False
    except OSError as exc:
        raise ConfigError(where, key, f"{str(path)[:80]} cannot be looked at ({exc.strerror})",
                          "use a shorter path the user running lab may read") from None
    except ValueError as exc:
        raise ConfigError(where, key, f"{str(path)[:80]} is not a usable path ({exc})",
                          "write a plain path") from None
    return True


def check_state_dir(where: str, key: str, raw: str, resolved: Path, config_dir: Path) -> None:
    """The state directory: plain characters, inside the project, not a system directory."""
    check_safe_path(where, key, raw)
    check_safe_path(where, key, str(resolved), f"resolves to {str(resolved)!r}, which")
    roots = [config_dir] + [r for r in (project_root(),) if r is not None]
    if not any(_inside(resolved, root) for root in roots):
        raise ConfigError(where, key, f"resolves to {resolved}, outside the project "
                          f"({' or '.join(str(r) for r in roots)})",
                          "use a directory below the config file or the Driver Lab checkout, "
                          'e.g. state_dir = "var"')
    if _system_dir(resolved):
        raise ConfigError(where, key, f"resolves to the system directory {resolved}",
                          'use a directory of its own, e.g. state_dir = "var"')


def check_pool_path(where: str, key: str, text: str, keep_out: Iterable[Path]) -> None:
    """``pool_path`` as written: absolute, normal, plain, not a system directory, and not
    holding any directory of the lab's own (libvirt lists a pool's files as volumes and
    `lab down` deletes every volume)."""
    check_safe_path(where, key, text)
    if not text.startswith("/"):
        raise ConfigError(where, key, f"{text!r} is relative (libvirt needs an absolute path)",
                          'write an absolute path, e.g. "/var/lib/libvirt/images/dlab"')
    if os.path.normpath(text) != text:
        raise ConfigError(where, key, f"{text!r} is not a normal path (., .. or //)",
                          f"write it as {os.path.normpath(text)!r}")
    path = Path(text)
    try:
        real = path.resolve()
    except (OSError, RuntimeError) as exc:
        raise ConfigError(where, key, f"{text} cannot be resolved ({exc})",
                          "use a plain directory without symlink loops") from None
    if _system_dir(path) or _system_dir(real):
        shown = text if real == path else f"{text} (really {real})"
        raise ConfigError(where, key, f"{shown} is, or lies in, a system directory",
                          'use a directory of the lab\'s own, e.g. "/var/lib/libvirt/images/dlab"')
    for mine in keep_out:
        if _inside(mine, path) or _inside(mine, real):
            raise ConfigError(where, key, f"{text} contains {mine} (its files would become "
                              "pool volumes that `lab down` deletes)",
                              "use a separate directory, e.g. /var/lib/libvirt/images/<name>")


def check_pool_dir_is_ours(where: str, key: str, path: Path, marker: str) -> None:
    """An existing pool directory must be empty or carry the lab's owner marker volume."""
    if not path_exists(where, key, path):
        return
    if not path.is_dir():
        raise ConfigError(where, key, f"{path} exists and is not a directory",
                          "point it at a new or empty directory")
    try:
        entries = {e.name for e in os.scandir(path)}
    except OSError:
        return  # not ours to list (e.g. root's 0711 libvirt directory): libvirt decides
    if entries and marker not in entries:
        raise ConfigError(where, key, f"{path} is an existing non-empty directory the lab did "
                          f"not create (no {marker} in it); the lab would adopt it and "
                          "`lab down` would delete its files",
                          "point it at a new or empty directory (the lab creates and marks it)")


def uri_is_local(uri: str) -> bool:
    """Whether the URI names the libvirtd of this machine (no remote host)."""
    parts = urlsplit(uri)
    return not parts.netloc and parts.scheme in ("qemu", "qemu+unix")


def check_uri(where: str, key: str, uri: str) -> None:
    """A qemu URI with a known transport, a system/session path and harmless parameters."""
    try:
        parts = urlsplit(uri)
        port = parts.port
    except ValueError as exc:
        raise ConfigError(where, key, f"{uri!r} is not a URI ({exc})", _URI_FIX) from None
    driver, _, transport = parts.scheme.partition("+")
    if driver != "qemu" or transport not in URI_TRANSPORTS:
        raise ConfigError(where, key, f"{uri!r}: scheme {parts.scheme!r} is not qemu with a "
                          f"known transport ({', '.join(sorted(URI_TRANSPORTS - {''}))})",
                          _URI_FIX)
    if parts.fragment:
        raise ConfigError(where, key, f"{uri!r} has a fragment (#{parts.fragment})", _URI_FIX)
    if parts.path not in ("/system", "/session"):
        raise ConfigError(where, key, f"{uri!r}: path {parts.path!r} is not /system or /session",
                          _URI_FIX)
    local = transport in ("", "unix")
    if local and parts.netloc:
        raise ConfigError(where, key, f"{uri!r}: a local transport takes no host",
                          'write "qemu:///system", or add a transport (qemu+ssh://host/system)')
    if not local:
        _check_uri_host(where, key, uri, parts.hostname, parts.username, parts.password, port)
    _check_uri_params(where, key, uri, parts.query)


def _check_uri_host(where: str, key: str, uri: str, host: str | None, user: str | None,
                    password: str | None, port: int | None) -> None:
    if not host or not _URI_HOST_RE.match(host if ":" not in host else f"[{host}]"):
        raise ConfigError(where, key, f"{uri!r}: host {host!r} is not a host name or address",
                          _URI_FIX)
    if user is not None and not _URI_USER_RE.match(user):
        raise ConfigError(where, key, f"{uri!r}: user {user!r} is not a plain account name",
                          _URI_FIX)
    if password is not None:
        raise ConfigError(where, key, f"{uri!r} contains a password",
                          "remove it; use an SSH key or TLS certificates")
    if port is not None and not 1 <= port <= 65535:
        raise ConfigError(where, key, f"{uri!r}: port {port} is outside 1..65535", _URI_FIX)


def _check_uri_params(where: str, key: str, uri: str, query: str) -> None:
    try:
        params = parse_qsl(query, keep_blank_values=True, strict_parsing=bool(query))
    except ValueError:
        raise ConfigError(where, key, f"{uri!r}: the query is malformed", _URI_FIX) from None
    for name, value in params:
        if name not in URI_PARAMS:
            raise ConfigError(where, key, f"{uri!r}: parameter {name!r} is not allowed "
                              "(it can run commands or is unknown)",
                              f"use only: {', '.join(sorted(URI_PARAMS))}")
        if value and not _URI_VALUE_RE.match(value):
            raise ConfigError(where, key, f"{uri!r}: value {value!r} of {name} contains "
                              "characters the lab does not pass on", _SAFE_PATH_FIX)


def check_subnet(where: str, key: str, subnet: ipaddress.IPv4Network) -> None:
    """A lab network must be private (RFC 1918) and of a sensible size."""
    if not any(subnet.subnet_of(private) for private in RFC1918):
        raise ConfigError(where, key, f"{subnet} is not a private (RFC 1918) subnet; it may be "
                          "loopback, 0.0.0.0, link-local or somebody's public network",
                          "use a subnet of 10.0.0.0/8, 172.16.0.0/12 or 192.168.0.0/16")
    if subnet.prefixlen < 16:
        raise ConfigError(where, key, f"{subnet} is larger than a /16",
                          "use a /16 to /24 (a /24 is plenty)")


def check_range(where: str, key: str, value: int, low: int, high: int, why: str = "") -> None:
    """An integer within ``low..high`` (both included)."""
    if not low <= value <= high:
        raise ConfigError(where, key, f"is {value}, outside {low}..{high}" + why,
                          f"set it between {low} and {high}")


def check_count(where: str, key: str, count: int, low: int, high: int, why: str) -> None:
    """A list's length within ``low..high``."""
    if not low <= count <= high:
        raise ConfigError(where, key, f"has {count} entries, outside {low}..{high} ({why})",
                          f"list between {low} and {high}")


def check_qcow2(where: str, key: str, path: Path) -> None:
    """An existing image file must be a qcow2 (magic ``QFI\\xfb``)."""
    if not path.is_file():
        raise ConfigError(where, key, f"{path} is not a regular file",
                          "point it at your Windows golden qcow2")
    try:
        with path.open("rb") as fh:
            magic = fh.read(4)
    except OSError as exc:
        raise ConfigError(where, key, f"{path} cannot be read ({exc.strerror})",
                          "make it readable by the user running lab") from None
    if magic != QCOW2_MAGIC:
        raise ConfigError(where, key, f"{path} is not a qcow2 image (starts with {magic!r})",
                          "convert it: qemu-img convert -O qcow2 IN.img OUT.qcow2")


def check_deb_package(where: str, key: str, name: str) -> None:
    if not _DEB_PACKAGE_RE.match(name):
        raise ConfigError(where, key, f"{name!r} is not a Debian package name",
                          "write a package name like linux-image-cloud-amd64")
