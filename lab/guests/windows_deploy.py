"""Deploying the Windows drivers: the wskecho kernel service and the labtdi NDIS protocol.

Every command has the form of the Windows command contract (sc.exe, reg.exe,
netcfg.exe, pnputil.exe, Disable-/Enable-NetAdapterBinding, labctl.exe). Verdicts:

* the guest refused or broke the driver (DriverEntry failed, no Unload routine,
  an unload or unbind past its deadline, a bad journal) -> DriverFailure / DriverHang;
* the lab could not do its part (file missing, service not created, not an
  administrator, signature not trusted, reboot pending) -> LabFailure.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence

from lab.errors import CommandTimeout, DriverFailure, DriverHang, LabFailure
from lab.guests.base import (
    AdapterInfo,
    CommandResult,
    Deployment,
    PendingUnload,
    Shell,
    wait_or_hang,
)
from lab.guests.windows_codes import (
    HRESULT_SERVICE_MARKED_FOR_DELETE,
    LAB_SIDE_START_ERRORS,
    NETCFG_S_REBOOT,
    SPAPI_E_NO_DRIVER_SELECTED,
    WIN32_MEANINGS,
    as_u32,
    netcfg_name,
    win32_name,
)
from lab.guests.windows_manifest import GUEST_DIR, GUEST_DIR_SFTP, WindowsDriverSpec
from lab.guests.windows_text import (
    SERVICE_RUNNING,
    SERVICE_STOP_PENDING,
    SERVICE_STOPPED,
    ServiceStatus,
    mac_to_windows,
    native,
    parse_bindings,
    parse_sc_query,
    ps_quote,
    published_names,
)
from lab.journal import Journal, Vocabulary, parse_journal

#: sc.exe create/query/delete, reg.exe, pnputil: answered by SCM/registry at once.
QUICK_TIMEOUT_S = 60.0
#: sc.exe start waits for DriverEntry; a DriverEntry that never returns is a hang.
START_DEADLINE_S = 90.0
#: netcfg install/uninstall runs the INF and the class installer (slow on first use).
NETCFG_TIMEOUT_S = 300.0
#: Disable-/Enable-NetAdapterBinding waits for UnbindAdapterEx / BindAdapterEx.
BIND_DEADLINE_S = 60.0
#: Reading the journal (labctl IOCTL or the journal file).
JOURNAL_TIMEOUT_S = 30.0
#: How often an unload in progress is polled with sc.exe query.
POLL_S = 0.5

ERROR_SERVICE_DOES_NOT_EXIST = 1060
ERROR_SERVICE_NOT_ACTIVE = 1062
ERROR_SERVICE_CANNOT_ACCEPT_CTRL = 1061
ERROR_INVALID_SERVICE_CONTROL = 1052
ERROR_SERVICE_EXISTS = 1073
ERROR_SERVICE_MARKED_FOR_DELETE = 1072
LABCTL_FAILED = 2  #: labctl.exe exit status when the control device cannot be opened


def _explain(code: int) -> str:
    meaning = WIN32_MEANINGS.get(code)
    return f"{win32_name(code)}" + (f" ({meaning})" if meaning else "")


class ServiceControl:
    """sc.exe / reg.exe for one kernel service, through a Shell."""

    def __init__(self, shell: Shell, spec: WindowsDriverSpec) -> None:
        self.shell = shell
        self.spec = spec

    def run(self, command: str, timeout: float = QUICK_TIMEOUT_S) -> CommandResult:
        return self.shell.run(command, timeout=timeout, check=False)

    def sc(self, verb: str, timeout: float = QUICK_TIMEOUT_S) -> CommandResult:
        return self.run(native(f"sc.exe {verb} {self.spec.service}"), timeout)

    def status(self) -> ServiceStatus | None:
        """The service's state; None when it is not installed (1060)."""
        res = self.sc("query")
        if res.exit_code == ERROR_SERVICE_DOES_NOT_EXIST:
            return None
        if not res.ok:
            raise LabFailure(f"{self.shell.name}: sc.exe query {self.spec.service} failed: "
                             f"{_explain(res.exit_code)}")
        return parse_sc_query(res.stdout)

    def set_dword(self, value: str, data: int) -> None:
        self._reg_add(value, "REG_DWORD", str(data))

    def set_string(self, value: str, data: str) -> None:
        self._reg_add(value, "REG_SZ", data)

    def _reg_add(self, value: str, kind: str, data: str) -> None:
        res = self.run(native(f"reg.exe add {ps_quote(self.spec.params_key)} /v {value} "
                              f"/t {kind} /d {ps_quote(data)} /f"))
        if not res.ok:
            raise LabFailure(f"{self.shell.name}: reg.exe add {value} under "
                             f"{self.spec.params_key} failed: {_explain(res.exit_code)}")

    def clear_knobs(self) -> None:
        """Delete every knob value (reg.exe exits 1 when a value is absent: fine)."""
        for knob in self.spec.knobs:
            self.run(native(f"reg.exe delete {ps_quote(self.spec.params_key)} "
                            f"/v {knob.value} /f"))

    def write_parameters(self, knobs: Sequence[str], journal_value: bool) -> None:
        self.clear_knobs()
        for name, data in self.spec.params:
            self.set_dword(name, data)
        if journal_value:
            self.set_string("JournalFile", "\\??\\" + self.spec.journal_file)
        for name in knobs:
            try:
                knob = self.spec.knob(name)
            except KeyError as exc:
                raise LabFailure(str(exc.args[0]),
                                 hint="the scenario asked for a knob this driver lacks") from None
            self.set_dword(knob.value, knob.on)

    def start(self) -> None:
        """sc.exe start; DriverEntry's failure is the driver's, a setup problem the lab's."""
        try:
            res = self.sc("start", timeout=START_DEADLINE_S)
        except CommandTimeout as exc:
            raise DriverHang(f"{self.spec.service}: sc.exe start did not return within "
                             f"{START_DEADLINE_S:.0f}s (DriverEntry blocked)") from exc
        if res.exit_code in LAB_SIDE_START_ERRORS:
            raise LabFailure(f"{self.shell.name}: cannot start {self.spec.service}: "
                             f"{_explain(res.exit_code)}", hint=_start_hint(res.exit_code))
        if not res.ok:
            raise DriverFailure(f"{self.spec.service}: the driver failed to load: "
                                f"{_explain(res.exit_code)}")
        status = self.status()
        if status is None or status.state != SERVICE_RUNNING:
            raise DriverFailure(f"{self.spec.service}: sc.exe start succeeded but the service "
                                f"is {status.state_name if status else 'gone'}")

    def copy_files(self) -> None:
        for local in self.spec.files():
            if not local.exists():
                raise LabFailure(f"{local} is not built",
                                 hint="run `make drivers-windows` on this host")
        self.shell.run(f"New-Item -ItemType Directory -Force -Path {ps_quote(GUEST_DIR)} "
                       "| Out-Null", timeout=QUICK_TIMEOUT_S)
        for local in self.spec.files():
            self.shell.put(local, f"{GUEST_DIR_SFTP}/{local.name}")


