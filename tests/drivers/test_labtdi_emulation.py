"""Drivers tier, EMULATION: the TDI call-order contract of the real labtdi.sys.

THIS IS EMULATION, NOT WINDOWS. Wine implements no NDIS and no TDI, so labtdi.sys
cannot run under Wine. Instead ``tdiemu`` executes the real built and signed
``var/drivers/windows/labtdi.sys`` machine code in the Unicorn x86-64 CPU emulator, with
every import (ntoskrnl, HAL, NDIS.SYS, TDI.SYS) answered by a small Python model. The
harness plays the I/O manager and NDIS: DriverEntry, BindAdapterEx for two fake
adapters A and B (+ NetEventRestart), NetEventBindsComplete, an L2 echo probe on A,
NetEventQueryRemoveDevice for A, NetEventPause + UnbindAdapterEx for A, then the
Unload routine (whose NdisDeregisterProtocolDriver unbinds B, as NDIS does). Every
import call is recorded in order and checked against the seed rules
(seeds/unloading-deregistering-tdi-transport.txt); the driver's own journal (written
through ZwWriteFile) is checked too. The fault knobs of drivers/labtdi/driver.toml,
set in the emulated registry, must make the checker report a violation.

What emulation cannot show (real NDIS binding state machine, TDI clients, IRQL,
concurrency, the real loader, Code Integrity): drivers/windows/README-section.md.
"""

from __future__ import annotations

import hashlib
import json
import tomllib
from collections.abc import Callable
from pathlib import Path

import pytest
import tdiemu
from tdiemu import ADAPTER_A, ADAPTER_B, Call, Run, check_contract, run_lifecycle

from lab import journal as lj
from lab import l2probe

ROOT = Path(__file__).resolve().parents[2]
MANIFEST = ROOT / "drivers" / "labtdi" / "driver.toml"


def _image(build: Path) -> Path:
    return build / "labtdi.sys"


def _imports(run: Run, *names: str) -> list[Call]:
    return [c for c in run.trace if c.kind == "import" and c.name in names]


def _report(run: Run, title: str) -> None:
    print(f"\n=== {tdiemu.LABEL}: {title} ===")
    print(run.printable())
    print("--- driver journal (JournalFile, via ZwWriteFile) ---")
    print(run.emulator.journal_text(), end="")


@pytest.fixture(scope="module")
def image(windows_build: Path) -> Path:
    return _image(windows_build)


def test_emulated_image_is_the_built_signed_labtdi(image: Path) -> None:
    """The emulator runs the very bytes the build signed, with every import modelled."""
    build = json.loads((image.parent / "BUILD.json").read_text())
    assert hashlib.sha256(image.read_bytes()).hexdigest() == build["labtdi.sys"]
    emu = tdiemu.LabTdiEmulator(image)
    print(f"\n{tdiemu.LABEL}: {len(emu.imports)} imports: {', '.join(emu.imports)}")
    assert not emu.unresolved, f"EMULATION GAP: no model for {emu.unresolved}"
    assert {"TDI.SYS!TdiDeregisterProvider", "NDIS.SYS!NdisDeregisterProtocolDriver",
            "TDI.SYS!TdiPnPPowerRequest"} <= set(emu.imports)


# The per-adapter and unload order the seed requires, as seen at the import table.
EXPECTED_ORDER = [
    ("NdisRegisterProtocolDriver", None), ("TdiRegisterProvider", None),
    ("NdisOpenAdapterEx", "A"), ("TdiRegisterDeviceObject", "A"), ("TdiRegisterNetAddress", "A"),
    ("NdisOpenAdapterEx", "B"), ("TdiRegisterDeviceObject", "B"), ("TdiRegisterNetAddress", "B"),
    ("TdiProviderReady", None),
    ("TdiPnPPowerRequest", "A"),
    ("TdiDeregisterNetAddress", "A"), ("TdiDeregisterDeviceObject", "A"),
    ("NdisCloseAdapterEx", "A"),
    ("NdisDeregisterProtocolDriver", None),
    ("TdiDeregisterNetAddress", "B"), ("TdiDeregisterDeviceObject", "B"),
    ("NdisCloseAdapterEx", "B"),
    ("TdiDeregisterProvider", None),
]


