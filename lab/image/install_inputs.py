"""The inputs of a Windows image build: checked before anything is created, and hashed.

Each check fails with one line naming the input and the fix. ISO content hashes
and the install.wim image listing are cached per file (path + size + mtime), so a
second build of unchanged inputs reads nothing but the file metadata.
"""

from __future__ import annotations

import hashlib
import json
import re
import shutil
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from lab.errors import LabFailure
from lab.guests.windows_image import file_digest
from lab.hosttools import run_tool
from lab.image.settings import WindowsImageSettings, check_installer_iso
from lab.inventory import write_text_atomic

#: Space the build needs next to the cache, as a multiple of the Windows ISO's size:
#: Setup expands the install image (about 2-3x the ISO) into the working qcow2, and
#: the compaction writes a second, compressed copy before the working one is removed.
SPACE_FACTOR = 4
SPACE_MARGIN = 1 << 30
#: install.wim locations inside Microsoft's installation media.
INSTALL_IMAGES = ("/sources/install.wim", "/sources/install.esd")


@dataclass(frozen=True)
class Edition:
    """One image of install.wim, as wiminfo lists it."""

    index: int
    name: str


class InputCache:
    """Facts about big input files (sha256, install.wim images), keyed by path+size+mtime."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def _load(self) -> dict[str, dict[str, object]]:
        try:
            data = json.loads(self.path.read_text())
        except (OSError, json.JSONDecodeError):
            return {}
        return data if isinstance(data, dict) else {}

    @staticmethod
    def _stamp(file: Path) -> dict[str, object]:
        st = file.stat()
        return {"size": st.st_size, "mtime_ns": st.st_mtime_ns}

    def get(self, file: Path, fact: str) -> object | None:
        entry = self._load().get(str(file.resolve()), {})
        if {k: entry.get(k) for k in ("size", "mtime_ns")} != self._stamp(file):
            return None
        return entry.get(fact)

    def put(self, file: Path, fact: str, value: object) -> None:
        data = self._load()
        key = str(file.resolve())
        entry = data.get(key, {})
        if {k: entry.get(k) for k in ("size", "mtime_ns")} != self._stamp(file):
            entry = self._stamp(file)
        entry[fact] = value
        data[key] = entry
        write_text_atomic(self.path, json.dumps(data, indent=1, sort_keys=True) + "\n")


def file_sha256(file: Path, cache: InputCache, say: Callable[[str], None] | None = None) -> str:
    """The file's sha256, from the cache when its path, size and mtime are unchanged."""
    cached = cache.get(file, "sha256")
    if isinstance(cached, str) and len(cached) == 64:
        return cached
    if say is not None:
        say(f"hashing {file} ({file.stat().st_size >> 20} MiB, once)")
    digest = file_digest(file)
    cache.put(file, "sha256", digest)
    return digest


def parse_wiminfo(text: str) -> list[Edition]:
    """The images `wiminfo FILE` lists ("Index: 1" ... "Name: ..." blocks)."""
    editions: list[Edition] = []
    index: int | None = None
    for line in text.splitlines():
        m = re.match(r"^\s*(Index|Name)\s*:\s*(.*?)\s*$", line)
        if not m:
            continue
        if m.group(1) == "Index" and m.group(2).isdigit():
            index = int(m.group(2))
        elif m.group(1) == "Name" and index is not None:
            editions.append(Edition(index, m.group(2)))
            index = None
    return editions


def list_editions(iso: Path, cache: InputCache) -> list[Edition] | None:
    """The images of the ISO's install.wim/esd (None: wiminfo cannot list them here)."""
    cached = cache.get(iso, "editions")
    if isinstance(cached, list):
        return [Edition(int(i), str(n)) for i, n in cached]
    if shutil.which("wiminfo") is None:
        return None
    cache.path.parent.mkdir(parents=True, exist_ok=True)  # the cache's home, not a build
    with tempfile.TemporaryDirectory(prefix=".wim-", dir=cache.path.parent) as tmp:
        for inner in INSTALL_IMAGES:
            local = Path(tmp) / Path(inner).name
            if not _extract(iso, inner, local):
                continue
            if local.is_file():
                editions = parse_wiminfo(run_tool(["wiminfo", str(local)],
                                                  f"listing the images of {inner}"))
                cache.put(iso, "editions", [[e.index, e.name] for e in editions])
                return editions
    return None


