"""In-guest smoke test of the Linux driver twins (kecho, labtdi), without the lab.

Boots the micro guest's kernel (the Debian cloud kernel) under QEMU/TCG with an
initramfs built here (busybox, iproute2, the kernel's own modules, our .ko
files) and drivers/linux/smoke-init.sh as /init. QEMU has no host network
backend; the guest talks to itself over lo, veth pairs and dummy devices, and
one QEMU virtio NIC is really hot-unplugged through QMP. One boot per scenario
group; every boot has a deadline and only our own QEMU is ever killed.
"""

from __future__ import annotations

import shutil
import subprocess

import pytest
from conftest_linux import (
    HOST_PROBE_PAYLOAD,
    HOST_PROBE_SEQ,
    OUT,
    TEST_NICS,
    GuestImage,
    GuestRun,
    boot,
    prepare_image,
)

from lab import l2probe
from lab.drivers import DriverManifest, load_manifests
from lab.errors import DriverFailure
from lab.journal import (
    REMOVAL_ORDER,
    Adapter,
    Journal,
    Vocabulary,
    check_adapter_removal,
    check_pairs,
    check_unload,
    parse_console_journal,
    parse_journal,
)

pytestmark = pytest.mark.skipif(
    shutil.which("qemu-system-x86_64") is None, reason="qemu-system-x86_64 is not installed"
)

UNPLUGGED_MAC = dict(TEST_NICS)["tnic1"]


@pytest.fixture(scope="module")
def image() -> GuestImage:
    return prepare_image()


@pytest.fixture(scope="module")
def vocab() -> Vocabulary:
    return Vocabulary.load()


@pytest.fixture(scope="module")
def manifests() -> dict[str, DriverManifest]:
    return load_manifests()


@pytest.fixture(scope="module")
def main_run(image: GuestImage) -> GuestRun:
    return boot(image, "main", deadline=120)


@pytest.fixture(scope="module")
def soft_run(image: GuestImage) -> GuestRun:
    return boot(image, "soft-faults", deadline=60)


@pytest.fixture(scope="module")
def skip_kecho_run(image: GuestImage) -> GuestRun:
    return boot(image, "skip-kecho", deadline=60)


@pytest.fixture(scope="module")
def hangs_run(image: GuestImage) -> GuestRun:
    return boot(image, "hangs", deadline=90)


@pytest.fixture(scope="module")
def crash_run(image: GuestImage) -> GuestRun:
    return boot(image, "crash-unbind", deadline=60)


def journal_of(run: GuestRun, block: str, vocab: Vocabulary) -> Journal:
    return parse_journal(run.block(block), vocab)


def nics(run: GuestRun) -> dict[str, Adapter]:
    return {v[0]: Adapter.parse(v[1]) for v in run.results("nic")}


def l2(run: GuestRun, label: str) -> dict[str, str]:
    values = run.result("l2", label)
    assert values[0] == "L2ECHO", values
    fields = dict(v.split("=", 1) for v in values[2:])
    fields["verdict"] = values[1]
    return fields


# ---- build and manifests ---------------------------------------------------


def test_manifests_match_the_built_modules(image: GuestImage,
                                           manifests: dict[str, DriverManifest]) -> None:
    assert (OUT / "kernel-abi").read_text().strip() == image.abi
    for manifest in manifests.values():
        twin = manifest.linux
        assert twin is not None, manifest.path
        info = subprocess.run(["modinfo", "-F", "vermagic", str(twin.file)],
                              capture_output=True, text=True, check=True).stdout
        assert info.split()[0] == image.abi
        parms = subprocess.run(["modinfo", "-F", "parm", str(twin.file)],
                               capture_output=True, text=True, check=True).stdout
        names = {line.split(":", 1)[0] for line in parms.splitlines()}
        wanted = {k.param for k in twin.knobs} | {k for k, _ in twin.params}
        assert wanted <= names, f"{manifest.name}: {wanted - names} not module parameters"


# ---- main scenario: echo, L2 echo, unbind/rebind, unplug, unload, reload --------


