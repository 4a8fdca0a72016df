"""`lab.toml`: the lab's configuration, typed, frozen and validated once.

Every field is documented where it is declared (the ``doc`` metadata); the same
text is what ``lab config --explain`` prints. Loading never raises anything but
:class:`~lab.errors.ConfigError`, which names the file, the key and the fix.
"""

from __future__ import annotations

import difflib
import ipaddress
import re
import tomllib
import types
import typing
from dataclasses import MISSING, dataclass, field, fields
from enum import Enum, StrEnum
from pathlib import Path
from typing import Any, TypeVar

from lab import config_checks as checks
from lab import config_hosts
from lab.errors import ConfigError
from lab.naming import POOL_OWNER_SUFFIX

DEFAULT_CONFIG_NAME = "lab.toml"


class Acceleration(StrEnum):
    """How guests are run: hardware KVM, software emulation (TCG) or probe."""

    AUTO = "auto"
    KVM = "kvm"
    TCG = "tcg"


class SandboxMode(StrEnum):
    """Whether the lab runs its own libvirtd inside a network namespace."""

    AUTO = "auto"  # only when no libvirtd answers on a local URI and we are root
    ALWAYS = "always"
    NEVER = "never"


class Machine(StrEnum):
    """QEMU machine type. Both support NIC hot-unplug."""

    Q35 = "q35"  # PCIe: every hot-pluggable NIC sits on its own pcie-root-port
    PC = "pc"  # i440fx with ACPI PCI hotplug


class ImageKind(StrEnum):
    """Which golden image the VMs clone."""

    LINUX_MICRO = "linux-micro"
    WINDOWS = "windows"


#: Windows releases the lab knows how to name (``[image] windows_version``).
WINDOWS_VERSIONS: tuple[str, ...] = ("10", "11", "server2016", "server2019", "server2022",
                                     "server2025")

#: NIC models a Windows guest drives with an in-box driver (windows-notes B3: e1000e is
#: Intel 82574L, in-box on Windows 10/11 and Server 2016-2025).
WINDOWS_INBOX_NICS: frozenset[str] = frozenset({"e1000e"})

#: Guest memory a Windows guest needs (Microsoft's minimum for Server 2016+ with
#: Desktop Experience and for 64-bit client editions is 2 GB).
WINDOWS_MIN_MEMORY_MIB = 2048

#: NIC models QEMU offers for test NICs, and the Linux driver module each needs.
NIC_MODELS: dict[str, str] = {
    "virtio": "virtio_net",
    "vmxnet3": "vmxnet3",
    "e1000e": "e1000e",
    "e1000": "e1000",
    "rtl8139": "8139cp",
}

_NAME_RE = re.compile(r"^[a-z](?:[a-z0-9-]{0,13}[a-z0-9])?$")
_WIN_USER_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,19}$")
_WIN_DRIVER_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,31}$")
#: What each NIC model needs in a Windows guest (windows-notes B3, AutoHCK driver tables).
_WINDOWS_NIC_NEEDS: dict[str, str] = {
    "virtio": "needs NetKVM from virtio-win",
    "vmxnet3": "needs VMware's vmxnet3 driver",
    "e1000": "legacy 82540EM, no in-box driver on current Windows",
    "rtl8139": "legacy RTL8139, no in-box driver on current Windows",
}
# Lab names end up in Linux bridge names ("<name>-t0"), which are limited to 15 bytes.
_LAB_NAME_RE = re.compile(r"^[a-z][a-z0-9]{0,9}$")


def _doc(text: str, default: Any = MISSING) -> Any:
    """A dataclass field carrying its documentation (``metadata["doc"]``)."""
    if default is MISSING:
        return field(metadata={"doc": text})
    if isinstance(default, (list, tuple, dict)):
        value = default
        return field(default_factory=lambda: type(value)(value), metadata={"doc": text})
    return field(default=default, metadata={"doc": text})