def _extract(iso: Path, inner: str, local: Path) -> bool:
    """Copy one file out of the ISO: its ISO 9660 tree (xorriso), else its UDF tree (7-Zip;
    Microsoft's oscdimg -u2 media keep install.wim in UDF only)."""
    try:
        run_tool(["xorriso", "-no_rc", "-osirrox", "on", "-indev", str(iso),
                  "-extract", inner, str(local)], f"reading {inner} from {iso}", timeout=1800)
        return local.is_file()
    except LabFailure:
        pass
    if shutil.which("7z") is None:
        return False
    try:
        run_tool(["7z", "e", "-y", "-tudf", f"-o{local.parent}", str(iso), inner.lstrip("/")],
                 f"reading {inner} from the UDF of {iso}", timeout=1800)
    except LabFailure:
        return False
    return local.is_file()


def check_edition(iso: Path, edition: str, editions: list[Edition] | None) -> Edition | None:
    """The chosen image; a one-line LabFailure when install.wim does not hold it."""
    if editions is None:
        return None
    for ed in editions:
        if (edition.isdigit() and int(edition) == ed.index) or edition == ed.name:
            return ed
    listed = "; ".join(f"{e.index}: {e.name}" for e in editions) or "none"
    raise LabFailure(f"--edition {edition!r}: {iso} has no such image (it holds {listed})",
                     hint="pass --edition with one of those names or indexes "
                          "(or set [windows_image] edition)")


def check_space(folder: Path, iso: Path) -> None:
    """Enough free space for the working disk and its compacted copy."""
    existing = folder
    while not existing.exists():
        existing = existing.parent
    need = SPACE_FACTOR * iso.stat().st_size + SPACE_MARGIN
    free = shutil.disk_usage(existing).free
    if free < need:
        raise LabFailure(f"{folder}: {free >> 30} GiB free, the image build needs about "
                         f"{need >> 30} GiB ({SPACE_FACTOR}x the ISO + 1 GiB)",
                         hint="free space there, or set [lab] state_dir to a larger disk")


def check_inputs(settings: WindowsImageSettings, images: Path, ca_cert: Path,
                 cache: InputCache) -> Edition | None:
    """Everything about the inputs that can be checked before a build starts."""
    try:
        ca_cert.read_bytes()
    except OSError as exc:
        raise LabFailure(f"the lab CA {ca_cert} cannot be read ({exc.strerror})",
                         hint="run `make drivers-windows` (it makes the lab test CA)") from None
    check_installer_iso(settings.iso)
    check_space(images, settings.iso)
    return check_edition(settings.iso, settings.edition, list_editions(settings.iso, cache))


def inputs_digest(settings: WindowsImageSettings, ca_cert: Path, cache: InputCache,
                  builder_version: str, say: Callable[[str], None] | None = None) -> str:
    """sha256 over every input but the generated keys: ISO contents, settings, CA."""
    parts: dict[str, object] = {"builder": builder_version}
    for name in ("iso", "virtio_win", "openssh_zip"):
        path = getattr(settings, name)
        parts[name] = file_sha256(path, cache, say) if path is not None else None
    for name in ("edition", "locale", "admin_user", "product_key", "disk_size_gib", "disk_bus",
                 "tpm", "echo_port", "windows_version"):
        parts[name] = getattr(settings, name)
    parts["ca"] = hashlib.sha256(ca_cert.read_bytes()).hexdigest()
    return hashlib.sha256(json.dumps(parts, sort_keys=True).encode()).hexdigest()