def test_main_boot_ran_to_the_end(main_run: GuestRun) -> None:
    assert main_run.ended == "poweroff", main_run.tail()
    assert main_run.results("done") == [[]], main_run.tail()
    assert main_run.result("insmod", "kecho") == ["0"]
    assert main_run.result("insmod", "labtdi") == ["0"]
    assert "BUG:" not in main_run.text and "WARNING:" not in main_run.text


@pytest.mark.parametrize("name", ["single", "v6", *(f"conc{i}" for i in range(1, 7)), "reload"])
def test_echo_is_intact(main_run: GuestRun, name: str) -> None:
    fields = dict(v.split("=", 1) for v in main_run.result("echo", name))
    assert fields["rc"] == "0"
    assert fields["sent"] == fields["got"] and int(fields["sent"]) > 0
    assert fields["in"] == fields["out"]
    assert not [d for d in main_run.results("diff") if d[0] == name]


def test_bound_to_every_ethernet_adapter(main_run: GuestRun) -> None:
    first: dict[str, str] = {}
    for name, adapter in main_run.results("binding"):
        first.setdefault(name, adapter)
    expected = {n: str(a) for n, a in nics(main_run).items()}
    assert set(expected) >= {"eth0", "eth1", "dummy0", "veth0", "veth1", "vetha", "vethb"}
    assert first == expected
    assert "lo" not in first


def test_l2_echo_answers_on_every_binding(main_run: GuestRun) -> None:
    adapters = nics(main_run)
    peers = {"veth0": "veth1", "veth1": "veth0", "vetha": "vethb", "vethb": "vetha"}
    for sender, responder in peers.items():
        answer = l2(main_run, sender)
        assert answer["verdict"] == "ok", answer
        assert answer["from"] == adapters[responder].mac
        assert int(answer["ifindex"]) == adapters[responder].ifindex


def test_l2_echo_of_the_host_probe_frame_round_trips(main_run: GuestRun) -> None:
    """The shared wire format end to end: a request built by lab/l2probe.py goes out of
    veth0 unchanged (l2probe --frame fills in the MACs); the twin's answer from veth1,
    byte for byte, is accepted by the host probe's parser."""
    values = main_run.result("l2raw", "veth0")
    assert values[:2] == ["L2RAW", "ok"], values
    fields = dict(v.split("=", 1) for v in values[2:])
    reply = bytes.fromhex(fields["reply"])
    veth1 = nics(main_run)["veth1"]
    assert l2probe.parse_reply(reply, HOST_PROBE_SEQ, HOST_PROBE_PAYLOAD) == (
        veth1.mac, veth1.ifindex)
    assert l2probe.parse_reply(reply, HOST_PROBE_SEQ + 1, HOST_PROBE_PAYLOAD) is None


def test_unbind_and_rebind_through_the_control_file(main_run: GuestRun,
                                                    vocab: Vocabulary) -> None:
    assert main_run.result("control", "unbind-veth0") == ["0"]
    assert l2(main_run, "veth1-after-unbind") == {"if": "veth1", "reason": "timeout",
                                                  "verdict": "fail"}
    assert l2(main_run, "vetha-after-unbind")["verdict"] == "ok"  # others unaffected
    assert main_run.result("control", "bind-veth0") == ["0"]
    assert l2(main_run, "veth1-after-rebind")["verdict"] == "ok"
    assert main_run.result("control", "unbind-nosuchnic") != ["0"]
    veth0 = nics(main_run)["veth0"]
    names = [n for n in journal_of(main_run, "journal-main", vocab).of_driver("labtdi")
             .of_adapter(veth0).sessions()[0].names() if n not in ("LINK_DOWN", "LINK_UP")]
    bind = ["BIND", "NETADDR_REGISTERED", "DEVICE_REGISTERED"]
    assert names[:11] == bind + list(REMOVAL_ORDER) + bind


def test_dummy_removal_tears_the_binding_down_in_order(main_run: GuestRun,
                                                       vocab: Vocabulary) -> None:
    assert main_run.result("deleted", "dummy0") == ["0"]
    journal = journal_of(main_run, "journal-main", vocab)
    check_adapter_removal(journal, "labtdi", nics(main_run)["dummy0"])