@pytest.mark.parametrize("pending", [
    pytest.param(False, id="emulated-ndis-tdi-complete-synchronously"),
    pytest.param(True, id="emulated-ndis-tdi-pend-then-complete"),
])
def test_emulated_lifecycle_keeps_the_unload_contract(image: Path, pending: bool) -> None:
    run = run_lifecycle(image, pending=pending)
    _report(run, f"life cycle, pending={pending}")
    assert run.failure is None, run.failure
    assert check_contract(run) == []
    key = [(c.name, c.adapter) for c in _imports(run, *{n for n, _ in EXPECTED_ORDER})]
    assert key == EXPECTED_ORDER
    forwarded = _imports(run, "TdiPnPPowerRequest")
    assert len(forwarded) == 1 and "NetEventQueryRemoveDevice" in forwarded[0].detail
    assert forwarded[0].within == ("NetPnPEvent.NetEventQueryRemoveDevice(A)",)
    b_teardown = [c for c in run.trace if c.adapter == "B" and c.name in tdiemu.TEARDOWN]
    assert b_teardown and all(c.within[:2] == ("Unload", "UnbindAdapterEx(B)")
                              for c in b_teardown)
    assert not run.emulator.open_resources(), "resources left after Unload"
    _check_echo_send_path(run)


def _check_echo_send_path(run: Run) -> None:
    """The L2 echo probe went through the real receive/send path, in the shared wire
    format, with the NBL handed to NDIS the way NDIS needs it."""
    emu = run.emulator
    sent = emu.sent_frames
    assert len(sent) == 1 and sent[0][0] == "A"
    frame = sent[0][1]
    assert frame[:6] == bytes.fromhex(tdiemu.PROBE_SRC.replace(":", ""))
    assert l2probe.parse_reply(frame, tdiemu.PROBE_SEQ, tdiemu.PROBE_PAYLOAD) == (
        ADAPTER_A.journal_name.split("@")[0], ADAPTER_A.ifindex)
    # The reply NBL's SourceHandle is the binding handle it was sent on ...
    assert len(emu.sends) == 1
    sent_on, source, nbl = emu.sends[0]
    assert source == sent_on and source in emu.binding_handles("A")
    # ... and NDIS routed its completion by that handle, back to binding A.
    assert emu.send_completions == [("A", nbl)]
    assert not [f for f in emu.faults if "NET_BUFFER_LIST" in f], emu.faults


@pytest.fixture(scope="module")
def emulated_journal(image: Path) -> lj.Journal:
    run = run_lifecycle(image)
    assert run.failure is None, run.failure
    text = run.emulator.journal_text()
    assert text, "the driver wrote no journal file"
    return lj.parse_journal(text, lj.Vocabulary.load())


def test_emulated_journal_shows_the_seed_order(emulated_journal: lj.Journal) -> None:
    """The driver's own journal (ZwWriteFile to its JournalFile) tells the same story."""
    names = emulated_journal.names()
    assert names[0] == "LOAD" and names[-1] == "UNLOAD"
    lj.check_pairs(emulated_journal, "labtdi", lj.Vocabulary.load())
    a = lj.Adapter.parse(ADAPTER_A.journal_name)
    b = lj.Adapter.parse(ADAPTER_B.journal_name)
    assert emulated_journal.of_adapter(a).names()[-5:] == list(lj.REMOVAL_ORDER)
    assert emulated_journal.of_adapter(b).names()[-3:] == list(lj.UNBIND_ORDER)
    assert "QUERY_REMOVE" not in emulated_journal.of_adapter(b).names()
    last_unbind = max(i for i, n in enumerate(names) if n == "DEVICE_DEREGISTERED")
    assert names.index("PROVIDER_DEREGISTERED") > last_unbind
    assert not emulated_journal.errors()


