"""Journal parsing and contract checks (lab/journal.py)."""

from __future__ import annotations

from pathlib import Path

import pytest

from lab.errors import ConfigError, DriverFailure
from lab.journal import (
    Adapter,
    Journal,
    Vocabulary,
    check_adapter_removal,
    check_pairs,
    check_unload,
    is_subsequence,
    parse_console_journal,
    parse_journal,
    parse_line,
)

VOCAB = Vocabulary.load()
A = "52:54:00:12:34:56@3"


def journal(*rows: str, driver: str = "labtdi") -> Journal:
    lines = []
    for i, row in enumerate(rows):
        event, _, rest = row.partition(" ")
        adapter, _, status = rest.partition(" ")
        lines.append(f"{1000 + i} {driver} {event} {adapter or '-'} {status or 'ok'}")
    return parse_journal("\n".join(lines), VOCAB)


def test_vocabulary_is_read_from_events_txt() -> None:
    assert VOCAB.path.name == "events.txt"
    assert {"WSK_REGISTER", "QUERY_REMOVE", "PROTOCOL_DEREGISTERED"} <= VOCAB.names
    assert "LOAD" in VOCAB and "NOPE" not in VOCAB


def test_vocabulary_rejects_bad_files(tmp_path: Path) -> None:
    bad = tmp_path / "events.txt"
    bad.write_text("# c\nLOAD x\nLOAD again\n")
    with pytest.raises(ConfigError, match="listed twice"):
        Vocabulary.load(bad)
    bad.write_text("lower case\n")
    with pytest.raises(ConfigError, match="EVENT_NAME"):
        Vocabulary.load(bad)
    with pytest.raises(ConfigError, match="cannot read"):
        Vocabulary.load(tmp_path / "missing.txt")


def test_parse_line_proc_and_kmsg_forms() -> None:
    plain = parse_line(f"123 labtdi BIND {A} ok", VOCAB)
    kmsg = parse_line(f"[   13.4] labjournal: 123 labtdi BIND {A} ok", VOCAB)
    assert plain == kmsg
    assert plain.adapter == Adapter("52:54:00:12:34:56", 3) and plain.ok
    assert str(plain.adapter) == A
    failed = parse_line("5 kecho LISTEN - err:-98", VOCAB)
    assert failed.error == -98 and failed.adapter is None and not failed.ok
    assert parse_line("5 wskecho LISTEN - err:0xC0000001", VOCAB).error == 0xC0000001


def test_unknown_event_is_a_clear_driver_failure() -> None:
    with pytest.raises(DriverFailure, match="unknown event 'BOGUS'") as info:
        parse_line("1 kecho BOGUS - ok", VOCAB)
    assert "events.txt" in str(info.value)


@pytest.mark.parametrize("line", [
    "1 kecho LOAD -",                     # 4 fields
    "x kecho LOAD - ok",                  # timestamp
    "1 kecho LOAD 52:54:00:12:34@3 ok",   # short MAC
    "1 kecho LOAD - fine",                # status
])
def test_malformed_lines(line: str) -> None:
    with pytest.raises(DriverFailure, match="malformed"):
        parse_line(line, VOCAB)


def test_parse_journal_skips_comments_and_foreign_kmsg_lines() -> None:
    text = "# dropped 3\n\n1 kecho LOAD - ok\n"
    assert parse_journal(text, VOCAB).names() == ["LOAD"]
    kmsg = "[ 1.0] virtio_net: hello\n[ 1.1] labjournal: 1 kecho LOAD - ok\n"
    assert parse_journal(kmsg, VOCAB).names() == ["LOAD"]


def test_sessions_split_at_load() -> None:
    j = journal("LOAD", "UNLOAD", "LOAD", "UNLOAD")
    assert [s.names() for s in j.sessions()] == [["LOAD", "UNLOAD"]] * 2


GOOD_TDI = ("LOAD", "PROVIDER_REGISTERED", f"BIND {A}", f"NETADDR_REGISTERED {A}",
            f"DEVICE_REGISTERED {A}", "PROTOCOL_REGISTERED", "PROVIDER_READY",
            f"QUERY_REMOVE {A}", f"PNP_FORWARDED {A}", f"UNBIND {A}",
            f"NETADDR_DEREGISTERED {A}", f"DEVICE_DEREGISTERED {A}",
            "PROVIDER_DEREGISTERED", "PROTOCOL_DEREGISTERED", "UNLOAD")


def test_good_tdi_journal_passes_every_check() -> None:
    j = journal(*GOOD_TDI)
    check_pairs(j, "labtdi", VOCAB)
    check_unload(j, "labtdi", VOCAB)
    check_adapter_removal(j, "labtdi", Adapter.parse(A))


def test_skipped_deregistration_breaks_the_pairs() -> None:
    j = journal(*(r for r in GOOD_TDI if r != "PROTOCOL_DEREGISTERED"))
    with pytest.raises(DriverFailure, match="PROTOCOL_REGISTERED x1 but PROTOCOL_DEREGISTERED x0"):
        check_pairs(j, "labtdi", VOCAB)


