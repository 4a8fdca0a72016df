"""EMULATION ONLY: runs the real labtdi.sys machine code in an x86-64 CPU emulator.

Wine implements no NDIS and no TDI, so labtdi.sys cannot run under Wine. This module
loads the real, built and signed ``var/drivers/windows/labtdi.sys`` into the Unicorn
CPU emulator (x86-64, long mode), applies its base relocations at a kernel-like base,
points every import (ntoskrnl, HAL, NDIS.SYS, TDI.SYS) at a stub address and answers
each stub in Python: a *minimal model* of what the Windows kernel, NDIS and TDI do,
written for this harness from the public API reference (names, argument order, x64
struct layouts and constants are facts; no Windows code runs here).

Every call the driver's code makes through its import table is recorded in order,
with its key arguments, together with the harness's calls into the driver's own
entry points (DriverEntry, the captured NDIS protocol handlers, the Unload routine).
``check_contract`` then checks that trace against the seed rules of
``unloading-deregistering-tdi-transport.txt``. The driver's own journal is read from
the file it writes through ZwWriteFile (the ``JournalFile`` knob).

Layouts: the model reads and writes NT/NDIS/TDI structures with the offsets of
``ndislayout``, written from public sources INDEPENDENTLY of drivers/include/ (the
headers the driver is compiled against), so a wrong offset in a header makes the driver
and the model disagree. On top of the call order, the model checks the send path of the
L2 echo: the reply NBL's SourceHandle must be the binding handle it is sent on, NDIS routes
the send completion by that SourceHandle (an NBL whose SourceHandle names no binding is
never completed), the driver must not write into the parts of an NBL that NDIS or the
miniport own (a write hook watches every NBL), and pool allocations must be
non-executable (NonPagedPoolNx) as memory integrity (HVCI) requires.

What this is not: it is not Windows. The real I/O manager, NDIS binding state machine,
TDI client notification, IRQL rules, locking under concurrency, Driver Verifier and
Code Integrity are not modelled; ``drivers/windows/README-section.md`` lists what only a
Windows VM can verify.
"""

from __future__ import annotations

import re
import struct
import time
from collections.abc import Callable, Generator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol, cast

import ndislayout as L
import pefile  # type: ignore[import-untyped]
from unicorn import (
    UC_ARCH_X86,
    UC_HOOK_CODE,
    UC_HOOK_MEM_FETCH_UNMAPPED,
    UC_HOOK_MEM_READ_UNMAPPED,
    UC_HOOK_MEM_WRITE,
    UC_HOOK_MEM_WRITE_PROT,
    UC_HOOK_MEM_WRITE_UNMAPPED,
    UC_MODE_64,
    UC_PROT_EXEC,
    UC_PROT_READ,
    UC_PROT_WRITE,
)
from unicorn.unicorn_py3.unicorn import Uc, UcError
from unicorn.x86_const import (
    UC_X86_REG_R8,
    UC_X86_REG_R9,
    UC_X86_REG_R10,
    UC_X86_REG_R11,
    UC_X86_REG_R12,
    UC_X86_REG_R13,
    UC_X86_REG_R14,
    UC_X86_REG_R15,
    UC_X86_REG_RAX,
    UC_X86_REG_RBP,
    UC_X86_REG_RBX,
    UC_X86_REG_RCX,
    UC_X86_REG_RDI,
    UC_X86_REG_RDX,
    UC_X86_REG_RIP,
    UC_X86_REG_RSI,
    UC_X86_REG_RSP,
)

from lab import l2probe

#: `mov r64, cr8` destination registers by ModRM.rm + 8 * REX.B.
CR8_DESTINATIONS = (UC_X86_REG_RAX, UC_X86_REG_RCX, UC_X86_REG_RDX, UC_X86_REG_RBX,
                    UC_X86_REG_RSP, UC_X86_REG_RBP, UC_X86_REG_RSI, UC_X86_REG_RDI,
                    UC_X86_REG_R8, UC_X86_REG_R9, UC_X86_REG_R10, UC_X86_REG_R11,
                    UC_X86_REG_R12, UC_X86_REG_R13, UC_X86_REG_R14, UC_X86_REG_R15)
LABEL = "EMULATION (Unicorn x86-64 + Python models of ntoskrnl/NDIS/TDI, not Windows)"

# ---- constants (public NT/NDIS/TDI values) ----
STATUS_SUCCESS = 0
DISPATCH_LEVEL = 2
STATUS_PENDING = 0x103
STATUS_UNSUCCESSFUL = 0xC0000001
STATUS_INVALID_HANDLE = 0xC0000008
STATUS_BUFFER_TOO_SMALL = 0xC0000023
STATUS_OBJECT_NAME_NOT_FOUND = 0xC0000034
REG_SZ, REG_DWORD = 1, 4
KEY_VALUE_PARTIAL_INFORMATION = 2
NDIS_OBJECT_TYPE_DEFAULT = 0x80
NDIS_OBJECT_TYPE_BIND_PARAMETERS = 0x86
NDIS_OBJECT_TYPE_OPEN_PARAMETERS = 0x87
NDIS_OBJECT_TYPE_PROTOCOL_DRIVER_CHARACTERISTICS = 0x95
NDIS_OBJECT_TYPE_OID_REQUEST = 0x96
NDIS_OBJECT_TYPE_STATUS_INDICATION = 0x98
OID_GEN_CURRENT_PACKET_FILTER = 0x0001010E
NET_EVENTS = L.NET_EVENTS
NET_EVENT = {name: code for code, name in NET_EVENTS.items()}

# ---- emulator memory map ----
# Unicorn cannot fetch from the upper canonical half (kernel addresses), so the image
# lives high in the lower half, away from its preferred base: relocations are applied.
IMAGE_BASE = 0x7FF612340000
STUB_BASE = 0x7FF620000000
STUB_SIZE = 0x2000
HEAP_BASE = 0x7FF630000000
HEAP_SIZE = 0x400000
STACK_BASE = 0x7FF640000000
STACK_SIZE = 0x40000
HANDLE_BASE = 0x7FFA00000000  # fake handles: never mapped, dereferencing one faults
REGISTRY_PATH = "\\Registry\\Machine\\System\\CurrentControlSet\\Services\\labtdi"
JOURNAL_FILE = "\\??\\C:\\Windows\\Temp\\labtdi.journal"

#: Per call, the emulator gives the driver at most this many instructions ...
MAX_INSNS = 5_000_000
#: ... this much host time ...
MAX_SECONDS = 20.0
#: ... and this much emulated sleep (KeDelayExecutionThread) before it calls it a hang.
SLEEP_DEADLINE_S = 30  # drivers/labtdi/driver.toml unload_deadline_s

#: Calls that open something, and the call that must close it exactly once.
PAIRS: Mapping[str, str] = {
    "NdisRegisterProtocolDriver": "NdisDeregisterProtocolDriver",
    "TdiRegisterProvider": "TdiDeregisterProvider",
    "NdisOpenAdapterEx": "NdisCloseAdapterEx",
    "TdiRegisterDeviceObject": "TdiDeregisterDeviceObject",
    "TdiRegisterNetAddress": "TdiDeregisterNetAddress",
    "IoCreateDevice": "IoDeleteDevice",
    "IoCreateSymbolicLink": "IoDeleteSymbolicLink",
    "NdisAllocateNetBufferListPool": "NdisFreeNetBufferListPool",
    "NdisAllocateNetBufferAndNetBufferList": "NdisFreeNetBufferList",
    "IoAllocateMdl": "IoFreeMdl",
    "IoAllocateWorkItem": "IoFreeWorkItem",
    "ExAllocatePoolWithTag": "ExFreePoolWithTag",
    "ZwOpenKey": "ZwClose",
    "ZwCreateFile": "ZwClose",
}
#: Calls that tear a binding down (none may run between query-remove and unbind).
TEARDOWN = frozenset({
    "TdiDeregisterNetAddress", "TdiDeregisterDeviceObject", "NdisCloseAdapterEx",
    "IoDeleteDevice", "NdisFreeNetBufferListPool",
})
#: Imports that are bookkeeping noise in a printed trace (still recorded).
NOISE = frozenset({
    "memcpy", "memset", "RtlInitUnicodeString", "KeQueryPerformanceCounter",
    "ExAllocatePoolWithTag", "ExFreePoolWithTag", "KeInitializeEvent", "KeClearEvent",
    "KeSetEvent", "KeInitializeMutex", "KeWaitForSingleObject", "KeReleaseMutex",
    "KeEnterCriticalRegion", "KeLeaveCriticalRegion",
    "DbgPrint", "ZwWriteFile", "ZwQueryValueKey", "ZwOpenKey", "ZwClose",
})


class EmulationError(RuntimeError):
    """The harness could not emulate something (a lab failure, never a verdict)."""


class DriverHang(Exception):
    """The driver would block forever (waits on an event nobody sets, endless sleep)."""


class DriverCrash(Exception):
    """The driver bug-checked or touched memory it does not own."""


@dataclass
class Call:
    """One recorded step: an import the driver called, or a driver entry point the
    harness (as the I/O manager / NDIS) called."""

    seq: int
    kind: str  # "import" | "enter" (into the driver) | "leave" (driver returned)
    name: str
    adapter: str | None = None  # harness adapter label ("A", "B") when known
    detail: str = ""
    handle: int | None = None  # resource opened / closed (see PAIRS)
    result: int | None = None
    within: tuple[str, ...] = ()  # active driver entry points, outermost first

    def __str__(self) -> str:
        where = "/".join(self.within) or "-"
        res = "" if self.result is None else f" -> 0x{self.result & 0xFFFFFFFFFFFFFFFF:x}"
        ad = f" [{self.adapter}]" if self.adapter else ""
        arrow = {"import": "   call", "enter": ">> enter", "leave": "<< leave"}[self.kind]
        return f"{self.seq:4d} {arrow} {self.name}{ad} {self.detail}{res}   (in {where})"


