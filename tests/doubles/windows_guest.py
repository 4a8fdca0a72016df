"""A TEST DOUBLE of a Windows Server 2022 guest at the command layer.

:class:`WindowsGuestDouble` implements the :class:`lab.guests.base.Shell` protocol
the way an OpenSSH session into the lab's Windows guest behaves: every command
string is a Windows PowerShell 5.1 ``-Command`` string (the guest's OpenSSH
DefaultShell). The double tokenises it by PowerShell's documented syntax
(single-quoted literals with ``''`` for a quote, ``,`` lists, ``@{k=v; ...}``
hashtables, ``|`` pipelines, ``;`` statements, ``&`` calls, ``exit $LASTEXITCODE``)
and runs the few cmdlets and native programs of the lab's command contract
(``/tmp/windows-command-contract.md``; outputs in ``tests.doubles.windows_outputs``)
against an in-memory guest: files, services, the registry, the NDIS protocol
component and driver store, adapters and bindings, PnP devices, the System event
log, crash dumps, Driver Verifier, test signing, certificate stores, CrashControl.

It simulates the two lab drivers only as far as the seed rules describe what an
observer sees (their journal lines, ``drivers/events.txt`` format) and their fault
knobs (REG_DWORD values under ``Services\\<name>\\Parameters``, read at start).

Semantics it keeps (each one is what the real guest documents):

* exit status: ``powershell -Command`` exits 0 when the last statement succeeded
  and 1 otherwise; only ``; exit $LASTEXITCODE`` passes a native program's code
  through (about_PowerShell_exe, "-Command"). The SSH exit-status is a uint32
  (RFC 4254 section 6.10), so an HRESULT such as 0x800F0203 arrives as 2148467203.
* ``-eq`` compares strings case-insensitively (about_Comparison_Operators).
* a suppressed error (``-ErrorAction SilentlyContinue``) still makes ``$?`` false
  (PowerShell/PowerShell#4613), so such a pipeline exits 1.
* time is not simulated: a command that would block (an unload that never
  returns, an unbind that never completes) raises :class:`CommandTimeout` from
  ``run`` at once; through ``start`` it stays unfinished until the guest state
  lets it complete (a hook such as :meth:`WindowsGuestDouble.close_clients`).

Anything outside the contract raises ``AssertionError`` naming the command (and
is recorded in :attr:`WindowsGuestDouble.violations`): the double never answers
"ok" to a command it does not understand.
"""

from __future__ import annotations

import datetime as dt
import fnmatch
import re
import threading
import time
import uuid
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from lab.errors import CommandFailed, CommandTimeout, GuestCommandError, GuestUnreachable
from lab.guests import windows_identity
from lab.guests.base import CommandResult
from tests.doubles import windows_outputs as out

# ======================================================================================
# PowerShell syntax (the subset of the command contract)
# ======================================================================================


@dataclass(frozen=True)
class Word:
    """A bare word or a single-quoted literal (test double syntax tree)."""

    text: str
    quoted: bool = False


@dataclass(frozen=True)
class ListArg:
    """``a,b,c`` (test double syntax tree)."""

    items: tuple[Word, ...]


@dataclass(frozen=True)
class HashArg:
    """``@{Key='v'; Id=1001}`` (test double syntax tree)."""

    entries: tuple[tuple[str, Word | ListArg], ...]


@dataclass(frozen=True)
class VarArg:
    """``$name`` (test double syntax tree)."""

    name: str


Arg = Word | ListArg | HashArg | VarArg


@dataclass(frozen=True)
class Invocation:
    """One pipeline element: a command and its arguments (test double syntax tree)."""

    name: str
    args: tuple[Arg, ...]
    call_operator: bool = False


Pipeline = tuple[Invocation, ...]

_PIPE, _SEMI, _COMMA, _AMP = "|", ";", ",", "&"
_Tok = Word | HashArg | VarArg | str
_BARE_STOP = set(" \t\r\n|;,'\"{}()&`<>")


def _refuse(command: str, why: str) -> AssertionError:
    return AssertionError(f"Windows guest test double does not understand {command!r}: {why}")


def _literal(text: str, i: int, command: str) -> tuple[str, int]:
    """A single-quoted literal starting at ``text[i] == "'"``; ``''`` is one quote."""
    chars: list[str] = []
    i += 1
    while i < len(text):
        if text[i] == "'":
            if text[i + 1:i + 2] == "'":
                chars.append("'")
                i += 2
                continue
            return "".join(chars), i + 1
        chars.append(text[i])
        i += 1
    raise _refuse(command, "unterminated single-quoted literal")


def _closing_brace(text: str, i: int, command: str) -> int:
    while i < len(text):
        if text[i] == "'":
            _, i = _literal(text, i, command)
            continue
        if text[i] == "}":
            return i
        i += 1
    raise _refuse(command, "unterminated @{ hashtable")


def _hashtable(body: str, command: str) -> HashArg:
    entries: list[tuple[str, Word | ListArg]] = []
    for stmt in _split_statements(tokenize(body, command, in_hash=True)):
        if len(stmt) < 3 or not isinstance(stmt[0], Word) or stmt[1] != "=":
            raise _refuse(command, f"hashtable entry {stmt!r} is not key=value")
        value = _group_args(stmt[2:], command)
        if len(value) != 1 or not isinstance(value[0], Word | ListArg):
            raise _refuse(command, "hashtable values must be literals or lists")
        entries.append((stmt[0].text, value[0]))
    return HashArg(tuple(entries))


def tokenize(text: str, command: str | None = None, *, in_hash: bool = False) -> list[_Tok]:
    """Tokens of a PowerShell command string (test double tokenizer)."""
    cmd = command if command is not None else text
    toks: list[_Tok] = []
    i, glue = 0, False
    while i < len(text):
        c = text[i]
        if c in " \t":
            i, glue = i + 1, False
            continue
        if c in "\r\n;":
            toks.append(_SEMI)
            i, glue = i + 1, False
            continue
        if c == "'":
            value, i = _literal(text, i, cmd)
            glue = _push_word(toks, Word(value, True), glue)
            continue
        if in_hash and c == "=":
            toks.append("=")
            i, glue = i + 1, False
            continue
        if c in "|,":
            toks.append(c)
            i, glue = i + 1, False
            continue
        if c == "&" and text[i + 1:i + 2] != "&":
            toks.append(_AMP)
            i, glue = i + 1, False
            continue
        if c == "@" and text[i + 1:i + 2] == "{":
            end = _closing_brace(text, i + 2, cmd)
            toks.append(_hashtable(text[i + 2:end], cmd))
            i, glue = end + 1, False
            continue
        if c == "$":
            m = re.match(r"\$([A-Za-z_][A-Za-z0-9_]*|\?)", text[i:])
            if not m:
                raise _refuse(cmd, f"unsupported variable syntax at {text[i:i + 12]!r}")
            toks.append(VarArg(m.group(1)))
            i, glue = i + m.end(), False
            continue
        if c in _BARE_STOP or c in "@#":
            raise _refuse(cmd, f"character {c!r} (double quotes, script blocks, "
                          "sub-expressions, redirections and comments are not in the contract)")
        j = i
        stops = _BARE_STOP | ({"="} if in_hash else set())
        while j < len(text) and text[j] not in stops:
            j += 1
        glue = _push_word(toks, Word(text[i:j]), glue)
        i = j
    return toks


def _push_word(toks: list[_Tok], word: Word, glue: bool) -> bool:
    """Adjacent bare and quoted parts form one argument (``binPath='x'``)."""
    if glue and toks and isinstance(toks[-1], Word):
        prev = toks.pop()
        assert isinstance(prev, Word)
        word = Word(prev.text + word.text, prev.quoted or word.quoted)
    toks.append(word)
    return True


def _split_statements(toks: list[_Tok]) -> list[list[_Tok]]:
    stmts: list[list[_Tok]] = [[]]
    for tok in toks:
        if tok == _SEMI:
            stmts.append([])
        else:
            stmts[-1].append(tok)
    return [s for s in stmts if s]


def _group_args(toks: Sequence[_Tok], command: str) -> list[Arg]:
    args: list[Arg] = []
    joining = False
    for tok in toks:
        if tok == _COMMA:
            if not args or not isinstance(args[-1], Word | ListArg):
                raise _refuse(command, "',' without a list element before it")
            joining = True
            continue
        if isinstance(tok, str):
            raise _refuse(command, f"unexpected {tok!r}")
        if joining:
            prev = args.pop()
            if not isinstance(tok, Word):
                raise _refuse(command, "list elements must be literals")
            items = prev.items if isinstance(prev, ListArg) else (prev,)
            assert all(isinstance(x, Word) for x in items)
            args.append(ListArg((*items, tok)))
            joining = False
        else:
            args.append(tok)
    if joining:
        raise _refuse(command, "list ends with ','")
    return args


def parse(command: str) -> tuple[Pipeline, ...]:
    """Statements (pipelines) of a PowerShell command string (test double parser)."""
    statements: list[Pipeline] = []
    for stmt in _split_statements(tokenize(command)):
        elements: list[list[_Tok]] = [[]]
        for tok in stmt:
            if tok == _PIPE:
                elements.append([])
            else:
                elements[-1].append(tok)
        pipeline: list[Invocation] = []
        for element in elements:
            if not element:
                raise _refuse(command, "empty pipeline element")
            call = element[0] == _AMP
            head = element[1] if call and len(element) > 1 else element[0]
            if not isinstance(head, Word):
                raise _refuse(command, f"a pipeline element starts with {head!r}")
            rest = element[2:] if call else element[1:]
            pipeline.append(Invocation(head.text, tuple(_group_args(rest, command)), call))
        statements.append(tuple(pipeline))
    return tuple(statements)


# ======================================================================================
# Guest state
# ======================================================================================


@dataclass(frozen=True)
class AdapterSpec:
    """A NIC present at boot or plugged later (test double input)."""

    mac: str  #: any case, ':' or '-' separated
    model: str = "e1000e"
    ipv4: str | None = None  #: "192.168.214.11/24"; None gives an APIPA 169.254.x.y/16


#: The golden image's shared SSH host key in the double (a fixed valid ed25519 key line).
IMAGE_HOST_KEY = ("ssh-ed25519 "
                  "AAAAC3NzaC1lZDI1NTE5AAAAIAOhB7/zzhC+HXDdGOdLwJln5NYwm6UNXx3chmQSVTG4")
_SSH_DIR = "C:\\ProgramData\\ssh"


@dataclass(frozen=True)
class ImageState:
    """The golden image's state the image contract reads (test double input).

    The defaults are a good image (windows-notes B1); each knob makes one item fail.
    """

    #: the OpenSSH session shell: "cmd" = DefaultShell unset, so sessions run cmd.exe
    default_shell: Literal["powershell", "cmd"] = "powershell"
    #: the LocalMachine stores that hold the ``trusted_thumbprints``
    ca_stores: tuple[str, ...] = ("Root", "TrustedPublisher")
    pvpanic_device: bool = True  #: ACPI\QEMU0001 present (the VM has <panic model='isa'/>)
    pvpanic_driver: bool = True  #: pvpanic.inf installed for it
    #: TCP ports with an enabled inbound Allow firewall rule
    firewall_tcp_ports: tuple[int, ...] = (22, 7007)
    defender_installed: bool = True
    defender_realtime: bool = False
    wuauserv_start: Literal["Automatic", "Manual", "Disabled"] = "Disabled"
    #: the image's startup task installing a VM's own host key from its identity media
    #: (lab.guests.windows_identity); False: an image built before per-VM host keys
    identity_boot_step: bool = True
    #: the image's own SSH host key (the one its provisioning installs: every VM shares it)
    host_key_pub: str = IMAGE_HOST_KEY


