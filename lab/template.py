"""The lab's template: one VM booted once to its ready state, its memory saved, reused.

A micro guest boots in seconds and a Windows guest in minutes; restoring a saved
running state takes a fraction of either. So `lab up` boots the *template* once -- a
VM with the lab's devices but no NIC and no per-VM identity -- waits until its guest
agent answers (the guest is ready), and saves its memory and disk state as the
internal snapshot :data:`SNAPSHOT` of its qcow2 overlay (QEMU's savevm). Every VM is
then made from that overlay (:mod:`lab.clone`): a copy of it is the VM's own overlay,
the saved state is restored into the VM's own domain, and the VM takes its identity.

The template is keyed by everything the saved state depends on (:func:`template_key`):
the golden image's digest, the guest kind, the template's domain XML (machine,
memory, CPUs, devices, kernel command line), QEMU's and libvirt's versions and
:data:`FORMAT`. It is cached beside the golden image (``<state>/images/templates``),
so a lab brought down and up again reuses it; any change of key builds a new one.
A template is used only when complete: the cache holds a file only after it was
written whole and renamed into place, and its record (a JSON file written last,
atomically) names its size and SHA-256; the pool copy has an upload-complete mark.

A host of `[[hosts]]` gets its own template, built there (its QEMU, its paths): it is
booted and saved in that host's pool, then downloaded through libvirt's storage stream
into the cache (``templates/host-<name>``; one per host). At each `lab up` the cached
file is streamed into that host's pool once (unless it was built there just now) and
the host copies it into each VM's overlay itself, over the lab's SSH connection to it
(no shared filesystem assumed; where the host refuses the copy, each overlay is
streamed from the cache instead).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from lab import domxml, identity, inventory, naming
from lab.errors import LabError, LabFailure
from lab.hypervisor import Hypervisor
from lab.paths import StatePaths
from lab.plan import VmSpec
from lab.progress import Progress
from lab.wait import wait_for

#: The internal snapshot (in the template's overlay and each copy) holding the saved state.
SNAPSHOT = "lab-template"
#: Bumped when what a template holds changes meaning (keys of older ones stop matching).
FORMAT = 1
#: The template's VM name (consoles/_template.log) and domain suffix: '_' is in no VM name.
NAME = naming.TEMPLATE_VM
#: How often the template's readiness is looked at while it boots.
READY_POLL_S = 0.1


@dataclass(frozen=True)
class Template:
    """A complete template: what each VM is made from."""

    key: str
    volume: str  #: pool volume name (the volume it is built in)
    path: str  #: its file on this machine: the cache's, or the pool volume just built
    #: on another host: its file there (that pool's volume), which the host copies into
    #: each VM's overlay itself; None on this machine
    host_path: str | None = None


@dataclass(frozen=True)
class TemplateInputs:
    """What a template is built from; :func:`template_key` hashes all of it."""

    kind: str
    golden_digest: str
    #: the template's domain XML with the disk path left out (it names the key)
    domain_xml: str
    qemu_version: int
    libvirt_version: str


def template_key(inputs: TemplateInputs) -> str:
    """The template's key: 24 hex digits of SHA-256 over every input and FORMAT."""
    blob = json.dumps({"format": FORMAT, **dataclasses.asdict(inputs)}, sort_keys=True)
    return hashlib.sha256(blob.encode()).hexdigest()[:24]


def template_vm(vm: VmSpec, lab: str) -> VmSpec:
    """The template's spec: ``vm``'s devices (every VM of a lab shares them), its name."""
    return dataclasses.replace(vm, name=NAME, domain=f"{lab}{NAME}")


def volume_name(key: str) -> str:
    return f"template-{key}.qcow2"


def domain_name(lab: str) -> str:
    return f"{lab}{NAME}"


@dataclass(frozen=True)
class CacheRecord:
    """The cache's record of one complete template file."""

    key: str
    size: int
    sha256: str
    built: str  #: when (UTC, ISO 8601)
    build_s: float  #: how long booting and saving it took


class TemplateCache:
    """Complete templates beside the golden image: ``<key>.qcow2`` and ``<key>.json``
    (the local host's in ``templates``, another host's in ``templates/host-<name>``)."""

    def __init__(self, state_dir: Path, host: str = "local") -> None:
        root = StatePaths(state_dir).images / "templates"
        self.root = root if host == "local" else root / f"host-{host}"

    def file(self, key: str) -> Path:
        """Where the template of ``key`` is (once :meth:`lookup` finds it complete)."""
        return self._file(key)

    def _file(self, key: str) -> Path:
        return self.root / f"{key}.qcow2"

    def _record(self, key: str) -> Path:
        return self.root / f"{key}.json"

    def lookup(self, key: str) -> tuple[Path, CacheRecord] | None:
        """The cached file and its record, when both are there and the size matches."""
        try:
            data = json.loads(self._record(key).read_text())
            record = CacheRecord(**data)
            size = self._file(key).stat().st_size
        except (OSError, ValueError, TypeError):
            return None
        if record.key != key or record.size != size:
            return None
        return self._file(key), record

    def store(self, key: str, source: Path, build_s: float) -> CacheRecord:
        """Copy ``source`` in whole (temporary name, then rename), then its record; older
        templates of other keys are removed (one per host)."""
        def copy(tmp: Path) -> str:
            digest = hashlib.sha256()
            with source.open("rb") as src, tmp.open("wb") as dst:
                while chunk := src.read(1 << 20):
                    digest.update(chunk)
                    dst.write(chunk)
            return digest.hexdigest()
        return self._store(key, copy, build_s)

    def store_from(self, key: str, fetch: Callable[[Path], None],
                   build_s: float) -> CacheRecord:
        """As :meth:`store`, from what ``fetch`` writes into the path it is given (a
        download from another host's pool)."""
        def fetched(tmp: Path) -> str:
            fetch(tmp)
            digest = hashlib.sha256()
            with tmp.open("rb") as fh:
                while chunk := fh.read(1 << 20):
                    digest.update(chunk)
            return digest.hexdigest()
        return self._store(key, fetched, build_s)

    def _store(self, key: str, write: Callable[[Path], str], build_s: float) -> CacheRecord:
        """``write`` fills a temporary file (returning its SHA-256), renamed into place
        whole; then the record, written last; then older keys go."""
        self.root.mkdir(parents=True, exist_ok=True)
        tmp = self.root / f".{key}.{os.getpid()}.tmp"
        try:
            sha256 = write(tmp)
            os.replace(tmp, self._file(key))
        finally:
            tmp.unlink(missing_ok=True)  # a copy that failed half-way
        record = CacheRecord(key=key, size=self._file(key).stat().st_size,
                             sha256=sha256,
                             built=time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                             build_s=round(build_s, 2))
        inventory.write_text_atomic(self._record(key),
                                    json.dumps(dataclasses.asdict(record), indent=2) + "\n")
        for old in self.root.glob("*.json"):
            if old.stem != key:
                old.unlink(missing_ok=True)
                self._file(old.stem).unlink(missing_ok=True)
        return record