@dataclass(frozen=True)
class FakeAdapter:
    label: str
    mac: bytes
    ifindex: int

    @property
    def name(self) -> str:
        return "\\DEVICE\\{EMU-LAB-ADAPTER-" + self.label + "}"

    @property
    def journal_name(self) -> str:
        return ":".join(f"{b:02x}" for b in self.mac) + f"@{self.ifindex}"


@dataclass
class GuestCall:
    """A call from a stub back into driver code (a completion or an NDIS callback)."""

    func: int
    args: Sequence[int]
    name: str
    adapter: str | None = None


@dataclass
class _Binding:
    adapter: FakeAdapter
    context: int  # ProtocolBindingContext the driver passed to NdisOpenAdapterEx
    open: bool = True


@dataclass
class _Resource:
    kind: str
    adapter: str | None
    detail: str
    closed: bool = False


def _write_net_buffer(emu: LabTdiEmulator, nb: int, mdl: int, offset: int, length: int) -> None:
    """NET_BUFFER fields the model fills (ndislayout offsets; the rest stays zero)."""
    emu.put64(nb + L.NB_CURRENT_MDL, mdl)
    emu.write(nb + L.NB_CURRENT_MDL_OFFSET, struct.pack("<I", offset))
    emu.put64(nb + L.NB_DATA_LENGTH, length)
    emu.put64(nb + L.NB_MDL_CHAIN, mdl)
    emu.write(nb + L.NB_DATA_OFFSET, struct.pack("<I", offset))


StubResult = int | Generator[GuestCall, int, int]
Handler = Callable[["Args"], StubResult]


class Cpu(Protocol):
    """The part of unicorn.Uc this module uses (unicorn's own methods are untyped)."""

    def reg_read(self, reg: int) -> int: ...
    def reg_write(self, reg: int, value: int) -> None: ...
    def mem_read(self, addr: int, size: int) -> bytearray: ...
    def mem_write(self, addr: int, data: bytes) -> None: ...
    def mem_map(self, addr: int, size: int, perms: int) -> None: ...
    def mem_protect(self, addr: int, size: int, perms: int) -> None: ...
    def hook_add(self, htype: int, callback: Callable[..., Any], user_data: object = None,
                 begin: int = 1, end: int = 0) -> int: ...
    def emu_start(self, begin: int, until: int, timeout: int = 0, count: int = 0) -> None: ...
    def emu_stop(self) -> None: ...


def new_cpu() -> Cpu:
    """A fresh x86-64 CPU in 64-bit mode."""
    return cast(Cpu, Uc(UC_ARCH_X86, UC_MODE_64))


class Args:
    """Win64 arguments of the stub being answered: RCX, RDX, R8, R9, then the stack."""

    def __init__(self, uc: Cpu) -> None:
        self._uc = uc
        self.rsp = uc.reg_read(UC_X86_REG_RSP)

    def __getitem__(self, i: int) -> int:
        regs = (UC_X86_REG_RCX, UC_X86_REG_RDX, UC_X86_REG_R8, UC_X86_REG_R9)
        if i < 4:
            return int(self._uc.reg_read(regs[i]))
        return int.from_bytes(self._uc.mem_read(self.rsp + 8 + 8 * i, 8), "little")


