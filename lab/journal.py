"""Driver event journals: parse them and check the drivers' contracts.

Every lab driver (the Windows drivers and their Linux twins) writes one text
line per event, in the format fixed by ``drivers/events.txt``::

    <t_ns> <driver> <EVENT> <adapter> <status>

The vocabulary of event names is read from that file (never duplicated here).
A journal may come straight from the driver (``/proc/<driver>/journal``) or
from the kernel log, where every line carries the ``labjournal: `` prefix after
the kernel's own timestamp; both parse the same way.

A journal that breaks a contract (unknown event, malformed line, unpaired
register/deregister, wrong per-adapter teardown order) raises
:class:`~lab.errors.DriverFailure`: the driver, not the lab, failed.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from lab.errors import ConfigError, DriverFailure

#: ``drivers/events.txt`` in the source tree.
EVENTS_FILE = Path(__file__).resolve().parent.parent / "drivers" / "events.txt"

#: The marker the Linux twins put before each journal line in the kernel log.
KMSG_PREFIX = "labjournal: "

_EVENT_NAME = re.compile(r"^[A-Z][A-Z0-9_]*$")
_MAC = re.compile(r"^[0-9a-f]{2}(?::[0-9a-f]{2}){5}$")
_STATUS = re.compile(r"^(?:ok|err:(-?(?:0x[0-9a-fA-F]+|\d+)))$")

#: Registrations and their reciprocal deregistrations, counted per driver.
DRIVER_PAIRS: tuple[tuple[str, str], ...] = (
    ("LOAD", "UNLOAD"),
    ("WSK_REGISTER", "WSK_DEREGISTER"),
    ("WSK_CAPTURE_NPI", "WSK_RELEASE_NPI"),
    ("LISTEN", "LISTENER_CLOSED"),
    ("ACCEPT", "CLOSE"),
    ("PROVIDER_REGISTERED", "PROVIDER_DEREGISTERED"),
    ("PROTOCOL_REGISTERED", "PROTOCOL_DEREGISTERED"),
)

#: Registrations and deregistrations counted per adapter.
ADAPTER_PAIRS: tuple[tuple[str, str], ...] = (
    ("BIND", "UNBIND"),
    ("NETADDR_REGISTERED", "NETADDR_DEREGISTERED"),
    ("DEVICE_REGISTERED", "DEVICE_DEREGISTERED"),
)

#: Per-adapter order when a binding comes up.
BIND_ORDER: tuple[str, ...] = ("BIND", "NETADDR_REGISTERED", "DEVICE_REGISTERED")

#: Per-adapter order when an adapter is removed or unbound (seed:
#: unloading-deregistering-tdi-transport): query seen, forwarded to the
#: clients, and only then unbind and the two deregistrations.
REMOVAL_ORDER: tuple[str, ...] = (
    "QUERY_REMOVE",
    "PNP_FORWARDED",
    "UNBIND",
    "NETADDR_DEREGISTERED",
    "DEVICE_DEREGISTERED",
)

#: The tail of an unbind without a query (the driver's own unload).
UNBIND_ORDER: tuple[str, ...] = REMOVAL_ORDER[2:]


@dataclass(frozen=True)
class Vocabulary:
    """The event names of ``drivers/events.txt`` and what each one means."""

    path: Path
    meanings: tuple[tuple[str, str], ...]

    @property
    def names(self) -> frozenset[str]:
        return frozenset(name for name, _ in self.meanings)

    def __contains__(self, name: object) -> bool:
        return name in self.names

    def require(self, *names: str) -> None:
        """Fail if a name the lab's checks rely on is not in the vocabulary."""
        missing = sorted(set(names) - self.names)
        if missing:
            raise ConfigError(
                str(self.path),
                "events",
                f"event names {', '.join(missing)} are not in the vocabulary",
                "add them to drivers/events.txt with a comment",
            )

    @classmethod
    def load(cls, path: Path = EVENTS_FILE) -> Vocabulary:
        try:
            text = path.read_text(encoding="ascii")
        except (OSError, UnicodeDecodeError) as exc:
            raise ConfigError(
                str(path), "events", f"cannot read the event vocabulary: {exc}",
                "restore drivers/events.txt from the repository",
            ) from exc
        meanings: list[tuple[str, str]] = []
        for lineno, raw in enumerate(text.splitlines(), 1):
            line = raw.strip()
            if not line or line.startswith("#"):
                continue
            name, _, meaning = line.partition(" ")
            if not _EVENT_NAME.match(name):
                raise ConfigError(
                    f"{path}:{lineno}", "events", f"{name!r} is not an EVENT_NAME",
                    "event names are upper case letters, digits and underscores",
                )
            if name in dict(meanings):
                raise ConfigError(
                    f"{path}:{lineno}", "events", f"event {name} is listed twice",
                    "keep one line per event name",
                )
            meanings.append((name, meaning.strip()))
        if not meanings:
            raise ConfigError(str(path), "events", "the vocabulary is empty",
                              "list one event name per line")
        return cls(path=path, meanings=tuple(meanings))