@dataclass(frozen=True)
class LabSection:
    """[lab]: identity of the lab and the hypervisor it runs on."""

    name: str = _doc(
        "Prefix of every libvirt object the lab creates (domains, networks, pool, bridges); "
        "lowercase letters and digits, at most 10 characters.",
        "dlab",
    )
    uri: str = _doc(
        "libvirt connection URI, as virsh takes it (qemu:///system, qemu+ssh://host/system).",
        "qemu:///system",
    )
    acceleration: Acceleration = _doc(
        "auto | kvm | tcg. auto boots a short KVM probe guest once and falls back to "
        "software emulation (tcg) when KVM cannot really run a guest; the answer is cached.",
        Acceleration.AUTO,
    )
    sandbox: SandboxMode = _doc(
        "auto | always | never. With auto, when no libvirtd answers on a local URI and the "
        "user is root, the lab starts its own libvirtd/virtlogd inside a network namespace "
        "it creates, and runs its host-side work there.",
        SandboxMode.AUTO,
    )
    state_dir: str = _doc(
        "Where the lab keeps images, keys, inventory, logs and locks (relative to this file). "
        "It must lie below this file's directory or the Driver Lab checkout, and use only "
        "letters, digits and . _ + - / (the Makefile hands it to the shell).",
        "var",
    )
    pool_path: str = _doc(
        "Directory of the lab's libvirt storage pool on the hypervisor host "
        "(empty: /var/lib/libvirt/images/<name>). Absolute, not a system directory; if it "
        "exists it must be empty or already the lab's (holding <name>.driver-lab-owner), "
        "because `lab down` deletes every file in it.",
        "",
    )


@dataclass(frozen=True)
class ImageSection:
    """[image]: the golden image every VM is a linked clone of."""

    kind: ImageKind = _doc(
        "linux-micro (built here from Debian packages) or windows (a golden qcow2 you provide).",
        ImageKind.LINUX_MICRO,
    )
    kernel_package: str = _doc(
        "Debian kernel package the micro guest boots (its modules go into the image). "
        "linux-image-cloud-amd64 is small and has virtio/vmxnet3; linux-image-amd64 adds e1000e.",
        "linux-image-cloud-amd64",
    )
    disk_size_mib: int = _doc("Size of the micro guest's golden disk (MiB, sparse; 128-65536).",
                              512)
    windows_disk: str = _doc(
        "Path of the Windows golden qcow2 (only with kind = windows).", ""
    )
    windows_version: str = _doc(
        "Windows release of the golden image, for reports and hints: one of "
        + ", ".join(WINDOWS_VERSIONS) + " (empty: not stated).",
        "",
    )
    windows_user: str = _doc(
        "Account the lab logs in as over OpenSSH (an administrator).", "Administrator"
    )
    windows_ssh_key: str = _doc(
        "Private key file whose public half is in the image's "
        "C:\\ProgramData\\ssh\\administrators_authorized_keys.",
        "",
    )
    windows_host_key: str = _doc(
        "File holding the image's SSH host public key line (a copy of "
        "C:\\ProgramData\\ssh\\ssh_host_ed25519_key.pub). Each VM gets its own key at "
        "boot (identity media); this shared one is never accepted for such a VM.",
        "",
    )
    windows_ovmf_code: str = _doc(
        "OVMF firmware code (Secure Boot OFF build; Debian package ovmf).",
        "/usr/share/OVMF/OVMF_CODE_4M.fd",
    )
    windows_ovmf_vars: str = _doc(
        "OVMF variable store template matching windows_ovmf_code.",
        "/usr/share/OVMF/OVMF_VARS_4M.fd",
    )
    windows_disk_bus: str = _doc(
        "Bus of the system disk: sata (in-box driver) or virtio (only if the image has viostor).",
        "sata",
    )
    windows_verifier: list[str] = _doc(
        "Drivers (manifest names, e.g. [\"wskecho\", \"labtdi\"]) put under Driver Verifier "
        "/standard at provisioning; NDIS protocol drivers add ndis.sys.",
        [],
    )
    windows_nic_drivers: list[str] = _doc(
        "NIC models (vms.test_nics values) whose drivers your image has besides the in-box "
        "e1000e, e.g. [\"virtio\"] with NetKVM installed.",
        [],
    )


@dataclass(frozen=True)
class NetworkSection:
    """[network]: the lab's isolated libvirt networks (no forwarding)."""

    management: str = _doc(
        "IPv4 subnet of the management network (SSH rides on it; scenarios never touch it). "
        "Every lab subnet must be private (RFC 1918), no larger than a /16, and overlap no other.",
        "192.168.213.0/24",
    )
    test: list[str] = _doc(
        "IPv4 subnets of the test networks, one per test NIC slot (test NIC i of every VM "
        "sits on test network i).",
        ["192.168.214.0/24", "192.168.215.0/24"],
    )