@dataclass(frozen=True)
class VolumeSpec:
    """A removable volume attached to the VM, e.g. its identity media as read back from the
    real ISO (test double input)."""

    label: str
    files: dict[str, bytes]


@dataclass(frozen=True)
class PsObject:
    """A PowerShell object with ordered properties (test double pipeline value)."""

    type_name: str
    props: tuple[tuple[str, object], ...]

    def get(self, name: str) -> object:
        for key, value in self.props:
            if key.lower() == name.lower():
                return value
        return None


# e1000e = Intel 82574L, in-box driver (windows-notes B2/B3; AutoHCK qemu_machine.json)
_NIC_MODELS = {
    "e1000e": ("Intel(R) 82574L Gigabit Network Connection",
               "PCI\\VEN_8086&DEV_10D3&SUBSYS_00008086&REV_00"),
    "igb": ("Intel(R) 82576 Gigabit Dual Port Network Connection",
            "PCI\\VEN_8086&DEV_10C9&SUBSYS_00008086&REV_01"),
}


def mac_colon(mac: str) -> str:
    """``52:54:00:ab:cd:01`` (journal form; test double helper)."""
    digits = re.sub(r"[^0-9a-fA-F]", "", mac).lower()
    if len(digits) != 12:
        raise AssertionError(f"Windows guest test double: {mac!r} is not a MAC address")
    return ":".join(digits[i:i + 2] for i in range(0, 12, 2))


def mac_dash(mac: str) -> str:
    """``52-54-00-AB-CD-01`` (Get-NetAdapter form, windows-notes B2; test double)."""
    return mac_colon(mac).replace(":", "-").upper()


@dataclass
class _Adapter:
    mac: str
    name: str
    index: int
    model: str
    instance: str
    ipv4: tuple[str, int]
    present: bool = True
    binding: bool = True  # DL_labtdi enabled on this adapter
    removal_pending: bool = False
    enabled: bool = True  # Disable-NetAdapter / Enable-NetAdapter
    media_connected: bool = True  # the link libvirt gives the NIC (domif-setlink)


@dataclass
class _File:
    path: str
    data: bytes
    signed: bool


@dataclass
class _Event:
    when: dt.datetime
    event_id: int
    provider: str
    level: str
    message: str


@dataclass
class _Service:
    name: str
    bin_path: str
    state: int = 1
    marked_for_delete: bool = False
    driver: _Driver | None = None
    start: str = "demand"  # sc.exe create/config start= (boot, system, auto, demand)


class _Bugcheck(Exception):
    """Raised inside the test double when the simulated kernel bugchecks."""

    def __init__(self, code: int, params: tuple[int, int, int, int]) -> None:
        super().__init__(f"bugcheck 0x{code:x}")
        self.code = code
        self.params = params


_SERVICES_KEY = "HKLM\\SYSTEM\\CURRENTCONTROLSET\\SERVICES\\"
_CRASH_KEY = "HKLM\\SYSTEM\\CURRENTCONTROLSET\\CONTROL\\CRASHCONTROL"
_OPENSSH_KEY = "HKLM\\SOFTWARE\\OPENSSH"
_POWERSHELL_EXE = "C:\\Windows\\System32\\WindowsPowerShell\\v1.0\\powershell.exe"
# virtio-win pvpanic.inf matches ACPI\QEMU0001; an ACPI device without _UID gets an
# enumerator-made instance suffix (illustrative value)
_PVPANIC_INSTANCE = "ACPI\\QEMU0001\\2&DABA3FF&0"
_PROTOCOL_ID = "DL_labtdi"


def _reg_key(path: str) -> str:
    key = path.replace("/", "\\").rstrip("\\")
    for long, short in (("HKEY_LOCAL_MACHINE\\", "HKLM\\"), ("HKLM:\\", "HKLM\\")):
        if key.upper().startswith(long):
            key = short + key[len(long):]
    if not key.upper().startswith("HKLM\\"):
        raise AssertionError(f"Windows guest test double: registry path {path!r} not modelled")
    return key.upper()


def win_path(path: str) -> str:
    """A Windows path from an SFTP path, an NT path or a service binPath (test double)."""
    p = path.replace("/", "\\")
    if re.match(r"^\\[A-Za-z]:\\", p):
        p = p[1:]
    for prefix, repl in (("\\??\\", ""), ("\\SystemRoot\\", "C:\\Windows\\"),
                         ("System32\\", "C:\\Windows\\System32\\")):
        if p.lower().startswith(prefix.lower()):
            p = repl + p[len(prefix):]
    if not re.match(r"^[A-Za-z]:\\", p):
        raise AssertionError(f"Windows guest test double: {path!r} is not an absolute path")
    return p[0].upper() + p[1:]


# ======================================================================================
# The drivers, as observers see them (seed rules; journal format drivers/events.txt)
# ======================================================================================


class _Driver:
    """A loaded lab driver inside the test double: journal and fault knobs."""

    short = ""

    def __init__(self, guest: WindowsGuestDouble, knobs: dict[str, int],
                 journal_file: str | None) -> None:
        self.guest = guest
        self.knobs = knobs
        self.journal_file = journal_file
        self.memory: list[str] = []
        self.unloaded = False

    def knob(self, name: str) -> bool:
        return bool(self.knobs.get(name.lower(), 0))

    def log(self, event: str, adapter: _Adapter | None = None) -> None:
        where = f"{adapter.mac}@{adapter.index}" if adapter else "-"
        line = f"{self.guest.tick()} {self.short} {event} {where} ok\n"
        self.memory.append(line)
        if self.journal_file:
            self.guest.append_file(self.journal_file, line.encode("ascii"))

    def start(self) -> None:
        raise NotImplementedError

    def stop(self) -> bool:
        """Run the unload; True once it finished (False: still pending)."""
        raise NotImplementedError

    def finish_unload(self) -> None:
        self.log("UNLOAD")
        self.unloaded = True


class _WskEcho(_Driver):
    """wskecho in the test double: LOAD, WSK_REGISTER, WSK_CAPTURE_NPI, LISTEN; the stop
    waits in WskDeregister while clients are connected (WskRegister seed)."""

    short = "wskecho"

    def __init__(self, guest: WindowsGuestDouble, knobs: dict[str, int],
                 journal_file: str | None) -> None:
        super().__init__(guest, knobs, journal_file)
        self.clients = 0
        self.listening = False
        self.in_deregister = False

    def start(self) -> None:
        for event in ("LOAD", "WSK_REGISTER", "WSK_CAPTURE_NPI", "LISTEN"):
            self.log(event)
        self.listening = True

    def stop(self) -> bool:
        if self.knob("FaultBlockUnload"):
            return False
        self.listening = False
        self.log("LISTENER_CLOSED")
        self.log("WSK_RELEASE_NPI")
        if self.knob("FaultSkipDeregister"):
            self.finish_unload()
            return True
        if self.clients:
            self.in_deregister = True
            return False
        self.log("WSK_DEREGISTER")
        self.finish_unload()
        return True

    def close_all(self) -> bool:
        """Close every client; True if a pending WskDeregister could now return."""
        for _ in range(self.clients):
            self.log("CLOSE")
        self.clients = 0
        if self.in_deregister:
            self.in_deregister = False
            self.log("WSK_DEREGISTER")
            self.finish_unload()
            return True
        return False


class _LabTdi(_Driver):
    """labtdi in the test double: NDIS protocol + TDI provider (TDI unload seed)."""

    short = "labtdi"

    def __init__(self, guest: WindowsGuestDouble, knobs: dict[str, int],
                 journal_file: str | None) -> None:
        super().__init__(guest, knobs, journal_file)
        self.bound: dict[str, _Adapter] = {}
        self.leaked: set[str] = set()
        self.link_down: set[str] = set()  # MACs whose last media state was disconnected

    def start(self) -> None:
        # LOAD is not in the brief's list, but lab.journal pairs LOAD/UNLOAD per load
        # and labtdi.sys journals it in DriverEntry.
        for event in ("LOAD", "PROTOCOL_REGISTERED", "PROVIDER_REGISTERED"):
            self.log(event)
        for adapter in self.guest.bindable_adapters():
            self.bind(adapter)
        self.log("PROVIDER_READY")

    def bind(self, adapter: _Adapter) -> None:
        self.bound[adapter.mac] = adapter
        # NDIS_BIND_PARAMETERS.MediaConnectState: the state the binding starts from
        self.link_down.discard(adapter.mac)
        if not adapter.media_connected:
            self.link_down.add(adapter.mac)
        for event in ("BIND", "NETADDR_REGISTERED", "DEVICE_REGISTERED"):
            self.log(event, adapter)

    def media_state(self, adapter: _Adapter) -> None:
        """NDIS_STATUS_LINK_STATE to the binding (labtdi.sys's StatusHandlerEx): one
        LINK_DOWN / LINK_UP per change, nothing for a repeated state; the binding stays."""
        if adapter.mac not in self.bound:
            return
        down = not adapter.media_connected
        if down == (adapter.mac in self.link_down):
            return
        if down:
            self.link_down.add(adapter.mac)
        else:
            self.link_down.discard(adapter.mac)
        self.log("LINK_DOWN" if down else "LINK_UP", adapter)

    def unbind(self, adapter: _Adapter, *, removal: bool) -> bool:
        """Tear one binding down; True when released, False when it never completes."""
        if removal:
            self.log("QUERY_REMOVE", adapter)
            self.log("PNP_FORWARDED", adapter)
        self.log("UNBIND", adapter)
        if self.knob("FaultCrashOnUnbind"):
            # KeBugCheckEx(MANUALLY_INITIATED_CRASH, 0x1ab7d1, <adapter>, 0, 0) as in
            # drivers/labtdi/windows/labtdi.c
            raise _Bugcheck(0xE2, (0x1AB7D1, 0xFFFFB30C5E7A2010 + adapter.index * 0x40, 0, 0))
        self.bound.pop(adapter.mac, None)
        self.log("NETADDR_DEREGISTERED", adapter)
        self.log("DEVICE_DEREGISTERED", adapter)
        if self.knob("FaultLeakAdapterRef"):
            self.leaked.add(adapter.mac)
            return False
        return True

    def stop(self) -> bool:
        if self.knob("FaultBlockUnload") or self.leaked:
            return False
        for adapter in list(self.bound.values()):
            if not self.unbind(adapter, removal=False):
                return False
        if not self.knob("FaultSkipDeregister"):
            self.log("PROVIDER_DEREGISTERED")
        self.log("PROTOCOL_DEREGISTERED")
        self.finish_unload()
        return True


_DRIVER_CLASSES: dict[str, type[_Driver]] = {"wskecho": _WskEcho, "labtdi": _LabTdi}


# ======================================================================================
# Running commands
# ======================================================================================


@dataclass
class _Outcome:
    stdout: str = ""
    stderr: str = ""
    ok: bool = True
    native_exit: int | None = None


@dataclass
class _Pending:
    """A command inside the test double that waits for guest state (an unload, an unbind)."""

    ready: Callable[[], bool]
    finish: Callable[[], _Outcome]


@dataclass
class _Params:
    positional: list[Arg] = field(default_factory=list)
    named: dict[str, Arg | bool] = field(default_factory=dict)

    def text(self, name: str) -> str | None:
        value = self.named.get(name.lower())
        if value is None:
            return None
        if not isinstance(value, Word):
            raise AssertionError(f"Windows guest test double: -{name} needs one value")
        return value.text

    def texts(self, name: str) -> list[str]:
        value = self.named.get(name.lower())
        if value is None:
            return []
        if isinstance(value, Word):
            return [value.text]
        if isinstance(value, ListArg):
            return [w.text for w in value.items]
        raise AssertionError(f"Windows guest test double: -{name} needs a value list")


