"""Checks a driver journal (drivers/events.txt format) against the WSK echo contract.

Line format: "<t_ns> <driver> <EVENT> <adapter> <status>". The checks are the ones the
unload scenario applies: exactly one WSK_DEREGISTER per successful WSK_REGISTER, after
it, after the NPI release and after every socket was closed; UNLOAD last.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

EVENTS_FILE = Path(__file__).resolve().parents[2] / "drivers" / "events.txt"


class ContractViolation(AssertionError):
    """The driver broke its contract (a driver failure, not a lab failure)."""


@dataclass(frozen=True)
class Event:
    t_ns: int
    driver: str
    name: str
    adapter: str
    status: str

    @property
    def ok(self) -> bool:
        return self.status == "ok"


def vocabulary() -> frozenset[str]:
    names = set()
    for line in EVENTS_FILE.read_text().splitlines():
        if line.strip() and not line.startswith("#"):
            names.add(line.split()[0])
    return frozenset(names)


def parse(text: str) -> list[Event]:
    vocab = vocabulary()
    events = []
    for n, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        parts = line.split(" ")
        if len(parts) != 5:
            raise ContractViolation(f"journal line {n} is malformed: {line!r}")
        t, driver, name, adapter, status = parts
        if name not in vocab:
            raise ContractViolation(f"journal line {n}: unknown event {name!r}")
        if not (status == "ok" or status.startswith("err:")):
            raise ContractViolation(f"journal line {n}: bad status {status!r}")
        events.append(Event(int(t), driver, name, adapter, status))
    return events


def _index(events: list[Event], name: str) -> list[int]:
    return [i for i, e in enumerate(events) if e.name == name]


def check_wsk_unload(events: list[Event]) -> None:
    """Raises ContractViolation unless the WSK register/deregister pairing holds."""
    regs = [i for i in _index(events, "WSK_REGISTER") if events[i].ok]
    deregs = _index(events, "WSK_DEREGISTER")
    if len(regs) != 1:
        raise ContractViolation(f"expected one successful WSK_REGISTER, got {len(regs)}")
    if len(deregs) != 1:
        raise ContractViolation(
            f"expected exactly one WSK_DEREGISTER after WSK_REGISTER, got {len(deregs)}"
        )
    reg, dereg = regs[0], deregs[0]
    if dereg < reg:
        raise ContractViolation("WSK_DEREGISTER precedes WSK_REGISTER")
    captures = [i for i in _index(events, "WSK_CAPTURE_NPI") if events[i].ok]
    releases = _index(events, "WSK_RELEASE_NPI")
    if len(captures) != len(releases):
        raise ContractViolation(f"{len(captures)} NPI captures but {len(releases)} releases")
    if any(r > dereg for r in releases):
        raise ContractViolation("WskReleaseProviderNPI ran after WskDeregister")
    opened = [i for i in _index(events, "LISTEN") if events[i].ok]
    closed = _index(events, "LISTENER_CLOSED")
    if len(opened) != len(closed) or any(c > dereg for c in closed):
        raise ContractViolation("a listening socket was not closed before WskDeregister")
    accepts = [i for i in _index(events, "ACCEPT") if events[i].ok]
    closes = _index(events, "CLOSE")
    if len(accepts) != len(closes) or any(c > dereg for c in closes):
        raise ContractViolation(
            f"{len(accepts)} accepted connections, {len(closes)} closed before WskDeregister"
        )
    if events[-1].name != "UNLOAD":
        raise ContractViolation(f"last event is {events[-1].name}, not UNLOAD")
