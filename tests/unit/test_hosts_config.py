"""[[hosts]] (issue 12): parsing, refusals with file/key/fix, the plan per host, the
inventory round trip and the status table's host column."""

from __future__ import annotations

import subprocess
from pathlib import Path
from urllib.parse import parse_qsl, urlsplit

import pytest

from lab import hosts, inventory
from lab.commands import status_table
from lab.config import HostKind, load_config
from lab.errors import ConfigError
from lab.gateway import Gateway
from lab.plan import make_plan

BASE = """[lab]
name = "mh"
state_dir = "var"
[network]
management = "192.168.90.0/24"
test = ["192.168.91.0/24"]
[vms]
names = ["a1", "a2", "b1", "b2"]
test_nics = ["virtio"]
"""
NAMESPACE = BASE + '[[hosts]]\nname = "host2"\nkind = "namespace"\nvms = ["b1", "b2"]\n'


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "lab.toml"
    path.write_text(text)
    return path


def test_no_hosts_means_one_local_host(tmp_path: Path) -> None:
    cfg = load_config(write(tmp_path, BASE))
    plan = make_plan(cfg)
    assert cfg.hosts == ()
    assert plan.hosts == ("local",)
    assert {vm.host for vm in plan.vms} == {"local"}


def test_a_namespace_host_takes_its_vms(tmp_path: Path) -> None:
    cfg = load_config(write(tmp_path, NAMESPACE))
    assert cfg.hosts[0].kind is HostKind.NAMESPACE
    plan = make_plan(cfg)
    assert plan.hosts == ("local", "host2")
    local, remote = plan.on_host("local"), plan.on_host("host2")
    assert [vm.name for vm in local.vms] == ["a1", "a2"]
    assert [vm.name for vm in remote.vms] == ["b1", "b2"]
    # every network exists on both hosts, with the DHCP entries of that host's VMs only
    assert [n.name for n in local.networks] == [n.name for n in remote.networks]
    remote_macs = {h.mac for n in remote.networks for h in n.hosts}
    assert remote_macs == {nic.mac for vm in remote.vms for nic in vm.nics}


@pytest.mark.parametrize(("extra", "key", "fix"), [
    ('[[hosts]]\nname = "local"\nkind = "namespace"\nvms = ["b1"]\n', "hosts[0].name",
     "not 'local'"),
    ('[[hosts]]\nname = "h2"\nkind = "namespace"\nvms = ["zz"]\n', "hosts[0].vms",
     "[vms] names"),
    ('[[hosts]]\nname = "h2"\nkind = "namespace"\nvms = []\n', "hosts[0].vms", "list the VMs"),
    ('[[hosts]]\nname = "h2"\nkind = "namespace"\nvms = ["b1"]\n'
     '[[hosts]]\nname = "h3"\nkind = "namespace"\nvms = ["b1"]\n', "hosts[1].vms", "one host"),
    ('[[hosts]]\nname = "h2"\nvms = ["b1"]\n', "hosts[0].uri", "qemu+ssh://"),
    ('[[hosts]]\nname = "h2"\nuri = "qemu:///system"\nvms = ["b1"]\n', "hosts[0].uri",
     "qemu+ssh://"),
    ('[[hosts]]\nname = "h2"\nuri = "qemu+ssh://root@192.0.2.20/system"\nvms = ["b1"]\n',
     "hosts[0].ssh_key", "never ~/.ssh"),
    ('[[hosts]]\nname = "h2"\nuri = "qemu+ssh://root@kvm2/system"\nvms = ["b1"]\n',
     "hosts[0].ssh_address", "as an IP"),
    ('[[hosts]]\nname = "h2"\nkind = "namespace"\nuri = "qemu+ssh://x/system"\nvms = ["b1"]\n',
     "hosts[0].uri", "leave it out"),
    ('[[hosts]]\nname = "h2"\nkind = "cloud"\nvms = ["b1"]\n', "hosts[0].kind", "remote"),
    ('[[hosts]]\nname = "h2"\nkind = "namespace"\nvms = ["b1"]\nport = 3\n', "hosts[0].port",
     "ssh_port"),
])
def test_bad_hosts_name_file_key_and_fix(tmp_path: Path, extra: str, key: str, fix: str) -> None:
    path = write(tmp_path, BASE + extra)
    with pytest.raises(ConfigError) as err:
        load_config(path)
    assert err.value.key == key
    assert str(path) in str(err.value) and fix in str(err.value)


def test_hosts_must_be_an_array_of_tables(tmp_path: Path) -> None:
    path = write(tmp_path, "hosts = 3\n" + BASE)
    with pytest.raises(ConfigError) as err:
        load_config(path)
    assert err.value.key == "hosts" and "[[hosts]]" in str(err.value)


def test_a_remote_host_with_its_key_files(tmp_path: Path) -> None:
    (tmp_path / "kvm2.key").write_text("k")
    (tmp_path / "kvm2.known_hosts").write_text("h")
    cfg = load_config(write(tmp_path, BASE + '[[hosts]]\nname = "kvm2"\n'
                            'uri = "qemu+ssh://root@kvm2.example/system"\nvms = ["b1"]\n'
                            'ssh_address = "192.0.2.20"\n'
                            'ssh_key = "kvm2.key"\nssh_known_hosts = "kvm2.known_hosts"\n'))
    assert cfg.hosts[0].kind is HostKind.REMOTE
    assert make_plan(cfg).vm("b1").host == "kvm2"


