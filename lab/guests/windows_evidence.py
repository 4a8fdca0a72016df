"""Crash and hang evidence from a Windows guest: event 1001 and the dumps it wrote.

After a bug check the guest writes its dump (CrashControl) and reboots by
itself (AutoReboot = 1). The lab waits for SSH again, reads event 1001
(``BugCheck``) from the System log, lists ``C:\\Windows\\MEMORY.DMP`` and
``C:\\Windows\\Minidump\\*.dmp``, fetches them with SFTP and decodes their
headers here (windows_dump). A hang is turned into the same evidence by an NMI
(``NMICrashDump`` = 1 makes it bug check 0x80 NMI_HARDWARE_FAILURE).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path, PureWindowsPath
from typing import TYPE_CHECKING

from lab.errors import LabFailure
from lab.guests.windows_codes import bugcheck_title
from lab.guests.windows_dump import DumpInfo, read_dump
from lab.guests.windows_text import BugcheckRecord, parse_bugcheck_event, parse_dump_files

if TYPE_CHECKING:
    from lab.guests.windows import WindowsGuest

#: Reboot after a bug check: the dump write (minutes for a kernel dump of a few GiB) + boot.
CRASH_REBOOT_DEADLINE_S = 1200.0
#: Event 1001 is written during the boot after the bug check; give it this long.
EVENT_DEADLINE_S = 180.0
#: Dumps bigger than this stay in the guest (named in the notes).
MAX_FETCH_BYTES = 16 << 30
#: Bug check an injected NMI gives with NMICrashDump = 1.
NMI_BUGCHECK = 0x80
SUMMARY_FILE = "bugcheck.txt"

EVENT_1001_CMD = ("Get-WinEvent -FilterHashtable @{LogName='System'; Id=1001} -MaxEvents 1 "
                  "-ErrorAction SilentlyContinue | Select-Object TimeCreated,Id,Message | "
                  "ConvertTo-Json -Compress")
DUMPS_CMD = ("Get-ChildItem -Path 'C:\\Windows\\MEMORY.DMP','C:\\Windows\\Minidump\\*.dmp' "
             "-ErrorAction SilentlyContinue | Select-Object FullName,Length | "
             "ConvertTo-Json -Compress")


def bugcheck_event(guest: WindowsGuest, deadline: float = EVENT_DEADLINE_S
                   ) -> BugcheckRecord | None:
    end = time.monotonic() + deadline
    while True:
        res = guest.shell.run(EVENT_1001_CMD, timeout=30, check=False)
        record = parse_bugcheck_event(res.stdout) if res.ok else None
        if record is not None or time.monotonic() >= end:
            return record
        time.sleep(5)


def fetch_dumps(guest: WindowsGuest, folder: Path) -> tuple[list[tuple[Path, DumpInfo | str]],
                                                            list[str]]:
    """Fetch every dump; per file its decoded header or why it could not be decoded."""
    res = guest.shell.run(DUMPS_CMD, timeout=30, check=False)
    fetched: list[tuple[Path, DumpInfo | str]] = []
    notes: list[str] = []
    for remote, size in parse_dump_files(res.stdout):
        name = PureWindowsPath(remote)
        local = folder / (name.name if name.parent.name.lower() != "minidump"
                          else f"Minidump-{name.name}")
        if size > MAX_FETCH_BYTES:
            notes.append(f"{remote} ({size >> 20} MiB) left in the guest (over the fetch limit)")
            continue
        guest.shell.get(remote.replace("\\", "/"), local)
        try:
            fetched.append((local, read_dump(local)))
        except LabFailure as exc:
            fetched.append((local, exc.summary))
    return fetched, notes


def summarize(record: BugcheckRecord | None,
              dumps: list[tuple[Path, DumpInfo | str]]) -> tuple[str, str]:
    """(headline, summary text): the dump header is preferred over the event text."""
    decoded = [info for _, info in dumps if isinstance(info, DumpInfo)]
    if decoded:
        headline = decoded[0].title
    elif record is not None:
        headline = f"bugcheck {bugcheck_title(record.code)}"
    else:
        headline = "bugcheck unknown: no event 1001 and no decodable dump"
    parts = [headline, ""]
    if record is not None:
        params = ", ".join(f"0x{p:016X}" for p in record.parameters)
        parts += [f"event 1001: {bugcheck_title(record.code)} ({params})",
                  f"event text: {record.message}", ""]
    for path, info in dumps:
        parts.append(f"== {path.name}")
        parts.append(info.summary() if isinstance(info, DumpInfo) else f"not decoded: {info}")
        parts.append("")
    return headline, "\n".join(parts)


def collect_crash(guest: WindowsGuest, folder: Path,
                  deadline: float = CRASH_REBOOT_DEADLINE_S) -> list[str]:
    """Wait for the guest's own reboot, then event 1001 and the dumps; returns notes."""
    folder.mkdir(parents=True, exist_ok=True)
    try:
        guest.wait_back(deadline)
        record = bugcheck_event(guest)
        dumps, notes = fetch_dumps(guest, folder)
    except LabFailure as exc:
        return [f"Windows crash evidence unavailable: {exc.summary}"]
    headline, text = summarize(record, dumps)
    (folder / SUMMARY_FILE).write_text(text + "\n", encoding="utf-8")
    files = ", ".join(p.name for p, _ in dumps) or "no dump files"
    return [headline, f"dumps fetched: {files} (summary in {SUMMARY_FILE})", *notes]


def collect_hang(guest: WindowsGuest, folder: Path, nmi: Callable[[], None]) -> list[str]:
    """Inject an NMI (bug check 0x80 with NMICrashDump = 1), then the crash evidence."""
    try:
        nmi()
    except LabFailure as exc:
        return [f"NMI injection failed, no hang dump: {exc.summary}"]
    notes = collect_crash(guest, folder)
    if notes and not notes[0].startswith(f"bugcheck {bugcheck_title(NMI_BUGCHECK)}"):
        notes.append(f"expected {bugcheck_title(NMI_BUGCHECK)} from the injected NMI "
                     "(is NMICrashDump = 1 in the image?)")
    return [*notes, "hang turned into a dump by an injected NMI (the verdict stays driver hung)"]


__all__ = ["NMI_BUGCHECK", "SUMMARY_FILE", "bugcheck_event", "collect_crash", "collect_hang",
           "fetch_dumps", "summarize"]