class LabTdiEmulator:
    """labtdi.sys loaded into Unicorn, with Python models of the kernel APIs it imports."""

    def __init__(self, image: Path, knobs: Mapping[str, int] | None = None,
                 *, pending: bool = False, journal_file: bool = True) -> None:
        self.pending = pending  # NDIS/TDI requests complete asynchronously when True
        self.registry: dict[str, tuple[int, bytes]] = {
            name: (REG_DWORD, struct.pack("<I", value)) for name, value in (knobs or {}).items()
        }
        if journal_file:
            self.registry["JournalFile"] = (REG_SZ, (JOURNAL_FILE + "\0").encode("utf-16-le"))
        self.trace: list[Call] = []
        self.faults: list[str] = []  # model-level violations found while answering calls
        self.sent_frames: list[tuple[str, bytes]] = []
        #: every NBL sent: (binding handle it was sent on, its SourceHandle, NBL address)
        self.sends: list[tuple[int, int, int]] = []
        #: send completions delivered: (adapter label, NBL address)
        self.send_completions: list[tuple[str, int]] = []
        self._nbls: dict[int, str] = {}  # NBL address -> "own" | "received"
        self.dbgprint: list[str] = []
        self.files: dict[int, tuple[str, bytearray]] = {}
        self.characteristics: dict[str, int] = {}
        self.driver_unload = 0
        self._uc = new_cpu()
        self._heap_next = HEAP_BASE
        self._allocs: dict[int, tuple[int, int]] = {}
        self._next_handle = HANDLE_BASE
        self._resources: dict[int, _Resource] = {}
        self._events: dict[int, bool] = {}
        self._sync_events: set[int] = set()  # SynchronizationEvent: a wait resets it
        self._critical_regions = 0  # KeEnterCriticalRegion depth of the one thread
        self._mutexes: dict[int, int] = {}
        self._bindings: dict[int, _Binding] = {}
        self._devices: dict[str, str] = {}  # TDI device name -> adapter label
        self._mdls: dict[int, tuple[int, int]] = {}
        self._deferred: list[GuestCall] = []
        #: the IRQL the harness calls the driver at (CR8: x64 KeGetCurrentIrql reads it);
        #: 2 = DISPATCH_LEVEL, where waiting (a mutex, a synchronous file write) is a bug
        #: the model reports. Work items always run at PASSIVE_LEVEL.
        self.irql = 0
        self._irqls: list[int] = []
        self._cr8 = 0  # the IRQL of the driver code running now
        self.work_items: list[GuestCall] = []  # IoQueueWorkItem'd, not run yet
        self._pending: list[tuple[Generator[GuestCall, int, int], int, GuestCall]] = []
        self._within: list[str] = []
        self._stubs: dict[int, tuple[str, Handler]] = {}
        self._sleep_100ns = 0
        self._clock = 0
        self._finished = False
        self._protocol = 0
        self._provider = 0
        self._adapters: list[FakeAdapter] = []
        self._load(image)

    # ---------------------------------------------------------------- loading

    def _load(self, image: Path) -> None:
        pe = pefile.PE(str(image), fast_load=False)
        if pe.FILE_HEADER.Machine != 0x8664:
            raise EmulationError(f"{image} is not an x86-64 image")
        pe.relocate_image(IMAGE_BASE)
        size = (pe.OPTIONAL_HEADER.SizeOfImage + 0xFFF) & ~0xFFF
        uc = self._uc
        uc.mem_map(IMAGE_BASE, size, UC_PROT_READ)
        uc.mem_write(IMAGE_BASE, pe.get_memory_mapped_image(ImageBase=IMAGE_BASE)[:size])
        self._text: tuple[int, int] = (0, 0)
        for s in pe.sections:
            start = IMAGE_BASE + s.VirtualAddress
            length = (max(s.Misc_VirtualSize, s.SizeOfRawData) + 0xFFF) & ~0xFFF
            perms = UC_PROT_READ
            if s.Characteristics & 0x20000000:
                perms |= UC_PROT_EXEC
                if s.Name.rstrip(b"\0") == b".text":
                    self._text = (start, start + length)
            if s.Characteristics & 0x80000000 or s.Name.rstrip(b"\0") == b".idata":
                perms |= UC_PROT_WRITE  # the loader writes the IAT
            uc.mem_protect(start, length, perms)
        uc.mem_map(STUB_BASE, STUB_SIZE, UC_PROT_READ | UC_PROT_EXEC)
        uc.mem_write(STUB_BASE, b"\xc3" * STUB_SIZE)  # every stub is a bare `ret`
        uc.mem_map(HEAP_BASE, HEAP_SIZE, UC_PROT_READ | UC_PROT_WRITE)
        uc.mem_map(STACK_BASE, STACK_SIZE, UC_PROT_READ | UC_PROT_WRITE)
        self.imports: list[str] = []
        self.unresolved: list[str] = []
        slot = 0
        for entry in pe.DIRECTORY_ENTRY_IMPORT:
            for imp in entry.imports:
                name = imp.name.decode() if imp.name else f"#{imp.ordinal}"
                self.imports.append(f"{entry.dll.decode()}!{name}")
                handler = getattr(self, f"_api_{name}", None)
                if handler is None:
                    self.unresolved.append(f"{entry.dll.decode()}!{name}")
                    handler = self._unemulated(name)
                addr = STUB_BASE + 0x100 + 16 * slot
                slot += 1
                self._stubs[addr] = (name, handler)
                iat = imp.address - pe.OPTIONAL_HEADER.ImageBase + IMAGE_BASE
                uc.mem_write(iat, struct.pack("<Q", addr))
        self.entry = IMAGE_BASE + pe.OPTIONAL_HEADER.AddressOfEntryPoint
        self._sentinel = STUB_BASE
        self._cont = STUB_BASE + 0x10
        self._ret_gadget = STUB_BASE + 0x1FF0  # not hooked: a plain `ret`
        uc.hook_add(UC_HOOK_CODE, self._on_stub, begin=STUB_BASE, end=STUB_BASE + 0x1000)
        self._hook_cr8_reads()
        uc.hook_add(UC_HOOK_MEM_READ_UNMAPPED | UC_HOOK_MEM_WRITE_UNMAPPED
                    | UC_HOOK_MEM_FETCH_UNMAPPED | UC_HOOK_MEM_WRITE_PROT, self._on_bad_memory)

    def _hook_cr8_reads(self) -> None:
        """x64 KeGetCurrentIrql is an inline `mov r64, cr8`, which Unicorn answers with 0
        (no APIC): each such instruction in .text is answered with the modelled IRQL."""
        start, end = self._text
        code = bytes(self._uc.mem_read(start, end - start))
        for m in re.finditer(rb"[\x44\x45\x4c\x4d]\x0f\x20[\xc0-\xc7]", code):
            rex, modrm = m.group()[0], m.group()[3]
            reg = CR8_DESTINATIONS[(modrm & 7) + (8 if rex & 1 else 0)]
            addr = start + m.start()
            self._uc.hook_add(UC_HOOK_CODE, self._on_cr8_read, user_data=reg, begin=addr,
                              end=addr)

    def _on_cr8_read(self, uc: Cpu, address: int, size: int, reg: object) -> None:
        assert isinstance(reg, int)
        uc.reg_write(reg, self._cr8)
        uc.reg_write(UC_X86_REG_RIP, address + 4)

    def _unemulated(self, name: str) -> Handler:
        def handler(a: Args) -> int:
            raise EmulationError(f"EMULATION GAP: the driver called {name}, which this "
                                 "harness does not emulate")
        return handler

    # ---------------------------------------------------------------- memory

    def read(self, addr: int, n: int) -> bytes:
        return bytes(self._uc.mem_read(addr, n))

    def write(self, addr: int, data: bytes) -> None:
        self._uc.mem_write(addr, data)

    def u16(self, addr: int) -> int:
        return int(struct.unpack("<H", self.read(addr, 2))[0])

    def u32(self, addr: int) -> int:
        return int(struct.unpack("<I", self.read(addr, 4))[0])

    def u64(self, addr: int) -> int:
        return int(struct.unpack("<Q", self.read(addr, 8))[0])

    def put64(self, addr: int, value: int) -> None:
        self.write(addr, struct.pack("<Q", value & 0xFFFFFFFFFFFFFFFF))

    def unicode_string(self, ptr: int) -> str:
        if not ptr:
            return ""
        length, buf = self.u16(ptr + L.US_LENGTH), self.u64(ptr + L.US_BUFFER)
        return self.read(buf, length).decode("utf-16-le") if length else ""

    def wstr(self, ptr: int, limit: int = 512) -> str:
        out = bytearray()
        while len(out) < 2 * limit:
            ch = self.read(ptr + len(out), 2)
            if ch == b"\0\0":
                break
            out += ch
        return out.decode("utf-16-le")

    def cstr(self, ptr: int, limit: int = 256) -> str:
        out = bytearray()
        while len(out) < limit and (ch := self.read(ptr + len(out), 1)) != b"\0":
            out += ch
        return out.decode("latin-1")

    def alloc(self, size: int, fill: int = 0) -> int:
        addr = self._heap_next
        self._heap_next += (size + 0x3F) & ~0x1F  # 32-byte aligned, with a gap
        if self._heap_next > HEAP_BASE + HEAP_SIZE:
            raise EmulationError("emulated heap exhausted")
        self.write(addr, bytes([fill]) * size)
        return addr

    def new_unicode_string(self, text: str) -> int:
        raw = text.encode("utf-16-le")
        buf = self.alloc(len(raw) + 2)
        self.write(buf, raw)
        us = self.alloc(L.US_SIZE)
        self.write(us + L.US_LENGTH, struct.pack("<HH", len(raw), len(raw) + 2))
        self.put64(us + L.US_BUFFER, buf)
        return us

    # ---------------------------------------------------------------- NBL ownership

    def _watch_nbl(self, nbl: int, kind: str) -> None:
        """Watch every write the driver's code makes into this NBL (host writes are not
        seen: the model itself may write anywhere)."""
        self._nbls[nbl] = kind
        self._uc.hook_add(UC_HOOK_MEM_WRITE, self._on_nbl_write, user_data=nbl,
                          begin=nbl, end=nbl + L.NBL_ALLOC - 1)

    def _on_nbl_write(self, uc: Cpu, access: int, address: int, size: int, value: int,
                      nbl: object) -> None:
        assert isinstance(nbl, int)
        kind = self._nbls.get(nbl, "freed")
        allowed = L.NBL_WRITABLE_OWN if kind == "own" else L.NBL_WRITABLE_RECEIVED
        for off in range(address - nbl, address - nbl + size):
            field = L.nbl_field(off)
            if kind == "freed" or field not in allowed:
                rip = uc.reg_read(UC_X86_REG_RIP)
                whose = {"own": "an NBL it allocated", "received": "an NBL NDIS indicated",
                         "freed": "an NBL it already freed"}[kind]
                self.faults.append(
                    f"the driver wrote {size} bytes at NBL+0x{address - nbl:x} ({field}) of "
                    f"{whose}; that NET_BUFFER_LIST member is not the driver's (rip image+0x"
                    f"{rip - IMAGE_BASE:x})")
                return

    def _handle(self) -> int:
        self._next_handle += 0x10
        return self._next_handle

    # ---------------------------------------------------------------- recording

    def _record(self, kind: str, name: str, adapter: str | None = None, detail: str = "",
                handle: int | None = None, result: int | None = None) -> Call:
        call = Call(len(self.trace), kind, name, adapter, detail, handle, result,
                    tuple(self._within))
        self.trace.append(call)
        return call

    def _open(self, call: Call, kind: str, handle: int) -> None:
        call.handle = handle
        self._resources[handle] = _Resource(kind, call.adapter, call.detail)

    def _close(self, call: Call, handle: int, kind: str) -> bool:
        call.handle = handle
        res = self._resources.get(handle)
        if res is None or (PAIRS.get(res.kind) != kind and res.kind != kind):
            self.faults.append(f"{call.name}(0x{handle:x}): not a handle this driver opened")
            return False
        if res.closed:
            self.faults.append(f"{call.name}: {res.kind} handle 0x{handle:x} closed twice")
            return False
        res.closed = True
        call.adapter = call.adapter or res.adapter
        return True

    def open_resources(self) -> list[tuple[int, _Resource]]:
        return [(h, r) for h, r in self._resources.items() if not r.closed]

    # ---------------------------------------------------------------- execution

    def _on_bad_memory(self, uc: Cpu, access: int, address: int, size: int, value: int,
                       user: object) -> bool:
        rip = uc.reg_read(UC_X86_REG_RIP)
        raise DriverCrash(f"invalid memory access at 0x{address:x} (size {size}, access "
                          f"{access}) from rip 0x{rip:x} (image+0x{rip - IMAGE_BASE:x})")

    def _on_stub(self, uc: Cpu, address: int, size: int, user: object) -> None:
        if address == self._sentinel:
            self._finished = True
            uc.emu_stop()
            return
        if address == self._cont:
            gen, frame, req = self._pending.pop()
            result = int(uc.reg_read(UC_X86_REG_RAX)) & 0xFFFFFFFF
            self._leave(req, result)
            self._drive(gen, frame, result)
            return
        stub = self._stubs.get(address)
        if stub is None:
            raise DriverCrash(f"jump into the stub page at 0x{address:x}")
        _, handler = stub
        args = Args(uc)
        out = handler(args)
        if isinstance(out, int):
            uc.reg_write(UC_X86_REG_RAX, out & 0xFFFFFFFFFFFFFFFF)
            return  # the stub's own `ret` returns to the driver
        self._drive(out, args.rsp, None)

    def _drive(self, gen: Generator[GuestCall, int, int], frame: int, value: int | None) -> None:
        """Step a stub that calls back into the driver; finish it when it returns."""
        uc = self._uc
        try:
            req = next(gen) if value is None else gen.send(value)
        except StopIteration as stop:
            uc.reg_write(UC_X86_REG_RAX, int(stop.value) & 0xFFFFFFFFFFFFFFFF)
            uc.reg_write(UC_X86_REG_RSP, frame)
            uc.reg_write(UC_X86_REG_RIP, self._ret_gadget)
            return
        self._pending.append((gen, frame, req))
        self._enter(req)
        self._setup_frame(req, frame - 0x80, self._cont)

    def _setup_frame(self, req: GuestCall, below: int, ret: int) -> None:
        uc = self._uc
        stack_args = list(req.args[4:])
        rsp = (below - 0x30 - 8 * len(stack_args)) & ~0xF
        rsp -= 8  # at a callee's first instruction RSP = 8 (mod 16)
        self.put64(rsp, ret)
        for i, value in enumerate(stack_args):
            self.put64(rsp + 0x28 + 8 * i, value)
        regs = (UC_X86_REG_RCX, UC_X86_REG_RDX, UC_X86_REG_R8, UC_X86_REG_R9)
        for reg, value in zip(regs, req.args[:4], strict=False):
            uc.reg_write(reg, value & 0xFFFFFFFFFFFFFFFF)
        uc.reg_write(UC_X86_REG_RSP, rsp)
        uc.reg_write(UC_X86_REG_RIP, req.func)

    def _enter(self, req: GuestCall) -> None:
        self._record("enter", req.name, req.adapter)
        self._within.append(req.name + (f"({req.adapter})" if req.adapter else ""))
        self._irqls.append(self._cr8)
        self._cr8 = 0 if req.name == "WorkItem" else self.irql

    def _leave(self, req: GuestCall, result: int) -> None:
        self._within.pop()
        self._cr8 = self._irqls.pop()
        self._record("leave", req.name, req.adapter, result=result)

    def call(self, req: GuestCall) -> int:
        """Call a driver entry point from the top level (no driver code on the stack)."""
        if not self._text[0] <= req.func < self._text[1]:
            raise EmulationError(f"{req.name} at 0x{req.func:x} is not in the image's .text")
        self._finished = False
        self._sleep_100ns = 0
        self._pending.clear()
        self._enter(req)
        self._setup_frame(req, STACK_BASE + STACK_SIZE - 0x100, self._sentinel)
        started = time.monotonic()
        try:
            self._uc.emu_start(req.func, self._sentinel, timeout=int(MAX_SECONDS * 1e6),
                               count=MAX_INSNS)
        except UcError as exc:
            rip = self._uc.reg_read(UC_X86_REG_RIP)
            raise DriverCrash(f"CPU fault in {req.name}: {exc} at rip 0x{rip:x}") from exc
        if self._uc.reg_read(UC_X86_REG_RIP) == self._sentinel:
            self._finished = True  # `until` stops before the sentinel's hook runs
        if not self._finished:
            raise DriverHang(
                f"{req.name} did not return within {MAX_INSNS} instructions / {MAX_SECONDS}s "
                f"(ran {time.monotonic() - started:.1f}s, emulated sleep "
                f"{self._sleep_100ns / 1e7:.1f}s)")
        result = int(self._uc.reg_read(UC_X86_REG_RAX)) & 0xFFFFFFFF
        self._leave(req, result)
        self.run_deferred()
        return result

    def run_deferred(self) -> None:
        """Completions NDIS/TDI would deliver later from another thread."""
        while self._deferred:
            self.call(self._deferred.pop(0))

    # ---------------------------------------------------------------- scenario steps

    def driver_entry(self) -> int:
        drv = self.alloc(L.DRIVER_OBJECT_SIZE)
        self.driver_object = drv
        path = self.new_unicode_string(REGISTRY_PATH)
        status = self.call(GuestCall(self.entry, (drv, path), "DriverEntry"))
        self.driver_unload = self.u64(drv + L.DRVOBJ_DRIVER_UNLOAD)
        return status

    def handler(self, name: str) -> int:
        func = self.characteristics.get(name, 0)
        if not func:
            raise EmulationError(f"the driver registered no {name}")
        return func

    def bind(self, adapter: FakeAdapter) -> int:
        self._adapters.append(adapter)
        bp = self.alloc(L.BIND_SIZE_REVISION_1)
        self.write(bp, struct.pack("<BBH", NDIS_OBJECT_TYPE_BIND_PARAMETERS, 1,
                                   L.BIND_SIZE_REVISION_1))
        self.put64(bp + L.BIND_PROTOCOL_SECTION, self.new_unicode_string("labtdi"))
        self.put64(bp + L.BIND_ADAPTER_NAME, self.new_unicode_string(adapter.name))
        self.write(bp + L.BIND_MEDIA_TYPE, struct.pack("<I", 0))  # NdisMedium802_3
        self.write(bp + L.BIND_MTU, struct.pack("<I", 1500))
        self.write(bp + L.BIND_MEDIA_CONNECT_STATE,
                   struct.pack("<I", L.MEDIA_CONNECT_STATE["MediaConnectStateConnected"]))
        self.write(bp + L.BIND_MAC_LENGTH, struct.pack("<H", 6))
        self.write(bp + L.BIND_MAC, adapter.mac)
        self.write(bp + L.BIND_BOUND_IF_INDEX, struct.pack("<I", adapter.ifindex))
        bind_ctx = self._handle()
        self._bind_ctx = (bind_ctx, adapter)
        status = self.call(GuestCall(self.handler("BindAdapterHandlerEx"),
                                     (0, bind_ctx, bp), "BindAdapterEx", adapter.label))
        if status == STATUS_SUCCESS:  # the binding starts Paused; NDIS restarts it
            self.pnp(adapter, "NetEventRestart")
        return status

    def binding_handles(self, label: str) -> list[int]:
        """Every binding handle NDIS ever gave for adapter ``label``."""
        return [h for h, b in self._bindings.items() if b.adapter.label == label]

    def binding_of(self, adapter: FakeAdapter) -> int:
        for handle, b in self._bindings.items():
            if b.adapter == adapter and b.open:
                return handle
        raise EmulationError(f"adapter {adapter.label} has no open binding")

    def link_state(self, adapter: FakeAdapter, state: str) -> None:
        """NDIS_STATUS_LINK_STATE to ``adapter``'s binding (ProtocolStatusEx, at
        ``self.irql``): the StatusBuffer is an NDIS_LINK_STATE with MediaConnectState
        ``state`` (a NET_IF_MEDIA_CONNECT_STATE name)."""
        context = self._bindings[self.binding_of(adapter)].context
        ls = self.alloc(L.LINK_STATE_SIZE_REVISION_1)
        self.write(ls, struct.pack("<BBH", NDIS_OBJECT_TYPE_DEFAULT, 1,
                                   L.LINK_STATE_SIZE_REVISION_1))
        self.write(ls + L.LINK_MEDIA_CONNECT_STATE,
                   struct.pack("<I", L.MEDIA_CONNECT_STATE[state]))
        si = self.alloc(L.STATUS_SIZE_REVISION_1)
        self.write(si, struct.pack("<BBH", NDIS_OBJECT_TYPE_STATUS_INDICATION, 1,
                                   L.STATUS_SIZE_REVISION_1))
        self.write(si + L.STATUS_CODE, struct.pack("<I", L.NDIS_STATUS_LINK_STATE))
        self.put64(si + L.STATUS_BUFFER, ls)
        self.write(si + L.STATUS_BUFFER_SIZE, struct.pack("<I", L.LINK_STATE_SIZE_REVISION_1))
        self.call(GuestCall(self.handler("StatusHandlerEx"), (context, si),
                            f"StatusEx.LinkState.{state}", adapter.label))

    def _notification(self, code: int) -> int:
        n = self.alloc(L.NOTIFY_SIZE)
        self.write(n, struct.pack("<BBH", NDIS_OBJECT_TYPE_DEFAULT, 1, L.NOTIFY_SIZE))
        self.write(n + L.NOTIFY_EVENT + L.PNP_NET_EVENT, struct.pack("<I", code))
        return n

    def _pnp_call(self, context: int, event: str, label: str | None) -> GuestCall:
        return GuestCall(self.handler("NetPnPEventHandler"),
                         (context, self._notification(NET_EVENT[event])),
                         f"NetPnPEvent.{event}", label)

    def pnp(self, adapter: FakeAdapter | None, event: str) -> int:
        context = self._bindings[self.binding_of(adapter)].context if adapter else 0
        return self.call(self._pnp_call(context, event, adapter.label if adapter else None))

    def _unbind_calls(self, handle: int) -> tuple[GuestCall, GuestCall]:
        b = self._bindings[handle]
        return (self._pnp_call(b.context, "NetEventPause", b.adapter.label),
                GuestCall(self.handler("UnbindAdapterHandlerEx"), (self._handle(), b.context),
                          "UnbindAdapterEx", b.adapter.label))

    def unbind(self, adapter: FakeAdapter) -> int:
        handle = self.binding_of(adapter)
        pause, unbind = self._unbind_calls(handle)
        self.call(pause)  # NDIS pauses a binding before it unbinds it
        status = self.call(unbind)
        self._check_unbind_result(handle, status)
        return status

    def _check_unbind_result(self, handle: int, status: int) -> None:
        b = self._bindings[handle]
        if status == STATUS_PENDING and b.open:
            raise DriverHang(
                f"UnbindAdapterEx({b.adapter.label}) returned NDIS_STATUS_PENDING and the driver "
                "imports no NdisCompleteUnbindAdapterEx: the binding is never released, NDIS "
                "waits forever")
        if b.open:
            self.faults.append(f"UnbindAdapterEx({b.adapter.label}) returned 0x{status:x} "
                               "without closing the binding (NdisCloseAdapterEx)")

    def receive(self, adapter: FakeAdapter, frame: bytes) -> None:
        b = self._bindings[self.binding_of(adapter)]
        buf = self.alloc(len(frame))
        self.write(buf, frame)
        mdl = self._new_mdl(buf, len(frame))
        self.put64(mdl + L.MDL_MAPPED_SYSTEM_VA, buf)
        nb = self.alloc(L.NB_ALLOC)
        _write_net_buffer(self, nb, mdl, 0, len(frame))
        nbl = self.alloc(L.NBL_ALLOC)
        self.put64(nbl + L.NBL_FIRST_NET_BUFFER, nb)
        self._watch_nbl(nbl, "received")
        self.call(GuestCall(self.handler("ReceiveNetBufferListsHandler"),
                            (b.context, nbl, 0, 1, 0), "ReceiveNetBufferLists", adapter.label))

    def unload(self) -> None:
        if not self.driver_unload:
            raise EmulationError("DriverEntry set no DriverUnload routine")
        self.call(GuestCall(self.driver_unload, (self.driver_object,), "Unload"))

    def journal_text(self) -> str:
        for path, data in self.files.values():
            if path == JOURNAL_FILE:
                return data.decode("ascii", errors="replace")
        return ""

    # ================================================================ API models
    # Each _api_<Name> answers one import. `a[i]` is the i-th Win64 argument.

    # ---- ntoskrnl: memory, strings ----

    def _api_memcpy(self, a: Args) -> int:
        if a[2]:
            self.write(a[0], self.read(a[1], a[2]))
        self._record("import", "memcpy", detail=f"n={a[2]}")
        return a[0]

    def _api_memset(self, a: Args) -> int:
        if a[2]:
            self.write(a[0], bytes([a[1] & 0xFF]) * a[2])
        self._record("import", "memset", detail=f"n={a[2]}")
        return a[0]

    def _api_RtlInitUnicodeString(self, a: Args) -> int:
        text = self.wstr(a[1]) if a[1] else ""
        n = 2 * len(text)
        self.write(a[0], struct.pack("<HHIQ", n, n + 2 if a[1] else 0, 0, a[1]))
        self._record("import", "RtlInitUnicodeString", detail=repr(text))
        return 0

    def _api_ExAllocatePoolWithTag(self, a: Args) -> int:
        pool, size, tag = a[0] & 0xFFFFFFFF, a[1], a[2] & 0xFFFFFFFF
        if pool not in L.NX_POOL_TYPES:
            self.faults.append(f"ExAllocatePoolWithTag from pool type {pool} (executable "
                               "nonpaged pool): memory integrity (HVCI) wants NonPagedPoolNx")
        ptr = self.alloc(size, fill=0xCD)  # pool memory is not zeroed
        self._allocs[ptr] = (size, tag)
        call = self._record("import", "ExAllocatePoolWithTag",
                            detail=f"size={size} tag={tag.to_bytes(4, 'little').decode()!r}",
                            result=ptr)
        self._open(call, "ExAllocatePoolWithTag", ptr)
        return ptr

    def _api_ExFreePoolWithTag(self, a: Args) -> int:
        call = self._record("import", "ExFreePoolWithTag", detail=f"ptr=0x{a[0]:x}")
        if self._close(call, a[0], "ExFreePoolWithTag") and self._allocs[a[0]][1] != a[1]:
            self.faults.append(f"ExFreePoolWithTag(0x{a[0]:x}) with the wrong tag")
        return 0

    # ---- ntoskrnl: synchronisation, time ----

    def _api_KeInitializeEvent(self, a: Args) -> int:
        self._events[a[0]] = bool(a[2] & 0xFF)
        if a[1] & 0xFF == 1:  # SynchronizationEvent (wdm.h EVENT_TYPE)
            self._sync_events.add(a[0])
        else:
            self._sync_events.discard(a[0])
        self._record("import", "KeInitializeEvent", detail=f"0x{a[0]:x}")
        return 0

    def _api_KeSetEvent(self, a: Args) -> int:
        prev = self._events.get(a[0])
        if prev is None:
            raise DriverCrash(f"KeSetEvent on an uninitialised event 0x{a[0]:x}")
        self._events[a[0]] = True
        self._record("import", "KeSetEvent", detail=f"0x{a[0]:x}")
        return int(prev)

    def _api_KeClearEvent(self, a: Args) -> int:
        if a[0] not in self._events:
            raise DriverCrash(f"KeClearEvent on an uninitialised event 0x{a[0]:x}")
        self._events[a[0]] = False
        self._record("import", "KeClearEvent", detail=f"0x{a[0]:x}")
        return 0

    def _api_KeEnterCriticalRegion(self, a: Args) -> int:
        self._critical_regions += 1
        self._record("import", "KeEnterCriticalRegion")
        return 0

    def _api_KeLeaveCriticalRegion(self, a: Args) -> int:
        if not self._critical_regions:
            raise DriverCrash("KeLeaveCriticalRegion without KeEnterCriticalRegion")
        self._critical_regions -= 1
        self._record("import", "KeLeaveCriticalRegion")
        return 0

    def _api_KeInitializeMutex(self, a: Args) -> int:
        self._mutexes[a[0]] = 0
        self._record("import", "KeInitializeMutex", detail=f"0x{a[0]:x}")
        return 0

    def _api_KeReleaseMutex(self, a: Args) -> int:
        held = self._mutexes.get(a[0])
        if not held:
            raise DriverCrash(f"KeReleaseMutex on a mutex not held (0x{a[0]:x}): "
                              "MUTEX_NOT_OWNED bugcheck")
        self._mutexes[a[0]] = held - 1
        self._record("import", "KeReleaseMutex", detail=f"0x{a[0]:x}")
        return 0

    def _api_KeWaitForSingleObject(self, a: Args) -> StubResult:
        obj = a[0]
        call = self._record("import", "KeWaitForSingleObject", detail=f"0x{obj:x}")
        if self._cr8 >= DISPATCH_LEVEL:
            self.faults.append(f"KeWaitForSingleObject(0x{obj:x}) at DISPATCH_LEVEL in "
                               f"{'/'.join(self._within)}: IRQL_NOT_LESS_OR_EQUAL")
        if obj in self._mutexes:
            self._mutexes[obj] += 1  # one thread: the owner may re-acquire (KMUTEX)
            call.result = 0
            return 0
        if obj not in self._events:
            raise DriverCrash(f"KeWaitForSingleObject on an unknown object 0x{obj:x}")
        return self._wait_event(call, obj)

    def _wait_event(self, call: Call, obj: int) -> Generator[GuestCall, int, int]:
        # Another thread (NDIS/TDI completing a pended request) may set it: run those.
        while not self._events[obj] and self._deferred:
            yield self._deferred.pop(0)
        if not self._events[obj]:
            raise DriverHang(f"KeWaitForSingleObject(0x{obj:x}) in {'/'.join(self._within)}: "
                             "nothing will ever set this event")
        if obj in self._sync_events:
            self._events[obj] = False  # a satisfied wait resets a synchronization event
        call.result = 0
        return 0

    def _api_KeDelayExecutionThread(self, a: Args) -> StubResult:
        interval = struct.unpack("<q", self.read(a[2], 8))[0]
        ticks = -interval if interval < 0 else 0
        self._sleep_100ns += ticks
        self._clock += ticks
        self._record("import", "KeDelayExecutionThread", detail=f"{ticks / 1e4:.0f}ms")
        if self._sleep_100ns > SLEEP_DEADLINE_S * 10_000_000:
            raise DriverHang(f"{'/'.join(self._within)} slept past the {SLEEP_DEADLINE_S}s "
                             "deadline (emulated time) without returning")
        return self._run_work_items() if self.work_items else 0

    def _run_work_items(self) -> Generator[GuestCall, int, int]:
        # While the driver sleeps, the system worker threads run what it queued.
        while self.work_items:
            yield self.work_items.pop(0)
        return 0

    def run_work_items(self) -> None:
        """The system worker threads run every queued work item (PASSIVE_LEVEL)."""
        while self.work_items:
            self.call(self.work_items.pop(0))

    def _api_KeQueryPerformanceCounter(self, a: Args) -> int:
        if a[0]:
            self.put64(a[0], 10_000_000)
        self._clock += 1000
        self._record("import", "KeQueryPerformanceCounter")
        return self._clock

    def _api_KeBugCheckEx(self, a: Args) -> int:
        self._record("import", "KeBugCheckEx", detail=f"code=0x{a[0]:x} p1=0x{a[1]:x}")
        raise DriverCrash(f"KeBugCheckEx(0x{a[0]:x}, 0x{a[1]:x}, 0x{a[2]:x}, 0x{a[3]:x}, "
                          f"0x{a[4]:x}) in {'/'.join(self._within)}")

    def _api_DbgPrint(self, a: Args) -> int:
        fmt = self.cstr(a[0])
        text = fmt
        if fmt.startswith("LABJ %.*s"):
            text = "LABJ " + self.read(a[2], a[1] & 0xFFFF).decode("latin-1").rstrip("\n")
        elif "%s" in fmt:
            text = fmt.replace("%s", self.cstr(a[1]), 1)
        self.dbgprint.append(text.rstrip("\n"))
        self._record("import", "DbgPrint", detail=repr(text.rstrip("\n")))
        return 0

    # ---- ntoskrnl: registry and files ----

    def _object_name(self, oa: int) -> tuple[int, str]:
        return (self.u64(oa + L.OA_ROOT_DIRECTORY),
                self.unicode_string(self.u64(oa + L.OA_OBJECT_NAME)))

    def _api_ZwOpenKey(self, a: Args) -> int:
        root, name = self._object_name(a[2])
        path = name
        if root:
            parent = self._resources.get(root)
            path = (parent.detail if parent else "?") + "\\" + name
        call = self._record("import", "ZwOpenKey", detail=path)
        if path.lower() not in (REGISTRY_PATH.lower(), REGISTRY_PATH.lower() + "\\parameters"):
            call.result = STATUS_OBJECT_NAME_NOT_FOUND
            return STATUS_OBJECT_NAME_NOT_FOUND
        handle = self._handle()
        self.put64(a[0], handle)
        self._open(call, "ZwOpenKey", handle)
        call.result = STATUS_SUCCESS
        return STATUS_SUCCESS

    def _api_ZwQueryValueKey(self, a: Args) -> int:
        key, name, cls, buf, size, out = a[0], self.unicode_string(a[1]), a[2], a[3], a[4], a[5]
        res = self._resources.get(key)
        call = self._record("import", "ZwQueryValueKey", detail=name)
        if res is None or res.closed or not res.detail.lower().endswith("\\parameters"):
            call.result = STATUS_INVALID_HANDLE
        elif cls != KEY_VALUE_PARTIAL_INFORMATION:
            raise EmulationError(f"ZwQueryValueKey class {cls} is not emulated")
        elif name not in self.registry:
            call.result = STATUS_OBJECT_NAME_NOT_FOUND
        else:
            kind, data = self.registry[name]
            self.write(out, struct.pack("<I", 12 + len(data)))
            if size < 12 + len(data):
                call.result = STATUS_BUFFER_TOO_SMALL
            else:
                self.write(buf, struct.pack("<III", 0, kind, len(data)) + data)
                call.result = STATUS_SUCCESS
        return call.result

    def _api_ZwCreateFile(self, a: Args) -> int:
        _, path = self._object_name(a[2])
        call = self._record("import", "ZwCreateFile", detail=path)
        handle = self._handle()
        self.put64(a[0], handle)
        self.write(a[3], struct.pack("<QQ", 0, 2))  # IO_STATUS_BLOCK: FILE_CREATED
        self.files[handle] = (path, bytearray())
        self._open(call, "ZwCreateFile", handle)
        call.result = STATUS_SUCCESS
        return STATUS_SUCCESS

    def _api_ZwWriteFile(self, a: Args) -> int:
        handle, buf, length = a[0], a[5], a[6] & 0xFFFFFFFF
        data = self.read(buf, length)
        call = self._record("import", "ZwWriteFile", detail=repr(data.decode("latin-1")))
        if handle not in self.files or self._resources[handle].closed:
            call.result = STATUS_INVALID_HANDLE
            return STATUS_INVALID_HANDLE
        self.files[handle][1].extend(data)
        self.write(a[4], struct.pack("<QQ", 0, length))
        call.result = STATUS_SUCCESS
        return STATUS_SUCCESS

    def _api_ZwClose(self, a: Args) -> int:
        call = self._record("import", "ZwClose", detail=f"0x{a[0]:x}")
        ok = self._close(call, a[0], "ZwClose")
        call.result = STATUS_SUCCESS if ok else STATUS_INVALID_HANDLE
        return call.result

    # ---- ntoskrnl: I/O manager ----

    def _api_IoCreateDevice(self, a: Args) -> int:
        name = self.unicode_string(a[2])
        adapter = next((ad.label for ad in self._adapters
                        if name.endswith(f"_{ad.ifindex}")), None)
        call = self._record("import", "IoCreateDevice", adapter, f"{name} ext={a[1]}")
        dev = self.alloc(0x150 + a[1])
        self.write(dev, struct.pack("<HH", 3, 0x150))  # IO_TYPE_DEVICE
        self.put64(a[6], dev)
        self._open(call, "IoCreateDevice", dev)
        call.result = STATUS_SUCCESS
        return STATUS_SUCCESS

    def _api_IoDeleteDevice(self, a: Args) -> int:
        call = self._record("import", "IoDeleteDevice", detail=f"0x{a[0]:x}")
        if self._close(call, a[0], "IoDeleteDevice"):
            call.detail = self._resources[a[0]].detail
        return 0

    def _api_IoCreateSymbolicLink(self, a: Args) -> int:
        link = self.unicode_string(a[0])
        call = self._record("import", "IoCreateSymbolicLink",
                            detail=f"{link} -> {self.unicode_string(a[1])}")
        self._open(call, "IoCreateSymbolicLink", hash(link.lower()) & 0xFFFFFFFF)
        call.result = STATUS_SUCCESS
        return STATUS_SUCCESS

    def _api_IoDeleteSymbolicLink(self, a: Args) -> int:
        link = self.unicode_string(a[0])
        call = self._record("import", "IoDeleteSymbolicLink", detail=link)
        self._close(call, hash(link.lower()) & 0xFFFFFFFF, "IoDeleteSymbolicLink")
        call.result = STATUS_SUCCESS
        return STATUS_SUCCESS

    def _api_IofCompleteRequest(self, a: Args) -> int:
        self._record("import", "IofCompleteRequest", detail=f"irp=0x{a[0]:x}")
        return 0

    def _api_IoAllocateMdl(self, a: Args) -> int:
        mdl = self._new_mdl(a[0], a[1] & 0xFFFFFFFF)
        call = self._record("import", "IoAllocateMdl", detail=f"len={a[1] & 0xFFFFFFFF}")
        self._open(call, "IoAllocateMdl", mdl)
        return mdl

    def _new_mdl(self, va: int, length: int) -> int:
        mdl = self.alloc(L.MDL_SIZE)
        self.put64(mdl + L.MDL_START_VA, va)  # StartVa + ByteOffset (0) = the buffer
        self.write(mdl + L.MDL_BYTE_COUNT, struct.pack("<I", length))
        self._mdls[mdl] = (va, length)
        return mdl

    def _api_IoAllocateWorkItem(self, a: Args) -> int:
        call = self._record("import", "IoAllocateWorkItem", detail=f"device=0x{a[0]:x}")
        if not a[0]:
            self.faults.append("IoAllocateWorkItem(NULL): the work item needs a device object")
        item = self.alloc(0x58)
        self._open(call, "IoAllocateWorkItem", item)
        return item

    def _api_IoQueueWorkItem(self, a: Args) -> int:
        call = self._record("import", "IoQueueWorkItem", detail=f"item=0x{a[0]:x}")
        res = self._resources.get(a[0])
        if res is None or res.kind != "IoAllocateWorkItem" or res.closed:
            self.faults.append(f"IoQueueWorkItem(0x{a[0]:x}): not a live work item")
            return 0
        call.handle = a[0]
        # A system worker thread runs it later, at PASSIVE_LEVEL: run_work_items(), or
        # while the driver sleeps.
        self.work_items.append(GuestCall(a[1], (0, a[3]), "WorkItem"))
        return 0

    def _api_IoFreeWorkItem(self, a: Args) -> int:
        call = self._record("import", "IoFreeWorkItem")
        self._close(call, a[0], "IoFreeWorkItem")
        return 0

    def _api_IoFreeMdl(self, a: Args) -> int:
        call = self._record("import", "IoFreeMdl")
        self._close(call, a[0], "IoFreeMdl")
        return 0

    def _api_MmBuildMdlForNonPagedPool(self, a: Args) -> int:
        va, _ = self._mdls.get(a[0], (0, 0))
        self.put64(a[0] + L.MDL_MAPPED_SYSTEM_VA, va)
        self._record("import", "MmBuildMdlForNonPagedPool")
        return 0

    # ---- NDIS.SYS ----

    def _binding(self, call: Call, handle: int) -> _Binding | None:
        b = self._bindings.get(handle)
        if b is None or not b.open:
            self.faults.append(f"{call.name} on a binding handle that is not open (0x{handle:x})")
            return None
        call.adapter = b.adapter.label
        return b

    def _api_NdisRegisterProtocolDriver(self, a: Args) -> int:
        pc = a[1]
        htype, rev, size = struct.unpack("<BBH", self.read(pc, 4))
        name = self.unicode_string(pc + L.PC_NAME)
        major, minor = self.read(pc + L.PC_MAJOR_NDIS, 2)
        dmajor, dminor = self.read(pc + L.PC_MAJOR_DRIVER, 2)
        flags = self.u32(pc + L.PC_FLAGS)
        call = self._record("import", "NdisRegisterProtocolDriver",
                            detail=f"name={name!r} ndis={major}.{minor} driver={dmajor}.{dminor} "
                                   f"flags=0x{flags:x} size=0x{size:x}")
        if htype != NDIS_OBJECT_TYPE_PROTOCOL_DRIVER_CHARACTERISTICS or size < L.PC_SIZE_REVISION_1:
            call.result = STATUS_UNSUCCESSFUL
            self.faults.append(f"NdisRegisterProtocolDriver: bad header type 0x{htype:x} "
                               f"rev {rev} size 0x{size:x}")
            return STATUS_UNSUCCESSFUL
        for off, hname in L.PC_HANDLERS:
            ptr = self.u64(pc + off)
            if ptr and not self._text[0] <= ptr < self._text[1]:
                self.faults.append(f"{hname} 0x{ptr:x} points outside the driver's code")
            self.characteristics[hname] = ptr
        handle = self._handle()
        self._protocol = handle
        self.put64(a[2], handle)
        self._open(call, "NdisRegisterProtocolDriver", handle)
        call.result = STATUS_SUCCESS
        return STATUS_SUCCESS

    def _api_NdisDeregisterProtocolDriver(self, a: Args) -> StubResult:
        call = self._record("import", "NdisDeregisterProtocolDriver", detail=f"0x{a[0]:x}")
        if a[0] != self._protocol:
            self.faults.append("NdisDeregisterProtocolDriver with a handle NDIS never gave")
        self._close(call, a[0], "NdisDeregisterProtocolDriver")
        return self._deregister_protocol()

    def _deregister_protocol(self) -> Generator[GuestCall, int, int]:
        # NDIS unbinds every adapter still bound before this call returns.
        for handle in [h for h, b in self._bindings.items() if b.open]:
            pause, unbind = self._unbind_calls(handle)
            yield pause
            status = yield unbind
            self._check_unbind_result(handle, status)
        return 0

    def _api_NdisOpenAdapterEx(self, a: Args) -> StubResult:
        proto, ctx, op, bind_ctx, out = a[0], a[1], a[2], a[3], a[4]
        htype, osize = self.read(op + L.HDR_TYPE, 1)[0], self.u16(op + L.HDR_SIZE)
        adapter_name = self.unicode_string(self.u64(op + L.OPEN_ADAPTER_NAME))
        media, nmedia = self.u64(op + L.OPEN_MEDIUM_ARRAY), self.u32(op + L.OPEN_MEDIUM_ARRAY_SIZE)
        selected = self.u64(op + L.OPEN_SELECTED_MEDIUM_INDEX)
        adapter = next((ad for ad in self._adapters if ad.name == adapter_name), None)
        call = self._record("import", "NdisOpenAdapterEx", adapter.label if adapter else None,
                            f"adapter={adapter_name}")
        if proto != self._protocol or adapter is None or htype != NDIS_OBJECT_TYPE_OPEN_PARAMETERS:
            self.faults.append(f"NdisOpenAdapterEx: bad protocol handle/adapter/header "
                               f"({adapter_name!r}, type 0x{htype:x})")
            call.result = STATUS_UNSUCCESSFUL
            return STATUS_UNSUCCESSFUL
        if self._bind_ctx[0] != bind_ctx:
            self.faults.append("NdisOpenAdapterEx outside BindAdapterEx's bind context")
        if osize < L.OPEN_SIZE_REVISION_1:
            self.faults.append(f"NdisOpenAdapterEx: NDIS_OPEN_PARAMETERS Header.Size 0x{osize:x} "
                               f"is below revision 1 (0x{L.OPEN_SIZE_REVISION_1:x})")
        mediums = [self.u32(media + 4 * i) for i in range(nmedia)]
        if 0 not in mediums:
            call.result = 0xC0010019  # NDIS_STATUS_UNSUPPORTED_MEDIA
            return call.result
        self.write(selected, struct.pack("<I", mediums.index(0)))
        handle = self._handle()
        self.put64(out, handle)
        self._bindings[handle] = _Binding(adapter, ctx)
        self._open(call, "NdisOpenAdapterEx", handle)
        if not self.pending:
            call.result = STATUS_SUCCESS
            return STATUS_SUCCESS
        self._deferred.append(GuestCall(self.handler("OpenAdapterCompleteHandlerEx"), (ctx, 0),
                                        "OpenAdapterCompleteEx", adapter.label))
        call.result = STATUS_PENDING
        return STATUS_PENDING

    def _api_NdisCloseAdapterEx(self, a: Args) -> int:
        call = self._record("import", "NdisCloseAdapterEx")
        b = self._binding(call, a[0])
        if b is None:
            call.result = STATUS_UNSUCCESSFUL
            return STATUS_UNSUCCESSFUL
        self._close(call, a[0], "NdisCloseAdapterEx")
        b.open = False
        if not self.pending:
            call.result = STATUS_SUCCESS
            return STATUS_SUCCESS
        self._deferred.append(GuestCall(self.handler("CloseAdapterCompleteHandlerEx"),
                                        (b.context,), "CloseAdapterCompleteEx", b.adapter.label))
        call.result = STATUS_PENDING
        return STATUS_PENDING

    def _api_NdisOidRequest(self, a: Args) -> int:
        req = a[1]
        rtype, oid = self.u32(req + L.OID_REQUEST_TYPE), self.u32(req + L.OID_SET_OID)
        info, length = self.u64(req + L.OID_SET_BUFFER), self.u32(req + L.OID_SET_BUFFER_LENGTH)
        value = self.u32(info) if length == 4 else None
        call = self._record("import", "NdisOidRequest",
                            detail=f"type={rtype} oid=0x{oid:08x} value={value}")
        b = self._binding(call, a[0])
        if b is None:
            call.result = STATUS_UNSUCCESSFUL
            return STATUS_UNSUCCESSFUL
        if not self.pending:
            call.result = STATUS_SUCCESS
            return STATUS_SUCCESS
        self._deferred.append(GuestCall(self.handler("OidRequestCompleteHandler"),
                                        (b.context, req, 0), "OidRequestComplete",
                                        b.adapter.label))
        call.result = STATUS_PENDING
        return STATUS_PENDING

    def _api_NdisAllocateNetBufferListPool(self, a: Args) -> int:
        handle = self._handle()
        call = self._record("import", "NdisAllocateNetBufferListPool", result=handle)
        if a[0] != self._protocol:
            self.faults.append("NdisAllocateNetBufferListPool with an unknown NDIS handle")
        htype, hsize = self.read(a[1] + L.HDR_TYPE, 1)[0], self.u16(a[1] + L.HDR_SIZE)
        if htype != NDIS_OBJECT_TYPE_DEFAULT or hsize < L.POOL_SIZE_REVISION_1:
            self.faults.append(f"NdisAllocateNetBufferListPool: bad header type 0x{htype:x} "
                               f"size 0x{hsize:x}")
        self._open(call, "NdisAllocateNetBufferListPool", handle)
        return handle

    def _api_NdisFreeNetBufferListPool(self, a: Args) -> int:
        call = self._record("import", "NdisFreeNetBufferListPool")
        self._close(call, a[0], "NdisFreeNetBufferListPool")
        return 0

    def _api_NdisAllocateNetBufferAndNetBufferList(self, a: Args) -> int:
        pool, mdl, offset, length = a[0], a[3], a[4] & 0xFFFFFFFF, a[5]
        nb = self.alloc(L.NB_ALLOC)
        _write_net_buffer(self, nb, mdl, offset, length)
        nbl = self.alloc(L.NBL_ALLOC)
        self.put64(nbl + L.NBL_FIRST_NET_BUFFER, nb)
        self.put64(nbl + L.NBL_NDIS_POOL_HANDLE, pool)
        self._watch_nbl(nbl, "own")
        call = self._record("import", "NdisAllocateNetBufferAndNetBufferList",
                            detail=f"len={length}", result=nbl)
        self._open(call, "NdisAllocateNetBufferAndNetBufferList", nbl)
        return nbl

    def _api_NdisFreeNetBufferList(self, a: Args) -> int:
        call = self._record("import", "NdisFreeNetBufferList")
        if self._close(call, a[0], "NdisFreeNetBufferList"):
            self._nbls[a[0]] = "freed"
        return 0

    def _api_NdisGetDataBuffer(self, a: Args) -> int:
        nb, need = a[0], a[1] & 0xFFFFFFFF
        mdl, mdl_off = self.u64(nb + L.NB_CURRENT_MDL), self.u32(nb + L.NB_CURRENT_MDL_OFFSET)
        length = self.u32(nb + L.NB_DATA_LENGTH)
        va, mdl_len = self._mdls.get(mdl, (0, 0))
        ok = va and need <= length and mdl_off + need <= mdl_len
        self._record("import", "NdisGetDataBuffer", detail=f"need={need}",
                     result=va + mdl_off if ok else 0)
        return va + mdl_off if ok else 0

    def _api_NdisSendNetBufferLists(self, a: Args) -> int:
        call = self._record("import", "NdisSendNetBufferLists")
        b = self._binding(call, a[0])
        nbl = a[1]
        while nbl and b is not None:
            nb = self.u64(nbl + L.NBL_FIRST_NET_BUFFER)
            va, _ = self._mdls.get(self.u64(nb + L.NB_CURRENT_MDL), (0, 0))
            frame = self.read(va + self.u32(nb + L.NB_CURRENT_MDL_OFFSET),
                              self.u32(nb + L.NB_DATA_LENGTH))
            self.sent_frames.append((b.adapter.label, frame))
            call.detail = f"frame={frame[:16].hex()}..."
            following = self.u64(nbl + L.NBL_NEXT)
            self._route_completion(a[0], nbl)
            nbl = following
        return 0

    def _route_completion(self, sent_on: int, nbl: int) -> None:
        """NDIS returns a sent NBL to the binding its SourceHandle names."""
        source = self.u64(nbl + L.NBL_SOURCE_HANDLE)
        self.sends.append((sent_on, source, nbl))
        if source != sent_on:
            self.faults.append(f"NdisSendNetBufferLists: the NBL's SourceHandle 0x{source:x} is "
                               f"not the binding handle 0x{sent_on:x} it is sent on")
        owner = self._bindings.get(source)
        if owner is None or not owner.open:
            self.faults.append(f"send completion cannot be routed: SourceHandle 0x{source:x} "
                               "names no open binding of this protocol; NDIS never returns "
                               "the NBL")
            return
        self.put64(nbl + L.NBL_NEXT, 0)  # completed one by one
        self._deferred.append(GuestCall(self.handler("SendNetBufferListsCompleteHandler"),
                                        (owner.context, nbl, 0), "SendNetBufferListsComplete",
                                        owner.adapter.label))
        self.send_completions.append((owner.adapter.label, nbl))

    def _api_NdisReturnNetBufferLists(self, a: Args) -> int:
        call = self._record("import", "NdisReturnNetBufferLists")
        self._binding(call, a[0])
        return 0

    # ---- TDI.SYS ----

    def _api_TdiRegisterProvider(self, a: Args) -> int:
        call = self._record("import", "TdiRegisterProvider", detail=self.unicode_string(a[0]))
        handle = self._handle()
        self._provider = handle
        self.put64(a[1], handle)
        self._open(call, "TdiRegisterProvider", handle)
        call.result = STATUS_SUCCESS
        return STATUS_SUCCESS

    def _api_TdiProviderReady(self, a: Args) -> int:
        call = self._record("import", "TdiProviderReady")
        ok = a[0] == self._provider and not self._resources[a[0]].closed
        call.result = STATUS_SUCCESS if ok else STATUS_INVALID_HANDLE
        return call.result

    def _api_TdiDeregisterProvider(self, a: Args) -> int:
        call = self._record("import", "TdiDeregisterProvider")
        ok = self._close(call, a[0], "TdiDeregisterProvider")
        call.result = STATUS_SUCCESS if ok else STATUS_INVALID_HANDLE
        return call.result

    def _api_TdiRegisterDeviceObject(self, a: Args) -> int:
        name = self.unicode_string(a[0])
        label = self._bind_ctx[1].label if "BindAdapterEx" in "/".join(self._within) else None
        call = self._record("import", "TdiRegisterDeviceObject", label, name)
        if label is None or name in self._devices:
            self.faults.append(f"TdiRegisterDeviceObject({name}) outside a bind or twice")
        self._devices[name] = label or "?"
        handle = self._handle()
        self.put64(a[1], handle)
        self._open(call, "TdiRegisterDeviceObject", handle)
        call.result = STATUS_SUCCESS
        return STATUS_SUCCESS

    def _api_TdiDeregisterDeviceObject(self, a: Args) -> int:
        call = self._record("import", "TdiDeregisterDeviceObject")
        ok = self._close(call, a[0], "TdiDeregisterDeviceObject")
        if ok:
            call.detail = self._resources[a[0]].detail
            self._devices.pop(call.detail, None)
        call.result = STATUS_SUCCESS if ok else STATUS_INVALID_HANDLE
        return call.result

    def _api_TdiRegisterNetAddress(self, a: Args) -> int:
        length = self.u16(a[0] + L.TA_ADDRESS_LENGTH)
        atype = self.u16(a[0] + L.TA_ADDRESS_TYPE)
        addr = self.read(a[0] + L.TA_ADDRESS_DATA, length)
        device = self.unicode_string(a[1])
        label = self._devices.get(device)
        call = self._record("import", "TdiRegisterNetAddress", label,
                            f"type={atype} addr={addr.hex(':')} device={device}")
        if label is None:
            self.faults.append(f"TdiRegisterNetAddress for unregistered device {device!r}")
        handle = self._handle()
        self.put64(a[3], handle)
        self._open(call, "TdiRegisterNetAddress", handle)
        call.result = STATUS_SUCCESS
        return STATUS_SUCCESS

    def _api_TdiDeregisterNetAddress(self, a: Args) -> int:
        call = self._record("import", "TdiDeregisterNetAddress")
        ok = self._close(call, a[0], "TdiDeregisterNetAddress")
        if ok:
            call.detail = self._resources[a[0]].detail
        call.result = STATUS_SUCCESS if ok else STATUS_INVALID_HANDLE
        return call.result

    def _api_TdiPnPPowerRequest(self, a: Args) -> int:
        device, event, complete = self.unicode_string(a[0]), a[1], a[4]
        code = self.u32(event + L.PNP_NET_EVENT)
        label = self._devices.get(device)
        call = self._record("import", "TdiPnPPowerRequest", label,
                            f"device={device} event={NET_EVENTS.get(code, code)}")
        if label is None:
            self.faults.append(f"TdiPnPPowerRequest for unregistered device {device!r}")
        if not self.pending or not complete:
            call.result = STATUS_SUCCESS
            return STATUS_SUCCESS
        self._deferred.append(GuestCall(complete, (event, 0), "ProviderPnPPowerComplete", label))
        call.result = STATUS_PENDING
        return STATUS_PENDING