def test_teardown_before_query_is_out_of_order() -> None:
    rows = list(GOOD_TDI)
    rows.remove(f"UNBIND {A}")
    rows.insert(rows.index(f"QUERY_REMOVE {A}"), f"UNBIND {A}")
    with pytest.raises(DriverFailure, match="out of order"):
        check_adapter_removal(journal(*rows), "labtdi", Adapter.parse(A))


def test_unload_without_query_is_accepted_only_when_asked() -> None:
    rows = [r for r in GOOD_TDI if not r.startswith(("QUERY_REMOVE", "PNP_FORWARDED"))]
    j = journal(*rows)
    check_adapter_removal(j, "labtdi", Adapter.parse(A), with_query=False)
    with pytest.raises(DriverFailure):
        check_adapter_removal(j, "labtdi", Adapter.parse(A))


B = "52:54:00:ab:cd:ef@4"
TWO_ADAPTERS_UNLOAD = ("LOAD", "PROVIDER_REGISTERED", f"BIND {A}", f"NETADDR_REGISTERED {A}",
                       f"DEVICE_REGISTERED {A}", f"BIND {B}", f"NETADDR_REGISTERED {B}",
                       f"DEVICE_REGISTERED {B}", "PROTOCOL_REGISTERED", "PROVIDER_READY",
                       f"UNBIND {A}", f"NETADDR_DEREGISTERED {A}", f"DEVICE_DEREGISTERED {A}",
                       f"UNBIND {B}", f"NETADDR_DEREGISTERED {B}", f"DEVICE_DEREGISTERED {B}",
                       "PROVIDER_DEREGISTERED", "PROTOCOL_DEREGISTERED", "UNLOAD")


def test_unload_checks_every_adapters_teardown_order() -> None:
    """The per-adapter order holds at unload too, for every adapter (not only on removal)."""
    check_unload(journal(*TWO_ADAPTERS_UNLOAD), "labtdi", VOCAB)
    rows = list(TWO_ADAPTERS_UNLOAD)
    i, j = rows.index(f"NETADDR_DEREGISTERED {B}"), rows.index(f"DEVICE_DEREGISTERED {B}")
    rows[i], rows[j] = rows[j], rows[i]
    with pytest.raises(DriverFailure, match=f"adapter {B} teardown out of order"):
        check_unload(journal(*rows), "labtdi", VOCAB)


def test_hung_unload_and_failed_events() -> None:
    with pytest.raises(DriverFailure, match="unload did not finish"):
        check_unload(journal("LOAD", "WSK_REGISTER", driver="kecho"), "kecho", VOCAB)
    with pytest.raises(DriverFailure, match="failed during this load"):
        check_unload(journal("LOAD", "LISTEN - err:-98", "LISTENER_CLOSED", "UNLOAD",
                             driver="kecho"), "kecho", VOCAB)
    with pytest.raises(DriverFailure, match="before any"):
        check_pairs(journal("LOAD", "CLOSE", "UNLOAD", driver="kecho"), "kecho", VOCAB)


def test_is_subsequence() -> None:
    assert is_subsequence(["A", "C"], ["A", "B", "C"])
    assert not is_subsequence(["C", "A"], ["A", "B", "C"])


def test_console_journal_keeps_lines_a_panic_cut_apart() -> None:
    # As seen on a serial console: the panic's first message cut the last journal line.
    console = [
        "[    4.40] labjournal: 100 labtdi QUERY_REMOVE 52:54:00:12:34:56@3 ok",
        "[    4.41] labjournal: 200 labtdi PNP_FORWARDED 52:54:00:12:34:56@3 ok",
        "[    4.42] labjournal: 300 labtdi UNBIND [    4.515525] BUG: kernel NULL pointer",
        "[    4.52] Kernel panic - not syncing: Fatal exception",
    ]
    parsed = parse_console_journal(console, VOCAB)
    assert parsed.journal.names() == ["QUERY_REMOVE", "PNP_FORWARDED"]
    assert parsed.cut_events("labtdi") == ["UNBIND"]
    with pytest.raises(DriverFailure):  # the strict parser still refuses the cut line
        parse_journal(console, VOCAB)


def test_a_connection_the_peer_reset_is_paired_and_not_a_failure() -> None:
    """CLOSE err:-104 (the client reset it) counts as a close; a driver-side error does not."""
    rows = ("LOAD", "WSK_REGISTER", "WSK_CAPTURE_NPI", "LISTEN", "ACCEPT", "ACCEPT",
            "CLOSE - err:-104", "CLOSE", "LISTENER_CLOSED", "WSK_RELEASE_NPI",
            "WSK_DEREGISTER", "UNLOAD")
    check_unload(journal(*rows, driver="kecho"), "kecho", VOCAB)
    failing = tuple(r.replace("err:-104", "err:-12") for r in rows)
    with pytest.raises(DriverFailure, match="failed during this load"):
        check_unload(journal(*failing, driver="kecho"), "kecho", VOCAB)
    unpaired = tuple(r for r in rows if r != "CLOSE - err:-104")
    with pytest.raises(DriverFailure, match="ACCEPT x2 but CLOSE x1"):
        check_unload(journal(*unpaired, driver="kecho"), "kecho", VOCAB)