def _start_hint(code: int) -> str:
    if code == 577:
        return ("the image must have testsigning on and trust the lab CA "
                "(var/drivers/windows/pki/lab-test-ca.cer) in Root and TrustedPublisher; "
                "rebuild with `make drivers-windows` if the CA changed")
    if code == ERROR_SERVICE_MARKED_FOR_DELETE:
        return "reboot the guest (revert the VM to its clean snapshot) before reinstalling"
    return "check the service with `sc.exe qc <service>` in the guest"


class ServicePendingUnload(PendingUnload):
    """``sc.exe stop`` on its own channel, then ``sc.exe query`` until STOPPED."""

    def __init__(self, control: ServiceControl) -> None:
        self.control = control
        self.service = control.spec.service
        self.running = control.shell.start(native(f"sc.exe stop {self.service}"))
        self._done = False

    def finished(self) -> bool:
        """True once the service is STOPPED: ``sc.exe stop`` may return at once with
        STATE 3 STOP_PENDING while the Unload routine still waits in WskDeregister."""
        if self._done:
            return True
        if not self.running.finished():
            return False
        try:
            status = self.control.status()
        except LabFailure:
            return False
        return status is None or status.state == SERVICE_STOPPED

    def wait(self, deadline: float) -> float:
        t0 = time.monotonic()
        res = wait_or_hang(self.running, deadline,
                           f"sc.exe stop {self.service} (the Unload routine blocks)")
        self._check_stop(res)
        self._poll_stopped(t0 + deadline, deadline)
        self._done = True
        return time.monotonic() - t0

    def _check_stop(self, res: CommandResult) -> None:
        code = res.exit_code
        if res.ok or code == ERROR_SERVICE_CANNOT_ACCEPT_CTRL:
            return  # stopping, or already stop-pending: the poll decides
        if code in (2, 3, 5, ERROR_SERVICE_DOES_NOT_EXIST):
            raise LabFailure(f"cannot stop {self.service}: {_explain(code)}")
        raise DriverFailure(f"{self.service}: unload refused: {_explain(code)}")

    def _poll_stopped(self, end: float, deadline: float) -> None:
        state = "unknown"
        while True:
            remaining = end - time.monotonic()
            try:
                status = self.control.status() if remaining > 0 else None
            except CommandTimeout as exc:
                raise DriverHang(f"driver hung: {self.service} unload; sc.exe query did not "
                                 "answer (service control manager blocked)") from exc
            if status is not None:
                state = status.state_name
                if status.state == SERVICE_STOPPED:
                    return
            if remaining <= 0:
                raise DriverHang(f"driver hung: {self.service} still {state} "
                                 f"{deadline:.0f}s after sc.exe stop")
            time.sleep(min(POLL_S, max(remaining, 0.01)))


