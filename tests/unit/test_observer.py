"""The independent observer's verdict on labtdi's query-remove (lab/observer.py)."""

from __future__ import annotations

import pytest

from lab.errors import DriverFailure, LabFailure
from lab.journal import Adapter, Journal, Vocabulary, parse_journal
from lab.observer import check_client_notified

VOCAB = Vocabulary.load()
ETH1 = Adapter.parse("52:54:00:5e:01:0b@3")
ETH2 = Adapter.parse("52:54:00:5e:02:0b@4")

#: The kernel log of a micro guest: labtdi binds two adapters, the observer joins,
#: then eth1 (ifindex 3) is unplugged. {status} is the observer's verdict line.
DMESG = """\
[   41.201] labtdi: loading out-of-tree module taints kernel.
[   41.213] labjournal: 41205118433 labtdi LOAD - ok
[   41.214] labjournal: 41205902113 labtdi PROVIDER_REGISTERED - ok
[   41.215] labjournal: 41206410290 labtdi BIND 52:54:00:5e:01:0b@3 ok
[   41.215] labjournal: 41206480871 labtdi NETADDR_REGISTERED 52:54:00:5e:01:0b@3 ok
[   41.216] labjournal: 41206598112 labtdi DEVICE_REGISTERED 52:54:00:5e:01:0b@3 ok
[   41.216] labjournal: 41206730554 labtdi BIND 52:54:00:5e:02:0b@4 ok
[   41.216] labjournal: 41206781003 labtdi NETADDR_REGISTERED 52:54:00:5e:02:0b@4 ok
[   41.217] labjournal: 41206870930 labtdi DEVICE_REGISTERED 52:54:00:5e:02:0b@4 ok
[   41.217] labjournal: 41206990417 labtdi PROTOCOL_REGISTERED - ok
[   41.218] labjournal: 41207100334 labtdi PROVIDER_READY - ok
[   43.502] labjournal: 43501877019 labtdiobs LOAD - ok
[   43.502] labjournal: 43501990245 labtdiobs CLIENT_REGISTERED - ok
[   50.118] pcieport 0000:00:02.1: pciehp: Slot(0-1): Attention button pressed
[   55.390] labjournal: 55390011873 labtdi QUERY_REMOVE 52:54:00:5e:01:0b@3 ok
{observed}[   55.391] labjournal: 55390671020 labtdi PNP_FORWARDED 52:54:00:5e:01:0b@3 ok
[   55.391] labjournal: 55390702398 labtdi UNBIND 52:54:00:5e:01:0b@3 ok
[   55.402] labjournal: 55401933810 labtdi NETADDR_DEREGISTERED 52:54:00:5e:01:0b@3 ok
[   55.403] labjournal: 55402075521 labtdi DEVICE_DEREGISTERED 52:54:00:5e:01:0b@3 ok
"""

OBSERVED = ("[   55.390] labjournal: 55390412785 labtdiobs CLIENT_QUERY_REMOVE "
            "52:54:00:5e:01:0b@3 {status}\n")


def kernel_log(*statuses: str) -> Journal:
    observed = "".join(OBSERVED.format(status=s) for s in statuses)
    return parse_journal(DMESG.format(observed=observed), VOCAB)


def after(journal: Journal) -> int:
    """What a scenario takes just before the unplug: the end of the observer's journal."""
    return max(e.t_ns for e in journal.of_driver("labtdiobs") if e.t_ns < 50_000_000_000)


def test_intact_binding_passes() -> None:
    journal = kernel_log("ok")
    event = check_client_notified(journal, ETH1, after(journal))
    assert (event.driver, event.name, event.adapter) == ("labtdiobs", "CLIENT_QUERY_REMOVE", ETH1)
    assert after(journal) == 43501990245


def test_the_observer_journal_alone_is_enough() -> None:
    journal = kernel_log("ok")
    check_client_notified(journal.of_driver("labtdiobs"), ETH1, after(journal))


def test_nothing_observed_fails_naming_the_adapter() -> None:
    journal = kernel_log()
    with pytest.raises(DriverFailure) as err:
        check_client_notified(journal, ETH1, after(journal))
    assert str(ETH1) in err.value.summary and "saw nothing" in err.value.summary


def test_other_adapters_and_earlier_queries_do_not_count() -> None:
    journal = kernel_log("ok")
    with pytest.raises(DriverFailure):
        check_client_notified(journal, ETH2, after(journal))
    with pytest.raises(DriverFailure):  # a query before the window is an old one
        check_client_notified(journal, ETH1, 55390500000)


@pytest.mark.parametrize(("status", "gone"), [
    ("err:-2", "the device object"),
    ("err:-67", "the net address"),
    ("err:-19", "the device object and the net address"),
])
def test_forwarded_after_teardown_fails(status: str, gone: str) -> None:
    journal = kernel_log(status)
    with pytest.raises(DriverFailure) as err:
        check_client_notified(journal, ETH1, after(journal))
    assert str(ETH1) in err.value.summary and f"after tearing down {gone}" in err.value.summary


def test_forwarded_twice_fails() -> None:
    journal = kernel_log("ok", "ok")
    with pytest.raises(DriverFailure) as err:
        check_client_notified(journal, ETH1, after(journal))
    assert "2 times" in err.value.summary


def test_an_observer_that_could_not_look_is_a_lab_failure() -> None:
    journal = kernel_log("err:-12")
    with pytest.raises(LabFailure) as err:
        check_client_notified(journal, ETH1, after(journal))
    assert not isinstance(err.value, DriverFailure)


def test_an_observer_not_listening_is_a_lab_failure() -> None:
    journal = kernel_log("ok")
    with pytest.raises(LabFailure):  # the window starts before the observer registered
        check_client_notified(journal, ETH1, 41205118433)
    left = parse_journal(DMESG.format(observed="[   55.000] labjournal: 55000000000 labtdiobs "
                                               "CLIENT_DEREGISTERED - ok\n"), VOCAB)
    with pytest.raises(LabFailure):
        check_client_notified(left, ETH1, after(left))
    with pytest.raises(LabFailure):
        check_client_notified(left, ETH1, 55100000000)
