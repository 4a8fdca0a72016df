"""The lab's template (lab.template): its key, its cache, and the micro guest's identity
step (lab.guests.linux_micro.take_identity) against a recorded guest agent."""

from __future__ import annotations

import dataclasses
import hashlib
import json
from pathlib import Path

import pytest

from lab import template
from lab.config import parse_config
from lab.errors import LabFailure
from lab.guests.base import AgentCall, RestoredIdentity
from lab.guests.linux_micro import LinuxMicro, identity_arguments, template_cmdline
from lab.hypervisor import Hypervisor
from lab.plan import make_plan

INPUTS = template.TemplateInputs(kind="linux-micro", golden_digest="c4f20b6589a3",
                                 domain_xml="<domain type='qemu'>...</domain>",
                                 qemu_version=7002022, libvirt_version="9.0")


@pytest.mark.parametrize("change", [
    {"kind": "windows"}, {"golden_digest": "4c800c42270d"},
    {"domain_xml": "<domain type='kvm'>...</domain>"}, {"qemu_version": 8002002},
    {"libvirt_version": "9.1"},
])
def test_every_input_changes_the_key(change: dict[str, object]) -> None:
    changed = dataclasses.replace(INPUTS, **change)  # type: ignore[arg-type]
    assert template.template_key(changed) != template.template_key(INPUTS)


def test_the_key_is_stable_and_names_the_volume() -> None:
    key = template.template_key(INPUTS)
    assert key == template.template_key(dataclasses.replace(INPUTS))
    assert len(key) == 24 and template.volume_name(key) == f"template-{key}.qcow2"


def _source(tmp_path: Path, size: int = 3 << 20) -> Path:
    src = tmp_path / "built.qcow2"
    src.write_bytes(b"QFI\xfb" + bytes(size - 4))
    return src


def test_the_cache_returns_a_stored_template_with_its_record(tmp_path: Path) -> None:
    cache = template.TemplateCache(tmp_path / "state")
    assert cache.lookup("k1") is None
    record = cache.store("k1", _source(tmp_path), build_s=7.71)
    found = cache.lookup("k1")
    assert found is not None
    path, again = found
    assert again == record and record.size == 3 << 20 and record.build_s == 7.71
    assert path.read_bytes() == _source(tmp_path).read_bytes()
    assert not list(path.parent.glob(".*.tmp"))


def test_a_partial_or_unrecorded_template_is_never_reused(tmp_path: Path) -> None:
    cache = template.TemplateCache(tmp_path / "state")
    cache.store("k1", _source(tmp_path), build_s=1.0)
    path = cache.root / "k1.qcow2"
    with path.open("r+b") as fh:  # a copy cut short
        fh.truncate(1 << 20)
    assert cache.lookup("k1") is None
    cache.store("k2", _source(tmp_path), build_s=1.0)
    (cache.root / "k2.json").unlink()  # killed before its record was written
    assert cache.lookup("k2") is None
    cache.store("k3", _source(tmp_path), build_s=1.0)
    (cache.root / "k3.json").write_text(json.dumps({"key": "k3"}))  # a damaged record
    assert cache.lookup("k3") is None


def test_a_new_template_replaces_the_labs_older_one(tmp_path: Path) -> None:
    cache = template.TemplateCache(tmp_path / "state")
    cache.store("old", _source(tmp_path), build_s=1.0)
    cache.store("new", _source(tmp_path), build_s=1.0)
    assert cache.lookup("old") is None and cache.lookup("new") is not None
    assert sorted(p.name for p in cache.root.iterdir()) == ["new.json", "new.qcow2"]


def _restored(tmp_path: Path) -> RestoredIdentity:
    vm = make_plan(parse_config({}, tmp_path / "lab.toml")).vms[1]
    key = tmp_path / "vm2.key"
    key.write_bytes(bytes(range(83)))
    return RestoredIdentity(vm=vm, host_key=key, epoch=1796200000, seed=b"\x5a" * 32)


def test_the_micro_identity_carries_the_vms_own_name_addresses_and_key(tmp_path: Path) -> None:
    restored = _restored(tmp_path)
    args = identity_arguments(restored)
    assert args["hostname"] == "vm2" and args["epoch"] == 1796200000
    assert args["net"] == ",".join(f"{n.mac}={n.ip}" for n in restored.vm.nics)
    assert restored.host_key is not None
    assert bytes.fromhex(str(args["hostkey"])) == restored.host_key.read_bytes()
    assert args["seed"] == "5a" * 32
    assert "lab.hostname=template " in template_cmdline()
    assert "lab.net= " in template_cmdline() and "vm2" not in template_cmdline()


def test_the_micro_identity_step_checks_the_agents_answer(tmp_path: Path) -> None:
    """Recorded lab-agent replies (images/linux-micro/lab-agent.c): the right one passes,
    an agent that names another VM or predates lab-identity does not."""
    kind = LinuxMicro(parse_config({}, tmp_path / "lab.toml"))
    restored = _restored(tmp_path)
    calls: list[tuple[str, dict[str, object]]] = []

    def agent(reply: object) -> AgentCall:
        def call(execute: str, arguments: dict[str, object]) -> object:
            calls.append((execute, arguments))
            return reply
        return call

    kind.take_identity(restored, agent({"identity": "vm2"}))
    assert calls[0][0] == "lab-identity" and calls[0][1]["hostname"] == "vm2"
    with pytest.raises(LabFailure, match="lab-identity answered"):
        kind.take_identity(restored, agent({"identity": "vm1"}))
    with pytest.raises(LabFailure):
        kind.take_identity(restored, agent({}))


def test_the_micro_identity_needs_the_vms_own_key(tmp_path: Path) -> None:
    restored = dataclasses.replace(_restored(tmp_path), host_key=None)
    with pytest.raises(LabFailure, match="no SSH host key of its own"):
        identity_arguments(restored)


def test_a_full_disk_while_copying_the_template_is_one_lab_failure(tmp_path: Path) -> None:
    """/dev/full answers every write with ENOSPC (the kernel's, not a mock): the copy a
    local host fills each VM's overlay with (Hypervisor.upload_into) says so."""
    with pytest.raises(LabFailure, match="No space left on device") as caught:
        Hypervisor._copy_into(_source(tmp_path), "/dev/full")
    assert "free space" in (caught.value.hint or "")


def test_each_host_keeps_its_own_template(tmp_path: Path) -> None:
    """Another host's template (its QEMU, its paths) is cached apart: storing one host's
    never removes another's, and a key found for one host is not found for another."""
    src = _source(tmp_path)
    local = template.TemplateCache(tmp_path / "state")
    host2 = template.TemplateCache(tmp_path / "state", "host2")
    local.store("a" * 24, src, 1.0)
    def fetch(tmp: Path) -> None:  # as a download from host2's pool writes it
        tmp.write_bytes(src.read_bytes())

    host2.store_from("b" * 24, fetch, 2.0)
    local.store("c" * 24, src, 1.0)  # a new local key: the old local one goes
    assert local.lookup("a" * 24) is None and local.lookup("c" * 24) is not None
    found = host2.lookup("b" * 24)
    assert found is not None and found[1].sha256 == hashlib.sha256(src.read_bytes()).hexdigest()
    assert host2.lookup("c" * 24) is None and local.lookup("b" * 24) is None
    assert found[0].parent.name == "host-host2"