class WindowsDeployment(Deployment):
    """What the two Windows drivers share: parameters, start, unload, journal."""

    def __init__(self, shell: Shell, spec: WindowsDriverSpec, vocabulary: Vocabulary) -> None:
        self.shell = shell
        self.spec = spec
        self.control = ServiceControl(shell, spec)
        self.name = spec.name
        self.module = spec.service
        self.vocabulary = vocabulary
        self.unload_deadline_s = spec.unload_deadline_s
        self.serves_echo = spec.name == "wskecho"

    def loaded(self) -> bool:
        status = self.control.status()
        return status is not None and status.state in (SERVICE_RUNNING, SERVICE_STOP_PENDING)

    #: the start type that loads the driver at every boot (sc.exe config start=):
    #: "system" (SERVICE_SYSTEM_START, the I/O manager loads it at boot) or "auto"
    #: (SERVICE_AUTO_START, the SCM starts it after every system-start driver)
    boot_start: str = "auto"

    def install_persistent(self, knobs: Sequence[str] = ()) -> None:
        """Install, write the knobs (the service's Parameters key persists), and set the
        service's start type to :attr:`boot_start` (``sc.exe config <svc> start= ...``):
        system-start drivers load before auto-start ones, so a protocol comes up before
        the echo service. A protocol's binding choices persist in the network
        configuration (the management NIC's stays disabled)."""
        self.install()
        self.control.write_parameters(knobs, journal_value=not self.spec.is_protocol)
        res = self.control.run(native(f"sc.exe config {self.module} start= "
                                      f"{self.boot_start}"))
        if not res.ok:
            raise LabFailure(f"{self.shell.name}: sc.exe config {self.module} start= "
                             f"{self.boot_start} failed: {_explain(res.exit_code)}",
                             hint=_start_hint(res.exit_code))

    def load(self, knobs: Sequence[str] = ()) -> None:
        if self.loaded():
            raise LabFailure(f"{self.module} is already loaded",
                             hint="unload it first (scenarios start from the clean snapshot)")
        self.control.write_parameters(knobs, journal_value=not self.spec.is_protocol)
        self.control.start()

    def start_unload(self) -> ServicePendingUnload:
        return ServicePendingUnload(self.control)

    def unload(self, deadline: float | None = None) -> float:
        return self.start_unload().wait(deadline if deadline is not None
                                        else self.unload_deadline_s)

    def journal(self) -> Journal:
        """Live from labctl.exe; after the unload from the journal file the driver appended."""
        tool = self.spec.guest_path(self.spec.tool)
        res = self.shell.run(native(f"& {ps_quote(tool)} journal {self.module}"),
                             timeout=JOURNAL_TIMEOUT_S, check=False)
        text = res.stdout
        if res.exit_code == LABCTL_FAILED:
            got = self.shell.run(f"Get-Content -Raw -ErrorAction Stop "
                                 f"{ps_quote(self.spec.journal_file)}",
                                 timeout=JOURNAL_TIMEOUT_S, check=False)
            if not got.ok:
                raise LabFailure(f"{self.shell.name}: no journal for {self.module}: the driver "
                                 f"is not loaded and {self.spec.journal_file} is unreadable")
            text = got.stdout
        elif not res.ok:
            raise LabFailure(f"{self.shell.name}: labctl.exe journal {self.module} exited "
                             f"{res.exit_code}: {res.stderr.strip()[-300:]}")
        return parse_journal(text, self.vocabulary).of_driver(self.module)

    def unbind(self, adapter: AdapterInfo) -> None:
        raise LabFailure(f"{self.module} binds to no adapter; unbind applies to protocols")

    def bind(self, adapter: AdapterInfo) -> None:
        raise LabFailure(f"{self.module} binds to no adapter; bind applies to protocols")