@dataclass(frozen=True, order=True)
class Adapter:
    """A network adapter as journals name it: ``<mac>@<ifindex>``."""

    mac: str
    ifindex: int

    def __str__(self) -> str:
        return f"{self.mac}@{self.ifindex}"

    @classmethod
    def parse(cls, text: str) -> Adapter:
        mac, sep, index = text.rpartition("@")
        mac = mac.lower()
        if not sep or not _MAC.match(mac) or not index.isdigit():
            raise ValueError(f"adapter {text!r} is not <mac>@<ifindex>")
        return cls(mac=mac, ifindex=int(index))


@dataclass(frozen=True)
class JournalEvent:
    """One journal line."""

    t_ns: int
    driver: str
    name: str
    adapter: Adapter | None
    #: None when the status is "ok", else the error code (negative errno on
    #: Linux, NTSTATUS on Windows).
    error: int | None
    line: str

    @property
    def ok(self) -> bool:
        return self.error is None


def _malformed(line: str, why: str) -> DriverFailure:
    return DriverFailure(
        f"malformed journal line {line!r}: {why}",
        hint="journal lines are '<t_ns> <driver> <EVENT> <adapter> <status>' (drivers/events.txt)",
    )


def parse_line(line: str, vocabulary: Vocabulary) -> JournalEvent:
    """Parse one journal line (optionally with a kernel log prefix)."""
    text = line.strip()
    if KMSG_PREFIX in text:
        text = text.split(KMSG_PREFIX, 1)[1].strip()
    fields = text.split()
    if len(fields) != 5:
        raise _malformed(line, f"{len(fields)} fields, expected 5")
    t_ns, driver, name, adapter_text, status = fields
    if not t_ns.isdigit():
        raise _malformed(line, "timestamp is not a decimal number of nanoseconds")
    if name not in vocabulary:
        raise DriverFailure(
            f"driver {driver} journaled unknown event {name!r} in line {line.strip()!r}",
            hint=f"use a name from {vocabulary.path}, or add the event there with a comment",
        )
    adapter = None
    if adapter_text != "-":
        try:
            adapter = Adapter.parse(adapter_text)
        except ValueError as exc:
            raise _malformed(line, str(exc)) from exc
    match = _STATUS.match(status)
    if not match:
        raise _malformed(line, f"status {status!r} is neither 'ok' nor 'err:<code>'")
    error = int(match.group(1), 0) if match.group(1) else None
    return JournalEvent(int(t_ns), driver, name, adapter, error, text)


@dataclass(frozen=True)
class Journal:
    """An ordered sequence of journal events, possibly of several drivers."""

    events: tuple[JournalEvent, ...]

    def __iter__(self) -> Iterator[JournalEvent]:
        return iter(self.events)

    def __len__(self) -> int:
        return len(self.events)

    def names(self) -> list[str]:
        return [e.name for e in self.events]

    def of_driver(self, driver: str) -> Journal:
        return Journal(tuple(e for e in self.events if e.driver == driver))

    def of_adapter(self, adapter: Adapter) -> Journal:
        return Journal(tuple(e for e in self.events if e.adapter == adapter))

    def adapters(self) -> tuple[Adapter, ...]:
        seen = dict.fromkeys(e.adapter for e in self.events if e.adapter is not None)
        return tuple(seen)

    def count(self, name: str) -> int:
        return sum(1 for e in self.events if e.name == name)

    def sessions(self) -> tuple[Journal, ...]:
        """Split one driver's journal at each LOAD: one journal per load."""
        out: list[list[JournalEvent]] = []
        for event in self.events:
            if event.name == "LOAD" or not out:
                out.append([])
            out[-1].append(event)
        return tuple(Journal(tuple(s)) for s in out)

    def errors(self) -> tuple[JournalEvent, ...]:
        return tuple(e for e in self.events if not e.ok)


