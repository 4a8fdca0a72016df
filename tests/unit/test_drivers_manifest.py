"""Driver manifests (lab/drivers.py): the real ones and the errors for bad ones."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path, PurePosixPath

import pytest

from lab.drivers import KNOWN_KNOBS, load_manifest, load_manifests
from lab.errors import ConfigError

GOOD = """
name = "demo"
description = "a demo"

[linux]
module = "demo"
file = "var/drivers/linux/demo.ko"
params = { port = 7007, verbose = true }
journal = "/proc/demo/journal"
control = "/proc/demo/control"

[linux.knobs.block_unload]
param = "block_unload"
on = 1

[windows]
sys = "demo.sys"
"""


def write(tmp_path: Path, text: str, name: str = "demo") -> Path:
    path = tmp_path / name / "driver.toml"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def test_the_repository_manifests_load() -> None:
    manifests = load_manifests()
    assert {"wskecho", "labtdi"} <= set(manifests)
    kecho = manifests["wskecho"].linux
    assert kecho is not None and kecho.module == "kecho"
    assert kecho.journal == PurePosixPath("/proc/kecho/journal")
    assert kecho.file.name == "kecho.ko" and kecho.file.is_absolute()
    labtdi = manifests["labtdi"].linux
    assert labtdi is not None and labtdi.control == PurePosixPath("/proc/labtdi/control")
    # every knob of the issue exists on one of the twins
    assert {k.name for m in manifests.values() if m.linux for k in m.linux.knobs} == set(
        KNOWN_KNOBS)


def test_good_manifest_and_commands(tmp_path: Path) -> None:
    m = load_manifest(write(tmp_path, GOOD), root=tmp_path)
    twin = m.linux
    assert twin is not None
    assert m.name == "demo" and twin.file == tmp_path / "var/drivers/linux/demo.ko"
    assert twin.params == (("port", "7007"), ("verbose", "1"))
    assert twin.load_params() == (("port", "7007"), ("verbose", "1"))
    assert twin.load_params(["block_unload"])[-1] == ("block_unload", "1")
    assert twin.knob("block_unload").fault == KNOWN_KNOBS["block_unload"]
    with pytest.raises(KeyError, match="no fault knob"):
        twin.knob("corrupt_echo")
    assert m.windows is not None and m.windows["sys"] == "demo.sys"


def test_manifest_without_linux_table(tmp_path: Path) -> None:
    m = load_manifest(write(tmp_path, 'name = "demo"\n[windows]\nsys = "x.sys"\n'))
    assert m.linux is None and m.windows is not None


@pytest.mark.parametrize(("edit", "key", "message"), [
    (lambda t: t.replace('name = "demo"', 'name = "other"'), "name", "directory"),
    (lambda t: t.replace('module = "demo"', 'module = "de mo"'), "linux.module", "characters"),
    (lambda t: t.replace('journal = "/proc/demo/journal"', 'journal = "proc/j"'),
     "linux.journal", "absolute"),
    (lambda t: t.replace("port = 7007", 'port = "1 2"'), "linux.params.port", "characters"),
    (lambda t: t.replace("[linux.knobs.block_unload]", "[linux.knobs.block_unlaod]"),
     "linux.knobs.block_unlaod", "unknown fault knob"),
    (lambda t: t.replace("on = 1\n", ""), "linux.knobs.block_unload", "'param' and 'on'"),
    (lambda t: t.replace('module = "demo"', 'module = "demo"\nmodle = "x"'), "linux",
     "unknown keys: modle"),
    (lambda t: t.replace('module = "demo"\n', ""), "linux.module", "missing"),
    (lambda t: t + "\n[linux.extra\n", "-", "not valid TOML"),
])
def test_bad_manifests_name_file_key_and_fix(tmp_path: Path, edit: Callable[[str], str],
                                             key: str, message: str) -> None:
    path = write(tmp_path, edit(GOOD))
    with pytest.raises(ConfigError, match=message) as info:
        load_manifest(path)
    assert info.value.key == key
    assert str(path) in str(info.value) and info.value.hint