class ServiceDeployment(WindowsDeployment):
    """wskecho: a legacy kernel service (sc.exe create ... type= kernel)."""

    def install(self) -> None:
        self.control.copy_files()
        if self.control.status() is not None:
            return
        binpath = ps_quote(self.spec.guest_path(self.spec.sys_file))
        res = self.control.run(native(f"sc.exe create {self.module} type= kernel start= demand "
                                      f"error= normal binPath= {binpath}"))
        if res.ok or res.exit_code == ERROR_SERVICE_EXISTS:
            return
        raise LabFailure(f"{self.shell.name}: sc.exe create {self.module} failed: "
                         f"{_explain(res.exit_code)}", hint=_start_hint(res.exit_code))

    def uninstall(self) -> None:
        """Stop if loaded, then sc.exe delete (1072: deletion waits for a reboot)."""
        if self.loaded():
            self.unload()
        res = self.control.sc("delete")
        if res.ok or res.exit_code == ERROR_SERVICE_DOES_NOT_EXIST:
            return
        raise LabFailure(f"{self.shell.name}: sc.exe delete {self.module} failed: "
                         f"{_explain(res.exit_code)}", hint=_start_hint(res.exit_code))


class ProtocolDeployment(WindowsDeployment):
    """labtdi: an NDIS protocol installed through INetCfg (netcfg.exe), bound per adapter.

    ``management`` finds the management adapter: its binding is disabled right after
    the install, so the driver under test never binds the lab's way into the guest.
    """

    boot_start = "system"  # a transport loads at boot, before the services above it

    def __init__(self, shell: Shell, spec: WindowsDriverSpec, vocabulary: Vocabulary,
                 management: Callable[[], AdapterInfo] | None = None) -> None:
        super().__init__(shell, spec, vocabulary)
        self.management = management

    @property
    def component(self) -> str:
        assert self.spec.component_id is not None
        return self.spec.component_id

    def install(self) -> None:
        """netcfg install, then stop the protocol so that ``load`` applies the knobs."""
        assert self.spec.inf is not None
        self.control.copy_files()
        inf = ps_quote(self.spec.guest_path(self.spec.inf))
        res = self.control.run(native(f"netcfg.exe -v -l {inf} -c p -i {self.component}"),
                               NETCFG_TIMEOUT_S)
        check_netcfg(self.shell.name, f"install {self.component}", res.exit_code)
        query = self.control.run(native(f"netcfg.exe -q {self.component}"))
        if not query.ok:
            raise LabFailure(f"{self.shell.name}: netcfg installed {self.component} but "
                             f"-q does not find it ({netcfg_name(query.exit_code)})")
        if self.loaded():
            self.unload()
        if self.management is not None:  # stopped: no driver code runs for this unbind
            self._binding("Disable", self.management(), want=False)

    def uninstall(self) -> None:
        """netcfg -u, then remove the package from the driver store by its Original Name."""
        assert self.spec.inf is not None
        res = self.control.run(native(f"netcfg.exe -v -u {self.component}"), NETCFG_TIMEOUT_S)
        check_netcfg(self.shell.name, f"uninstall {self.component}", res.exit_code)
        listing = self.control.run("pnputil.exe /enum-drivers")
        for oem in published_names(listing.stdout, self.spec.inf.name):
            gone = self.control.run(native(f"pnputil.exe /delete-driver {ps_quote(oem)}"))
            if not gone.ok:
                raise LabFailure(f"{self.shell.name}: pnputil /delete-driver {oem} "
                                 f"({self.spec.inf.name}) failed: {_explain(gone.exit_code)}")

    def _binding(self, verb: str, adapter: AdapterInfo, want: bool) -> None:
        mac = ps_quote(mac_to_windows(adapter.mac))
        cmd = (f"Get-NetAdapter | Where-Object MacAddress -eq {mac} | "
               f"{verb}-NetAdapterBinding -ComponentID {self.component}")
        try:
            res = self.control.run(cmd, BIND_DEADLINE_S)
        except CommandTimeout as exc:
            raise DriverHang(f"driver hung: {verb}-NetAdapterBinding {self.component} on "
                             f"{adapter.name} did not return within {BIND_DEADLINE_S:.0f}s"
                             ) from exc
        if not res.ok:
            raise LabFailure(f"{self.shell.name}: {verb}-NetAdapterBinding on {adapter.name} "
                             f"failed: {res.stderr.strip()[-300:]}")
        shown = self.control.run(f"Get-NetAdapterBinding -ComponentID {self.component} | "
                                 "Select-Object Name,ComponentID,Enabled | "
                                 "ConvertTo-Json -Compress")
        state = parse_bindings(shown.stdout).get(adapter.name)
        if state is None:
            raise LabFailure(f"{self.shell.name}: {self.component} has no binding on "
                             f"{adapter.name} ({adapter.mac})")
        if state != want:
            raise DriverFailure(f"{self.component}: {verb}-NetAdapterBinding returned but the "
                                f"binding on {adapter.name} is still "
                                f"{'enabled' if state else 'disabled'}")

    def unbind(self, adapter: AdapterInfo) -> None:
        self._binding("Disable", adapter, want=False)

    def bind(self, adapter: AdapterInfo) -> None:
        self._binding("Enable", adapter, want=True)


