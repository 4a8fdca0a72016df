"""Drivers tier, EMULATION: the labtdi emulation catches the send-path mistakes it exists
to catch. Each case builds labtdi.sys through drivers/windows.mk from a copy of its sources
with one mistake put back, runs the emulated life cycle (tdiemu) and expects the checker
to report it; the unchanged copy must pass, so the failure is the mistake's.

- nbl-layout-of-the-old-header: the reserved NBL areas without their 16-byte alignment
  AND the header's static asserts moved along (exactly the state the independent review
  found: the asserts pinned the wrong values). Only the emulator's independent layout
  table (ndislayout) can tell: the driver writes into NdisReserved and leaves the real
  SourceHandle empty.
- no-source-handle: the reply NBL is sent without SourceHandle = binding handle.
- executable-pool: allocations from NonPagedPool instead of NonPagedPoolNx.
"""

from __future__ import annotations

import re
import shutil
from collections.abc import Callable
from pathlib import Path

import pytest
from tdiemu import check_contract, run_lifecycle
from winheaders import CC, SourceTree, build_labtdi


def _unchanged(t: SourceTree) -> None:
    pass


def _old_nbl_layout(t: SourceTree) -> None:
    t.replace("labndis6.h", "#define LAB_NDIS_ALIGNED __attribute__((aligned("
              "LAB_MEMORY_ALLOCATION_ALIGNMENT)))", "#define LAB_NDIS_ALIGNED")
    f = t.path / "labndis6.h"
    pattern = re.compile(r"(LAB_OFFSET\(NET_BUFFER_LIST, \w+\) == )(\d+)")
    text, n = pattern.subn(lambda m: m.group(1) + str(int(m.group(2)) - 8)
                           if int(m.group(2)) >= 48 else m.group(0), f.read_text())
    assert n >= 9, "the NBL static asserts moved: update this mutation"
    f.write_text(text.replace("_Static_assert(_Alignof(NET_BUFFER_LIST) == 16", "_Static_assert(1"))


def _no_source_handle(t: SourceTree) -> None:
    t.replace("labtdi.c", "    nbl->SourceHandle = a->Binding;", "    /* SourceHandle not set */")


def _executable_pool(t: SourceTree) -> None:
    t.replace("labkern.h", "#define LAB_NONPAGED_POOL NonPagedPoolNx",
              "#define LAB_NONPAGED_POOL NonPagedPool")


MUTANTS: dict[str, tuple[Callable[[SourceTree], None], tuple[str, ...]]] = {
    "unchanged-copy": (_unchanged, ()),
    "nbl-layout-of-the-old-header": (_old_nbl_layout, (
        "NBL+0x38 (NdisReserved)", "SourceHandle 0x0 is not the binding handle",
        "send completion cannot be routed")),
    "no-source-handle": (_no_source_handle, (
        "SourceHandle 0x0 is not the binding handle", "send completion cannot be routed")),
    "executable-pool": (_executable_pool, ("memory integrity (HVCI) wants NonPagedPoolNx",)),
}


@pytest.mark.parametrize("mutant", [pytest.param(k, id=f"emulated-{k}") for k in MUTANTS])
def test_emulation_reports_the_reintroduced_mistake(tmp_path: Path, mutant: str) -> None:
    if shutil.which(CC) is None:
        pytest.fail(f"{CC} is not installed: run `make setup` (drivers/apt-packages.txt)")
    mutate, expected = MUTANTS[mutant]
    image = build_labtdi(tmp_path, mutate)
    violations = check_contract(run_lifecycle(image))
    print(f"\n--- {mutant}: violations ---\n" + "\n".join(violations))
    if not expected:
        assert violations == []
    for text in expected:
        assert any(text in v for v in violations), (text, violations)