@dataclass(frozen=True)
class VmsSection:
    """[vms]: the lab's VMs. All share these settings."""

    names: list[str] = _doc("VM names, unique: 1-15 lowercase letters, digits or '-' (1-64 VMs).",
                            ["vm1", "vm2", "vm3", "vm4"])
    memory_mib: int = _doc("Guest memory in MiB (128-65536).", 256)
    vcpus: int = _doc("Virtual CPUs per guest (1-64).", 1)
    machine: Machine = _doc(
        "q35 (PCIe root ports, native hotplug) or pc (i440fx, ACPI hotplug).", Machine.Q35
    )
    test_nics: list[str] = _doc(
        "One entry per test NIC: its QEMU model (virtio, vmxnet3, e1000e, e1000, rtl8139). "
        "1 to 16 of them.",
        ["virtio", "vmxnet3"],
    )
    hotplug_slots: int = _doc(
        "Spare hot-plug slots (q35: empty pcie-root-ports) for replugging NICs (0-16).", 4
    )
    boot_timeout_s: int = _doc(
        "Deadline for a VM to answer on SSH after start (seconds, 10-7200).", 240
    )
    template: bool = _doc(
        "Make VMs from the lab's template: one VM booted once, its memory state saved "
        "(cached beside the golden image) and restored into each VM, which then takes "
        "its own identity. false: every VM boots.",
        True,
    )


#: A Windows locale tag as Setup's International-Core-WinPE takes it ("en-US", "sr-Latn-RS").
_LOCALE_RE = re.compile(r"^[a-z]{2,3}(?:-[A-Z][a-z]{3})?-[A-Z]{2}$")
#: A product key: five groups of five characters (Microsoft's GVLK/retail key format).
_PRODUCT_KEY_RE = re.compile(r"^[A-Z0-9]{5}(?:-[A-Z0-9]{5}){4}$")
#: Smallest system disk `lab image windows` accepts (Windows 11 and Server 2022 need 64 GB
#: resp. 32 GB; Microsoft's hardware requirements pages).
WINDOWS_IMAGE_MIN_DISK_GIB = 32


@dataclass(frozen=True)
class WindowsImageSection:
    """[windows_image]: how `lab image windows` builds a Windows golden image from ISOs."""

    iso: str = _doc(
        "Windows installation ISO (Windows 10/11 or Server 2016-2025, amd64; evaluation ISOs "
        "are fine), relative to this file. `lab image windows --iso` overrides it.",
        "",
    )
    virtio_win: str = _doc(
        "virtio-win driver ISO (empty: SATA disk + in-box e1000e, no pvpanic driver). "
        "`--virtio-win` overrides it.",
        "",
    )
    edition: str = _doc(
        "Image of the ISO's install.wim: its name (as `dism /Get-WimInfo` lists it) or its "
        "index (\"2\"). `--edition` overrides it.",
        "Windows Server 2022 SERVERSTANDARD",
    )
    version: str = _doc(
        "Windows release of the ISO, which picks the virtio-win driver folders: one of "
        + ", ".join(WINDOWS_VERSIONS) + ". An edition name that names its release wins.",
        "server2022",
    )
    locale: str = _doc("Setup, system, input and user locale (e.g. en-US, de-DE).", "en-US")
    admin_user: str = _doc(
        "Administrator account the lab logs in as (its password is random per build).",
        "Administrator",
    )
    product_key: str = _doc(
        "Product key for Setup (XXXXX-XXXXX-XXXXX-XXXXX-XXXXX); empty for evaluation ISOs.", ""
    )
    openssh_zip: str = _doc(
        "Offline Win32-OpenSSH OpenSSH-Win64.zip (empty: Add-WindowsCapability, which needs "
        "Windows Update or Features-on-Demand media).",
        "",
    )
    disk_size_gib: int = _doc("System disk of the golden image (GiB, sparse).", 64)
    disk_bus: str = _doc(
        "sata (in-box driver) or virtio (viostor from virtio-win, needs virtio_win).", "sata"
    )
    tpm: bool = _doc(
        "Give the install VM an emulated TPM (swtpm). false: Windows 11 setup checks are "
        "bypassed instead.",
        False,
    )
    install_timeout_s: int = _doc(
        "Deadline for the whole unattended install and provisioning (seconds).", 7200
    )
    echo_port: int = _doc("Port the image's firewall opens for the echo drivers.", 7007)