class _ScriptRun:
    """One command string being run by the test double (resumable when it blocks)."""

    def __init__(self, guest: WindowsGuestDouble, command: str) -> None:
        self.guest = guest
        self.command = command
        self.statements = parse(command)
        self.boot = guest.boot_id
        self.index = 0
        self.stdout: list[str] = []
        self.stderr: list[str] = []
        self.last_ok = True
        self.last_exit: int | None = None
        self.exit_code: int | None = None
        self.pending: _Pending | None = None

    def lost(self) -> bool:
        return self.guest.crashed is not None or self.guest.boot_id != self.boot

    def advance(self) -> bool:
        """Run until done (True) or blocked (False). Raises _Bugcheck on a crash."""
        if self.pending is not None:
            if not self.pending.ready():
                return False
            self._apply(self.pending.finish())
            self.pending = None
            self.index += 1
        while self.index < len(self.statements) and self.exit_code is None:
            result = self.guest.shell_statement(self.statements[self.index], self)
            if isinstance(result, _Pending):
                self.pending = result
                return False
            self._apply(result)
            self.index += 1
        return True

    def _apply(self, outcome: _Outcome) -> None:
        self.stdout.append(outcome.stdout)
        self.stderr.append(outcome.stderr)
        self.last_ok = outcome.ok
        if outcome.native_exit is not None:
            self.last_exit = outcome.native_exit

    def result(self) -> CommandResult:
        code = self.exit_code if self.exit_code is not None else (0 if self.last_ok else 1)
        return CommandResult(self.command, code & 0xFFFFFFFF, "".join(self.stdout),
                             "".join(self.stderr))


class _CmdRun:
    """A command string run by cmd.exe: the session shell of an image whose OpenSSH
    DefaultShell is unset (test double). Only PowerShell cmdlet names are modelled; cmd.exe
    does not know them (MSG_DIR_BAD_COMMAND_OR_FILE, exit 9009)."""

    def __init__(self, guest: WindowsGuestDouble, command: str) -> None:
        self.command = command
        self.boot = guest.boot_id
        self.guest = guest
        words = command.split()
        if not words or words[0].lower() not in _CMDLETS:
            raise _refuse(command, "a cmd.exe session is modelled only for PowerShell "
                          "cmdlet names (which cmd.exe does not know)")
        self.first = words[0]

    def lost(self) -> bool:
        return self.guest.crashed is not None or self.guest.boot_id != self.boot

    def advance(self) -> bool:
        return True

    def result(self) -> CommandResult:
        return CommandResult(self.command, out.CMD_NOT_FOUND_EXIT, "",
                             out.cmd_not_recognized(self.first))


class _DoubleRunning:
    """RunningCommand of the Windows guest test double (``Shell.start``)."""

    def __init__(self, guest: WindowsGuestDouble, run: _ScriptRun | _CmdRun | None,
                 error: Exception | None = None) -> None:
        self._guest = guest
        self._run = run
        self._error = error
        self._closed = False

    def _poll(self) -> bool:
        if self._error is not None:
            return True
        assert self._run is not None
        with self._guest.lock:
            if self._run.lost():
                self._error = GuestUnreachable(f"{self._guest.name}: the SSH channel of "
                                               f"{self._run.command!r} was lost")
                return True
            try:
                return self._run.advance()
            except _Bugcheck as bug:
                self._guest.bugcheck(bug)
                self._error = GuestUnreachable(f"{self._guest.name}: guest bugchecked "
                                               f"0x{bug.code:X} during {self._run.command!r}")
                return True

    def finished(self) -> bool:
        return self._poll()

    def wait(self, timeout: float) -> CommandResult:
        deadline = time.monotonic() + timeout
        while not self._poll():
            if time.monotonic() >= deadline:
                assert self._run is not None
                raise CommandTimeout(self._guest.name, self._run.command, timeout)
            time.sleep(0.005)
        if self._error is not None:
            raise self._error
        assert self._run is not None
        return self._run.result()

    def close(self) -> None:
        self._closed = True


# ======================================================================================
# The double
# ======================================================================================

_Native = Callable[[list[str]], "_Outcome | _Pending"]
_Cmdlet = Callable[[list[object] | None, _Params, list[str]], "list[object] | _Pending"]