def test_pci_hot_unplug_tears_the_binding_down_in_order(main_run: GuestRun,
                                                        vocab: Vocabulary) -> None:
    tnic = main_run.result("unplug-request", "tnic1")[0]
    assert main_run.result("unplugged", tnic) == ["ok"]
    adapter = nics(main_run)[tnic]
    assert adapter.mac == UNPLUGGED_MAC
    journal = journal_of(main_run, "journal-main", vocab)
    check_adapter_removal(journal, "labtdi", adapter)
    assert tnic not in {n for n, _ in main_run.results("binding")[-6:]}


def test_unload_waits_for_live_connections(main_run: GuestRun) -> None:
    assert main_run.result("held-connection") == ["up"]
    assert main_run.result("rmmod-kecho-with-live-connection") == ["blocked"]
    assert main_run.result("unload-waiting-message") == ["yes"]
    assert main_run.result("rmmod-kecho") == ["done", "0"]  # once the client closed
    assert main_run.result("hold-client") == ["done", "0"]


def test_unload_pairs_and_reload(main_run: GuestRun, vocab: Vocabulary) -> None:
    journal = journal_of(main_run, "journal-main", vocab)
    assert main_run.result("proc-after-unload") == ["0"]
    assert main_run.result("reinsmod", "kecho") == ["0"]
    assert main_run.result("reinsmod", "labtdi") == ["0"]
    for driver in ("kecho", "labtdi"):
        sessions = journal.of_driver(driver).sessions()
        assert len(sessions) == 2, driver
        for session in sessions:
            check_unload(session, driver, vocab)
        check_pairs(journal, driver, vocab)
    first = journal.of_driver("kecho").sessions()[0]
    assert first.count("ACCEPT") == first.count("CLOSE") == 9  # 8 echoes + held client
    # listener closed, NPI released, then the held client closes, and only
    # then does the "WskDeregister" return
    names = first.names()
    assert names[names.index("LISTENER_CLOSED"):] == [
        "LISTENER_CLOSED", "WSK_RELEASE_NPI", "CLOSE", "WSK_DEREGISTER", "UNLOAD"]
    labtdi_tail = journal.of_driver("labtdi").sessions()[0].names()[-3:]
    assert labtdi_tail == ["PROVIDER_DEREGISTERED", "PROTOCOL_DEREGISTERED", "UNLOAD"]


def test_proc_journal_is_the_same_journal(main_run: GuestRun, vocab: Vocabulary) -> None:
    full = journal_of(main_run, "journal-main", vocab)
    for driver in ("kecho", "labtdi"):
        live = journal_of(main_run, f"proc-{driver}", vocab)
        assert len(live) > 5
        assert list(live) == list(full.of_driver(driver))[: len(live)]


# ---- fault knobs -------------------------------------------------------------


def test_fault_corrupt_echo(soft_run: GuestRun, vocab: Vocabulary) -> None:
    fields = dict(v.split("=", 1) for v in soft_run.result("echo", "corrupt"))
    assert fields["sent"] == fields["got"] == "65536" and fields["in"] != fields["out"]
    diffs = [d[1:] for d in soft_run.results("diff") if d[0] == "corrupt"]
    assert [int(off) for off, _, _ in diffs] == [16384, 32768, 49152, 65536]  # 1-based
    assert all(int(a, 8) ^ int(b, 8) == 0xFF for _, a, b in diffs)
    journal = journal_of(soft_run, "journal-soft", vocab)
    assert not journal.errors()  # silent corruption: only the data shows it


def test_fault_skip_deregister_labtdi(soft_run: GuestRun, vocab: Vocabulary) -> None:
    journal = journal_of(soft_run, "journal-soft", vocab)
    with pytest.raises(DriverFailure, match="PROTOCOL_REGISTERED"):
        check_unload(journal, "labtdi", vocab)
    # the forgotten notifier is called after the module is gone
    assert soft_run.ended == "panic", soft_run.tail()
    after = soft_run.text.split("@@LAB consequence ip-link-add", 1)[1]
    assert "BUG: unable to handle page fault" in after
    assert "survived" not in after


