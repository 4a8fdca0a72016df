"""Build tier: the hand-written Windows declarations are pinned, and agree with the
emulator's independent layout table.

- Every offset of ``ndislayout`` (written from public sources, not from our headers)
  is compiled as a _Static_assert against drivers/include/: headers and model agree.
- A wrong value in that cross-check fails the compile (the check can fail).
- A header whose layout is changed fails to build on its own static asserts: each case
  below reintroduces a known mistake (or a plausible one) in a copy of the headers.
"""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path

import ndislayout as L
import pytest
from winheaders import CC, SourceTree

INCLUDES = "".join(f'#include "{h}"\n'
                   for h in ("labkern.h", "labtdikrnl.h", "labwsk.h", "labl2echo.h"))


@pytest.fixture(autouse=True)
def _needs_mingw() -> None:
    if shutil.which(CC) is None:
        pytest.fail(f"{CC} is not installed: run `make setup` (drivers/apt-packages.txt)")


def _cross_check(offsets: tuple[tuple[str, str, int], ...],
                 values: tuple[tuple[str, int], ...]) -> str:
    lines = [INCLUDES]
    for ctype, member, off in offsets:
        lines.append(f'_Static_assert(__builtin_offsetof({ctype}, {member}) == {off}, '
                     f'"{ctype}.{member}: ndislayout says {off:#x}");')
    for expr, value in values:
        lines.append(f'_Static_assert(({expr}) == {value}, "{expr}: ndislayout says {value:#x}");')
    return "\n".join(lines) + "\n"


def test_headers_agree_with_the_independent_layout_table(tmp_path: Path) -> None:
    tree = SourceTree.copy(tmp_path)
    result = tree.compile(_cross_check(L.HEADER_CHECKS, L.HEADER_VALUES))
    assert result.returncode == 0, result.stderr
    assert len(L.HEADER_CHECKS) >= 40  # the table covers every structure the model touches


def test_a_disagreement_with_the_table_fails_the_compile(tmp_path: Path) -> None:
    tree = SourceTree.copy(tmp_path)
    wrong = (("NET_BUFFER_LIST", "SourceHandle", L.NBL_SOURCE_HANDLE - 8),)
    result = tree.compile(_cross_check(wrong, ()))
    assert result.returncode != 0
    assert "NET_BUFFER_LIST.SourceHandle: ndislayout says 0x70" in result.stderr


def _unalign_nbl(t: SourceTree) -> None:  # the original labndis6.h mistake
    t.replace("labndis6.h", "#define LAB_NDIS_ALIGNED __attribute__((aligned("
              "LAB_MEMORY_ALLOCATION_ALIGNMENT)))", "#define LAB_NDIS_ALIGNED")


def _ushort_driver_versions(t: SourceTree) -> None:  # the original characteristics mistake
    t.replace("labndis6.h", "    UCHAR MajorDriverVersion;\n    UCHAR MinorDriverVersion;",
              "    USHORT MajorDriverVersion;\n    USHORT MinorDriverVersion;")


def _unaligned_tdi_context(t: SourceTree) -> None:  # the original (and mingw's) TDI mistake
    t.replace("labtdikrnl.h", "UCHAR LAB_POINTER_ALIGNMENT ContextData[1];",
              "UCHAR ContextData[1];")


def _old_net_event_list(t: SourceTree) -> None:  # NetEventMaximum 13 instead of 23
    t.replace("labndis6.h", "    NetEventNDKEnable,\n", "")


def _swap_wsk_send_receive(t: SourceTree) -> None:
    t.replace("labwsk.h", "    PFN_WSK_SEND WskSend;\n    PFN_WSK_RECEIVE WskReceive;",
              "    PFN_WSK_RECEIVE WskReceive;\n    PFN_WSK_SEND WskSend;")


def _wide_payload_len(t: SourceTree) -> None:
    t.replace("labl2echo.h", "unsigned short payload_len;", "unsigned int payload_len;")


def _drop_bind_padding_member(t: SourceTree) -> None:
    t.replace("labndis6.h", "    ULONG LookaheadSize;\n", "")


def _drop_link_duplex_state(t: SourceTree) -> None:  # a member list read too fast
    t.replace("labndis6.h", "    ULONG MediaDuplexState;\n    ULONG64 XmitLinkSpeed;",
              "    ULONG64 XmitLinkSpeed;")


HEADER_MUTATIONS: dict[str, tuple[Callable[[SourceTree], None], str]] = {
    "nbl-reserved-areas-unaligned": (_unalign_nbl, "NBL.NdisReserved"),
    "driver-versions-as-ushort": (_ushort_driver_versions, "PC.MinorDriverVersion"),
    "tdi-pnp-context-unaligned": (_unaligned_tdi_context, "TDI_PNP_CONTEXT.ContextData"),
    "net-event-code-missing": (_old_net_event_list, "NetEventMaximum"),
    "wsk-dispatch-reordered": (_swap_wsk_send_receive, "CONNECTION dispatch"),
    "l2echo-field-widened": (_wide_payload_len, "l2echo header size"),
    "bind-parameters-member-dropped": (_drop_bind_padding_member, "BIND.MacAddressLength"),
    "link-state-member-dropped": (_drop_link_duplex_state, "LINK.XmitLinkSpeed"),
}


def test_unchanged_headers_build(tmp_path: Path) -> None:
    result = SourceTree.copy(tmp_path).compile(INCLUDES)
    assert result.returncode == 0, result.stderr


@pytest.mark.parametrize("mutation", [pytest.param(k, id=k) for k in HEADER_MUTATIONS])
def test_a_wrong_offset_in_a_header_fails_the_build(tmp_path: Path, mutation: str) -> None:
    mutate, expected = HEADER_MUTATIONS[mutation]
    tree = SourceTree.copy(tmp_path)
    mutate(tree)
    result = tree.compile(INCLUDES)
    assert result.returncode != 0, f"{mutation}: the headers still build"
    assert "static assertion failed" in result.stderr and expected in result.stderr, result.stderr