class WindowsGuestDouble:
    """A TEST DOUBLE of a Windows Server 2022 guest reached over OpenSSH (PowerShell 5.1).

    Shell protocol: :attr:`name`, :meth:`run`, :meth:`start`, :meth:`put`, :meth:`get`,
    :meth:`close`. Test hooks: :meth:`unplug`, :meth:`replug`, :meth:`inject_nmi`,
    :meth:`reboot_after_crash`, :meth:`open_clients`, :meth:`close_clients`,
    :meth:`set_signed`, plus read-only views (:meth:`journal_lines`,
    :meth:`service_state`, :attr:`violations`, :attr:`commands`).
    """

    def __init__(self, name: str = "win1", adapters: Sequence[AdapterSpec] = (), *,
                 testsigning: bool = True, trusted_thumbprints: Iterable[str] = (),
                 sign_puts: bool = True,
                 stop_mode: Literal["returns-pending", "blocks"] = "returns-pending",
                 crash_control: dict[str, int] | None = None,
                 image: ImageState | None = None,
                 volumes: Sequence[VolumeSpec] = ()) -> None:
        """A freshly booted guest. ``stop_mode`` chooses how ``sc.exe stop`` behaves while
        an unload is blocked: it returns with STATE 3 STOP_PENDING (windows-notes B2/B4)
        or it does not return until the unload finishes. ``image`` is the rest of the
        golden image's state (a good image by default; its knobs make failing ones).
        ``volumes`` are the removable media attached (the VM's identity media)."""
        self._name = name
        self.lock = threading.RLock()
        self.testsigning = testsigning
        self.sign_puts = sign_puts
        self.stop_mode = stop_mode
        self.image = image or ImageState()
        self.certs: set[tuple[str, str]] = set()
        for thumb in trusted_thumbprints:
            self.certs |= {(store, thumb.upper()) for store in self.image.ca_stores}
        self.violations: list[str] = []
        self.commands: list[str] = []
        self.files: dict[str, _File] = {}
        self.dirs: set[str] = set()
        for d in ("C:\\", "C:\\Windows", "C:\\Windows\\Temp", "C:\\Windows\\System32",
                  "C:\\Windows\\System32\\drivers", "C:\\Windows\\System32\\DriverStore",
                  "C:\\Windows\\System32\\DriverStore\\FileRepository",
                  "C:\\ProgramData", _SSH_DIR):
            self.dirs.add(d.lower())
        self.volumes = tuple(volumes)
        pub = f"{_SSH_DIR}\\{windows_identity.HOST_PUB_NAME}"  # the image's key pair
        self.files[pub.lower()] = _File(pub, (self.image.host_key_pub + "\n").encode(), False)
        key = f"{_SSH_DIR}\\{windows_identity.HOST_KEY_NAME}"
        self.files[key.lower()] = _File(key, b"-----BEGIN OPENSSH PRIVATE KEY----- image", False)
        self.registry: dict[str, dict[str, tuple[str, str, object]]] = {}
        control = {"CrashDumpEnabled": 1, "AlwaysKeepMemoryDump": 1, "NMICrashDump": 1,
                   "AutoReboot": 1, **(crash_control or {})}
        for value_name, value in control.items():
            self._reg_set(_CRASH_KEY, value_name, "REG_DWORD", value)
        if self.image.default_shell == "powershell":
            self._reg_set(_OPENSSH_KEY, "DefaultShell", "REG_SZ", _POWERSHELL_EXE)
        self.services: dict[str, _Service] = {}
        self.adapters: list[_Adapter] = []
        self._next_index = 4
        self.protocol_installed = False
        self.protocol_display = ""
        self.packages: list[out.DriverPackage] = [out.DriverPackage(
            "oem0.inf", "pvpanic.inf", "Red Hat, Inc.", "System devices",
            "{4d36e97d-e325-11ce-bfc1-08002be10318}", "08/31/2023 100.94.104.24700",
            "Red Hat, Inc.")] if self.image.pvpanic_driver else []
        self.verifier_pending: list[str] = []
        self.verifier_active: list[str] = []
        self.events: list[_Event] = []
        self.crashed: _Bugcheck | None = None
        self.boot_id = 0
        self._t_ns = 8_000_000_000
        self._clock = dt.datetime(2025, 1, 6, 9, 0, 0, tzinfo=dt.UTC)
        self.closes = 0
        for spec in adapters:
            self._add_adapter(spec)
        self._log_event(6005, "EventLog", "Information", "The Event log service was started.")
        self._identity_step()

    # ---- Shell protocol ---------------------------------------------------------------

    @property
    def name(self) -> str:
        """The guest's name (test double)."""
        return self._name

    def run(self, command: str, timeout: float = 60.0, check: bool = True) -> CommandResult:
        """Run one PowerShell command string in the test double (see module docstring)."""
        with self.lock:
            job = self._begin(command)
            try:
                done = job.advance()
            except _Bugcheck as bug:
                self.bugcheck(bug)
                raise GuestUnreachable(f"{self.name}: the guest bugchecked 0x{bug.code:X} "
                                       f"while running {command!r}") from None
            if not done:
                raise CommandTimeout(self.name, command, timeout)
            result = job.result()
        if check and not result.ok:
            raise CommandFailed(self.name, command, result.exit_code,
                                result.stderr or result.stdout)
        return result

    def start(self, command: str) -> _DoubleRunning:
        """Start a command in the test double; it may stay unfinished (a blocked unload)."""
        with self.lock:
            try:
                job = self._begin(command)
            except GuestUnreachable as exc:
                return _DoubleRunning(self, None, exc)
            running = _DoubleRunning(self, job)
        running.finished()
        return running

    def put(self, local: Path, remote: str) -> None:
        """SFTP upload into the test double (the parent folder must exist)."""
        with self.lock:
            self._reachable("put " + remote)
            path = win_path(remote)
            parent = path.rsplit("\\", 1)[0]
            if parent.lower() not in self.dirs and len(parent) > 2:
                raise GuestCommandError(f"{self.name}: sftp put {remote}: No such file "
                                        "(the folder does not exist)")
            self.files[path.lower()] = _File(path, local.read_bytes(), self.sign_puts)

    def get(self, remote: str, local: Path) -> None:
        """SFTP download from the test double."""
        with self.lock:
            self._reachable("get " + remote)
            found = self.files.get(win_path(remote).lower())
            if found is None:
                raise GuestCommandError(f"{self.name}: sftp get {remote}: No such file")
            local.write_bytes(found.data)

    def close(self) -> None:
        """Drop the session; like lab.guest.Guest, the next call reconnects (test double)."""
        self.closes += 1

    # ---- test hooks -----------------------------------------------------------------

    def set_signed(self, remote: str, signed: bool) -> None:
        """Mark a guest file as signed (or not) by the trusted lab CA (test double hook)."""
        with self.lock:
            self.files[win_path(remote).lower()].signed = signed

    def unplug(self, mac: str) -> bool:
        """What libvirt's detach asks of the guest (test double hook): the PnP removal.

        Returns whether the guest released the device (QMP DEVICE_DELETED would follow).
        """
        with self.lock:
            adapter = self._adapter(mac)
            if self.crashed is not None or not adapter.present:
                return False
            driver = self._driver("labtdi")
            if isinstance(driver, _LabTdi) and adapter.mac in driver.bound:
                try:
                    released = driver.unbind(adapter, removal=True)
                except _Bugcheck as bug:
                    self.bugcheck(bug)
                    return False
                if not released:
                    adapter.removal_pending = True
                    return False
            adapter.present = False
            return True

    def replug(self, mac: str, *, ipv4: str | None = None, new_index: bool = False) -> None:
        """Plug a NIC (again) into the test double; a known MAC keeps its PnP instance."""
        with self.lock:
            self._reachable("replug " + mac)
            known = [a for a in self.adapters if a.mac == mac_colon(mac)]
            if not known:
                adapter = self._add_adapter(AdapterSpec(mac, ipv4=ipv4))
            else:
                adapter = known[0]
                if adapter.present:
                    raise AssertionError(f"test double: {mac} is still plugged in")
                adapter.present = True
                if new_index:
                    adapter.index = self._take_index()
                if ipv4:
                    adapter.ipv4 = _address(ipv4)
            driver = self._driver("labtdi")
            if isinstance(driver, _LabTdi) and adapter.binding and self.protocol_installed:
                driver.bind(adapter)

    def open_clients(self, n: int) -> None:
        """Connect ``n`` TCP clients to wskecho (test double hook; it must be listening)."""
        with self.lock:
            driver = self._driver("wskecho")
            if not isinstance(driver, _WskEcho) or not driver.listening:
                raise AssertionError("test double: wskecho is not listening")
            for _ in range(n):
                driver.log("ACCEPT")
            driver.clients += n

    def close_clients(self) -> None:
        """Close every wskecho client (test double hook); a waiting unload then ends."""
        with self.lock:
            driver = self._driver("wskecho")
            if isinstance(driver, _WskEcho) and driver.close_all():
                self._service_stopped(self.services["wskecho"])

    def inject_nmi(self) -> None:
        """``virsh inject-nmi`` on the test double: bugcheck 0x80 when NMICrashDump=1."""
        with self.lock:
            if self.crashed is not None:
                return
            if not self._reg_dword(_CRASH_KEY, "NMICrashDump"):
                raise AssertionError("test double: an NMI without NMICrashDump=1 is not modelled")
            # NMI_HARDWARE_FAILURE (0x80); its parameters are reserved (learn.microsoft.com
            # bug-check-0x80--nmi-hardware-failure); 0x4F4454 as seen in public analyses.
            self.bugcheck(_Bugcheck(0x80, (0x4F4454, 0, 0, 0)))

    def reboot_after_crash(self) -> None:
        """The bugchecked test double writes its dump and comes back (event 1001)."""
        with self.lock:
            bug = self.crashed
            if bug is None:
                raise AssertionError("test double: reboot_after_crash() without a crash")
            self._write_dumps(bug)
            self._boot()
            self._log_event(41, "Microsoft-Windows-Kernel-Power", "Critical",
                            out.KERNEL_POWER_41)
            dump = "C:\\Windows\\MEMORY.DMP" if self._reg_dword(_CRASH_KEY, "CrashDumpEnabled") \
                else "(none)"
            self._log_event(1001, "Microsoft-Windows-WER-SystemErrorReporting", "Error",
                            out.bugcheck_message(bug.code, bug.params, dump,
                                                 str(uuid.uuid4())))

    # ---- read-only views for tests ------------------------------------------------------

    def journal_lines(self, driver: str) -> list[str]:
        """The driver's journal file lines in the test double (what survives unloads)."""
        path = {"wskecho": "C:\\Windows\\Temp\\wskecho.journal",
                "labtdi": "C:\\Windows\\Temp\\labtdi.journal"}[driver]
        found = self.files.get(path.lower())
        return found.data.decode("ascii").splitlines() if found else []

    def service_state(self, name: str) -> int | None:
        """The SCM state (1/3/4) of a service in the test double, None when absent."""
        svc = self.services.get(name.lower())
        return svc.state if svc else None

    def set_media(self, mac: str, connected: bool) -> None:
        """The NIC's link as libvirt sets it (`virsh domif-setlink`): the miniport
        indicates NDIS_STATUS_LINK_STATE to every protocol bound to it."""
        adapter = self._adapter(mac)
        adapter.media_connected = connected
        svc = self.services.get("labtdi")
        if svc is not None and isinstance(svc.driver, _LabTdi):
            svc.driver.media_state(adapter)

    def adapter_names(self) -> dict[str, str]:
        """MAC (colon form) -> adapter name, for present adapters (test double view)."""
        return {a.mac: a.name for a in self.adapters if a.present}

    def assert_no_violations(self) -> None:
        """Fail if any command outside the contract reached the test double."""
        if self.violations:
            raise AssertionError("Windows guest test double saw commands outside the "
                                 "contract:\n" + "\n".join(self.violations))

    # ---- machine internals --------------------------------------------------------------

    def tick(self) -> int:
        self._t_ns += 1_250_000
        return self._t_ns

    def _now(self) -> dt.datetime:
        self._clock += dt.timedelta(seconds=1)
        return self._clock

    def _begin(self, command: str) -> _ScriptRun | _CmdRun:
        self._reachable(command)
        self.commands.append(command)
        try:
            if self.image.default_shell == "cmd":
                return _CmdRun(self, command)
            return _ScriptRun(self, command)
        except AssertionError as exc:
            self.violations.append(str(exc))
            raise

    def _reachable(self, what: str) -> None:
        if self.crashed is not None:
            raise GuestUnreachable(f"{self.name}: ssh: connect to host: Connection timed out "
                                   f"(guest bugchecked 0x{self.crashed.code:X}; {what!r})")

    def bugcheck(self, bug: _Bugcheck) -> None:
        self.crashed = bug

    def _boot(self) -> None:
        self.crashed = None
        self.boot_id += 1
        self._t_ns = 8_000_000_000 + self.boot_id * 1_000_000
        for name, svc in list(self.services.items()):
            svc.driver, svc.state = None, 1
            if svc.marked_for_delete:
                self._delete_service(name)
        for adapter in self.adapters:
            if adapter.removal_pending:
                adapter.removal_pending, adapter.present = False, False
        self.verifier_active = list(self.verifier_pending)
        self._log_event(6005, "EventLog", "Information", "The Event log service was started.")
        self._identity_step()
        self._start_at_boot()

    def _identity_step(self) -> None:
        """The image's startup task (lab.guests.windows_identity.boot_script) at boot: the
        first volume whose label is LABIDENT (Win32_Volume.Label; WQL '=' ignores case) has
        its files copied over C:\\ProgramData\\ssh\\ssh_host_ed25519_key, then .pub, stopping
        at the first one missing (ErrorActionPreference Stop); no such volume: no change."""
        if not self.image.identity_boot_step:
            return
        label = windows_identity.IDENTITY_LABEL.lower()
        media = next((v for v in self.volumes if v.label.lower() == label), None)
        if media is None:
            return
        for name in (windows_identity.HOST_KEY_NAME, windows_identity.HOST_PUB_NAME):
            if name not in media.files:
                return
            path = f"{_SSH_DIR}\\{name}"
            self.files[path.lower()] = _File(path, media.files[name], False)

    def presented_host_key(self) -> str:
        """The host key its sshd presents: ``<type> <base64>`` of ssh_host_ed25519_key.pub
        (test double view; a real sshd derives it from the private key next to it)."""
        found = self.files[f"{_SSH_DIR}\\{windows_identity.HOST_PUB_NAME}".lower()]
        return " ".join(found.data.decode("ascii").split()[:2])

    def _write_dumps(self, bug: _Bugcheck) -> None:
        if not self._reg_dword(_CRASH_KEY, "CrashDumpEnabled"):
            return
        when = self._now()
        full = out.dump_header64(bug.code, bug.params, dump_type=out.DUMP_TYPE_FULL, when=when)
        self.files["c:\\windows\\memory.dmp"] = _File("C:\\Windows\\MEMORY.DMP",
                                                      full + bytes(0x1000), True)
        self.dirs.add("c:\\windows\\minidump")
        mini = f"C:\\Windows\\Minidump\\{when:%m%d%y}-{7000 + self.boot_id}-01.dmp"
        self.files[mini.lower()] = _File(mini, out.dump_header64(
            bug.code, bug.params, dump_type=out.DUMP_TYPE_TRIAGE, when=when), True)

    def _log_event(self, event_id: int, provider: str, level: str, message: str) -> None:
        self.events.append(_Event(self._now(), event_id, provider, level, message))

    def append_file(self, path: str, data: bytes) -> None:
        key = win_path(path).lower()
        existing = self.files.get(key)
        if existing is None:
            self.files[key] = _File(win_path(path), data, True)
        else:
            existing.data += data

    # registry
    def _reg_set(self, key: str, name: str, kind: str, value: object) -> None:
        self.registry.setdefault(_reg_key(key), {})[name.lower()] = (name, kind, value)

    def _reg_dword(self, key: str, name: str) -> int:
        entry = self.registry.get(_reg_key(key), {}).get(name.lower())
        return int(entry[2]) if entry and isinstance(entry[2], int) else 0

    def _params(self, service: str) -> dict[str, tuple[str, str, object]]:
        return self.registry.get(_reg_key(_SERVICES_KEY + service + "\\Parameters"), {})

    # adapters
    def _take_index(self) -> int:
        index = self._next_index
        self._next_index += 1
        return index

    def _add_adapter(self, spec: AdapterSpec) -> _Adapter:
        if spec.model not in _NIC_MODELS:
            raise AssertionError(f"test double: NIC model {spec.model!r} not modelled")
        n = len(self.adapters) + 1
        name = "Ethernet" if n == 1 else f"Ethernet {n}"
        index = self._take_index()
        instance = f"{_NIC_MODELS[spec.model][1]}\\3&2411E6FE&0&{n * 8:02X}"
        ipv4 = _address(spec.ipv4) if spec.ipv4 else (f"169.254.{index}.{n * 11}", 16)
        adapter = _Adapter(mac_colon(spec.mac), name, index, spec.model, instance, ipv4)
        self.adapters.append(adapter)
        return adapter

    def _adapter(self, mac: str) -> _Adapter:
        for adapter in self.adapters:
            if adapter.mac == mac_colon(mac):
                return adapter
        raise AssertionError(f"test double: no NIC with MAC {mac}")

    def bindable_adapters(self) -> list[_Adapter]:
        return [a for a in self.adapters
                if a.present and a.enabled and a.binding and not a.removal_pending]

    def _listed_adapters(self) -> list[_Adapter]:
        return [a for a in self.adapters if a.present]

    # services
    def _driver(self, name: str) -> _Driver | None:
        svc = self.services.get(name)
        return svc.driver if svc else None

    def _service_stopped(self, svc: _Service) -> None:
        svc.state, svc.driver = 1, None
        if svc.marked_for_delete:
            self._delete_service(svc.name.lower())

    def _delete_service(self, name: str) -> None:
        self.services.pop(name, None)
        prefix = _reg_key(_SERVICES_KEY + name)
        for key in [k for k in self.registry if k == prefix or k.startswith(prefix + "\\")]:
            del self.registry[key]

    # ---- the PowerShell host ------------------------------------------------------------

    def shell_statement(self, pipeline: Pipeline, job: _ScriptRun) -> _Outcome | _Pending:
        head = pipeline[0]
        if head.name.lower() == "exit" and not head.call_operator:
            job.exit_code = self._exit_value(head, job)
            return _Outcome(ok=job.last_ok)
        if head.call_operator or head.name.lower() in _NATIVE_NAMES:
            return self._native_pipeline(pipeline, job)
        if head.name.lower() == "sc":
            raise _refuse(job.command, "in PowerShell 'sc' is the Set-Content alias: use sc.exe")
        return self._cmdlet_pipeline(pipeline, job)

    def _exit_value(self, head: Invocation, job: _ScriptRun) -> int:
        if len(head.args) != 1:
            raise _refuse(job.command, "exit takes one value")
        arg = head.args[0]
        if isinstance(arg, VarArg) and arg.name.lower() == "lastexitcode":
            return job.last_exit or 0
        if isinstance(arg, Word) and re.fullmatch(r"-?\d+", arg.text):
            return int(arg.text)
        raise _refuse(job.command, f"exit {arg!r}")

    def _native_pipeline(self, pipeline: Pipeline, job: _ScriptRun) -> _Outcome | _Pending:
        head = pipeline[0]
        if any(el.name.lower() != "out-null" or el.args for el in pipeline[1:]):
            raise _refuse(job.command, "a native program may only be piped to Out-Null")
        args: list[str] = []
        for arg in head.args:
            if not isinstance(arg, Word):
                raise _refuse(job.command, f"argument {arg!r} to a native program")
            args.append(arg.text)
        if head.call_operator:
            found = self.files.get(win_path(head.name).lower()) if ":" in head.name else None
            if found is None:
                return _Outcome(stderr=out.not_recognized(head.name), ok=False)
            if found.path.lower().endswith("\\labctl.exe"):
                return self._quiet(pipeline, self._labctl(args, job))
            raise _refuse(job.command, f"running {found.path} is not modelled")
        handler = getattr(self, _NATIVE_NAMES[head.name.lower()])
        result: _Outcome | _Pending = handler(args, job)
        return self._quiet(pipeline, result)

    @staticmethod
    def _quiet(pipeline: Pipeline, result: _Outcome | _Pending) -> _Outcome | _Pending:
        if len(pipeline) == 1:
            return result
        if isinstance(result, _Pending):
            inner = result.finish
            return _Pending(result.ready, lambda: _drop_stdout(inner()))
        return _drop_stdout(result)

    def _cmdlet_pipeline(self, pipeline: Pipeline, job: _ScriptRun) -> _Outcome | _Pending:
        items: list[object] | None = None
        shown: list[str] = []
        failed = False
        for position, element in enumerate(pipeline):
            spec = _CMDLETS.get(element.name.lower())
            if spec is None:
                raise _refuse(job.command, f"command {element.name!r} is not modelled")
            method, valued, switches = spec
            params = _bind(element, valued | {"erroraction"}, switches, job.command)
            handler: _Cmdlet = getattr(self, method)
            errors: list[str] = []
            try:
                produced = handler(items, params, errors)
            except _PsError as exc:  # a non-terminating error record: no output from it
                errors.append(exc.text)
                produced = []
            if isinstance(produced, _Pending):
                if position != len(pipeline) - 1:
                    raise _refuse(job.command, "a blocking cmdlet must end the pipeline")
                return produced
            items = produced
            # a suppressed error is not shown but still sets $? false (PowerShell#4613)
            failed = failed or bool(errors)
            if (params.text("ErrorAction") or "").lower() != "silentlycontinue":
                shown += errors
        return _Outcome(stdout=self._render(items or [], job.command), stderr="".join(shown),
                        ok=not failed)

    def _render(self, items: list[object], command: str) -> str:
        rows: list[str] = []
        tables: list[PsObject] = []
        for item in items:
            if isinstance(item, str):
                rows.append(item)
            elif isinstance(item, PsObject) and item.type_name in _TABLE_VIEWS:
                tables.append(item)
            else:
                raise _refuse(command, f"default formatting of {item!r} is not modelled "
                              "(select properties and use ConvertTo-Json)")
        text = out.lines(*rows) if rows else ""
        if tables:
            columns = _TABLE_VIEWS[tables[0].type_name]
            text += out.ps_table(columns, [[t.get(c) for c in columns] for t in tables])
        return text

    # ---- cmdlets ------------------------------------------------------------------------

    def _c_write_output(self, inp: list[object] | None, p: _Params,
                        errors: list[str]) -> list[object]:
        return [w.text for w in p.positional if isinstance(w, Word)]

    def _c_out_null(self, inp: list[object] | None, p: _Params,
                    errors: list[str]) -> list[object]:
        return []

    def _c_where(self, inp: list[object] | None, p: _Params, errors: list[str]) -> list[object]:
        prop = p.positional[0] if len(p.positional) == 1 else None
        wanted = p.text("eq")
        if not isinstance(prop, Word) or wanted is None:
            raise AssertionError("test double: Where-Object needs '<Property> -eq <value>'")
        return [i for i in inp or [] if isinstance(i, PsObject)
                and _ps_equal(i.get(prop.text), wanted)]

    def _c_select(self, inp: list[object] | None, p: _Params, errors: list[str]) -> list[object]:
        names = _texts(p.positional[0]) if p.positional else p.texts("Property")
        first = p.text("First")
        selected: list[object] = [
            PsObject("Selected." + i.type_name, tuple((n, i.get(n)) for n in names))
            for i in inp or [] if isinstance(i, PsObject)]
        return selected[:int(first)] if first else selected

    def _c_convertto_json(self, inp: list[object] | None, p: _Params,
                          errors: list[str]) -> list[object]:
        values = [dict(i.props) if isinstance(i, PsObject) else i for i in inp or []]
        if not values:
            return []
        value: object = values[0] if len(values) == 1 else values
        return [out.ps51_json(value, compress="compress" in p.named)]

    def _c_get_netadapter(self, inp: list[object] | None, p: _Params,
                          errors: list[str]) -> list[object]:
        wanted = p.text("Name")
        return [self._adapter_object(a) for a in self._listed_adapters()
                if wanted is None or a.name.lower() == wanted.lower()]

    def _adapter_object(self, a: _Adapter) -> PsObject:
        return PsObject("MSFT_NetAdapter", (
            ("Name", a.name), ("InterfaceDescription", self._description(a)), ("ifIndex", a.index),
            ("Status", "Up" if a.enabled else "Disabled"), ("MacAddress", mac_dash(a.mac)),
            ("LinkSpeed", "1 Gbps"),
            ("PnPDeviceID", a.instance), ("InterfaceAlias", a.name)))

    def _description(self, a: _Adapter) -> str:
        base = _NIC_MODELS[a.model][0]
        same = [x for x in self.adapters if x.model == a.model]
        n = same.index(a) + 1
        return base if n == 1 else f"{base} #{n}"

    def _c_get_binding(self, inp: list[object] | None, p: _Params,
                       errors: list[str]) -> list[object]:
        component = p.text("ComponentID") or ""
        if component.lower() != _PROTOCOL_ID.lower() or not self.protocol_installed:
            raise _PsError(out.ps_error(
                "Get-NetAdapterBinding", "No MSFT_NetAdapterBindingSettingData objects found "
                f"with property 'ComponentID' equal to '{component}'.  Verify the value of the "
                "property and retry.", f"ObjectNotFound: ({component}:String) "
                "[Get-NetAdapterBinding], CimJobException", "CmdletizationQuery_NotFound_"
                "ComponentID,Get-NetAdapterBinding"))
        return [self._binding_object(a) for a in self._listed_adapters()]

    def _binding_object(self, a: _Adapter) -> PsObject:
        return PsObject("MSFT_NetAdapterBindingSettingData", (
            ("Name", a.name), ("DisplayName", self.protocol_display),
            ("ComponentID", _PROTOCOL_ID), ("Enabled", a.binding)))

    def _c_disable_binding(self, inp: list[object] | None, p: _Params,
                           errors: list[str]) -> list[object] | _Pending:
        return self._set_binding(inp, p, errors, enabled=False)

    def _c_enable_binding(self, inp: list[object] | None, p: _Params,
                          errors: list[str]) -> list[object] | _Pending:
        return self._set_binding(inp, p, errors, enabled=True)

    def _set_binding(self, inp: list[object] | None, p: _Params, errors: list[str], *,
                     enabled: bool) -> list[object] | _Pending:
        if (p.text("ComponentID") or "").lower() != _PROTOCOL_ID.lower():
            raise AssertionError("test double: only -ComponentID DL_labtdi is modelled")
        targets = [self._adapter(str(i.get("MacAddress"))) for i in inp or []
                   if isinstance(i, PsObject)]
        if p.text("Name") is not None:
            targets += [a for a in self._listed_adapters() if a.name == p.text("Name")]
        if not self.protocol_installed and targets:
            raise _PsError(out.ps_error("Set-NetAdapterBinding", "No matching binding found.",
                                        "ObjectNotFound", "CmdletizationQuery_NotFound"))
        driver = self._driver("labtdi")
        for adapter in targets:
            if adapter.binding == enabled:
                continue
            adapter.binding = enabled
            if not isinstance(driver, _LabTdi):
                continue
            if enabled:
                driver.bind(adapter)
            elif adapter.mac in driver.bound and not driver.unbind(adapter, removal=False):
                return _Pending(lambda: False, _Outcome)  # UnbindAdapterEx never completes
        return [self._binding_object(a) for a in targets] if "passthru" in p.named else []

    def _c_restart_adapter(self, inp: list[object] | None, p: _Params,
                           errors: list[str]) -> list[object] | _Pending:
        """Restart-NetAdapter -Name: the device is disabled and enabled (a PnP removal
        without hardware removal): a bound labtdi sees the query-remove and unbinds, then
        binds again; an unbind that never completes keeps the cmdlet waiting. No output
        without -PassThru (NetAdapter module)."""
        wanted = p.text("Name") or ""
        targets = [a for a in self._listed_adapters() if a.name.lower() == wanted.lower()]
        if not targets:
            raise _PsError(out.ps_error(
                "Restart-NetAdapter", "No MSFT_NetAdapter objects found with property 'Name' "
                f"equal to '{wanted}'.  Verify the value of the property and retry.",
                f"ObjectNotFound: ({wanted}:String) [Restart-NetAdapter], CimJobException",
                "CmdletizationQuery_NotFound_Name,Restart-NetAdapter"))
        driver = self._driver("labtdi")
        for adapter in targets:
            if not isinstance(driver, _LabTdi) or adapter.mac not in driver.bound:
                continue
            if not driver.unbind(adapter, removal=True):
                return _Pending(lambda: False, _Outcome)  # the disable never completes
            if adapter.binding:
                driver.bind(adapter)
        return [self._adapter_object(a) for a in targets] if "passthru" in p.named else []

    def _named_adapters(self, cmdlet: str, wanted: str) -> list[_Adapter]:
        """The listed adapters named ``wanted``; none is the NetAdapter module's error."""
        targets = [a for a in self._listed_adapters() if a.name.lower() == wanted.lower()]
        if not targets:
            raise _PsError(out.ps_error(
                cmdlet, "No MSFT_NetAdapter objects found with property 'Name' "
                f"equal to '{wanted}'.  Verify the value of the property and retry.",
                f"ObjectNotFound: ({wanted}:String) [{cmdlet}], CimJobException",
                f"CmdletizationQuery_NotFound_Name,{cmdlet}"))
        return targets

    def _c_disable_adapter(self, inp: list[object] | None, p: _Params,
                           errors: list[str]) -> list[object] | _Pending:
        """Disable-NetAdapter -Name X -Confirm:$false: a PnP stop of the device without
        hardware removal; a bound labtdi sees the query-remove and unbinds, and the cmdlet
        waits for it. Without -Confirm:$false it prompts ("Are you sure you want to perform
        this action?"), which a non-interactive session cannot answer: refused here.
        The adapter stays listed with Status Disabled and no IP address (NetAdapter
        module docs, Disable-NetAdapter)."""
        if p.named.get("confirm") is not False:
            raise AssertionError("test double: Disable-NetAdapter prompts without "
                                 "-Confirm:$false")
        driver = self._driver("labtdi")
        targets = self._named_adapters("Disable-NetAdapter", p.text("Name") or "")
        for adapter in targets:
            if not adapter.enabled:
                continue
            adapter.enabled = False
            if isinstance(driver, _LabTdi) and adapter.mac in driver.bound \
                    and not driver.unbind(adapter, removal=True):
                return _Pending(lambda: False, _Outcome)  # the disable never completes
        return [self._adapter_object(a) for a in targets] if "passthru" in p.named else []

    def _c_enable_adapter(self, inp: list[object] | None, p: _Params,
                          errors: list[str]) -> list[object] | _Pending:
        """Enable-NetAdapter -Name X: the device starts; a loaded labtdi binds it again
        (same name and ifIndex). Enabling an enabled adapter does nothing."""
        driver = self._driver("labtdi")
        targets = self._named_adapters("Enable-NetAdapter", p.text("Name") or "")
        for adapter in targets:
            if adapter.enabled:
                continue
            adapter.enabled = True
            if isinstance(driver, _LabTdi) and not driver.unloaded and adapter.binding:
                driver.bind(adapter)
        return [self._adapter_object(a) for a in targets] if "passthru" in p.named else []

    def _c_get_ipaddress(self, inp: list[object] | None, p: _Params,
                         errors: list[str]) -> list[object]:
        if (p.text("AddressFamily") or "").lower() != "ipv4":
            raise AssertionError("test double: only Get-NetIPAddress -AddressFamily IPv4")
        rows = [(1, "Loopback Pseudo-Interface 1", "127.0.0.1", 8)]
        rows += [(a.index, a.name, a.ipv4[0], a.ipv4[1]) for a in self._listed_adapters()
                 if a.enabled]  # a disabled adapter has no IP interface
        return [PsObject("MSFT_NetIPAddress", (
            ("IPAddress", ip), ("InterfaceIndex", index), ("InterfaceAlias", alias),
            ("AddressFamily", 2), ("PrefixLength", prefix))) for index, alias, ip, prefix in rows]

    def _c_get_pnpdevice(self, inp: list[object] | None, p: _Params,
                         errors: list[str]) -> list[object]:
        """Win32_PnPEntity objects; -InstanceId takes wildcards (the cmdletization query is
        ``DeviceId LIKE``), and a pattern that matches nothing is not an error."""
        wanted = p.text("InstanceId")
        devices = [d for d in self._pnp_entities()
                   if (wanted is None or _ps_like(str(d.get("InstanceId")), wanted))
                   and ("presentonly" not in p.named or d.get("Present") is True)]
        if wanted is not None and not devices and not _has_wildcard(wanted):
            raise _PsError(out.ps_error(
                "Get-PnpDevice", "No matching Win32_PnPEntity objects found by CIM query for "
                "instances of the ROOT\\cimv2\\Win32_PnPEntity class on the  CIM server: "
                f"SELECT * FROM Win32_PnPEntity  WHERE ((DeviceId LIKE '{wanted}')). Verify "
                "query parameters and retry.", "ObjectNotFound: (Win32_PnPEntity:String) "
                "[Get-PnpDevice], CimJobException", "CmdletizationQuery_NotFound,Get-PnpDevice"))
        return list(devices)

    def _pnp_entities(self) -> list[PsObject]:
        entities = [PsObject("Win32_PnPEntity", (
            ("InstanceId", a.instance), ("Present", a.present),
            ("Status", "OK" if a.present else "Unknown"), ("Class", "Net"),
            ("FriendlyName", self._description(a)))) for a in self.adapters]
        if self.image.pvpanic_device:
            driver = self.image.pvpanic_driver
            # ConfigManagerErrorCode 28: "The drivers for this device are not installed."
            # (learn.microsoft.com win32-pnpentity; device manager error codes)
            entities.append(PsObject("Win32_PnPEntity", (
                ("InstanceId", _PVPANIC_INSTANCE), ("Present", True),
                ("Status", "OK" if driver else "Error"),
                ("Class", "System" if driver else None),
                ("FriendlyName", "QEMU PVPanic Device" if driver else None),
                ("ConfigManagerErrorCode", 0 if driver else 28),
                ("Service", "pvpanic" if driver else None))))
        return entities

    def _c_get_portfilter(self, inp: list[object] | None, p: _Params,
                          errors: list[str]) -> list[object]:
        """MSFT_NetFirewallPortFilter, one per rule; InstanceID is the rule's Name."""
        protocol = (p.text("Protocol") or "").upper()
        if protocol != "TCP":
            raise AssertionError("test double: only Get-NetFirewallPortFilter -Protocol TCP")
        return [PsObject("MSFT_NetFirewallPortFilter", (
            ("InstanceID", name), ("Protocol", "TCP"), ("LocalPort", [str(port)]),
            ("RemotePort", ["Any"]))) for name, port in self._firewall_rules()]

    def _c_get_fwrule(self, inp: list[object] | None, p: _Params,
                      errors: list[str]) -> list[object]:
        """MSFT_NetFirewallRule of the port filters piped in (-AssociatedNetFirewallPortFilter
        by value); the enums as PowerShell types them (Enabled True=1, Direction Inbound=1,
        Action Allow=2: MSFT_NetFirewallRule class reference)."""
        if inp is None:
            raise AssertionError("test double: Get-NetFirewallRule only from port filters")
        names = {str(i.get("InstanceID")) for i in inp if isinstance(i, PsObject)}
        return [PsObject("MSFT_NetFirewallRule", (
            ("Name", name), ("DisplayName", _RULE_NAMES.get(port, f"TCP {port}")),
            ("Enabled", out.PsEnum("True", 1)), ("Direction", out.PsEnum("Inbound", 1)),
            ("Action", out.PsEnum("Allow", 2)))) for name, port in self._firewall_rules()
            if name in names]

    def _firewall_rules(self) -> list[tuple[str, int]]:
        return [(_RULE_IDS.get(port, f"DriverLab-TCP-{port}-In"), port)
                for port in self.image.firewall_tcp_ports]

    def _c_get_mpstatus(self, inp: list[object] | None, p: _Params,
                        errors: list[str]) -> list[object]:
        """MSFT_MpComputerStatus; without Defender the Defender module (and the cmdlet) is
        absent: CommandNotFoundException."""
        if not self.image.defender_installed:
            raise _PsError(out.not_recognized("Get-MpComputerStatus"))
        realtime = self.image.defender_realtime
        return [PsObject("MSFT_MpComputerStatus", (
            ("AMServiceEnabled", True), ("AntivirusEnabled", True),
            ("RealTimeProtectionEnabled", realtime), ("OnAccessProtectionEnabled", realtime)))]

    def _c_get_service(self, inp: list[object] | None, p: _Params,
                       errors: list[str]) -> list[object]:
        """ServiceController for wuauserv; StartType and Status are .NET enums
        (ServiceStartMode, ServiceControllerStatus)."""
        name = p.text("Name")
        if name is None or name.lower() != "wuauserv":
            raise AssertionError("test double: only Get-Service -Name 'wuauserv' is modelled")
        start = self.image.wuauserv_start
        running = start == "Automatic"
        return [PsObject("System.ServiceProcess.ServiceController", (
            ("Name", "wuauserv"), ("DisplayName", "Windows Update"),
            ("Status", out.PsEnum("Running", 4) if running else out.PsEnum("Stopped", 1)),
            ("StartType", out.PsEnum(start, out.SERVICE_START_MODES[start]))))]

    def _c_get_winevent(self, inp: list[object] | None, p: _Params,
                        errors: list[str]) -> list[object]:
        log = p.text("LogName")
        ids: list[str] = []
        filt = p.named.get("filterhashtable")
        if isinstance(filt, HashArg):
            entries = {k.lower(): v for k, v in filt.entries}
            log = _texts(entries["logname"])[0] if "logname" in entries else None
            ids = _texts(entries["id"]) if "id" in entries else []
        if (log or "").lower() != "system":
            raise AssertionError(f"test double: event log {log!r} is not modelled")
        found = [e for e in reversed(self.events) if not ids or str(e.event_id) in ids]
        found = found[:int(p.text("MaxEvents") or len(found) or 1)]
        if not found:
            raise _PsError(out.ps_error(
                "Get-WinEvent", "No events were found that match the specified selection "
                "criteria.", "ObjectNotFound: (:) [Get-WinEvent], Exception",
                "NoMatchingEventsFound,Microsoft.PowerShell.Commands.GetWinEventCommand"))
        return [PsObject("EventLogRecord", (
            ("TimeCreated", out.PsDate(e.when)), ("Id", e.event_id),
            ("ProviderName", e.provider), ("LevelDisplayName", e.level),
            ("Message", e.message))) for e in found]

    def _c_get_childitem(self, inp: list[object] | None, p: _Params,
                         errors: list[str]) -> list[object]:
        paths = p.texts("Path") or [t for a in p.positional for t in _texts(a)]
        found: list[object] = []
        for path in paths:
            if path.lower().startswith("cert:\\localmachine\\"):
                store = path.split("\\")[-1]
                found += [PsObject("X509Certificate2", (
                    ("PSParentPath",
                     f"Microsoft.PowerShell.Security\\Certificate::LocalMachine\\{store}"),
                    ("Thumbprint", thumb), ("Subject", "CN=Driver Lab Test CA")))
                    for s, thumb in sorted(self.certs) if s.lower() == store.lower()]
                continue
            matches = self._glob(win_path(path))
            if matches is None:
                errors.append(out.ps_error(
                    "Get-ChildItem", f"Cannot find path '{path}' because it does not exist.",
                    f"ObjectNotFound: ({path}:String) [Get-ChildItem], "
                    "ItemNotFoundException", "PathNotFound,Microsoft.PowerShell.Commands."
                    "GetChildItemCommand"))
                continue
            found += [PsObject("FileInfo", (("Name", f.path.rsplit("\\", 1)[1]),
                                            ("FullName", f.path), ("Length", len(f.data))))
                      for f in matches]
        return found

    def _glob(self, path: str) -> list[_File] | None:
        parent, _, leaf = path.rpartition("\\")
        if "*" not in leaf and "?" not in leaf:
            hit = self.files.get(path.lower())
            return [hit] if hit else None
        if parent.lower() not in self.dirs:
            return None
        return sorted((f for k, f in self.files.items()
                       if k.rpartition("\\")[0] == parent.lower()
                       and fnmatch.fnmatch(k.rpartition("\\")[2], leaf.lower())),
                      key=lambda f: f.path.lower())

    def _c_get_itemproperty(self, inp: list[object] | None, p: _Params,
                            errors: list[str]) -> list[object]:
        path = p.text("Path") or _texts(p.positional[0])[0]
        values = self.registry.get(_reg_key(path))
        if values is None:
            raise _PsError(out.ps_error("Get-ItemProperty", f"Cannot find path '{path}' because "
                                        "it does not exist.", "ObjectNotFound",
                                        "PathNotFound"))
        return [PsObject("RegistryKey", tuple((n, v) for n, _, v in values.values()))]

    def _c_get_content(self, inp: list[object] | None, p: _Params,
                       errors: list[str]) -> list[object]:
        path = p.text("Path") or _texts(p.positional[0])[0]
        found = self.files.get(win_path(path).lower())
        if found is None:
            raise _PsError(out.ps_error(
                "Get-Content", f"Cannot find path '{path}' because it does not exist.",
                f"ObjectNotFound: ({path}:String) [Get-Content], ItemNotFoundException",
                "PathNotFound,Microsoft.PowerShell.Commands.GetContentCommand"))
        text = found.data.decode("utf-8", errors="replace")
        return [text] if "raw" in p.named else list(text.splitlines())

    def _c_new_item(self, inp: list[object] | None, p: _Params,
                    errors: list[str]) -> list[object]:
        if (p.text("ItemType") or "").lower() != "directory":
            raise AssertionError("test double: only New-Item -ItemType Directory")
        path = win_path(p.text("Path") or "")
        parts = path.split("\\")
        for n in range(1, len(parts) + 1):
            self.dirs.add("\\".join(parts[:n]).lower() or "c:\\")
        return [PsObject("DirectoryInfo", (("FullName", path),))]

    def _c_get_ciminstance(self, inp: list[object] | None, p: _Params,
                           errors: list[str]) -> list[object]:
        """Win32_OperatingSystem only; LastBootUpTime as Windows PowerShell 5.1's
        ConvertTo-Json writes a DateTime ("\\/Date(<ms since 1970>)\\/", the
        JavaScriptSerializer form its docs describe), distinct per boot (test double)."""
        name = p.text("ClassName") or _texts(p.positional[0])[0]
        if name.lower() != "win32_operatingsystem":
            raise AssertionError(f"test double: Get-CimInstance {name} is not modelled")
        boot_ms = 1_764_662_400_000 + self.boot_id * 60_000
        return [PsObject("Microsoft.Management.Infrastructure.CimInstance#root/cimv2/"
                         "Win32_OperatingSystem", (("LastBootUpTime", f"/Date({boot_ms})/"),))]

    def _c_restart(self, inp: list[object] | None, p: _Params,
                   errors: list[str]) -> list[object]:
        if "force" not in p.named:
            raise AssertionError("test double: Restart-Computer without -Force would wait "
                                 "for logged-on users")
        self._log_event(1074, "User32", "Information", "The process powershell.exe has "
                        "initiated the restart of computer on behalf of user Administrator.")
        self._boot()
        return []

    # ---- native programs ----------------------------------------------------------------

    def _n_sc(self, args: list[str], job: _ScriptRun) -> _Outcome | _Pending:
        if not args:
            raise _refuse(job.command, "sc.exe without a subcommand")
        verb, rest = args[0].lower(), args[1:]
        if verb == "create":
            return self._sc_create(rest, job)
        if verb == "config":
            return self._sc_config(rest, job)
        if verb not in ("start", "stop", "query", "delete") or len(rest) != 1:
            raise _refuse(job.command, f"sc.exe {verb} with {rest!r}")
        svc = self.services.get(rest[0].lower())
        operation = {"start": "StartService", "stop": "ControlService",
                     "query": "QueryService", "delete": "DeleteService"}[verb]
        if svc is None:
            return _fail(out.sc_failure("OpenService", out.ERROR_SERVICE_DOES_NOT_EXIST),
                         out.ERROR_SERVICE_DOES_NOT_EXIST)
        if verb == "query":
            return _Outcome(out.sc_status_block(svc.name, svc.state), native_exit=0)
        if verb == "delete":
            return self._sc_delete(svc)
        if verb == "start":
            return self._sc_start(svc, operation)
        return self._sc_stop(svc, operation)

    def _sc_create(self, rest: list[str], job: _ScriptRun) -> _Outcome:
        if not rest:
            raise _refuse(job.command, "sc.exe create without a service name")
        options: dict[str, str] = {}
        i = 1
        while i < len(rest):
            opt = rest[i]
            if not opt.endswith("=") or i + 1 >= len(rest):
                raise _refuse(job.command, f"sc.exe option {opt!r}: the documented form is "
                              "'name= value' (a space after '=')")
            options[opt[:-1].lower()] = rest[i + 1]
            i += 2
        if options.get("type", "").lower() != "kernel" or "binpath" not in options:
            raise _refuse(job.command, "only 'type= kernel ... binPath= <file>' is modelled")
        existing = self.services.get(rest[0].lower())
        if existing is not None:
            code = (out.ERROR_SERVICE_MARKED_FOR_DELETE if existing.marked_for_delete
                    else out.ERROR_SERVICE_EXISTS)
            return _fail(out.sc_failure("CreateService", code), code)
        self.services[rest[0].lower()] = _Service(rest[0], options["binpath"])
        self._log_event(7045, "Service Control Manager", "Information",
                        out.service_installed_message(rest[0], options["binpath"]))
        return _Outcome(out.sc_success("CreateService"), native_exit=0)

    def _sc_config(self, rest: list[str], job: _ScriptRun) -> _Outcome:
        """sc.exe config <svc> start= <type>: only the start type is modelled."""
        if len(rest) != 3 or rest[1].lower() != "start=" \
                or rest[2].lower() not in ("boot", "system", "auto", "demand", "disabled"):
            raise _refuse(job.command, "only 'sc.exe config <svc> start= <type>' is modelled")
        svc = self.services.get(rest[0].lower())
        if svc is None:
            return _fail(out.sc_failure("OpenService", out.ERROR_SERVICE_DOES_NOT_EXIST),
                         out.ERROR_SERVICE_DOES_NOT_EXIST)
        svc.start = rest[2].lower()
        return _Outcome(out.sc_success("ChangeServiceConfig"), native_exit=0)

    def _start_at_boot(self) -> None:
        """System-start drivers first (the I/O manager), then auto-start ones (the SCM)."""
        for start in ("system", "auto"):
            for svc in list(self.services.values()):
                if svc.start == start and not svc.marked_for_delete:
                    self._sc_start(svc, "StartService")

    def _sc_start(self, svc: _Service, operation: str) -> _Outcome:
        if svc.marked_for_delete:
            return _fail(out.sc_failure(operation, out.ERROR_SERVICE_MARKED_FOR_DELETE),
                         out.ERROR_SERVICE_MARKED_FOR_DELETE)
        if svc.state != 1:
            return _fail(out.sc_failure(operation, out.ERROR_SERVICE_ALREADY_RUNNING),
                         out.ERROR_SERVICE_ALREADY_RUNNING)
        image = self.files.get(win_path(svc.bin_path).lower())
        if image is None:
            return _fail(out.sc_failure(operation, out.ERROR_FILE_NOT_FOUND),
                         out.ERROR_FILE_NOT_FOUND)
        if not (image.signed and self.testsigning and self._ca_trusted()):
            return _fail(out.sc_failure(operation, out.ERROR_INVALID_IMAGE_HASH),
                         out.ERROR_INVALID_IMAGE_HASH)
        cls = _DRIVER_CLASSES.get(svc.name.lower())
        if cls is None:
            raise AssertionError(f"test double: no behaviour modelled for driver {svc.name}")
        params = self._params(svc.name)
        knobs = {k: int(v[2]) for k, v in params.items() if v[1] == "REG_DWORD"
                 and isinstance(v[2], int)}
        journal = params.get("journalfile")
        svc.driver = cls(self, knobs, win_path(str(journal[2])) if journal else None)
        svc.driver.start()
        svc.state = 4
        return _Outcome(out.sc_status_block(svc.name, 4, with_process=True), native_exit=0)

    def _ca_trusted(self) -> bool:
        roots = {t for s, t in self.certs if s == "Root"}
        return bool(roots)

    def _sc_stop(self, svc: _Service, operation: str) -> _Outcome | _Pending:
        if svc.state == 1:
            return _fail(out.sc_failure(operation, out.ERROR_SERVICE_NOT_ACTIVE),
                         out.ERROR_SERVICE_NOT_ACTIVE)
        if svc.state == 3:
            return _fail(out.sc_failure(operation, out.ERROR_SERVICE_CANNOT_ACCEPT_CTRL),
                         out.ERROR_SERVICE_CANNOT_ACCEPT_CTRL)
        assert svc.driver is not None
        if svc.driver.stop():
            self._service_stopped(svc)
            return _Outcome(out.sc_status_block(svc.name, 1), native_exit=0)
        svc.state = 3
        if self.stop_mode == "blocks":
            return _Pending(lambda: svc.state == 1,
                            lambda: _Outcome(out.sc_status_block(svc.name, 1), native_exit=0))
        return _Outcome(out.sc_status_block(svc.name, 3), native_exit=0)

    def _sc_delete(self, svc: _Service) -> _Outcome:
        if svc.marked_for_delete:
            return _fail(out.sc_failure("DeleteService", out.ERROR_SERVICE_MARKED_FOR_DELETE),
                         out.ERROR_SERVICE_MARKED_FOR_DELETE)
        if svc.state == 1:
            self._delete_service(svc.name.lower())
        else:
            svc.marked_for_delete = True
        return _Outcome(out.sc_success("DeleteService"), native_exit=0)

    def _n_reg(self, args: list[str], job: _ScriptRun) -> _Outcome:
        if len(args) < 2 or args[0].lower() not in ("add", "delete"):
            raise _refuse(job.command, "only reg.exe add / delete are modelled")
        key, opts = args[1], _slash_options(args[2:], job.command, {"/f"})
        if "/f" not in opts:
            raise _refuse(job.command, "reg.exe without /f prompts for confirmation")
        name = opts.get("/v")
        if name is None:
            raise _refuse(job.command, "only single values (/v) are modelled")
        if args[0].lower() == "delete":
            values = self.registry.get(_reg_key(key), {})
            if name.lower() not in values:
                return _Outcome(stderr=out.REG_NOT_FOUND, ok=False, native_exit=1)
            del values[name.lower()]
            return _Outcome(out.REG_OK, native_exit=0)
        kind, data = (opts.get("/t") or "REG_SZ").upper(), opts.get("/d", "")
        if kind == "REG_DWORD":
            self._reg_set(key, name, kind, int(data, 0))
        elif kind == "REG_SZ":
            self._reg_set(key, name, kind, data)
        else:
            raise _refuse(job.command, f"value type {kind}")
        return _Outcome(out.REG_OK, native_exit=0)

    def _n_netcfg(self, args: list[str], job: _ScriptRun) -> _Outcome:
        opts = _dash_options(args, job.command)
        if "-q" in opts:
            installed = self.protocol_installed and opts["-q"].lower() == _PROTOCOL_ID.lower()
            return _native(out.netcfg_query(opts["-q"], installed), 0 if installed else out.S_FALSE)
        if "-u" in opts:
            return self._netcfg_uninstall(opts["-u"])
        if {"-l", "-c", "-i"} <= set(opts) and opts["-c"].lower() == "p":
            return self._netcfg_install(opts["-l"], opts["-i"])
        raise _refuse(job.command, "only netcfg -l <inf> -c p -i <id>, -q <id>, -u <id>")

    def _netcfg_install(self, inf: str, component: str) -> _Outcome:
        inf_file = self.files.get(win_path(inf).lower())
        folder = win_path(inf).rpartition("\\")[0]
        needed = [inf_file] + [self.files.get(f"{folder}\\labtdi.{ext}".lower())
                               for ext in ("sys", "cat")]
        if any(f is None for f in needed) or inf_file is None:
            return _native(out.netcfg_install(component, out.HRESULT_FILE_NOT_FOUND),
                           out.HRESULT_FILE_NOT_FOUND)
        text = inf_file.data.decode("utf-8", errors="replace")
        model = re.search(r"^%([\w.]+)%\s*=\s*\w+\s*,\s*" + re.escape(component) + r"\s*$",
                          text, re.MULTILINE | re.IGNORECASE)
        if model is None:
            return _native(out.netcfg_install(component, out.SPAPI_E_NO_DRIVER_SELECTED),
                           out.SPAPI_E_NO_DRIVER_SELECTED)
        existing = self.services.get("labtdi")
        if existing is not None and existing.marked_for_delete:
            return _native(out.netcfg_install(component, out.HRESULT_MARKED_FOR_DELETE),
                           out.HRESULT_MARKED_FOR_DELETE)
        desc = re.search(rf"^{re.escape(model.group(1))}\s*=\s*\"([^\"]*)\"", text,
                         re.MULTILINE | re.IGNORECASE)
        self.protocol_display = desc.group(1) if desc else component
        self._stage_package(inf_file, text)
        self.protocol_installed = True
        for adapter in self.adapters:
            adapter.binding = True
        if existing is None:
            sys_file = needed[1]
            assert sys_file is not None
            store = "C:\\Windows\\System32\\DriverStore\\FileRepository\\labtdi.inf_amd64_" \
                "5d0f2a3c1b7e9a64\\labtdi.sys"
            self.files[store.lower()] = _File(store, sys_file.data, sys_file.signed)
            self.services["labtdi"] = _Service("labtdi", store)
            # [Install.Service.AddReg] of the INF: JournalFile = \SystemRoot\Temp\labtdi.journal
            self._reg_set(_SERVICES_KEY + "labtdi\\Parameters", "JournalFile", "REG_SZ",
                          "\\SystemRoot\\Temp\\labtdi.journal")
        return _native(out.netcfg_install(component, 0), 0)

    def _stage_package(self, inf_file: _File, text: str) -> None:
        original = inf_file.path.rsplit("\\", 1)[1].lower()
        if any(p.original == original for p in self.packages):
            return
        used = {int(p.published[3:-4]) for p in self.packages}
        number = next(n for n in range(100) if n not in used)
        provider = re.search(r'^ProviderName\s*=\s*"([^"]*)"', text, re.MULTILINE)
        self.packages.append(out.DriverPackage(
            f"oem{number}.inf", original, provider.group(1) if provider else "Unknown",
            "Network Protocol", "{4d36e975-e325-11ce-bfc1-08002be10318}",
            "01/01/2025 1.0.0.0", "Driver Lab Test CA"))

    def _netcfg_uninstall(self, component: str) -> _Outcome:
        if not self.protocol_installed or component.lower() != _PROTOCOL_ID.lower():
            return _native(out.netcfg_query(component, False), out.S_FALSE)
        svc = self.services["labtdi"]
        code = 0
        if svc.state != 1:  # [Install.Remove.Services] DelService ... SPSVCINST_STOPSERVICE
            result = self._sc_stop(svc, "ControlService")
            if isinstance(result, _Pending) or svc.state != 1:
                svc.state, code = 3, out.NETCFG_S_REBOOT
        self.protocol_installed = False
        if svc.state == 1:
            self._delete_service("labtdi")
        else:
            svc.marked_for_delete = True
        return _native(out.netcfg_uninstall(component, code), code)

    def _n_pnputil(self, args: list[str], job: _ScriptRun) -> _Outcome:
        if args == ["/enum-drivers"]:
            return _native(out.pnputil_enum(self.packages), 0)
        if len(args) >= 2 and args[0].lower() == "/delete-driver":
            package = [p for p in self.packages if p.published.lower() == args[1].lower()]
            if not package:
                return _native(out.pnputil_deleted(False), out.ERROR_FILE_NOT_FOUND)
            if package[0].original == "labtdi.inf" and self.protocol_installed:
                raise _refuse(job.command, "deleting a package that is still installed "
                              "(netcfg -u first) is not modelled")
            self.packages.remove(package[0])
            return _native(out.pnputil_deleted(True), 0)
        raise _refuse(job.command, "only pnputil /enum-drivers and /delete-driver")

    def _n_verifier(self, args: list[str], job: _ScriptRun) -> _Outcome:
        lowered = [a.lower() for a in args]
        if lowered == ["/querysettings"]:
            return _native(out.verifier_querysettings(self.verifier_pending), 0)
        if lowered == ["/reset"]:
            self.verifier_pending = []
            return _native(out.VERIFIER_REBOOT, 2)
        if lowered[:2] == ["/standard", "/driver"] and len(args) > 2:
            self.verifier_pending = list(args[2:])
            return _native(out.VERIFIER_REBOOT, 2)
        raise _refuse(job.command, "only verifier /standard /driver, /querysettings, /reset")

    def _n_bcdedit(self, args: list[str], job: _ScriptRun) -> _Outcome:
        if [a.lower() for a in args] != ["/enum", "{current}"]:
            raise _refuse(job.command, "only bcdedit /enum '{current}' is modelled")
        return _native(out.bcdedit_current(self.testsigning), 0)

    def _labctl(self, args: list[str], job: _ScriptRun) -> _Outcome:
        if len(args) != 2 or args[0] != "journal" or args[1] not in _DRIVER_CLASSES:
            raise _refuse(job.command, "only labctl.exe journal <wskecho|labtdi>")
        driver = self._driver(args[1])
        if driver is None:  # the control device exists only while the driver is loaded
            return _Outcome(stderr="labctl: open control device failed (error 2)\r\n",
                            ok=False, native_exit=2)
        return _Outcome("".join(driver.memory), native_exit=0)