def test_fault_skip_deregister_kecho(soft_run: GuestRun, skip_kecho_run: GuestRun,
                                     vocab: Vocabulary) -> None:
    for run, block in ((soft_run, "journal-soft"), (skip_kecho_run, "journal-skip-kecho")):
        journal = journal_of(run, block, vocab)
        assert journal.of_driver("kecho").names()[-1] == "UNLOAD"
        with pytest.raises(DriverFailure, match="WSK_REGISTER"):
            check_unload(journal, "kecho", vocab)
    assert skip_kecho_run.ended == "panic", skip_kecho_run.tail()
    after = skip_kecho_run.text.split("@@LAB consequence new-netns", 1)[1]
    assert "BUG: unable to handle page fault" in after and "ops_init" in after
    assert "survived" not in after


def test_fault_block_unload(hangs_run: GuestRun, vocab: Vocabulary) -> None:
    assert hangs_run.result("rmmod-kecho") == ["hung"]
    assert hangs_run.result("rmmod-labtdi") == ["hung"]
    blocked = "\n".join(hangs_run.block("blocked-tasks"))
    assert "kecho_exit" in blocked and "labtdi_exit" in blocked
    journal = journal_of(hangs_run, "journal-hangs", vocab)
    assert journal.of_driver("kecho").names()[-1] == "LISTENER_CLOSED"
    for driver in ("kecho", "labtdi"):
        with pytest.raises(DriverFailure, match="unload did not finish"):
            check_unload(journal, driver, vocab)


def test_fault_leak_adapter_ref(hangs_run: GuestRun, vocab: Vocabulary) -> None:
    assert hangs_run.result("leak-message") == ["yes"]
    assert "unregister_netdevice: waiting for dummy0 to become free" in hangs_run.text
    assert hangs_run.result("ip-link-del") == ["hung"]
    # The journal claims a clean teardown: only the unplug deadline exposes the leak.
    journal = journal_of(hangs_run, "journal-hangs", vocab)
    check_adapter_removal(journal, "labtdi", nics(hangs_run)["dummy0"])


def test_fault_crash_on_unbind(crash_run: GuestRun, vocab: Vocabulary) -> None:
    assert crash_run.ended == "panic", crash_run.tail()
    text = crash_run.text
    assert "BUG: kernel NULL pointer dereference" in text
    assert "labtdi_unbind" in text and "Kernel panic - not syncing" in text
    assert "@@LAB survived" not in text
    console = parse_console_journal(crash_run.lines, vocab)
    journal = console.journal.of_driver("labtdi")
    dummy0 = nics(crash_run)["dummy0"]
    # The panic may cut the last journal line on the serial console: then it must be the
    # UNBIND (still readable in the cut line); the order before it is checked strictly.
    if console.cut_events("labtdi") == ["UNBIND"]:
        assert journal.of_adapter(dummy0).names()[-2:] == ["QUERY_REMOVE", "PNP_FORWARDED"]
        assert journal.names()[-1] == "PNP_FORWARDED"
    else:
        assert not console.cut, console.cut
        assert journal.of_adapter(dummy0).names()[-3:] == ["QUERY_REMOVE", "PNP_FORWARDED",
                                                           "UNBIND"]
        assert journal.names()[-1] == "UNBIND"


def test_link_state_changes_are_journaled(main_run: GuestRun, vocab: Vocabulary) -> None:
    """veth0 is bound while down and gets its carrier once its peer is up: labtdi
    journals LINK_UP for it (NETDEV_CHANGE), and a link change tears nothing down."""
    veth0 = nics(main_run)["veth0"]
    names = journal_of(main_run, "journal-main", vocab).of_driver("labtdi").of_adapter(
        veth0).sessions()[0].names()
    assert "LINK_UP" in names
    first_unbind = names.index("UNBIND")
    assert names[:first_unbind].count("BIND") == 1  # no teardown before the admin unbind