def parse_journal(text: str | Iterable[str], vocabulary: Vocabulary) -> Journal:
    """Parse journal text; blank lines and ``#`` comments are skipped.

    Lines of a kernel log are accepted as they are: only lines carrying the
    ``labjournal: `` marker count when any line carries it.
    """
    lines = text.splitlines() if isinstance(text, str) else list(text)
    from_kmsg = any(KMSG_PREFIX in line for line in lines)
    events: list[JournalEvent] = []
    for line in lines:
        stripped = line.strip()
        if not stripped or stripped.startswith("#"):
            continue
        if from_kmsg and KMSG_PREFIX not in stripped:
            continue
        events.append(parse_line(stripped, vocabulary))
    return Journal(tuple(events))


@dataclass(frozen=True)
class ConsoleJournal:
    """Journal lines read from a serial console, and the ones the console cut short."""

    journal: Journal
    #: journal lines a panic (or another CPU's output) cut or merged on the console
    cut: tuple[str, ...]

    def cut_events(self, driver: str) -> list[str]:
        """Event names of ``driver`` still readable in the cut lines (in order)."""
        names = []
        for line in self.cut:
            fields = line.split(KMSG_PREFIX, 1)[-1].split()
            if len(fields) >= 3 and fields[1] == driver:
                names.append(fields[2])
        return names


def parse_console_journal(text: str | Iterable[str], vocabulary: Vocabulary) -> ConsoleJournal:
    """Journal lines from a serial console log, where a panic can cut a line short.

    The console is a lossy transport: a line the kernel printed whole can reach the
    log cut off or merged with the next message. Such lines are kept apart (never
    dropped silently), every intact line is parsed as strictly as anywhere else.
    """
    lines = text.splitlines() if isinstance(text, str) else list(text)
    good: list[str] = []
    cut: list[str] = []
    for line in lines:
        if KMSG_PREFIX not in line:
            continue
        fields = line.split(KMSG_PREFIX, 1)[1].split()
        intact = len(fields) == 5 and (fields[3] == "-" or "@" in fields[3]) \
            and (fields[4] == "ok" or fields[4].startswith("err:"))
        (good if intact else cut).append(line)
    return ConsoleJournal(parse_journal(good, vocabulary), tuple(cut))


# ---- contract checks -------------------------------------------------------


def is_subsequence(wanted: Sequence[str], names: Sequence[str]) -> bool:
    """True if ``wanted`` appears in ``names`` in order (other names may interleave)."""
    it = iter(names)
    return all(any(n == w for n in it) for w in wanted)


def check_pairs(journal: Journal, driver: str, vocabulary: Vocabulary) -> None:
    """Every registration of one driver's journal has exactly one reciprocal
    deregistration, driver-wide and per adapter, and none comes first."""
    vocabulary.require(*(n for pair in DRIVER_PAIRS + ADAPTER_PAIRS for n in pair))
    own = journal.of_driver(driver)
    problems = _unpaired(own, DRIVER_PAIRS, "")
    for adapter in own.adapters():
        problems += _unpaired(own.of_adapter(adapter), ADAPTER_PAIRS, f" on adapter {adapter}")
    if problems:
        raise DriverFailure(
            f"{driver}: journal pairs do not match: " + "; ".join(problems),
            hint="each register/capture needs exactly one deregister/release "
            "(WskRegister contract)",
        )


def _unpaired(journal: Journal, pairs: Sequence[tuple[str, str]], where: str) -> list[str]:
    problems: list[str] = []
    for opening, closing in pairs:
        depth = 0
        for name in journal.names():
            if name == opening:
                depth += 1
            elif name == closing:
                depth -= 1
                if depth < 0:
                    problems.append(f"{closing} before any {opening}{where}")
                    depth = 0
        if depth > 0:
            problems.append(f"{opening} x{journal.count(opening)} but {closing} "
                            f"x{journal.count(closing)}{where}")
    return problems