class HostKind(StrEnum):
    """How the lab reaches a hypervisor host of [[hosts]]."""

    REMOTE = "remote"  #: another machine: its libvirt URI and its sshd as the guests' gateway
    NAMESPACE = "namespace"  #: made by the lab on this machine (lab/nshost.py): for tests


#: the interpreter a namespace host's agent runs with (the system's, as a Debian host has)
NAMESPACE_PYTHON = "/usr/bin/python3"


@dataclass(frozen=True)
class HostSection:
    """[[hosts]]: one more hypervisor host and the VMs it runs (others run on [lab] uri).
    """

    name: str = _doc("Short host name: 1-15 lowercase letters, digits or '-' (not 'local').", "")
    kind: HostKind = _doc(
        "remote | namespace. remote: another KVM host, reached with its URI; namespace: a "
        "host the lab makes on this machine (own network namespace, libvirtd and sshd), "
        "used to test a multi-host lab without a second machine.", HostKind.REMOTE)
    uri: str = _doc("libvirt URI of the host (qemu+ssh://root@kvm2/system); empty for "
                    "kind = \"namespace\" (the lab knows it).", "")
    vms: list[str] = _doc("Names from [vms] names that run on this host.", [])
    pool_path: str = _doc("Storage pool directory on that host (empty: "
                          "/var/lib/libvirt/images/<lab name>).", "")
    ssh_address: str = _doc("Address of the host's sshd, the gateway to its guests (empty: "
                            "the URI's host).", "")
    ssh_port: int = _doc("Port of the host's sshd.", 22)
    ssh_user: str = _doc("User the gateway logs in as (empty: the URI's user, else root).", "")
    ssh_key: str = _doc("Private key for the gateway (relative to this file); the lab never "
                        "reads ~/.ssh.", "")
    ssh_known_hosts: str = _doc("known_hosts file pinning the host's SSH key (relative to "
                                "this file).", "")
    agent_python: str = _doc(
        "Python >= 3.11 that runs the lab's host agent there: a command on the SSH "
        "session's PATH or an absolute path (empty: python3; for kind = \"namespace\": "
        "/usr/bin/python3, this machine's own, not a login shell's first python3).", "")

    @property
    def python(self) -> str:
        """The agent's interpreter on this host (agent_python or its kind's default)."""
        if self.agent_python:
            return self.agent_python
        return NAMESPACE_PYTHON if self.kind is HostKind.NAMESPACE else "python3"


@dataclass(frozen=True)
class LabConfig:
    """The whole of ``lab.toml``, after validation."""

    path: Path
    lab: LabSection
    image: ImageSection
    network: NetworkSection
    vms: VmsSection
    windows_image: WindowsImageSection = field(default_factory=WindowsImageSection)
    #: the [[hosts]] array: more hypervisor hosts (empty: one local host, [lab] uri)
    hosts: tuple[HostSection, ...] = ()

    @property
    def base_dir(self) -> Path:
        return self.path.parent

    @property
    def state_dir(self) -> Path:
        return (self.base_dir / self.lab.state_dir).resolve()

    @property
    def pool_path(self) -> str:
        return self.lab.pool_path or f"/var/lib/libvirt/images/{self.lab.name}"


SECTIONS: dict[str, type[Any]] = {
    "lab": LabSection,
    "image": ImageSection,
    "network": NetworkSection,
    "vms": VmsSection,
    "windows_image": WindowsImageSection,
}

T = TypeVar("T")


#: Largest lab.toml read (a real one is a few hundred bytes).
MAX_CONFIG_BYTES = 1 << 20


def load_config(path: Path | str | None = None) -> LabConfig:
    """Read and validate ``lab.toml``; a missing file means all defaults."""
    if path is not None and not str(path):
        raise ConfigError("''", "-", "is an empty path (--config \"\")",
                          "pass the path of a lab.toml, or omit --config for ./lab.toml")
    try:
        cfg_path = Path(path or DEFAULT_CONFIG_NAME).resolve()
    except (OSError, RuntimeError, ValueError) as exc:
        raise ConfigError(repr(str(path)), "-", f"is not a usable path ({exc})",
                          "pass the path of a lab.toml with --config") from None
    where = str(cfg_path)
    if not checks.path_exists(where, "-", cfg_path):
        if path is not None:
            raise ConfigError(where, "-", "does not exist",
                              "pass an existing file with --config, or omit it for the defaults")
        return parse_config({}, cfg_path)
    return parse_config(_read_toml(cfg_path), cfg_path)


