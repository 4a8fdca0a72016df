"""The only module that imports libvirt.

A thin, typed wrapper: lazy connect, idempotent close, libvirt errors classified
by error code (never by message text) into :class:`LabFailure`, and ownership
read from the lab metadata every domain and network carries.
"""

from __future__ import annotations

import shutil
import threading
import xml.etree.ElementTree as ET
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any, ClassVar

import libvirt
import libvirt_qemu

from lab import naming
from lab.errors import AgentUnavailable, HypervisorLost, LabFailure

OWNER_MARKER_SUFFIX = naming.POOL_OWNER_SUFFIX


@dataclass(frozen=True)
class Owner:
    """Lab metadata read back from a libvirt object."""

    lab: str
    run: str
    vm: str | None
    install: str | None = None  #: lab.identity install id (None: made before install ids)
    state_dir: str | None = None


class DomainState:
    """libvirt domain states the lab cares about (VIR_DOMAIN_*)."""

    RUNNING = libvirt.VIR_DOMAIN_RUNNING
    BLOCKED = libvirt.VIR_DOMAIN_BLOCKED
    PAUSED = libvirt.VIR_DOMAIN_PAUSED
    SHUTOFF = libvirt.VIR_DOMAIN_SHUTOFF
    CRASHED = libvirt.VIR_DOMAIN_CRASHED
    PMSUSPENDED = libvirt.VIR_DOMAIN_PMSUSPENDED

    NAMES: ClassVar[dict[int, str]] = {
        libvirt.VIR_DOMAIN_NOSTATE: "no state", libvirt.VIR_DOMAIN_RUNNING: "running",
        libvirt.VIR_DOMAIN_BLOCKED: "blocked", libvirt.VIR_DOMAIN_PAUSED: "paused",
        libvirt.VIR_DOMAIN_SHUTDOWN: "shutting down", libvirt.VIR_DOMAIN_SHUTOFF: "shut off",
        libvirt.VIR_DOMAIN_CRASHED: "crashed", libvirt.VIR_DOMAIN_PMSUSPENDED: "suspended",
    }


NOT_FOUND_CODES = frozenset({
    libvirt.VIR_ERR_NO_DOMAIN, libvirt.VIR_ERR_NO_NETWORK, libvirt.VIR_ERR_NO_STORAGE_POOL,
    libvirt.VIR_ERR_NO_STORAGE_VOL, libvirt.VIR_ERR_NO_DOMAIN_SNAPSHOT,
    libvirt.VIR_ERR_NO_DOMAIN_METADATA,
})
CONNECT_CODES = frozenset({libvirt.VIR_ERR_NO_CONNECT, libvirt.VIR_ERR_SYSTEM_ERROR,
                           libvirt.VIR_ERR_AUTH_FAILED, libvirt.VIR_ERR_RPC})


_LIFECYCLE_NAMES = {libvirt.VIR_DOMAIN_EVENT_CRASHED: "crashed",
                    libvirt.VIR_DOMAIN_EVENT_STOPPED: "stopped",
                    libvirt.VIR_DOMAIN_EVENT_STARTED: "started",
                    libvirt.VIR_DOMAIN_EVENT_SUSPENDED: "suspended",
                    libvirt.VIR_DOMAIN_EVENT_RESUMED: "resumed"}


@dataclass(frozen=True)
class Lifecycle:
    """One libvirt lifecycle event of a domain (virDomainEventType and its detail)."""

    event: int
    detail: int

    @property
    def text(self) -> str:
        return f"{_LIFECYCLE_NAMES.get(self.event, str(self.event))} (detail {self.detail})"

    @property
    def crashed(self) -> bool:
        return self.event == int(libvirt.VIR_DOMAIN_EVENT_CRASHED)

    @property
    def io_error(self) -> bool:
        """Paused by the hypervisor on a disk I/O error (e.g. the pool is full)."""
        return (self.event == int(libvirt.VIR_DOMAIN_EVENT_SUSPENDED)
                and self.detail == int(libvirt.VIR_DOMAIN_EVENT_SUSPENDED_IOERROR))


def is_not_found(exc: libvirt.libvirtError) -> bool:
    return exc.get_error_code() in NOT_FOUND_CODES