def check_adapter_removal(
    journal: Journal, driver: str, adapter: Adapter, *, with_query: bool = True
) -> None:
    """The adapter's last binding was torn down in the contract's order."""
    own = journal.of_driver(driver).of_adapter(adapter)
    names = own.names()
    if "BIND" not in names:
        raise DriverFailure(f"{driver}: adapter {adapter} was never bound (no BIND)")
    last_bind = len(names) - 1 - names[::-1].index("BIND")
    tail = names[last_bind:]
    # Bind: BIND, then the net address and the device object, in either order (the
    # seed does not fix it: the Linux twin registers the address first, labtdi.sys
    # the device object first).
    up = [n for n in tail if n in set(BIND_ORDER)][:3]
    if len(up) < 3 or up[0] != "BIND" or set(up) != set(BIND_ORDER):
        raise DriverFailure(f"{driver}: adapter {adapter} binding incomplete: got "
                            f"{' '.join(up)}, expected BIND then NETADDR_REGISTERED and "
                            "DEVICE_REGISTERED")
    wanted = REMOVAL_ORDER if with_query else UNBIND_ORDER
    teardown = [n for n in tail if n in set(wanted)]
    if not teardown:
        raise DriverFailure(f"{driver}: adapter {adapter} was not torn down (nothing after its "
                            f"last BIND; expected {' '.join(wanted)})")
    if teardown != list(wanted):
        raise DriverFailure(
            f"{driver}: adapter {adapter} teardown out of order: got {' '.join(teardown)}, "
            f"expected {' '.join(wanted)}",
            hint="forward the query to clients before unbinding; deregister only in unbind",
        )


#: CLOSE statuses that say what the peer did (reset, aborted, gone), not what the driver
#: did: Linux -ECONNRESET, -EPIPE; NTSTATUS CONNECTION_DISCONNECTED, _RESET, _ABORTED.
PEER_CLOSE_CODES: frozenset[int] = frozenset({-104, -32, 0xC000020C, 0xC000020D, 0xC0000241})


def peer_ended(event: JournalEvent) -> bool:
    """A CLOSE whose error status is the peer's doing (still paired, never a failure)."""
    return event.name == "CLOSE" and event.error in PEER_CLOSE_CODES


def check_unload(journal: Journal, driver: str, vocabulary: Vocabulary) -> None:
    """The last load of the driver unloaded cleanly: all pairs close, every
    binding was released before UNLOAD, and UNLOAD is the last event."""
    sessions = journal.of_driver(driver).sessions()
    if not sessions or not len(sessions[-1]):
        raise DriverFailure(f"{driver}: journal is empty")
    last = sessions[-1]
    if last.names()[-1] != "UNLOAD":
        raise DriverFailure(
            f"{driver}: unload did not finish: last event is {last.names()[-1]}",
            hint="the driver's unload routine hung or crashed before it returned",
        )
    check_pairs(last, driver, vocabulary)
    names = last.names()
    # Seed: unload only after every binding is released, and it deregisters both the
    # TDI provider and the NDIS protocol (their relative order is left open: labtdi.sys
    # deregisters the protocol first so that NDIS unbinds every adapter).
    for final in ("PROVIDER_DEREGISTERED", "PROTOCOL_DEREGISTERED"):
        if final in names:
            released = names.index(final)
            late = [n for n in names[released:] if n in ("BIND", "NETADDR_REGISTERED",
                                                          "DEVICE_REGISTERED")]
            if late:
                raise DriverFailure(f"{driver}: {late[0]} after {final} during unload")
    if "PROVIDER_REGISTERED" in names and "PROVIDER_DEREGISTERED" in names:
        last_unbind = max((i for i, n in enumerate(names) if n == "UNBIND"), default=-1)
        if last_unbind > names.index("PROVIDER_DEREGISTERED"):
            raise DriverFailure(f"{driver}: provider deregistered before every binding was "
                                "released (UNBIND after PROVIDER_DEREGISTERED)")
    # Seed: the teardown order of a binding holds on every path, the unload included.
    for adapter in last.adapters():
        if "BIND" in last.of_adapter(adapter).names():
            check_adapter_removal(last, driver, adapter, with_query=False)
    failed = [e for e in last.errors() if not peer_ended(e)]
    if failed:
        raise DriverFailure(
            f"{driver}: events failed during this load: "
            + "; ".join(e.line for e in failed[:5])
        )


def event_counts(journal: Journal) -> Counter[str]:
    return Counter(journal.names())


__all__ = [
    "ADAPTER_PAIRS",
    "BIND_ORDER",
    "DRIVER_PAIRS",
    "EVENTS_FILE",
    "KMSG_PREFIX",
    "REMOVAL_ORDER",
    "UNBIND_ORDER",
    "Adapter",
    "Journal",
    "JournalEvent",
    "Vocabulary",
    "check_adapter_removal",
    "check_pairs",
    "check_unload",
    "event_counts",
    "is_subsequence",
    "parse_journal",
    "parse_line",
]