def _read_toml(cfg_path: Path) -> dict[str, Any]:
    """The parsed document; every way a file can be unreadable is a ConfigError."""
    where = str(cfg_path)
    if cfg_path.is_dir():
        raise ConfigError(where, "-", "is a directory, not a file",
                          f"pass the file itself, e.g. --config {cfg_path / DEFAULT_CONFIG_NAME}")
    if not cfg_path.is_file():
        raise ConfigError(where, "-", "is not a regular file (device, FIFO or socket)",
                          "pass a lab.toml file with --config")
    try:
        with cfg_path.open("rb") as fh:
            data = fh.read(MAX_CONFIG_BYTES + 1)
    except OSError as exc:
        raise ConfigError(where, "-", f"cannot be read ({exc.strerror})",
                          "make it readable by the user running lab") from None
    if len(data) > MAX_CONFIG_BYTES:
        raise ConfigError(where, "-", f"is larger than {MAX_CONFIG_BYTES} bytes",
                          "a lab.toml is a few hundred bytes; pass the right file")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data[:exc.start].count(b"\n") + 1
        raise ConfigError(where, "-", f"is not UTF-8 text (byte {data[exc.start]:#04x} "
                          f"on line {line})", "save it as UTF-8 (TOML requires it)") from None
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(where, "-", f"is not valid TOML: {exc}",
                          "fix the syntax at the position shown") from None
    except RecursionError:
        raise ConfigError(where, "-", "nests arrays or tables too deeply to read",
                          "lab.toml needs no nesting beyond [section] key = [list]") from None


def parse_config(raw: dict[str, Any], path: Path) -> LabConfig:
    """Validate a parsed TOML document (pure: no I/O except image existence checks)."""
    where = str(path)
    raw = dict(raw)
    hosts = _hosts(raw.pop("hosts", []), where)
    for key in raw:
        if key not in SECTIONS:
            known = [*SECTIONS, "hosts"]
            raise ConfigError(where, key, "is not a known section",
                              _suggest(key, known) or f"known sections: {', '.join(known)}")
    parts: dict[str, Any] = {"hosts": hosts}
    for section, cls in SECTIONS.items():
        table = raw.get(section, {})
        if not isinstance(table, dict):
            raise ConfigError(where, section, "must be a table", f"write it as [{section}]")
        parts[section] = _build(cls, table, where, section)
    config = LabConfig(path=path, **parts)
    _validate(config)
    return config


def _hosts(raw: Any, where: str) -> tuple[HostSection, ...]:
    """The [[hosts]] array of tables, each entry built like a section."""
    if not isinstance(raw, list) or not all(isinstance(t, dict) for t in raw):
        raise ConfigError(where, "hosts", "must be an array of tables",
                          "write each host as a [[hosts]] table")
    return tuple(_build(HostSection, table, where, f"hosts[{i}]") for i, table in enumerate(raw))


def _suggest(key: str, known: typing.Iterable[str]) -> str | None:
    close = difflib.get_close_matches(key, list(known), n=1)
    return f"did you mean '{close[0]}'?" if close else None


def _build(cls: type[T], table: dict[str, Any], where: str, section: str) -> T:
    hints = typing.get_type_hints(cls)
    known = {f.name for f in fields(cls)}  # type: ignore[arg-type]
    for key in table:
        if key not in known:
            fix = _suggest(key, known) or f"known keys: {', '.join(sorted(known))}"
            raise ConfigError(where, f"{section}.{key}", "is not a known key", fix)
    values = {k: _coerce(hints[k], v, where, f"{section}.{k}") for k, v in table.items()}
    return cls(**values)


