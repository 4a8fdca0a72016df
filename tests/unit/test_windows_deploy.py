"""Windows deployment verdicts (driver vs lab), against a small scripted Shell.

The script answers command strings by their prefix with outputs in the documented
formats; it records every command so the tests also pin the command contract.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from lab.drivers import load_manifests
from lab.errors import CommandTimeout, DriverFailure, DriverHang, LabFailure
from lab.guests.base import AdapterInfo, CommandResult
from lab.guests.windows_deploy import (
    ProtocolDeployment,
    RebootRequired,
    ServiceDeployment,
    check_netcfg,
    deployment_for,
)
from lab.guests.windows_manifest import windows_spec
from lab.journal import Vocabulary

Answer = CommandResult | Callable[[str], CommandResult]


def sc_block(state: str) -> str:
    number = {"RUNNING": 4, "STOPPED": 1, "STOP_PENDING": 3}[state]
    return (f"SERVICE_NAME: wskecho\n        TYPE               : 1  KERNEL_DRIVER\n"
            f"        STATE              : {number}  {state}\n"
            "        WIN32_EXIT_CODE    : 0  (0x0)\n        SERVICE_EXIT_CODE  : 0  (0x0)\n")


def ok(cmd: str, out: str = "", code: int = 0) -> CommandResult:
    return CommandResult(cmd, code, out, "")


@dataclass
class Running:
    result: CommandResult | None  # None: never returns

    def finished(self) -> bool:
        return self.result is not None

    def wait(self, timeout: float) -> CommandResult:
        if self.result is None:
            raise CommandTimeout("win1", "sc.exe stop", timeout)
        return self.result

    def close(self) -> None:
        pass


@dataclass
class ScriptedShell:
    answers: dict[str, Answer]
    started: dict[str, CommandResult | None] = field(default_factory=dict)
    sent: list[str] = field(default_factory=list)
    puts: list[str] = field(default_factory=list)

    @property
    def name(self) -> str:
        return "win1"

    def run(self, command: str, timeout: float = 60.0, check: bool = True) -> CommandResult:
        self.sent.append(command)
        for prefix, answer in self.answers.items():
            if command.startswith(prefix):
                return answer(command) if callable(answer) else answer
        return ok(command)

    def start(self, command: str) -> Running:
        self.sent.append(command)
        return Running(self.started.get(command, ok(command)))

    def put(self, local: Path, remote: str) -> None:
        self.puts.append(remote)

    def get(self, remote: str, local: Path) -> None:
        raise AssertionError("not used")

    def close(self) -> None:
        pass


VOCAB = Vocabulary.load()
MANIFESTS = load_manifests()


def wskecho(shell: ScriptedShell) -> ServiceDeployment:
    spec = windows_spec(MANIFESTS["wskecho"])
    dep = deployment_for(shell, spec, VOCAB)
    assert isinstance(dep, ServiceDeployment)
    return dep


def states(*names: str) -> Callable[[str], CommandResult]:
    seq = list(names)
    return lambda cmd: ok(cmd, sc_block(seq.pop(0) if len(seq) > 1 else seq[0]))


def test_manifests_parse_into_specs() -> None:
    wsk = windows_spec(MANIFESTS["wskecho"])
    tdi = windows_spec(MANIFESTS["labtdi"])
    assert (wsk.service, wsk.is_protocol, wsk.params) == ("wskecho", False, (("Port", 7007),))
    assert wsk.knob("block_unload").value == "FaultBlockUnload"
    assert (tdi.component_id, tdi.is_protocol) == ("DL_labtdi", True)
    assert {p.name for p in tdi.files()} == {"labtdi.sys", "labtdi.inf", "labtdi.cat",
                                             "labctl.exe"}


def test_load_sets_parameters_and_knobs_then_starts() -> None:
    shell = ScriptedShell({"sc.exe query": states("STOPPED", "RUNNING")})
    wskecho(shell).load(["block_unload"])
    assert ("reg.exe add 'HKLM\\SYSTEM\\CurrentControlSet\\Services\\wskecho\\Parameters' "
            "/v Port /t REG_DWORD /d '7007' /f; exit $LASTEXITCODE") in shell.sent
    assert any("/v JournalFile /t REG_SZ /d '\\??\\C:\\Windows\\Temp\\wskecho.journal'" in c
               for c in shell.sent)
    assert any("/v FaultBlockUnload /t REG_DWORD /d '1'" in c for c in shell.sent)
    assert shell.sent.index("sc.exe start wskecho; exit $LASTEXITCODE") > max(
        i for i, c in enumerate(shell.sent) if c.startswith("reg.exe add"))


@pytest.mark.parametrize(("code", "error"), [(577, LabFailure), (2, LabFailure),
                                              (1058, LabFailure), (31, DriverFailure),
                                              (87, DriverFailure)])
def test_start_failures_are_classified(code: int, error: type[Exception]) -> None:
    shell = ScriptedShell({"sc.exe query": states("STOPPED"),
                           "sc.exe start": ok("sc.exe start", f"[SC] StartService FAILED "
                                                              f"{code}:", code)})
    with pytest.raises(error) as info:
        wskecho(shell).load()
    assert not isinstance(info.value, DriverFailure) or error is DriverFailure
    assert str(code) in str(info.value)


def test_unload_that_never_returns_is_a_driver_hang() -> None:
    shell = ScriptedShell({"sc.exe query": states("STOP_PENDING")},
                          started={"sc.exe stop wskecho; exit $LASTEXITCODE": None})
    with pytest.raises(DriverHang, match="did not return within 1s"):
        wskecho(shell).unload(deadline=1)


def test_unload_stuck_in_stop_pending_is_a_driver_hang() -> None:
    shell = ScriptedShell({"sc.exe query": states("STOP_PENDING")})
    t0 = time.monotonic()
    with pytest.raises(DriverHang, match="still STOP_PENDING"):
        wskecho(shell).unload(deadline=1.0)
    assert time.monotonic() - t0 < 5


def test_unload_waits_for_stopped() -> None:
    shell = ScriptedShell({"sc.exe query": states("STOP_PENDING", "STOPPED")})
    assert wskecho(shell).unload(deadline=10) < 10


def test_driver_without_unload_routine() -> None:
    stop = "sc.exe stop wskecho; exit $LASTEXITCODE"
    shell = ScriptedShell({}, started={stop: ok(stop, "[SC] ControlService FAILED 1052:", 1052)})
    with pytest.raises(DriverFailure, match="1052 ERROR_INVALID_SERVICE_CONTROL"):
        wskecho(shell).unload(deadline=5)


def test_journal_falls_back_to_the_file_after_unload() -> None:
    line = "123 wskecho LOAD - ok\n124 wskecho UNLOAD - ok\n"
    journal_file = "'C:\\Windows\\Temp\\wskecho.journal'"
    shell = ScriptedShell({"& 'C:\\lab\\drivers\\labctl.exe' journal wskecho":
                           ok("labctl", "", 2),
                           f"Get-Content -Raw -ErrorAction Stop {journal_file}": ok("gc", line)})
    assert wskecho(shell).journal().names() == ["LOAD", "UNLOAD"]


@pytest.mark.parametrize(("code", "error"), [(0x0004A020, RebootRequired),
                                              (0x800F0203 - 2**32, LabFailure),
                                              (0x80070430 - 2**32, LabFailure)])
def test_netcfg_codes(code: int, error: type[Exception]) -> None:
    with pytest.raises(error):
        check_netcfg("win1", "install DL_labtdi", code)
    check_netcfg("win1", "install DL_labtdi", 0)


def test_protocol_unbind_by_mac_checks_the_binding() -> None:
    adapter = AdapterInfo(mac="52:54:00:ab:cd:01", name="Ethernet 2", index=7)
    shell = ScriptedShell({"Get-NetAdapterBinding": ok(
        "b", '[{"Name":"Ethernet 2","ComponentID":"DL_labtdi","Enabled":false}]')})
    dep = deployment_for(shell, windows_spec(MANIFESTS["labtdi"]), VOCAB)
    assert isinstance(dep, ProtocolDeployment)
    dep.unbind(adapter)
    assert ("Get-NetAdapter | Where-Object MacAddress -eq '52-54-00-AB-CD-01' | "
            "Disable-NetAdapterBinding -ComponentID DL_labtdi") in shell.sent
    with pytest.raises(DriverFailure, match="still disabled"):
        dep.bind(adapter)


def test_unbind_that_blocks_is_a_driver_hang() -> None:
    def blocked(cmd: str) -> CommandResult:
        raise CommandTimeout("win1", cmd, 60)

    shell = ScriptedShell({"Get-NetAdapter | Where-Object": blocked})
    dep = deployment_for(shell, windows_spec(MANIFESTS["labtdi"]), VOCAB)
    with pytest.raises(DriverHang):
        dep.unbind(AdapterInfo(mac="52:54:00:ab:cd:01", name="Ethernet 2", index=7))
