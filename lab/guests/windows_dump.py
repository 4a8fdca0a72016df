"""Decoding a Windows kernel crash dump's header (MEMORY.DMP and kernel minidumps).

Both kinds Windows writes on a bug check start with the 64-bit dump header
(``DUMP_HEADER64``, 0x2000 bytes). Layout, as declared publicly by QEMU
(``include/qemu/win_dump_defs.h``, ``WinDumpHeader64``) and rizin
(``librz/bin/format/dmp/dmp_specs.h``, ``dmp64_header``), little endian:

====== ======================================================================
0x000  Signature ``PAGE``            0x004  ValidDump ``DU64``
0x008  MajorVersion (u32)            0x00C  MinorVersion (u32; the build)
0x030  MachineImageType (u32)        0x034  NumberProcessors (u32)
0x038  BugCheckCode (u32)            0x040  BugCheckParameter1..4 (4 x u64)
0xF00  Exception record (EXCEPTION_RECORD64; ExceptionAddress at 0xF10)
0xF98  DumpType (u32): 1 full, 2 kernel, 4 triage (minidump), 5/6 bitmap
====== ======================================================================

A triage dump (a kernel minidump, ``C:\\Windows\\Minidump\\*.dmp``) continues at
0x2000 with ``TRIAGE_DUMP64`` (rizin ``dmp64_triage``): DriverListOffset at
+0x30, DriverCount at +0x34, StringPoolOffset at +0x38. Each driver entry is
0x90 bytes (``DriverNameOffset`` u32, pad, then ``KLDR_DATA_TABLE_ENTRY64``
with DllBase at entry+0x38 and SizeOfImage at entry+0x48); a name is a u32
character count and UTF-16LE text at DriverNameOffset. The faulting module is
the listed driver whose image contains the exception address, or else a
bug-check parameter -- an address test, not a stack walk (that needs a debugger
and symbols).
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, replace
from pathlib import Path

from lab.errors import LabFailure
from lab.guests.windows_codes import bugcheck_title

HEADER_SIZE = 0x2000
SIGNATURE = b"PAGE"
#: Windows pre-fills the header page with "PAGE"; a field still holding it was not written.
UNWRITTEN = int.from_bytes(b"PAGEPAGE", "little")
VALID_DUMP64 = b"DU64"
OFF_MAJOR = 0x08
OFF_MINOR = 0x0C
OFF_MACHINE = 0x30
OFF_BUGCHECK = 0x38
OFF_PARAMETERS = 0x40
OFF_EXCEPTION_ADDRESS = 0xF10
OFF_DUMP_TYPE = 0xF98
TRIAGE_OFFSET = HEADER_SIZE
TRIAGE_DRIVER_LIST = 0x30
DRIVER_ENTRY_SIZE = 0x90
DRIVER_DLLBASE = 0x38
DRIVER_SIZEOFIMAGE = 0x48
MAX_DRIVERS = 4096
MAX_NAME_CHARS = 1024
IMAGE_FILE_MACHINE_AMD64 = 0x8664

#: DUMP_TYPE values (rizin dmp_specs.h DMP_DUMPTYPE_*).
DUMP_TYPES: dict[int, str] = {1: "full", 2: "kernel", 3: "header", 4: "triage (minidump)",
                              5: "bitmap full", 6: "bitmap kernel", 7: "automatic"}
DUMP_TYPE_TRIAGE = 4


class DumpFormatError(LabFailure):
    """A file fetched as a crash dump is not a 64-bit Windows kernel dump."""


@dataclass(frozen=True)
class LoadedDriver:
    name: str
    base: int
    size: int

    def contains(self, address: int) -> bool:
        return self.base <= address < self.base + self.size


@dataclass(frozen=True)
class DumpInfo:
    """What the header of one kernel dump says."""

    bugcheck: int
    parameters: tuple[int, int, int, int]
    dump_type: int
    major: int
    build: int
    machine: int
    exception_address: int
    drivers: tuple[LoadedDriver, ...] = ()
    faulting_module: str | None = None

    @property
    def title(self) -> str:
        """``bugcheck 0x000000E2 MANUALLY_INITIATED_CRASH`` (name where the lab knows it)."""
        return f"bugcheck {bugcheck_title(self.bugcheck)}"

    def summary(self) -> str:
        params = ", ".join(f"0x{p:016X}" for p in self.parameters)
        module = self.faulting_module or "not identified from the header"
        return "\n".join([
            self.title,
            f"parameters: {params}",
            f"dump type: {DUMP_TYPES.get(self.dump_type, str(self.dump_type))}",
            f"windows: {self.major}.{self.build} machine 0x{self.machine:04X}",
            ("exception address: not recorded" if self.exception_address == UNWRITTEN
             else f"exception address: 0x{self.exception_address:016X}"),
            f"faulting module: {module}",
        ])


def _u32(data: bytes, offset: int) -> int:
    value: int = struct.unpack_from("<I", data, offset)[0]
    return value


def _u64(data: bytes, offset: int) -> int:
    value: int = struct.unpack_from("<Q", data, offset)[0]
    return value


def decode_header(data: bytes) -> DumpInfo:
    """Decode the first bytes of a dump (at least the 0x2000-byte header)."""
    if len(data) < HEADER_SIZE:
        raise DumpFormatError(f"crash dump too short ({len(data)} bytes, header is 0x2000)")
    if data[:4] != SIGNATURE or data[4:8] != VALID_DUMP64:
        raise DumpFormatError(f"not a 64-bit Windows kernel dump (starts {data[:8]!r}, "
                              "expected b'PAGEDU64')")
    params = struct.unpack_from("<4Q", data, OFF_PARAMETERS)
    info = DumpInfo(
        bugcheck=_u32(data, OFF_BUGCHECK),
        parameters=(params[0], params[1], params[2], params[3]),
        dump_type=_u32(data, OFF_DUMP_TYPE),
        major=_u32(data, OFF_MAJOR), build=_u32(data, OFF_MINOR),
        machine=_u32(data, OFF_MACHINE),
        exception_address=_u64(data, OFF_EXCEPTION_ADDRESS),
    )
    if info.dump_type != DUMP_TYPE_TRIAGE:
        return info
    drivers = triage_drivers(data)
    return replace(info, drivers=drivers, faulting_module=faulting_module(info, drivers))


def triage_drivers(data: bytes) -> tuple[LoadedDriver, ...]:
    """The loaded-driver list of a triage dump (empty when it is cut short)."""
    if len(data) < TRIAGE_OFFSET + TRIAGE_DRIVER_LIST + 8:
        return ()
    offset = _u32(data, TRIAGE_OFFSET + TRIAGE_DRIVER_LIST)
    count = _u32(data, TRIAGE_OFFSET + TRIAGE_DRIVER_LIST + 4)
    if count > MAX_DRIVERS:
        raise DumpFormatError(f"triage dump lists {count} drivers (corrupt header?)")
    drivers = []
    for i in range(count):
        entry = offset + i * DRIVER_ENTRY_SIZE
        if entry + DRIVER_ENTRY_SIZE > len(data):
            break
        name = _pool_string(data, _u32(data, entry))
        drivers.append(LoadedDriver(name=name, base=_u64(data, entry + DRIVER_DLLBASE),
                                    size=_u32(data, entry + DRIVER_SIZEOFIMAGE)))
    return tuple(drivers)


def _pool_string(data: bytes, offset: int) -> str:
    if offset + 4 > len(data):
        return "?"
    chars = _u32(data, offset)
    end = offset + 4 + 2 * min(chars, MAX_NAME_CHARS)
    return data[offset + 4:end].decode("utf-16-le", errors="replace").rstrip("\x00")


def faulting_module(info: DumpInfo, drivers: tuple[LoadedDriver, ...]) -> str | None:
    """The driver whose image holds the exception address, else a bug-check parameter."""
    candidates = [("exception address", info.exception_address)]
    candidates += [(f"parameter {i + 1}", p) for i, p in enumerate(info.parameters)]
    for what, address in candidates:
        if not address:
            continue
        for driver in drivers:
            if driver.contains(address):
                return f"{driver.name} ({what} 0x{address:016X} lies in it)"
    return None


def read_dump(path: Path, limit: int = 16 << 20) -> DumpInfo:
    """Decode a dump file on the host; reads at most ``limit`` bytes (the triage part)."""
    try:
        with path.open("rb") as fh:
            data = fh.read(limit)
    except OSError as exc:
        raise DumpFormatError(f"cannot read crash dump {path}: {exc}") from exc
    return decode_header(data)


__all__ = [
    "DUMP_TYPES",
    "DumpFormatError",
    "DumpInfo",
    "LoadedDriver",
    "decode_header",
    "faulting_module",
    "read_dump",
    "triage_drivers",
]