# The Windows driver's order differs from the Linux twin's in two places the seed
# leaves open (registration order at bind, provider/protocol order at unload); the
# lab's journal checkers accept both, so the same checks pass on the real driver.
def test_emulated_journal_vs_lab_bind_order(emulated_journal: lj.Journal) -> None:
    lj.check_adapter_removal(emulated_journal, "labtdi", lj.Adapter.parse(ADAPTER_A.journal_name))


def test_emulated_journal_vs_lab_unload_order(emulated_journal: lj.Journal) -> None:
    lj.check_unload(emulated_journal, "labtdi", lj.Vocabulary.load())


def _knobs() -> dict[str, str]:
    table = tomllib.loads(MANIFEST.read_text())["windows"]["knobs"]
    return {spec["value"]: spec["fault"] for spec in table.values()}


# What the checker must say for each knob of drivers/labtdi/driver.toml [windows.knobs].
KNOB_VIOLATIONS = {
    "FaultSkipDeregister": "Unload called TdiDeregisterProvider 0 times",
    "FaultLeakAdapterRef": "binding is never released",
    "FaultBlockUnload": "the Unload routine never returned",
    "FaultCrashOnUnbind": "KeBugCheckEx(0xe2",
}


def test_every_manifest_knob_has_an_emulated_fault_test() -> None:
    assert set(_knobs()) == set(KNOB_VIOLATIONS)


@pytest.mark.parametrize("knob", [pytest.param(k, id=f"emulated-{k}") for k in KNOB_VIOLATIONS])
def test_emulated_fault_knob_is_reported(image: Path, knob: str) -> None:
    run = run_lifecycle(image, {knob: 1})
    violations = check_contract(run)
    _report(run, f"{knob}=1 ({_knobs()[knob]})")
    print("--- violations ---\n" + "\n".join(violations))
    assert any(KNOB_VIOLATIONS[knob] in v for v in violations), violations
    assert any(knob in line for line in run.emulator.dbgprint) or knob == "FaultCrashOnUnbind"


# Checker self-test: the real recorded trace, doctored one way at a time, must fail.
def _drop_forward(run: Run) -> None:
    run.trace[:] = [c for c in run.trace if c.name != "TdiPnPPowerRequest"]


def _early_deregister(run: Run) -> None:
    query = next(c for c in run.trace if c.name == "NetPnPEvent.NetEventQueryRemoveDevice")
    dereg = next(c for c in run.trace if c.name == "TdiDeregisterNetAddress" and c.adapter == "A")
    run.trace.remove(dereg)
    run.trace.insert(run.trace.index(query) + 1, dereg)


def _touch_other(run: Run) -> None:
    unbind = next(c for c in run.trace if c.name == "NdisCloseAdapterEx" and c.adapter == "A")
    unbind.adapter = "B"


def _provider_first(run: Run) -> None:
    prov = next(c for c in run.trace if c.name == "TdiDeregisterProvider")
    proto = next(c for c in run.trace if c.name == "NdisDeregisterProtocolDriver")
    run.trace.remove(prov)
    run.trace.insert(run.trace.index(proto), prov)


def _renumber(run: Run) -> None:
    for i, c in enumerate(run.trace):
        c.seq = i


DOCTORED: dict[str, tuple[Callable[[Run], None], str]] = {
    "no-forward": (_drop_forward, "forwarded with TdiPnPPowerRequest 0 times"),
    "deregister-before-unbind": (_early_deregister, "torn down before UnbindAdapterEx"),
    "other-adapter-touched": (_touch_other, "adapter B touched while A was removed"),
    "provider-before-bindings-released": (_provider_first, "before every binding was released"),
}


@pytest.mark.parametrize("mutation", [pytest.param(k, id=f"emulated-trace-{k}") for k in DOCTORED])
def test_checker_rejects_a_doctored_trace(image: Path, mutation: str) -> None:
    run = run_lifecycle(image)
    assert check_contract(run) == []
    doctor, expected = DOCTORED[mutation]
    doctor(run)
    _renumber(run)
    violations = check_contract(run)
    assert any(expected in v for v in violations), violations