# ==================================================================== scenario + checker

ADAPTER_A = FakeAdapter("A", bytes.fromhex("525400e1aa0a"), 11)
ADAPTER_B = FakeAdapter("B", bytes.fromhex("525400e1bb0b"), 12)


@dataclass
class Run:
    """One emulated life cycle: the trace, the driver's journal, and how it ended."""

    emulator: LabTdiEmulator
    removed: FakeAdapter
    kept: FakeAdapter
    steps_done: list[str] = field(default_factory=list)
    failure: str | None = None  # DriverHang / DriverCrash message

    @property
    def trace(self) -> list[Call]:
        return self.emulator.trace

    def printable(self, noise: bool = False) -> str:
        return "\n".join(str(c) for c in self.trace
                         if noise or c.kind != "import" or c.name not in NOISE)


#: The L2 echo probe of the emulated life cycle (lab/l2probe.py builds it, in the shared
#: wire format of drivers/common/labl2echo.h).
PROBE_SEQ, PROBE_PAYLOAD, PROBE_SRC = 0x5EED, b"emulated-probe-payload", "02:00:00:00:00:01"


def echo_request(dst: bytes) -> bytes:
    return l2probe.build_request(":".join(f"{b:02x}" for b in dst), PROBE_SRC, PROBE_SEQ,
                                 PROBE_PAYLOAD)