def _coerce(hint: Any, value: Any, where: str, key: str) -> Any:
    if isinstance(hint, type) and issubclass(hint, Enum):
        allowed = [m.value for m in hint]
        if value not in allowed:
            raise ConfigError(where, key, f"is {value!r}", f"use one of: {', '.join(allowed)}")
        return hint(value)
    origin = typing.get_origin(hint)
    if origin is list:
        (item,) = typing.get_args(hint)
        if not isinstance(value, list):
            raise ConfigError(where, key, f"must be a list, got {type(value).__name__}",
                              f'write it as {key.split(".")[-1]} = [...]')
        return [_coerce(item, v, where, key) for v in value]
    if isinstance(hint, types.UnionType):
        raise TypeError(f"unsupported config type {hint}")
    if hint is int and (isinstance(value, bool) or not isinstance(value, int)):
        raise ConfigError(where, key, f"must be an integer, got {value!r}", "write a whole number")
    if hint is bool and not isinstance(value, bool):
        name = key.split(".")[-1]
        raise ConfigError(where, key, f"must be true or false, got {value!r}",
                          f"write {name} = true or {name} = false (no quotes)")
    if hint is str:
        _check_text(value, where, key)
    return value


#: Longest string value (paths, names, URIs); anything longer is a mistake.
MAX_TEXT = 1024


def _check_text(value: Any, where: str, key: str) -> None:
    """A single line of printable text: control characters (newline, NUL, escape) would
    end up in file names, command lines, XML and Makefile expansions."""
    if not isinstance(value, str):
        raise ConfigError(where, key, f"must be a string, got {value!r}", "quote the value")
    if len(value) > MAX_TEXT:
        raise ConfigError(where, key, f"is {len(value)} characters long",
                          f"keep it under {MAX_TEXT} characters")
    bad = [c for c in value if ord(c) < 0x20 or 0x7F <= ord(c) < 0xA0]
    if bad:
        raise ConfigError(where, key, f"contains the control character {bad[0]!r}",
                          "write it on one line without control characters")


def _validate(config: LabConfig) -> None:
    where = str(config.path)
    lab, vms, net = config.lab, config.vms, config.network
    if not _LAB_NAME_RE.match(lab.name):
        raise ConfigError(where, "lab.name", f"{lab.name!r} is not a valid lab name",
                          "use 1-10 lowercase letters or digits, starting with a letter")
    _validate_vms(where, vms)
    _validate_subnets(where, net, len(vms.test_nics), len(vms.names))
    _validate_host_paths(where, config)
    config_hosts.validate(where, config)
    checks.check_deb_package(where, "image.kernel_package", config.image.kernel_package)
    disk = config.base_dir / config.image.windows_disk
    if config.image.windows_disk and checks.path_exists(where, "image.windows_disk", disk):
        checks.check_qcow2(where, "image.windows_disk", disk)
    if config.image.kind is ImageKind.WINDOWS:
        _validate_windows(where, config)
    _validate_windows_image(where, config.windows_image)
    checks.check_range(where, "image.disk_size_mib", config.image.disk_size_mib,
                       *DISK_SIZE_MIB, " (the module tree needs 128 MiB; the disk is a "
                       "small sparse file)")


def _validate_host_paths(where: str, config: LabConfig) -> None:
    """The URI, the state directory and the pool: what reaches commands and the disk."""
    lab = config.lab
    checks.check_uri(where, "lab.uri", lab.uri)
    try:
        state_dir = config.state_dir
    except (OSError, RuntimeError) as exc:
        raise ConfigError(where, "lab.state_dir", f"cannot be resolved ({exc})",
                          'use a plain directory, e.g. state_dir = "var"') from None
    checks.check_state_dir(where, "lab.state_dir", lab.state_dir, state_dir, config.base_dir)
    root = checks.project_root()
    keep_out = [config.base_dir, state_dir] + ([root] if root is not None else [])
    if lab.pool_path:
        checks.check_pool_path(where, "lab.pool_path", lab.pool_path, keep_out)
    if checks.uri_is_local(lab.uri):
        checks.check_pool_dir_is_ours(where, "lab.pool_path", Path(config.pool_path),
                                      f"{lab.name}{POOL_OWNER_SUFFIX}")


