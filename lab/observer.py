"""What labtdi's clients observed: the independent observer's verdict.

The rule "the transport forwards the query-remove to its clients while the binding
is still intact" (seed: unloading-deregistering-tdi-transport) is about what
clients see, so the lab checks it from a client: the observer module labtdiobs
(``drivers/labtdi/linux/labtdiobs.c``, manifest ``drivers/labtdiobs/driver.toml``)
joins labtdi's client chain and journals one ``CLIENT_QUERY_REMOVE`` per
notification, with a status saying what of the binding was already gone at that
moment (codes in ``drivers/events.txt``). labtdi's own PNP_FORWARDED line is not
evidence here: a driver that lies would pass.

Usage, with both drivers deployed (labtdi first)::

    obs = lab_vm.deploy("labtdiobs")
    ...unplug or unbind the adapter...
    check_client_notified(obs.journal(), adapter, after_ns=mark)

``after_ns`` is a journal timestamp (the guest's monotonic clock, which every
journal uses) at which the observer was already listening, taken before the
removal: the newest timestamp of the observer's journal read just before it
(``lab.scenarios.common.journal_mark(obs)``).
"""

from __future__ import annotations

import errno

from lab.errors import DriverFailure, LabFailure
from lab.journal import Adapter, Journal, JournalEvent

#: The observer's driver name in journals (and its module name).
OBSERVER = "labtdiobs"

#: The transport the observer watches.
TRANSPORT = "labtdi"

#: CLIENT_QUERY_REMOVE error codes (negative errno) and what was already torn down.
GONE: dict[int, str] = {
    -errno.ENOENT: "the device object",
    -errno.ENOLINK: "the net address (the 0x88B5 packet handler)",
    -errno.ENODEV: "the device object and the net address",
}


def _registered_at(own: Journal, t_ns: int) -> bool:
    """Whether the observer was in the transport's client chain at ``t_ns``."""
    state = False
    for event in own:
        if event.t_ns > t_ns:
            break
        if event.name == "CLIENT_REGISTERED":
            state = event.ok
        elif event.name == "CLIENT_DEREGISTERED":
            state = False
    return state


def check_client_notified(journal: Journal, adapter: Adapter, after_ns: int,
                          *, observer: str = OBSERVER) -> JournalEvent:
    """The observer was notified of ``adapter``'s query-remove exactly once after
    ``after_ns``, and the binding was intact then; returns that notification.

    DriverFailure names the adapter and what was wrong; LabFailure when the observer
    was not listening or could not check (the lab's fault, not the driver's).
    """
    own = journal.of_driver(observer)
    if not _registered_at(own, after_ns):
        raise LabFailure(f"{observer} was not registered with {TRANSPORT} at t={after_ns}ns, "
                         f"so it cannot vouch for the query-remove of {adapter}",
                         hint=f"deploy {observer} after {TRANSPORT}; take after_ns from its "
                              "journal just before the removal (journal_mark)")
    seen = [e for e in own.of_adapter(adapter)
            if e.name == "CLIENT_QUERY_REMOVE" and e.t_ns > after_ns]
    if not seen:
        if any(e.name == "CLIENT_DEREGISTERED" and e.t_ns > after_ns for e in own):
            raise LabFailure(f"{observer} left {TRANSPORT}'s client chain before it saw the "
                             f"query-remove of {adapter}")
        raise DriverFailure(f"{TRANSPORT} did not forward the query-remove for {adapter} to "
                            "its clients (the observer saw nothing)")
    if len(seen) > 1:
        raise DriverFailure(f"{TRANSPORT} forwarded the query-remove for {adapter} to its "
                            f"clients {len(seen)} times (expected once)")
    event = seen[0]
    if event.error is None:
        return event
    if event.error in GONE:
        raise DriverFailure(f"{TRANSPORT} forwarded the query-remove for {adapter} after "
                            f"tearing down {GONE[event.error]}; the observer found it gone "
                            "when notified",
                            hint="forward the query to the clients before unbinding")
    raise LabFailure(f"{observer} could not check {adapter}'s binding when notified "
                     f"(err:{event.error}): {event.line}")


__all__ = ["GONE", "OBSERVER", "TRANSPORT", "check_client_notified"]