class _PsError(Exception):
    """A cmdlet's (non-terminating) error record inside the test double: it is shown on
    stderr unless ``-ErrorAction SilentlyContinue`` and always sets ``$?`` false."""

    def __init__(self, text: str) -> None:
        super().__init__(text)
        self.text = text


# command name -> handler method, valued parameters, switches (test double host)
_CMDLETS: dict[str, tuple[str, set[str], set[str]]] = {
    "write-output": ("_c_write_output", set(), set()),
    "out-null": ("_c_out_null", set(), set()),
    "where-object": ("_c_where", {"eq"}, set()),
    "?": ("_c_where", {"eq"}, set()),
    "select-object": ("_c_select", {"property", "first"}, set()),
    "select": ("_c_select", {"property", "first"}, set()),
    "convertto-json": ("_c_convertto_json", {"depth"}, {"compress"}),
    "get-netadapter": ("_c_get_netadapter", {"name"}, {"physical"}),
    "get-netadapterbinding": ("_c_get_binding", {"componentid", "name"}, set()),
    "disable-netadapterbinding": ("_c_disable_binding", {"componentid", "name"}, {"passthru"}),
    "enable-netadapterbinding": ("_c_enable_binding", {"componentid", "name"}, {"passthru"}),
    "get-netipaddress": ("_c_get_ipaddress", {"addressfamily"}, set()),
    "get-pnpdevice": ("_c_get_pnpdevice", {"instanceid", "class"}, {"presentonly"}),
    "get-winevent": ("_c_get_winevent", {"logname", "maxevents", "filterhashtable"}, set()),
    "get-childitem": ("_c_get_childitem", {"path"}, set()),
    "get-itemproperty": ("_c_get_itemproperty", {"path"}, set()),
    "get-content": ("_c_get_content", {"path"}, {"raw"}),
    "new-item": ("_c_new_item", {"itemtype", "path"}, {"force"}),
    "restart-computer": ("_c_restart", set(), {"force"}),
    "restart-netadapter": ("_c_restart_adapter", {"name"}, {"passthru"}),
    "disable-netadapter": ("_c_disable_adapter", {"name"}, {"passthru", "confirm"}),
    "enable-netadapter": ("_c_enable_adapter", {"name"}, {"passthru", "confirm"}),
    "get-ciminstance": ("_c_get_ciminstance", {"classname"}, set()),
    "get-netfirewallportfilter": ("_c_get_portfilter", {"protocol"}, set()),
    "get-netfirewallrule": ("_c_get_fwrule", set(), set()),
    "get-mpcomputerstatus": ("_c_get_mpstatus", set(), set()),
    "get-service": ("_c_get_service", {"name"}, set()),
}