@contextmanager
def classified(what: str) -> Iterator[None]:
    """Turn a libvirtError into a LabFailure that says what the lab was doing."""
    try:
        yield
    except libvirt.libvirtError as exc:
        raise failure(what, exc) from exc


def failure(what: str, exc: libvirt.libvirtError) -> LabFailure:
    """The lab's error for a libvirt error: :class:`HypervisorLost` when the connection
    itself failed (RPC layer: libvirtd gone, socket closed), else a LabFailure."""
    code = exc.get_error_code()
    text = f"libvirt: {what} failed (error {code}): {exc.get_error_message()}"
    if exc.get_error_domain() == libvirt.VIR_FROM_RPC or code in (
            libvirt.VIR_ERR_NO_CONNECT, libvirt.VIR_ERR_RPC):
        return HypervisorLost(text, hint="libvirtd went away: the next test or `lab up` "
                                         "restarts the lab's own libvirtd and reconnects")
    if code == libvirt.VIR_ERR_AGENT_UNRESPONSIVE:
        return AgentUnavailable(text)
    return LabFailure(text)


def _attr(el: ET.Element, child: str, name: str) -> str:
    sub = el.find(child)
    return sub.get(name, "") if sub is not None else ""


def _ignore_libvirt_errors(_ctx: Any, _err: Any) -> None:
    """libvirt prints every error to stderr by default; errors reach us as exceptions."""


libvirt.registerErrorHandler(_ignore_libvirt_errors, None)

_event_loop_lock = threading.Lock()
_event_loop_started = False


def start_event_loop() -> None:
    """Run libvirt's default event loop in a daemon thread (once per process)."""
    global _event_loop_started
    with _event_loop_lock:
        if _event_loop_started:
            return
        libvirt.virEventRegisterDefaultImpl()

        def loop() -> None:
            while True:
                libvirt.virEventRunDefaultImpl()

        threading.Thread(target=loop, name="libvirt-events", daemon=True).start()
        _event_loop_started = True


#: URIs of the libvirt on this machine: its pool's files are local files.
LOCAL_URIS = ("qemu:///system",)