def run_lifecycle(image: Path, knobs: Mapping[str, int] | None = None, *,
                  pending: bool = False) -> Run:
    """DriverEntry; bind A and B; echo probe on A; query-remove A; unbind A; Unload."""
    emu = LabTdiEmulator(image, knobs, pending=pending)
    if emu.unresolved:
        raise EmulationError("EMULATION GAP: imports without a model: "
                             + ", ".join(emu.unresolved))
    run = Run(emu, ADAPTER_A, ADAPTER_B)
    a, b = ADAPTER_A, ADAPTER_B
    steps: list[tuple[str, Callable[[], object]]] = [
        ("DriverEntry", emu.driver_entry),
        ("BindAdapterEx(A)", lambda: emu.bind(a)),
        ("BindAdapterEx(B)", lambda: emu.bind(b)),
        ("NetEventBindsComplete", lambda: emu.pnp(None, "NetEventBindsComplete")),
        ("L2 echo probe on A", lambda: emu.receive(a, echo_request(a.mac))),
        ("NetEventQueryRemoveDevice(A)", lambda: emu.pnp(a, "NetEventQueryRemoveDevice")),
        ("UnbindAdapterEx(A)", lambda: emu.unbind(a)),
        ("Unload", emu.unload),
    ]
    for name, step in steps:
        try:
            result = step()
        except (DriverHang, DriverCrash) as exc:
            run.failure = f"{type(exc).__name__} during {name}: {exc}"
            break
        if name in ("DriverEntry", "BindAdapterEx(A)", "BindAdapterEx(B)") and result:
            run.failure = f"{name} failed with 0x{result:x}"
            break
        run.steps_done.append(name)
    return run