# firewall rules of a good image: OpenSSH's own rule (install-sshd / the capability) and
# the provisioning script's echo rule (names illustrative except OpenSSH's)
_RULE_IDS = {22: "OpenSSH-Server-In-TCP", 7007: "DriverLab-Echo-In-TCP"}
_RULE_NAMES = {22: "OpenSSH SSH Server (sshd)", 7007: "Driver Lab echo (TCP 7007)"}

_NATIVE_NAMES: dict[str, str] = {
    "sc.exe": "_n_sc", "reg.exe": "_n_reg", "reg": "_n_reg",
    "netcfg.exe": "_n_netcfg", "netcfg": "_n_netcfg",
    "pnputil.exe": "_n_pnputil", "pnputil": "_n_pnputil",
    "verifier.exe": "_n_verifier", "verifier": "_n_verifier",
    "bcdedit.exe": "_n_bcdedit", "bcdedit": "_n_bcdedit",
}

_TABLE_VIEWS: dict[str, tuple[str, ...]] = {
    "MSFT_NetAdapterBindingSettingData": ("Name", "DisplayName", "ComponentID", "Enabled"),
}


def _bind(element: Invocation, valued: set[str], switches: set[str], command: str) -> _Params:
    params = _Params()
    args = list(element.args)
    while args:
        arg = args.pop(0)
        if isinstance(arg, Word) and not arg.quoted and arg.text.startswith("-") \
                and len(arg.text) > 1 and not arg.text[1].isdigit():
            name, colon, value = arg.text[1:].lower().partition(":")
            if name in switches:  # -Switch, or -Switch:$true / -Switch:$false
                params.named[name] = not colon or value != "$false"
            elif name in valued and args:
                params.named[name] = args.pop(0)
            else:
                raise _refuse(command, f"parameter {arg.text} of {element.name} is not modelled")
        else:
            params.positional.append(arg)
    return params