def _validate_windows(where: str, config: LabConfig) -> None:
    """Windows-only keys (kind = windows); files other than the disk are checked by the kind."""
    image, vms = config.image, config.vms
    disk = Path(image.windows_disk)
    if not image.windows_disk or not (config.base_dir / disk).exists():
        raise ConfigError(where, "image.windows_disk",
                          f"names no existing file ({image.windows_disk!r})",
                          "point it at your Windows golden qcow2, "
                          "or use kind = \"linux-micro\"")
    if image.windows_version and image.windows_version not in WINDOWS_VERSIONS:
        raise ConfigError(where, "image.windows_version", f"is {image.windows_version!r}",
                          f"use one of: {', '.join(WINDOWS_VERSIONS)}")
    if not _WIN_USER_RE.match(image.windows_user):
        raise ConfigError(where, "image.windows_user", f"{image.windows_user!r} is not an "
                          "account name the lab can pass to ssh",
                          "use letters, digits, '.', '_' or '-' (e.g. Administrator)")
    for key in ("windows_ssh_key", "windows_host_key"):
        if not getattr(image, key):
            raise ConfigError(where, f"image.{key}", "is empty (kind = windows needs it)",
                              "set it to the file you made when you built the golden image")
    if image.windows_disk_bus not in ("sata", "virtio"):
        raise ConfigError(where, "image.windows_disk_bus", f"is {image.windows_disk_bus!r}",
                          "use sata (in-box) or virtio (image has viostor)")
    for name in image.windows_verifier:
        if not _WIN_DRIVER_RE.match(name):
            raise ConfigError(where, "image.windows_verifier", f"{name!r} is not a driver name",
                              "list manifest names like \"wskecho\" (without .sys)")
    for model in image.windows_nic_drivers:
        if model not in NIC_MODELS:
            raise ConfigError(where, "image.windows_nic_drivers", f"model {model!r} is unknown",
                              f"use one of: {', '.join(NIC_MODELS)}")
    if vms.memory_mib < WINDOWS_MIN_MEMORY_MIB:
        raise ConfigError(where, "vms.memory_mib",
                          f"is {vms.memory_mib}, too little for Windows",
                          f"set [vms] memory_mib = {WINDOWS_MIN_MEMORY_MIB} or more (4096 is "
                          "comfortable)")
    for model in vms.test_nics:
        if model not in WINDOWS_INBOX_NICS and model not in image.windows_nic_drivers:
            raise ConfigError(where, "vms.test_nics",
                              f"model {model!r} has no in-box Windows driver "
                              f"({_WINDOWS_NIC_NEEDS.get(model, 'needs a vendor driver')})",
                              "use e1000e, or install the driver in your image and add "
                              f"\"{model}\" to [image] windows_nic_drivers")


def _validate_windows_image(where: str, section: WindowsImageSection) -> None:
    """[windows_image] keys by themselves; files are checked by `lab image windows`."""
    key = "windows_image."
    if not section.edition.strip():
        raise ConfigError(where, key + "edition", "is empty",
                          "name the install.wim image (e.g. \"Windows Server 2022 "
                          "SERVERSTANDARD\") or give its index (\"1\")")
    if section.edition.isdigit() and int(section.edition) < 1:
        raise ConfigError(where, key + "edition", "index 0 does not exist",
                          "install.wim indexes start at 1")
    if section.version not in WINDOWS_VERSIONS:
        raise ConfigError(where, key + "version", f"is {section.version!r}",
                          f"use one of: {', '.join(WINDOWS_VERSIONS)}")
    if not _LOCALE_RE.match(section.locale):
        raise ConfigError(where, key + "locale", f"{section.locale!r} is not a locale tag",
                          "write it like \"en-US\" or \"de-DE\"")
    if not _WIN_USER_RE.match(section.admin_user):
        raise ConfigError(where, key + "admin_user", f"{section.admin_user!r} is not an "
                          "account name the lab can pass to ssh",
                          "use letters, digits, '.', '_' or '-' (e.g. Administrator)")
    if section.product_key and not _PRODUCT_KEY_RE.match(section.product_key):
        raise ConfigError(where, key + "product_key", "is not a product key",
                          "write XXXXX-XXXXX-XXXXX-XXXXX-XXXXX, or leave it empty")
    if section.disk_bus not in ("sata", "virtio"):
        raise ConfigError(where, key + "disk_bus", f"is {section.disk_bus!r}",
                          "use sata (in-box driver) or virtio (needs virtio_win)")
    if not isinstance(section.tpm, bool):
        raise ConfigError(where, key + "tpm", f"must be true or false, got {section.tpm!r}",
                          "write tpm = true or tpm = false (no quotes)")
    for name, value, low, high in (
            ("disk_size_gib", section.disk_size_gib, WINDOWS_IMAGE_MIN_DISK_GIB, 4096),
            ("install_timeout_s", section.install_timeout_s, 600, 86400),
            ("echo_port", section.echo_port, 1, 65535)):
        if not low <= value <= high:
            raise ConfigError(where, key + name, f"is {value}, outside {low}..{high}",
                              f"set it between {low} and {high}")