def _calls(trace: Sequence[Call], name: str, adapter: str | None = None) -> list[Call]:
    return [c for c in trace if c.kind == "import" and c.name == name
            and (adapter is None or c.adapter == adapter)]


def _entry(trace: Sequence[Call], kind: str, name: str, adapter: str | None) -> Call | None:
    return next((c for c in trace if c.kind == kind and c.name == name
                 and c.adapter == adapter), None)


def check_contract(run: Run) -> list[str]:
    """The seed's unload/deregister rules applied to the recorded call trace.

    Returns the violations (empty when the driver kept the contract)."""
    v: list[str] = []
    trace, emu = run.trace, run.emulator
    if run.failure:
        v.append(run.failure)
    v += [f"model: {f}" for f in emu.faults]
    v += _check_removal(trace, run.removed.label, run.kept.label)
    v += _check_unload(trace, emu)
    v += _check_pairs(trace, emu)
    return v


def _check_removal(trace: Sequence[Call], gone: str, kept: str) -> list[str]:
    v: list[str] = []
    query = _entry(trace, "enter", "NetPnPEvent.NetEventQueryRemoveDevice", gone)
    unbind = _entry(trace, "enter", "UnbindAdapterEx", gone)
    unbind_done = _entry(trace, "leave", "UnbindAdapterEx", gone)
    if query is None or unbind is None:
        return [f"adapter {gone}: the scenario never reached query-remove/unbind"]
    forwarded = [c for c in _calls(trace, "TdiPnPPowerRequest", gone)
                 if "NetEventQueryRemoveDevice" in c.detail]
    in_query = [c for c in forwarded if query.seq < c.seq < unbind.seq]
    if len(in_query) != 1:
        v.append(f"adapter {gone}: NetEventQueryRemoveDevice was forwarded with "
                 f"TdiPnPPowerRequest {len(in_query)} times before UnbindAdapterEx (want 1)")
    early = [c for c in trace[query.seq:unbind.seq]
             if c.kind == "import" and c.name in TEARDOWN and c.adapter == gone]
    if early:
        v.append(f"adapter {gone}: torn down before UnbindAdapterEx: "
                 + ", ".join(c.name for c in early))
    end = unbind_done.seq if unbind_done else len(trace)
    inside = [c for c in trace[unbind.seq:end] if c.kind == "import" and c.adapter == gone]
    names = [c.name for c in inside]
    for wanted in ("TdiDeregisterNetAddress", "TdiDeregisterDeviceObject", "NdisCloseAdapterEx"):
        if names.count(wanted) != 1:
            v.append(f"adapter {gone}: {wanted} called {names.count(wanted)} times "
                     "inside UnbindAdapterEx (want 1)")
    if ("TdiDeregisterNetAddress" in names and "TdiDeregisterDeviceObject" in names
            and names.index("TdiDeregisterNetAddress") > names.index("TdiDeregisterDeviceObject")):
        v.append(f"adapter {gone}: device object deregistered before its net address")
    touched = [c for c in trace[query.seq:end] if c.kind == "import" and c.adapter == kept]
    if touched:
        v.append(f"adapter {kept} touched while {gone} was removed: "
                 + ", ".join(c.name for c in touched))
    unload = _entry(trace, "enter", "Unload", None)
    kept_teardown = [c for c in trace if c.kind == "import" and c.adapter == kept
                     and c.name in TEARDOWN and (unload is None or c.seq < unload.seq)]
    if kept_teardown:
        v.append(f"adapter {kept} torn down before Unload: "
                 + ", ".join(c.name for c in kept_teardown))
    return v


