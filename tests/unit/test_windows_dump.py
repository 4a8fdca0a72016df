"""Crash dump header decoding against dumps written here by an independent writer.

The writer packs DUMP_HEADER64 field by field in declaration order (QEMU
include/qemu/win_dump_defs.h WinDumpHeader64; rizin dmp_specs.h dmp64_header)
instead of poking offsets, so a wrong offset constant in the decoder shows up.
"""

from __future__ import annotations

import struct
from pathlib import Path

import pytest

from lab.guests.windows_dump import DumpFormatError, decode_header, read_dump


def header64(code: int, params: tuple[int, int, int, int], dump_type: int,
             exception_address: int = 0) -> bytes:
    out = b"PAGE" + b"DU64"
    out += struct.pack("<II", 10, 20348)  # MajorVersion, MinorVersion (build)
    out += struct.pack("<QQQQ", 0x1AD000, 0xFFFFFA8000000000, 0xFFFFF80000000010, 0)
    out += struct.pack("<II", 0x8664, 2)  # MachineImageType, NumberProcessors
    out += struct.pack("<II", code, 0)  # BugCheckCode + padding
    out += struct.pack("<4Q", *params)
    out += b"15.20348".ljust(32, b"\0")  # VersionUser[32]
    out += struct.pack("<Q", 0xFFFFF80012345678)  # KdDebuggerDataBlock
    out += b"PAGE" * (704 // 4)  # PhysicalMemoryBlockBuffer[704]
    out += b"\0" * 3000  # ContextRecord[3000]
    exception = struct.pack("<IIQQII", 0x80000003, 0, 0, exception_address, 0, 0)
    out += exception + b"\0" * (15 * 8)  # EXCEPTION_RECORD64 (0x98 bytes)
    out += struct.pack("<II", dump_type, 0)  # DumpType + padding
    out += struct.pack("<QQ", 0, 0)  # RequiredDumpSpace, SystemTime
    out += b"\0" * 128  # Comment
    out += struct.pack("<QIIIII", 0, 0, 0, 3, 0, 0)  # SystemUpTime .. WriterStatus
    out += b"\0" * (0x2000 - len(out))
    assert len(out) == 0x2000
    return out


def triage(drivers: list[tuple[str, int, int]]) -> bytes:
    """TRIAGE_DUMP64 at 0x2000, then a driver list and its string pool."""
    fields = [0] * 18
    list_at = 0x2000 + 0x100
    pool_at = list_at + 0x90 * len(drivers)
    fields[12], fields[13], fields[14] = list_at, len(drivers), pool_at
    head = struct.pack("<18I", *fields).ljust(0x100, b"\0")
    entries, pool = b"", b""
    for name, base, size in drivers:
        ldr = struct.pack("<QQQQQQQQI", 0, 0, 0, 0, 0, 0, base, 0, size).ljust(0x88, b"\0")
        entries += struct.pack("<II", pool_at + len(pool), 0) + ldr
        text = name.encode("utf-16-le")
        pool += struct.pack("<I", len(name)) + text + b"\0\0"
    return head + entries + pool


PARAMS = (0x1, 0xFFFFF8063A2B1000, 0xDEADBEEF, 0x0)


def test_full_dump_bugcheck_and_parameters() -> None:
    info = decode_header(header64(0xE2, PARAMS, 2))
    assert info.bugcheck == 0xE2 and info.parameters == PARAMS
    assert info.title == "bugcheck 0x000000E2 MANUALLY_INITIATED_CRASH"
    assert (info.major, info.build, info.machine, info.dump_type) == (10, 20348, 0x8664, 2)
    assert info.faulting_module is None
    assert "dump type: kernel" in info.summary()


def test_unknown_code_has_no_name() -> None:
    assert decode_header(header64(0x12345, PARAMS, 1)).title == "bugcheck 0x00012345"


def test_minidump_names_the_faulting_module_from_the_exception_address(tmp_path: Path) -> None:
    data = header64(0xD1, (0x10, 2, 0, 0xFFFFF8063A2B1234), 4,
                    exception_address=0xFFFFF8063A2B1234)
    data += triage([("ntoskrnl.exe", 0xFFFFF80600000000, 0x1000000),
                    ("labtdi.sys", 0xFFFFF8063A2B0000, 0x8000)])
    path = tmp_path / "Mini.dmp"
    path.write_bytes(data)
    info = read_dump(path)
    assert info.title == "bugcheck 0x000000D1 DRIVER_IRQL_NOT_LESS_OR_EQUAL"
    assert [d.name for d in info.drivers] == ["ntoskrnl.exe", "labtdi.sys"]
    assert info.faulting_module is not None
    assert info.faulting_module.startswith("labtdi.sys (exception address")


def test_minidump_falls_back_to_a_parameter() -> None:
    data = header64(0x80, (0x4F4454, 0, 0xFFFFF8063A2B0100, 0), 4)
    data += triage([("wskecho.sys", 0xFFFFF8063A2B0000, 0x4000)])
    info = decode_header(data)
    assert info.faulting_module is not None and "parameter 3" in info.faulting_module
    assert info.title == "bugcheck 0x00000080 NMI_HARDWARE_FAILURE"


@pytest.mark.parametrize("data", [b"MDMP" + b"\0" * 0x3000, b"PAGEDUMP" + b"\0" * 0x3000,
                                  b"PAGEDU64"])
def test_other_files_are_refused(data: bytes) -> None:
    with pytest.raises(DumpFormatError):
        decode_header(data)