#: What the build needs from provisioning: define the template's domain from a disk path.
DefineTemplate = Callable[[str], Any]


@dataclass(frozen=True)
class BuildHooks:
    """Provisioning's side of a build (kept out of this module to keep it small)."""

    define: DefineTemplate  #: define the template's domain on this disk path
    #: why the boot can no longer succeed (the domain died, a fatal console line), or None
    fatal: Callable[[Any], str | None]
    #: whether the guest is ready (the kind's ready line on its console, else its agent)
    ready: Callable[[Any], bool]
    snapshot_xml: str  #: the SNAPSHOT checkpoint's XML
    backing_xml: Callable[[str], str]  #: the template overlay's volume XML, by name


def ensure(hv: Hypervisor, pool: Any, key: str, state_dir: Path, boot_timeout_s: float,
           hooks: BuildHooks, progress: Progress, host: str = "local") -> Template:
    """The template of ``key`` for ``host``: the cached one, or booted and saved now in
    the host's pool (then cached here). Raises LabError when it cannot be made."""
    name = volume_name(key)
    cache = TemplateCache(state_dir, host)
    cached = cache.lookup(key)
    if cached is not None:
        # each VM's overlay is filled from the cache file itself (a copy on this
        # machine, a stream to another host), with no copy into the pool in between
        local, record = cached
        progress(f"template {key[:12]}: from the cache (built {record.built}, "
                 f"{record.size >> 20} MiB)")
        return _in_pool(hv, pool, Template(key, name, str(local)), record.sha256)
    t0 = time.monotonic()
    path = _build(hv, pool, name, boot_timeout_s, hooks, progress)
    try:
        if hv.is_local:
            record = cache.store(key, Path(path), time.monotonic() - t0)
        else:
            vol = hv.volume(pool, name)
            if vol is None:
                raise LabFailure(f"the template's volume {name} vanished from host {host}")
            record = cache.store_from(key, lambda tmp: hv.download(vol, tmp),
                                      time.monotonic() - t0)
            path = str(cache.file(key))  # this host's VMs are filled from it
    except OSError as exc:  # e.g. ENOSPC: the state dir's file system is full
        raise LabFailure(f"caching the template in {cache.root} failed: "
                         f"{exc.strerror or exc}",
                         hint="free space in the lab's state_dir") from exc
    hv.mark(pool, identity.done_marker(name, record.sha256))
    progress(f"template {key[:12]}: built in {record.build_s:.1f}s "
             f"({record.size >> 20} MiB), cached for the next `lab up`")
    return _in_pool(hv, pool, Template(key, name, path), record.sha256)


def _in_pool(hv: Hypervisor, pool: Any, made: Template, sha256: str) -> Template:
    """On another host, the template also in its pool (streamed there once per `lab up`
    from the cache, unless it was built there just now): its VMs' overlays are then
    copied there, not each streamed from this machine."""
    if hv.is_local:
        return made
    on_host = hv.upload(pool, made.volume, Path(made.path), "qcow2", domxml.volume_xml,
                        identity.done_marker(made.volume, sha256))
    return dataclasses.replace(made, host_path=on_host)


def _build(hv: Hypervisor, pool: Any, name: str, boot_timeout_s: float, hooks: BuildHooks,
           progress: Progress) -> str:
    """Boot the template, wait until its agent answers, save it, remove its domain."""
    stale = hv.volume(pool, name)
    if stale is not None:  # no cache record: a build that did not finish
        hv.delete_volume(stale)
    path = hv.create_volume(pool, name, hooks.backing_xml(name))
    dom = hooks.define(path)
    try:
        hv.start(dom)
        progress(f"template: booting (no NICs, no identity) "
                 f"(deadline {boot_timeout_s:.0f}s)")
        t0 = time.monotonic()

        def ready() -> bool | None:
            why = hooks.fatal(dom)
            if why is not None:
                raise LabFailure(f"the template did not boot: {why}")
            return True if hooks.ready(dom) else None

        wait_for("the template to be ready", ready, boot_timeout_s, interval=READY_POLL_S,
                 max_interval=READY_POLL_S)
        progress(f"template: ready after {time.monotonic() - t0:.1f}s; saving its state")
        hv.create_snapshot(dom, hooks.snapshot_xml)
    finally:
        try:
            hv.remove_domain(dom)  # its overlay volume stays: that is the template
        except LabError as exc:
            progress(f"template: removing its build domain failed: {exc}")
    return path