def _check_unload(trace: Sequence[Call], emu: LabTdiEmulator) -> list[str]:
    v: list[str] = []
    enter = _entry(trace, "enter", "Unload", None)
    leave = _entry(trace, "leave", "Unload", None)
    if enter is None:
        return ["the Unload routine was never called (no DriverUnload, or an earlier failure)"]
    if leave is None:
        v.append("the Unload routine never returned")
    during = [c for c in trace[enter.seq:] if c.kind == "import"]
    for wanted in ("TdiDeregisterProvider", "NdisDeregisterProtocolDriver"):
        n = sum(1 for c in during if c.name == wanted)
        if n != 1:
            v.append(f"Unload called {wanted} {n} times (want exactly 1)")
    provider = next((c for c in during if c.name == "TdiDeregisterProvider"), None)
    if provider is not None:
        still = [c for c in trace[:provider.seq] if c.kind == "import"
                 and c.name in ("NdisOpenAdapterEx", "TdiRegisterDeviceObject",
                                "TdiRegisterNetAddress")
                 and c.handle is not None and not _closed_before(trace, c.handle, provider.seq)]
        if still:
            v.append("TdiDeregisterProvider before every binding was released: still open "
                     + ", ".join(f"{c.name}({c.adapter})" for c in still))
    if leave is not None:
        bound = [f"{b.adapter.label}" for b in emu._bindings.values() if b.open]
        if bound:
            v.append(f"Unload returned with adapters still bound: {', '.join(bound)}")
    return v


def _closed_before(trace: Sequence[Call], handle: int, seq: int) -> bool:
    return any(c.handle == handle and c.name in PAIRS.values() and c.seq < seq
               for c in trace if c.kind == "import")


def _check_pairs(trace: Sequence[Call], emu: LabTdiEmulator) -> list[str]:
    v: list[str] = []
    for opening, closing in PAIRS.items():
        opened = [c for c in _calls(trace, opening) if c.handle is not None]
        for c in opened:
            n = sum(1 for d in _calls(trace, closing) if d.handle == c.handle)
            if n != 1:
                ad = f" ({c.adapter})" if c.adapter else ""
                v.append(f"{opening}{ad} {c.detail} has {n} {closing} (want exactly 1)")
    held = [f"0x{m:x}" for m, n in emu._mutexes.items() if n]
    if held:
        v.append(f"mutexes still held: {', '.join(held)}")
    if emu._critical_regions:
        v.append(f"{emu._critical_regions} KeEnterCriticalRegion without KeLeaveCriticalRegion")
    return v