def _inventory(tmp_path: Path) -> inventory.Inventory:
    cfg = load_config(write(tmp_path, NAMESPACE))
    gw = Gateway("host2", "192.168.200.2", 22, "root", "/k", "/kh")
    vms = tuple(inventory.VmEntry(vm.name, vm.domain, "clean", f"/c/{vm.name}.log", vm.nics,
                                  host=vm.host, gateway=gw if vm.host != "local" else None)
                for vm in make_plan(cfg).vms)
    return inventory.Inventory(
        lab="mh", run="r", uri="qemu:///system", netns="driverlab", acceleration="tcg",
        key_file="/k", host_key="", known_hosts="/kh", management_subnet="192.168.90.0/24",
        vms=vms, hosts=(inventory.HostEntry("host2", "qemu+ssh://root@192.168.200.2/system",
                                            "namespace"),))


def test_inventory_keeps_hosts_and_gateways(tmp_path: Path) -> None:
    inv = _inventory(tmp_path)
    path = tmp_path / "inventory.json"
    inventory.write(path, inv)
    again = inventory.read(path)
    assert again == inv
    assert again.uri_of(again.vm("b1")).startswith("qemu+ssh://")
    assert again.uri_of(again.vm("a1")) == "qemu:///system"
    assert again.vm("b2").gateway == inv.vm("b2").gateway


def test_status_shows_a_host_column_only_for_several_hosts(tmp_path: Path) -> None:
    inv = _inventory(tmp_path)
    table = status_table(inv, {"a1": "running", "b1": "host unreachable"}).splitlines()
    assert table[0].split()[:3] == ["HOST", "VM", "STATE"]
    assert table[3].split()[:3] == ["host2", "b1", "host"]
    single = status_table(inv.__class__(**{**inv.__dict__, "hosts": ()}), None).splitlines()
    assert single[0].split()[:2] == ["VM", "STATE"]


def test_status_shows_each_vms_qemu_rss_when_given(tmp_path: Path) -> None:
    """`lab status` passes libvirt's rss stat (KiB) per VM; one without any shows '-'."""
    inv = _inventory(tmp_path)
    table = status_table(inv, {"a1": "running", "b1": "shut off"},
                         {"a1": 170_000, "b1": None}).splitlines()
    assert table[0].split()[:4] == ["HOST", "VM", "STATE", "RSS"]
    rows = {line.split()[1]: line.split() for line in table[1:]}
    assert rows["a1"][3:5] == ["166", "MiB"]
    assert rows["b1"][2:5] == ["shut", "off", "-"]


def test_a_remote_hosts_libvirt_hop_pins_its_host_key(tmp_path: Path) -> None:
    """The ssh transport ignores libvirt's known_hosts parameter: the URI runs ssh through
    a wrapper with only the lab's key and known_hosts (what ssh -G resolves proves it)."""
    (tmp_path / "kvm2.key").write_text("k")
    (tmp_path / "kvm2.known_hosts").write_text("h")
    cfg = load_config(write(tmp_path, BASE + '[[hosts]]\nname = "kvm2"\n'
                            'uri = "qemu+ssh://root@192.0.2.20/system"\nvms = ["b1"]\n'
                            'ssh_key = "kvm2.key"\nssh_known_hosts = "kvm2.known_hosts"\n'))
    (target,) = hosts.targets(cfg, lambda _line: None, start=False)
    query = dict(parse_qsl(urlsplit(target.uri).query))
    assert query["keyfile"] == str(tmp_path / "kvm2.key") and query["no_verify"] == "0"
    wrapper = Path(query["command"])
    assert wrapper.stat().st_mode & 0o777 == 0o700
    config = wrapper.read_text().split("-F ")[1].split()[0].strip("'")
    resolved = subprocess.run(["ssh", "-G", "-F", config, "192.0.2.20"], capture_output=True,
                              text=True, check=True, timeout=10).stdout.lower()
    assert f"userknownhostsfile {tmp_path / 'kvm2.known_hosts'}" in resolved
    assert f"identityfile {tmp_path / 'kvm2.key'}" in resolved
    assert "stricthostkeychecking true" in resolved and "identityagent none" in resolved
    assert "updatehostkeys false" in resolved  # the pinned file is never rewritten
    assert target.gateway.address == "192.0.2.20" and target.gateway.user == "root"


def test_the_agents_python_per_host_kind_and_as_given(tmp_path: Path) -> None:
    """A namespace host runs its agent with this machine's /usr/bin/python3 (a login
    shell's PATH may put another python3 first); a remote one with python3 from its
    PATH; agent_python overrides either."""
    (tmp_path / "kvm2.key").write_text("k")
    (tmp_path / "kvm2.known_hosts").write_text("h")
    remote = ('[[hosts]]\nname = "kvm2"\nuri = "qemu+ssh://root@192.0.2.20/system"\n'
              'vms = ["a1"]\nssh_key = "kvm2.key"\nssh_known_hosts = "kvm2.known_hosts"\n')
    cfg = load_config(write(tmp_path, NAMESPACE + remote))
    assert [h.python for h in cfg.hosts] == ["/usr/bin/python3", "python3"]
    cfg = load_config(write(tmp_path, NAMESPACE + remote + 'agent_python = "python3.11"\n'))
    assert cfg.hosts[1].python == "python3.11"


@pytest.mark.parametrize("value", ["python3 -I", "/usr/bin/python3;id", "$(id)", "py thon",
                                   "/usr/bin/"])
def test_an_agent_python_that_is_not_one_word_is_refused(tmp_path: Path, value: str) -> None:
    path = write(tmp_path, NAMESPACE + f'agent_python = "{value}"\n')
    with pytest.raises(ConfigError) as err:
        load_config(path)
    assert err.value.key == "hosts[0].agent_python"
    assert "\n" not in err.value.summary and str(path) in str(err.value)