#: Allowed ranges of the sizes and deadlines (refused at load, not when a VM fails to start).
VM_LIMITS: dict[str, tuple[int, int]] = {
    "memory_mib": (128, 65536), "vcpus": (1, 64), "hotplug_slots": (0, 16),
    "boot_timeout_s": (10, 7200),
}
DISK_SIZE_MIB = (128, 65536)
#: VM and test NIC counts: MACs encode each in one byte (naming.mac_address) and test
#: bridges are named <lab>-t<slot> in 15 bytes; the caps below are what a host can run.
MAX_VMS = 64
MAX_TEST_NICS = 16


def _validate_vms(where: str, vms: VmsSection) -> None:
    if not vms.names:
        raise ConfigError(where, "vms.names", "is empty", "name at least one VM, e.g. [\"vm1\"]")
    checks.check_count(where, "vms.names", len(vms.names), 1, MAX_VMS,
                       "one MAC byte and one address per VM")
    seen: set[str] = set()
    for name in vms.names:
        if not _NAME_RE.match(name):
            raise ConfigError(where, "vms.names", f"{name!r} is not a valid VM name",
                              "use 1-15 lowercase letters, digits or '-', starting with a "
                              "letter and not ending with '-'")
        if name in seen:
            raise ConfigError(where, "vms.names", f"names {name!r} twice",
                              "give every VM a unique name")
        seen.add(name)
    if not vms.test_nics:
        raise ConfigError(where, "vms.test_nics", "has no test NIC (NIC count 0)",
                          "list at least one NIC model, e.g. [\"virtio\"]")
    checks.check_count(where, "vms.test_nics", len(vms.test_nics), 1, MAX_TEST_NICS,
                       "one network, bridge and PCI slot per test NIC")
    for model in vms.test_nics:
        if model not in NIC_MODELS:
            raise ConfigError(where, "vms.test_nics", f"model {model!r} is unknown",
                              f"use one of: {', '.join(NIC_MODELS)}")
    for key, (low, high) in VM_LIMITS.items():
        checks.check_range(where, f"vms.{key}", getattr(vms, key), low, high)


def _validate_subnets(where: str, net: NetworkSection, n_test: int, n_vms: int) -> None:
    nets: list[ipaddress.IPv4Network] = []
    for key, text in [("network.management", net.management)] + [
        (f"network.test[{i}]", t) for i, t in enumerate(net.test)
    ]:
        try:
            subnet = ipaddress.IPv4Network(text)
        except ValueError as exc:
            raise ConfigError(where, key, f"{text!r} is not an IPv4 subnet ({exc})",
                              "write it like \"192.168.213.0/24\"") from None
        checks.check_subnet(where, key, subnet)
        if subnet.num_addresses < n_vms + 16:
            raise ConfigError(where, key, f"{text} is too small for {n_vms} VMs",
                              "use a /24 or larger")
        if any(subnet.overlaps(other) for other in nets):
            raise ConfigError(where, key, f"{text} overlaps another lab subnet",
                              "give every network its own subnet")
        nets.append(subnet)
    if len(net.test) < n_test:
        raise ConfigError(where, "network.test",
                          f"has {len(net.test)} subnets for {n_test} test NICs per VM",
                          "add one subnet per entry of vms.test_nics")


def explain() -> str:
    """Every section and key with its default and documentation (for `lab config`)."""
    lines: list[str] = []
    tables: list[tuple[str, type[Any]]] = [(f"[{k}]", v) for k, v in SECTIONS.items()]
    for title, cls in [*tables, ("[[hosts]]", typing.cast(type[Any], HostSection))]:
        lines.append(f"{title}  # {cls.__doc__.splitlines()[0] if cls.__doc__ else ''}")
        for f in fields(cls):
            default = f.default_factory() if f.default_factory is not MISSING else f.default
            if isinstance(default, Enum):
                default = default.value
            lines.append(f"# {f.metadata['doc']}")
            lines.append(f"{f.name} = {_toml_value(default)}")
        lines.append("")
    return "\n".join(lines)


def _toml_value(value: Any) -> str:
    if isinstance(value, str):
        return f'"{value}"'
    if isinstance(value, list):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    return str(value).lower() if isinstance(value, bool) else str(value)