class RebootRequired(LabFailure):
    """netcfg registered the component but it starts only after a reboot."""


def check_netcfg(guest: str, what: str, exit_code: int) -> None:
    """Decode a netcfg.exe exit code (an HRESULT; PowerShell shows it signed)."""
    code = as_u32(exit_code)
    if code == 0:
        return
    if code == NETCFG_S_REBOOT:
        raise RebootRequired(f"{guest}: netcfg {what}: {netcfg_name(code)} (needs a reboot)",
                             hint="reboot the guest, or bake the protocol into the image")
    if code == SPAPI_E_NO_DRIVER_SELECTED:
        raise LabFailure(f"{guest}: netcfg {what}: {netcfg_name(code)}: no INF model "
                         "matched", hint="check the component ID and the INF's "
                         "[Manufacturer] decorations (NTamd64) against this Windows")
    if code in (HRESULT_SERVICE_MARKED_FOR_DELETE, ERROR_SERVICE_MARKED_FOR_DELETE):
        raise LabFailure(f"{guest}: netcfg {what}: {netcfg_name(code)}",
                         hint=_start_hint(ERROR_SERVICE_MARKED_FOR_DELETE))
    raise LabFailure(f"{guest}: netcfg {what} failed: {netcfg_name(code)}")


def deployment_for(shell: Shell, spec: WindowsDriverSpec, vocabulary: Vocabulary,
                   management: Callable[[], AdapterInfo] | None = None) -> WindowsDeployment:
    """The Deployment kind a driver needs: protocol (has an INF) or kernel service.
    ``management`` finds the adapter a protocol must not stay bound to."""
    if spec.is_protocol:
        return ProtocolDeployment(shell, spec, vocabulary, management)
    return ServiceDeployment(shell, spec, vocabulary)


__all__ = [
    "BIND_DEADLINE_S",
    "NETCFG_TIMEOUT_S",
    "START_DEADLINE_S",
    "ProtocolDeployment",
    "RebootRequired",
    "ServiceControl",
    "ServiceDeployment",
    "ServicePendingUnload",
    "WindowsDeployment",
    "check_netcfg",
    "deployment_for",
]