class Hypervisor:
    """A libvirt connection to the lab's hypervisor host."""

    def __init__(self, uri: str, config_path: str = "lab.toml") -> None:
        self.uri = uri
        self._config_path = config_path
        self._conn: libvirt.virConnect | None = None
        #: called (from libvirt's event thread) when the connection closes under us
        self._on_lost: list[Callable[[str], None]] = []

    def __enter__(self) -> Hypervisor:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()

    @property
    def conn(self) -> libvirt.virConnect:
        if self._conn is None:
            start_event_loop()  # must exist before the connection for events to arrive
            try:
                self._conn = libvirt.open(self.uri)
            except libvirt.libvirtError as exc:
                raise LabFailure(
                    f"{self._config_path}: [lab] uri: cannot connect to {self.uri}: "
                    f"{exc.get_error_message()}",
                    hint="start libvirtd on that host, fix the URI, or for a local URI as "
                         "root leave [lab] sandbox = \"auto\"") from None
            with suppress(libvirt.libvirtError):
                self._conn.registerCloseCallback(self._closed, None)
        return self._conn

    _CLOSE_REASONS: ClassVar[dict[int, str]] = {libvirt.VIR_CONNECT_CLOSE_REASON_ERROR: "I/O error",
                      libvirt.VIR_CONNECT_CLOSE_REASON_EOF: "libvirtd closed it (EOF)",
                      libvirt.VIR_CONNECT_CLOSE_REASON_KEEPALIVE: "keepalive timed out",
                      libvirt.VIR_CONNECT_CLOSE_REASON_CLIENT: "closed by the lab"}

    def _closed(self, _conn: Any, reason: int, _opaque: Any) -> None:
        why = self._CLOSE_REASONS.get(reason, f"reason {reason}")
        for listener in list(self._on_lost):
            listener(f"the connection to {self.uri} was lost: {why}")

    def on_lost(self, listener: Callable[[str], None]) -> Callable[[], None]:
        """Call ``listener(description)`` if the connection closes under us (libvirtd
        died or the link broke); returns the function that removes the listener."""
        self._on_lost.append(listener)

        def remove() -> None:
            with suppress(ValueError):
                self._on_lost.remove(listener)

        return remove

    def alive(self) -> bool:
        """Whether the connection is open and libvirtd still answers on it."""
        if self._conn is None:
            return True  # nothing lost yet: the next use connects
        try:
            return bool(self._conn.isAlive()) and self._conn.getLibVersion() > 0
        except libvirt.libvirtError:
            return False

    def close(self) -> None:
        if self._conn is not None:
            with suppress(libvirt.libvirtError):
                self._conn.unregisterCloseCallback()
            with suppress(libvirt.libvirtError):
                self._conn.close()
            self._conn = None

    def check(self) -> str:
        """Connect and describe the host (raises a LabFailure naming the URI)."""
        version = self.conn.getLibVersion()
        return f"{self.conn.getURI()} (libvirt {version // 1000000}.{version // 1000 % 1000})"

    # ---- ownership -------------------------------------------------------------

    @staticmethod
    def owner_from_xml(xml: str) -> Owner | None:
        root = ET.fromstring(xml)
        ns = {"d": naming.METADATA_NS}
        el = root.find("metadata/d:lab", ns)
        if el is None:
            return None
        name = el.findtext("d:name", default="", namespaces=ns)
        run = el.findtext("d:run", default="", namespaces=ns)
        vm = el.findtext("d:vm", default=None, namespaces=ns)
        install = el.findtext("d:install", default=None, namespaces=ns)
        state = el.findtext("d:state", default=None, namespaces=ns)
        return Owner(lab=name, run=run, vm=vm, install=install, state_dir=state)

    def _with_owner(self, objects: list[Any], lab: str | None) -> list[tuple[Any, Owner]]:
        """Objects carrying lab metadata (of lab ``lab``; of any lab when None)."""
        result = []
        for obj in objects:
            try:
                xml = obj.XMLDesc(0)
            except libvirt.libvirtError as exc:
                if is_not_found(exc):  # removed (by another lab) while we listed
                    continue
                raise
            owner = self.owner_from_xml(xml)
            if owner is not None and (lab is None or owner.lab == lab):
                result.append((obj, owner))
        return result

    def owned_domains(self, lab: str) -> list[tuple[libvirt.virDomain, Owner]]:
        with classified("listing domains"):
            return self._with_owner(self.conn.listAllDomains(), lab)

    def owned_networks(self, lab: str) -> list[tuple[libvirt.virNetwork, Owner]]:
        with classified("listing networks"):
            return self._with_owner(self.conn.listAllNetworks(), lab)

    def lab_object_names(self) -> list[str]:
        """Domains and networks of any Driver Lab lab (carrying lab metadata)."""
        with classified("listing libvirt objects"):
            doms = self._with_owner(self.conn.listAllDomains(), None)
            nets = self._with_owner(self.conn.listAllNetworks(), None)
        return ([f"domain {d.name()}" for d, _ in doms]
                + [f"network {n.name()}" for n, _ in nets])

    # ---- networks ----------------------------------------------------------------

    def network(self, name: str) -> libvirt.virNetwork | None:
        try:
            return self.conn.networkLookupByName(name)
        except libvirt.libvirtError as exc:
            if is_not_found(exc):
                return None
            raise

    def ensure_network(self, name: str, xml: str) -> bool:
        """Define and start a network unless it exists; True when it was created."""
        net = self.network(name)
        created = net is None
        with classified(f"defining network {name}"):
            if net is None:
                net = self.conn.networkDefineXML(xml)
            if not net.isActive():
                net.create()
        return created

    def remove_network(self, net: libvirt.virNetwork) -> None:
        with classified(f"removing network {net.name()}"):
            if net.isActive():
                net.destroy()
            if net.isPersistent():
                net.undefine()

    # ---- storage -----------------------------------------------------------------

    def pool(self, name: str) -> libvirt.virStoragePool | None:
        try:
            return self.conn.storagePoolLookupByName(name)
        except libvirt.libvirtError as exc:
            if is_not_found(exc):
                return None
            raise

    def ensure_pool(self, name: str, xml: str, markers: list[str]) -> libvirt.virStoragePool:
        """Define, build and start the lab's dir pool; mark it with empty owner volumes.

        A defined pool whose directory is gone is built again (never blocks `lab up`)."""
        pool = self.pool(name)
        with classified(f"preparing storage pool {name}"):
            if pool is None:
                pool = self.conn.storagePoolDefineXML(xml)
            if not pool.isActive():
                pool.build(0)  # mkdir -p for a dir pool; harmless when it exists
                pool.create()
            pool.refresh(0)
            have = set(pool.listVolumes())
            for marker in markers:
                if marker not in have:
                    self.mark(pool, marker)
        return pool

    @staticmethod
    def mark(pool: libvirt.virStoragePool, name: str) -> None:
        """Create the empty marker volume ``name`` (owner stamps, upload-complete marks)."""
        with classified(f"creating marker volume {name}"):
            pool.createXML(f"<volume><name>{name}</name><capacity>0</capacity>"
                           f"<target><format type='raw'/></target></volume>", 0)

    @staticmethod
    def pool_volumes(pool: libvirt.virStoragePool) -> list[str] | None:
        """Volume names of ``pool`` (started if needed); None when it cannot start
        (its directory is gone)."""
        try:
            if not pool.isActive():
                pool.create()
            pool.refresh(0)
            return [str(v) for v in pool.listVolumes()]
        except libvirt.libvirtError as exc:
            if exc.get_error_code() in (libvirt.VIR_ERR_NO_CONNECT, libvirt.VIR_ERR_RPC):
                raise LabFailure(f"libvirt: reading pool {pool.name()} failed: "
                                 f"{exc.get_error_message()}") from exc
            return None

    @staticmethod
    def pool_target(pool: libvirt.virStoragePool) -> str:
        with classified(f"reading pool {pool.name()}"):
            return str(ET.fromstring(pool.XMLDesc(0)).findtext("target/path", default=""))

    @staticmethod
    def undefine_pool(pool: libvirt.virStoragePool) -> None:
        """Forget a pool definition (its directory is not touched)."""
        with classified(f"undefining pool {pool.name()}"):
            if pool.isActive():
                pool.destroy()
            pool.undefine()

    @staticmethod
    def volume(pool: libvirt.virStoragePool, name: str) -> libvirt.virStorageVol | None:
        try:
            return pool.storageVolLookupByName(name)
        except libvirt.libvirtError as exc:
            if is_not_found(exc):
                return None
            raise

    @property
    def is_local(self) -> bool:
        """The hypervisor is this machine's (its volumes are files here)."""
        return self.uri in LOCAL_URIS

    def upload(self, pool: libvirt.virStoragePool, name: str, local: Path, fmt: str,
               xml_for: Callable[[str, int, str], str], done_marker: str) -> str:
        """Create volume ``name`` from a local file (streamed, so remote hosts work), then
        the empty volume ``done_marker`` that says the upload finished. A volume without
        its marker is a partial upload (the upload was killed): it is deleted, not reused."""
        existing = self.volume(pool, name)
        if existing is not None:
            if self.volume(pool, done_marker) is not None:
                return str(existing.path())
            self.delete_volume(existing)
        size = local.stat().st_size
        with classified(f"creating volume {name}"):
            vol = pool.createXML(xml_for(name, size, fmt), 0)
        self.upload_into(vol, local)
        self.mark(pool, done_marker)
        return str(vol.path())

    def upload_into(self, vol: libvirt.virStorageVol, local: Path) -> None:
        """Overwrite volume ``vol`` with the bytes of a local file (streamed to a remote
        host; a kernel-side copy here), e.g. a VM's overlay from the template's."""
        with classified(f"uploading {local.name} into volume {vol.name()}"):
            if self.is_local:
                self._copy_into(local, str(vol.path()))
            else:
                self._send(vol, local)

    def download(self, vol: libvirt.virStorageVol, local: Path) -> None:
        """Volume ``vol``'s bytes into the local file ``local`` (streamed from a remote
        host; a kernel-side copy here)."""
        with classified(f"downloading volume {vol.name()} to {local}"):
            if self.is_local:
                self._copy_into(Path(vol.path()), str(local))
            else:
                self._receive(vol, local)

    def _send(self, vol: libvirt.virStorageVol, local: Path) -> None:
        """Stream a local file into ``vol`` through libvirtd (aborted on any failure)."""
        stream = self.conn.newStream(0)
        try:
            vol.upload(stream, 0, local.stat().st_size, 0)
            with local.open("rb") as fh:
                while chunk := fh.read(1 << 20):
                    stream.send(chunk)
            stream.finish()
        except BaseException:
            with suppress(libvirt.libvirtError):
                stream.abort()
            raise

    def _receive(self, vol: libvirt.virStorageVol, local: Path) -> None:
        """Stream ``vol`` into a local file through libvirtd (aborted on any failure; a
        local file that cannot be written is one LabFailure naming it)."""
        stream = self.conn.newStream(0)
        try:
            vol.download(stream, 0, 0, 0)
            with local.open("wb") as fh:
                while chunk := stream.recv(1 << 20):
                    if not isinstance(chunk, int):  # -2 (would block): a blocking stream never
                        fh.write(chunk)
            stream.finish()
        except OSError as exc:
            with suppress(libvirt.libvirtError):
                stream.abort()
            raise LabFailure(f"writing {local} failed: {exc.strerror or exc}",
                             hint="free space in the lab's state_dir") from exc
        except BaseException:
            with suppress(libvirt.libvirtError):
                stream.abort()
            raise

    @staticmethod
    def _copy_into(local: Path, path: str) -> None:
        """This machine's libvirt: the volume libvirt just made is a file here; fill it
        with a kernel-side copy (copy_file_range) instead of streaming it through libvirtd
        (a 100 MiB golden image: ~0.4 s of two processes' CPU at every `lab up`)."""
        try:
            shutil.copyfile(local, path)
        except OSError as exc:
            raise LabFailure(f"copying {local} into volume {path} failed: "
                             f"{exc.strerror or exc}",
                             hint="free space where the lab's pool_path is") from exc

    @staticmethod
    def create_volume(pool: libvirt.virStoragePool, name: str, xml: str) -> str:
        existing = Hypervisor.volume(pool, name)
        if existing is not None:
            return str(existing.path())
        with classified(f"creating volume {name}"):
            return str(pool.createXML(xml, 0).path())

    @staticmethod
    def delete_volume(vol: libvirt.virStorageVol) -> None:
        with classified(f"deleting volume {vol.name()}"):
            vol.delete(0)

    def remove_pool(self, pool: libvirt.virStoragePool,
                    is_ours: Callable[[str], bool]) -> tuple[list[str], list[str]]:
        """Delete the pool's volumes that ``is_ours``; then, if nothing else is left, the
        pool and its directory. Returns (removed, kept): with files kept (not the lab's)
        the directory and the owner marker stay, and only the definition goes."""
        removed: list[str] = []
        with classified(f"removing pool {pool.name()}"):
            if not pool.isActive():
                pool.create()
            pool.refresh(0)
            vols = pool.listAllVolumes()
            kept = [str(v.name()) for v in vols if not is_ours(v.name())]
            # The owner marker goes last: a `lab down` killed midway leaves a directory
            # that still proves it is the lab's (load_config refuses unmarked ones).
            for vol in sorted(vols, key=lambda v: v.name().endswith(OWNER_MARKER_SUFFIX)):
                if not is_ours(vol.name()) or (kept and vol.name().endswith(
                        OWNER_MARKER_SUFFIX)):
                    continue
                removed.append(vol.name())
                vol.delete(0)
            pool.destroy()
            if not kept:
                with suppress(libvirt.libvirtError):  # directory not empty or gone: go on
                    pool.delete(0)
            pool.undefine()
        return removed, kept

    # ---- domains -----------------------------------------------------------------

    def domain(self, name: str) -> libvirt.virDomain | None:
        try:
            return self.conn.lookupByName(name)
        except libvirt.libvirtError as exc:
            if is_not_found(exc):
                return None
            raise failure(f"looking up domain {name}", exc) from exc

    def define_domain(self, xml: str) -> libvirt.virDomain:
        with classified("defining a domain"):
            return self.conn.defineXML(xml)

    def domain_with_owner(self, name: str) -> tuple[libvirt.virDomain, Owner | None] | None:
        """Domain ``name`` and its lab metadata (None when there is no such domain)."""
        dom = self.domain(name)
        if dom is None:
            return None
        try:
            xml = dom.XMLDesc(0)
        except libvirt.libvirtError as exc:
            if is_not_found(exc):
                return None  # a transient domain that vanished meanwhile
            raise LabFailure(f"libvirt: reading domain {name} failed: "
                             f"{exc.get_error_message()}") from exc
        return dom, self.owner_from_xml(xml)

    def create_transient(self, xml: str) -> libvirt.virDomain:
        """Start a transient domain: it vanishes when it powers off or is destroyed."""
        with classified("starting a transient domain"):
            return self.conn.createXML(xml, 0)

    @staticmethod
    def destroy(dom: libvirt.virDomain) -> bool:
        """Power off (hard) if running; True when it was running. A vanished domain is fine."""
        try:
            if not dom.isActive():
                return False
            dom.destroy()
        except libvirt.libvirtError as exc:
            if is_not_found(exc) or exc.get_error_code() == libvirt.VIR_ERR_OPERATION_INVALID:
                return False  # it powered off (a transient one vanished) meanwhile
            raise LabFailure(f"libvirt: destroying {dom.name()} failed: "
                             f"{exc.get_error_message()}") from exc
        return True

    @staticmethod
    def is_running(dom: libvirt.virDomain) -> bool:
        """Whether the domain still runs (False once a transient domain has vanished)."""
        try:
            return bool(dom.isActive())
        except libvirt.libvirtError as exc:
            if is_not_found(exc):
                return False
            raise LabFailure(f"libvirt: reading the state of {dom.name()} failed: "
                             f"{exc.get_error_message()}") from exc

    @staticmethod
    def send_keys(dom: libvirt.virDomain, keycodes: list[int], hold_ms: int = 50) -> None:
        """Press and release Linux input keycodes, as `virsh send-key` does."""
        with classified(f"sending keys to {dom.name()}"):
            dom.sendKey(libvirt.VIR_KEYCODE_SET_LINUX, hold_ms, keycodes, len(keycodes), 0)

    @staticmethod
    def state(dom: libvirt.virDomain) -> int:
        with classified(f"reading the state of {dom.name()}"):
            return int(dom.state()[0])

    @staticmethod
    def describe_state(dom: libvirt.virDomain) -> str:
        """The domain's state in words; a pause on a disk I/O error says so (a full pool)."""
        with classified(f"reading the state of {dom.name()}"):
            state, reason = (int(x) for x in dom.state())
        name = DomainState.NAMES.get(state, str(state))
        if state == DomainState.PAUSED and reason == int(libvirt.VIR_DOMAIN_PAUSED_IOERROR):
            return f"{name} (disk I/O error: pool full?)"
        return name

    @staticmethod
    def rss_kib(dom: libvirt.virDomain) -> int | None:
        """QEMU's resident memory for a running domain, in KiB: libvirt's memory stat
        ``rss``, which it reads from the QEMU process on that domain's host (so a remote
        host's VMs have theirs too); None when the domain does not run or has none."""
        try:
            if not dom.isActive():
                return None
            rss = dom.memoryStats().get("rss")
        except libvirt.libvirtError:
            return None
        return int(rss) if isinstance(rss, int) and rss > 0 else None

    @staticmethod
    def start(dom: libvirt.virDomain) -> None:
        with classified(f"starting {dom.name()}"):
            dom.create()

    @staticmethod
    def remove_domain(dom: libvirt.virDomain) -> None:
        """Power off (hard) and undefine, with snapshot metadata."""
        with classified(f"removing domain {dom.name()}"):
            if dom.isActive():
                dom.destroy()
            flags = (libvirt.VIR_DOMAIN_UNDEFINE_SNAPSHOTS_METADATA
                     | libvirt.VIR_DOMAIN_UNDEFINE_MANAGED_SAVE
                     | libvirt.VIR_DOMAIN_UNDEFINE_NVRAM)
            dom.undefineFlags(flags)

    @staticmethod
    def snapshot_names(dom: libvirt.virDomain) -> list[str]:
        with classified(f"listing snapshots of {dom.name()}"):
            return [str(n) for n in dom.snapshotListNames(0)]

    @staticmethod
    def create_snapshot(dom: libvirt.virDomain, xml: str) -> None:
        with classified(f"snapshotting {dom.name()}"):
            dom.snapshotCreateXML(xml, 0)

    @staticmethod
    def redefine_snapshot(dom: libvirt.virDomain, xml: str) -> None:
        """Give ``dom`` the metadata of a snapshot whose state its disk already holds."""
        with classified(f"redefining a snapshot of {dom.name()}"):
            dom.snapshotCreateXML(xml, libvirt.VIR_DOMAIN_SNAPSHOT_CREATE_REDEFINE)

    @staticmethod
    def forget_snapshot(dom: libvirt.virDomain, name: str) -> None:
        """Drop the metadata of snapshot ``name``; the state stays in the disk."""
        with classified(f"forgetting snapshot {name} of {dom.name()}"):
            dom.snapshotLookupByName(name, 0).delete(
                libvirt.VIR_DOMAIN_SNAPSHOT_DELETE_METADATA_ONLY)

    @staticmethod
    def inactive_xml(dom: libvirt.virDomain) -> str:
        with classified(f"reading the definition of {dom.name()}"):
            return str(dom.XMLDesc(libvirt.VIR_DOMAIN_XML_INACTIVE))

    def hypervisor_version(self) -> int:
        """The hypervisor's version (QEMU: major * 1,000,000 + minor * 1,000 + micro)."""
        with classified("reading the hypervisor version"):
            return int(self.conn.getVersion())

    @staticmethod
    def revert_snapshot(dom: libvirt.virDomain, name: str) -> None:
        """Revert to a snapshot, running; FORCE also recovers a crashed/stuck domain."""
        with classified(f"reverting {dom.name()} to snapshot {name}"):
            snap = dom.snapshotLookupByName(name, 0)
            dom.revertToSnapshot(snap, libvirt.VIR_DOMAIN_SNAPSHOT_REVERT_RUNNING
                                 | libvirt.VIR_DOMAIN_SNAPSHOT_REVERT_FORCE)

    @staticmethod
    def pm_suspend(dom: libvirt.virDomain) -> None:
        """Suspend the guest to RAM through its QEMU guest agent (`virsh dompmsuspend
        <dom> mem`): the agent runs the guest's own suspend (guest-suspend-ram)."""
        with classified(f"suspending {dom.name()} to RAM (guest agent)"):
            dom.pMSuspendForDuration(libvirt.VIR_NODE_SUSPEND_TARGET_MEM, 0, 0)

    @staticmethod
    def pm_wakeup(dom: libvirt.virDomain) -> None:
        """Wake a guest suspended to RAM (`virsh dompmwakeup`: QEMU's system_wakeup)."""
        with classified(f"waking {dom.name()} up"):
            dom.pMWakeup(0)

    @staticmethod
    def update_device(dom: libvirt.virDomain, xml: str) -> None:
        with classified(f"updating a device of {dom.name()}"):
            dom.updateDeviceFlags(xml, libvirt.VIR_DOMAIN_AFFECT_LIVE)

    @staticmethod
    def dump_memory(dom: libvirt.virDomain, path: str, *, compressed: bool = False,
                    live: bool = False) -> None:
        """Memory-only dump, as `virsh dump --memory-only [--format kdump-zlib] [--live]`
        writes it: ELF, or the zlib-compressed kdump format crash(8) reads; ``live``
        lets the guest run on while it is written."""
        fmt = (libvirt.VIR_DOMAIN_CORE_DUMP_FORMAT_KDUMP_ZLIB if compressed
               else libvirt.VIR_DOMAIN_CORE_DUMP_FORMAT_RAW)
        flags = libvirt.VIR_DUMP_MEMORY_ONLY | (libvirt.VIR_DUMP_LIVE if live else 0)
        with classified(f"dumping the memory of {dom.name()}"):
            dom.coreDumpWithFormat(path, fmt, flags)

    @staticmethod
    def inject_nmi(dom: libvirt.virDomain) -> None:
        """An NMI into the guest, as `virsh inject-nmi` sends it (Windows: CrashOnNMI)."""
        with classified(f"injecting an NMI into {dom.name()}"):
            dom.injectNMI(0)

    @staticmethod
    def agent_command(dom: libvirt.virDomain, command: str, timeout_s: int) -> str:
        """One guest agent command (JSON text) through libvirt's agent client
        (`virsh qemu-agent-command`); its reply. libvirt first syncs with the agent
        (guest-sync, up to 2 x 5 s), then waits ``timeout_s`` for the reply.
        LabFailure when the agent is not connected or does not answer in time."""
        with classified(f"guest agent command on {dom.name()}"):
            return str(libvirt_qemu.qemuAgentCommand(dom, command, max(1, int(timeout_s)), 0))

    @staticmethod
    def interfaces(dom: libvirt.virDomain) -> list[dict[str, str]]:
        """Live NICs: alias, MAC, network, model (from the live XML)."""
        root = ET.fromstring(dom.XMLDesc(0))
        nics = []
        for el in root.findall("devices/interface"):
            nics.append({"alias": _attr(el, "alias", "name"), "mac": _attr(el, "mac", "address"),
                         "network": _attr(el, "source", "network"),
                         "model": _attr(el, "model", "type")})
        return nics

    @staticmethod
    def detach_alias(dom: libvirt.virDomain, alias: str) -> None:
        """Ask for a live device removal; completion comes as a device-removed event."""
        with classified(f"detaching {alias} from {dom.name()}"):
            dom.detachDeviceAlias(alias, libvirt.VIR_DOMAIN_AFFECT_LIVE)

    @staticmethod
    def attach(dom: libvirt.virDomain, xml: str, persistent: bool = False) -> None:
        """Hot-plug a device; ``persistent`` also adds it to the domain's definition."""
        flags = libvirt.VIR_DOMAIN_AFFECT_LIVE
        if persistent:
            flags |= libvirt.VIR_DOMAIN_AFFECT_CONFIG
        with classified(f"attaching a device to {dom.name()}"):
            dom.attachDeviceFlags(xml, flags)

    def _watch(self, dom: libvirt.virDomain, event_id: int, what: str,
               handler: Callable[..., None]) -> Callable[[], None]:
        """Register ``handler(*event args)`` for ``dom``'s events; returns the cancel function."""
        start_event_loop()
        uuid = dom.UUIDString()

        def on_event(_conn: Any, d: libvirt.virDomain, *args: Any) -> None:
            if d.UUIDString() == uuid:
                handler(*args[:-1])  # the last argument is the opaque value

        with classified(f"registering for {what} events"):
            cb_id = self.conn.domainEventRegisterAny(dom, event_id, on_event, None)

        def cancel() -> None:
            with suppress(libvirt.libvirtError):
                self.conn.domainEventDeregisterAny(cb_id)

        return cancel

    def watch_device_removed(self, dom: libvirt.virDomain,
                             callback: Callable[[str], None]) -> Callable[[], None]:
        """Call ``callback(alias)`` on each device-removed event of ``dom``."""
        return self._watch(dom, libvirt.VIR_DOMAIN_EVENT_ID_DEVICE_REMOVED, "device-removed",
                           callback)

    def watch_removal_failed(self, dom: libvirt.virDomain,
                             callback: Callable[[str], None]) -> Callable[[], None]:
        """Call ``callback(alias)`` when libvirt reports a device removal failed."""
        return self._watch(dom, libvirt.VIR_DOMAIN_EVENT_ID_DEVICE_REMOVAL_FAILED,
                           "device-removal-failed", callback)

    def watch_lifecycle(self, dom: libvirt.virDomain,
                        callback: Callable[[Lifecycle], None]) -> Callable[[], None]:
        """Call ``callback(event)`` on each lifecycle event (crashed, stopped, ...)."""
        def on_event(event: int, detail: int) -> None:
            callback(Lifecycle(event, detail))

        return self._watch(dom, libvirt.VIR_DOMAIN_EVENT_ID_LIFECYCLE, "lifecycle", on_event)

    def lib_version(self) -> tuple[int, int]:
        """(major, minor) of the libvirt daemon behind the connection."""
        with classified("asking libvirt for its version"):
            version = int(self.conn.getLibVersion())
        return version // 1_000_000, version // 1000 % 1000

    def domain_capable(self, virt_type: str) -> bool:
        """Whether libvirt offers domain type ``virt_type`` (kvm/qemu) for x86_64."""
        try:
            self.conn.getDomainCapabilities(None, "x86_64", None, virt_type, 0)
        except libvirt.libvirtError:
            return False
        return True