def _texts(arg: Arg) -> list[str]:
    if isinstance(arg, Word):
        return [arg.text]
    if isinstance(arg, ListArg):
        return [w.text for w in arg.items]
    raise AssertionError(f"Windows guest test double: {arg!r} is not a literal")


def _ps_equal(value: object, wanted: str) -> bool:
    """``-eq`` as Where-Object uses it: a collection on the left matches when an element
    does; an enum compares by name or number (about_Comparison_Operators)."""
    if isinstance(value, list | tuple):
        return any(_ps_equal(v, wanted) for v in value)
    if isinstance(value, out.PsEnum):
        return wanted.lower() in (value.name.lower(), str(value.value))
    if isinstance(value, bool):
        return str(value).lower() == wanted.lower()
    if isinstance(value, int):
        return str(value) == wanted
    return isinstance(value, str) and value.lower() == wanted.lower()


def _has_wildcard(pattern: str) -> bool:
    return any(c in pattern for c in "*?[")


def _ps_like(value: str, pattern: str) -> bool:
    """PowerShell wildcard match, case-insensitive (about_Wildcards)."""
    return fnmatch.fnmatchcase(value.lower(), pattern.lower())


def _slash_options(args: list[str], command: str, flags: set[str]) -> dict[str, str]:
    opts: dict[str, str] = {}
    i = 0
    while i < len(args):
        key = args[i].lower()
        if key in flags:
            opts[key], i = "", i + 1
        elif key.startswith("/") and i + 1 < len(args):
            opts[key], i = args[i + 1], i + 2
        else:
            raise _refuse(command, f"option {args[i]!r}")
    return opts


def _dash_options(args: list[str], command: str) -> dict[str, str]:
    opts: dict[str, str] = {}
    i = 0
    while i < len(args):
        key = args[i].lower()
        if key == "-v":
            i += 1
        elif key in ("-l", "-c", "-i", "-q", "-u") and i + 1 < len(args):
            opts[key], i = args[i + 1], i + 2
        else:
            raise _refuse(command, f"netcfg option {args[i]!r}")
    return opts


def _address(text: str) -> tuple[str, int]:
    ip, _, prefix = text.partition("/")
    return ip, int(prefix or 24)


def _native(stdout: str, code: int) -> _Outcome:
    return _Outcome(stdout, "", code == 0, code)


def _fail(stdout: str, code: int) -> _Outcome:
    return _Outcome(stdout, "", False, code)


def _drop_stdout(outcome: _Outcome) -> _Outcome:
    return _Outcome("", outcome.stderr, outcome.ok, outcome.native_exit)


__all__ = ["AdapterSpec", "ImageState", "PsObject", "WindowsGuestDouble", "mac_colon", "mac_dash",
           "parse", "tokenize", "win_path"]
