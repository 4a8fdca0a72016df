"""Hostile and malformed lab.toml files: each is refused with one line naming file, key
and fix, or accepted for the reason its row states. None gives a traceback, neither
from load_config nor from any `lab` sub-command run as a real process.

Every case is a file written to a fresh directory (``{tmp}`` in a row is that
directory) next to fixtures the paths in the rows point at: a non-empty
directory the lab did not create, a pool directory carrying the lab's owner
marker, an empty directory, a real qcow2 header, a raw disk, a symlink to /etc.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import pytest

from lab.config import LabConfig, load_config
from lab.errors import ConfigError
from lab.naming import POOL_OWNER_SUFFIX

REPO = Path(__file__).resolve().parents[2]
NAME = "fz"


@dataclass(frozen=True)
class Case:
    """One input: the file's content and either the key refused (with a fix fragment)
    or the reason it is accepted."""

    id: str
    content: str | bytes
    key: str | None = None  # refused: the key the message names ("-" = the file)
    fix: str = ""  # refused: a fragment of the fix line
    accepted: str = ""  # accepted: why that is right
    path: str = "lab.toml"  # what --config names (relative to {tmp})


def lab(**keys: str) -> str:
    """A [lab] table with this lab's isolated name and pool; ``keys`` are raw TOML values."""
    table = {"name": f'"{NAME}"', "pool_path": '"{tmp}/pool"', **keys}
    return "[lab]\n" + "".join(f"{k} = {v}\n" for k, v in table.items())


def refused(id: str, content: str | bytes, key: str, fix: str, path: str = "lab.toml") -> Case:
    return Case(id, content, key=key, fix=fix, path=path)


def ok(id: str, content: str, why: str) -> Case:
    return Case(id, content, accepted=why)


WIN = ('[image]\nkind = "windows"\nwindows_disk = "{disk}"\nwindows_ssh_key = "k"\n'
       'windows_host_key = "h"\n[vms]\nmemory_mib = 2048\ntest_nics = ["e1000e"]\n')
NAMES_65 = "[vms]\nnames = [" + ", ".join(f'"v{i}"' for i in range(65)) + "]\n"
NAMES_64 = "[vms]\nnames = [" + ", ".join(f'"v{i}"' for i in range(64)) + "]\n"
NICS_17 = ("[vms]\ntest_nics = [" + ", ".join(['"virtio"'] * 17) + "]\n[network]\ntest = ["
           + ", ".join(f'"10.9.{i}.0/24"' for i in range(17)) + "]\n")

FILES = [
    refused("not-utf8", b"[lab]\nname = \"d\xfflab\"\n", "-", "UTF-8"),
    refused("utf16", "[lab]\n".encode("utf-16"), "-", "UTF-8"),
    refused("utf8-bom", "\ufeff[lab]\n".encode(), "-", "fix the syntax"),
    refused("directory", "", "-", "pass the file itself", path="adir"),
    refused("missing", "", "-", "pass an existing file", path="nope.toml"),
    refused("char-device", "", "-", "pass a lab.toml file", path="/dev/zero"),
    refused("fifo", "", "-", "pass a lab.toml file", path="fifo"),
    refused("config-name-too-long", "", "-", "shorter path", path="c" * 300 + ".toml"),
    refused("huge", "#" * (2 << 20), "-", "few hundred bytes"),
    refused("deep-nesting", "a = " + "[" * 50000 + "]" * 50000, "-", "no nesting"),
    refused("syntax", "[lab\n", "-", "fix the syntax"),
    refused("duplicate-key", '[lab]\nname = "a"\nname = "b"\n', "-", "fix the syntax"),
    refused("section-not-table", "lab = 5\n", "lab", "write it as [lab]"),
    refused("unknown-section", "[vm]\n", "vm", "did you mean 'vms'"),
]
TYPES = [
    refused("name-int", '[lab]\nname = 5\n', "lab.name", "quote the value"),
    refused("uri-list", '[lab]\nuri = ["qemu:///system"]\n', "lab.uri", "quote the value"),
    refused("accel-int", "[lab]\nacceleration = 1\n", "lab.acceleration", "auto, kvm, tcg"),
    refused("sandbox-bool", "[lab]\nsandbox = true\n", "lab.sandbox", "auto, always, never"),
    refused("vcpus-string", '[vms]\nvcpus = "2"\n', "vms.vcpus", "whole number"),
    refused("vcpus-float", "[vms]\nvcpus = 2.0\n", "vms.vcpus", "whole number"),
    refused("vcpus-bool", "[vms]\nvcpus = true\n", "vms.vcpus", "whole number"),
    refused("memory-date", "[vms]\nmemory_mib = 1979-05-27\n", "vms.memory_mib", "whole number"),
    refused("names-string", '[vms]\nnames = "vm1"\n', "vms.names", "names = [...]"),
    refused("names-int", "[vms]\nnames = [1]\n", "vms.names", "quote the value"),
    refused("nics-nested", '[vms]\ntest_nics = [["virtio"]]\n', "vms.test_nics", "quote"),
    refused("test-nets-string", '[network]\ntest = "10.1.0.0/24"\n', "network.test", "[...]"),
    refused("mgmt-table", "[network]\nmanagement = {}\n", "network.management", "quote"),
    refused("tpm-string", '[windows_image]\ntpm = "yes"\n', "windows_image.tpm",
            "true or false"),
    refused("disk-gib-float", "[windows_image]\ndisk_size_gib = 1e3\n",
            "windows_image.disk_size_gib", "whole number"),
    refused("verifier-table", "[image]\nwindows_verifier = [{a = 1}]\n", "image.windows_verifier",
            "quote"),
    refused("kind-unknown", '[image]\nkind = "linux"\n', "image.kind", "linux-micro, windows"),
    refused("unknown-key", '[vms]\nvcpu = 2\n', "vms.vcpu", "did you mean 'vcpus'"),
]
STATE_DIR = [
    refused("state-subshell", lab(state_dir='"var$(touch {tmp}/pwned)"'), "lab.state_dir",
            "no spaces, quotes, $"),
    refused("state-backtick", lab(state_dir='"var`id`"'), "lab.state_dir", "backticks"),
    refused("state-semicolon", lab(state_dir='"var;id"'), "lab.state_dir", "no spaces"),
    refused("state-space", lab(state_dir='"my var"'), "lab.state_dir", "no spaces"),
    refused("state-quote", lab(state_dir="\"v'ar\""), "lab.state_dir", "quotes"),
    refused("state-dquote", lab(state_dir='"v\\"ar"'), "lab.state_dir", "quotes"),
    refused("state-newline", lab(state_dir='"var\\nx"'), "lab.state_dir", "one line"),
    refused("state-nul", lab(state_dir='"var\\u0000x"'), "lab.state_dir", "one line"),
    refused("state-etc", lab(state_dir='"/etc"'), "lab.state_dir", "below the config file"),
    refused("state-root", lab(state_dir='"/"'), "lab.state_dir", "below the config file"),
    refused("state-dotdot", lab(state_dir='"../../../.."'), "lab.state_dir",
            "below the config file"),
    refused("state-tilde", lab(state_dir='"~/lab"'), "lab.state_dir", "only letters"),
    refused("state-long-name", lab(state_dir='"' + "s" * 300 + '"'), "lab.state_dir",
            "shorter directory names"),
    refused("state-symlink-out", lab(state_dir='"etclink"'), "lab.state_dir",
            "below the config file"),
    ok("state-relative", lab(state_dir='"state"'), "a directory below the config file"),
    ok("state-dot", lab(state_dir='"."'), "the config file's own directory"),
    ok("state-in-repo", lab(state_dir=f'"{REPO}/var/fuzz-never-created"'),
       "inside the Driver Lab checkout (how /tmp configs share the repo's var/)"),
]
POOL = [
    refused("pool-relative", lab(pool_path='"pool"'), "lab.pool_path", "absolute path"),
    refused("pool-root", lab(pool_path='"/"'), "lab.pool_path", "directory of the lab's own"),
    refused("pool-etc", lab(pool_path='"/etc"'), "lab.pool_path", "directory of the lab's own"),
    refused("pool-under-etc", lab(pool_path='"/etc/lab"'), "lab.pool_path", "lab's own"),
    refused("pool-usr-local", lab(pool_path='"/usr/local/pool"'), "lab.pool_path", "lab's own"),
    refused("pool-images-root", lab(pool_path='"/var/lib/libvirt/images"'), "lab.pool_path",
            "lab's own"),
    refused("pool-home", lab(pool_path='"/home"'), "lab.pool_path", "lab's own"),
    refused("pool-root-home", lab(pool_path='"/root"'), "lab.pool_path", "lab's own"),
    refused("pool-proc", lab(pool_path='"/proc/self"'), "lab.pool_path", "lab's own"),
    refused("pool-user-dir", lab(pool_path='"{tmp}/nonempty"'), "lab.pool_path",
            "new or empty directory"),
    refused("pool-file", lab(pool_path='"{tmp}/afile"'), "lab.pool_path", "new or empty"),
    refused("pool-not-normal", lab(pool_path='"{tmp}/x/../pool"'), "lab.pool_path",
            "write it as"),
    refused("pool-space", lab(pool_path='"{tmp}/my pool"'), "lab.pool_path", "no spaces"),
    refused("pool-subshell", lab(pool_path='"{tmp}/p$(id)"'), "lab.pool_path", "no spaces"),
    refused("pool-long-name", lab(pool_path='"{tmp}/' + "p" * 300 + '"'), "lab.pool_path",
            "shorter directory names"),
    refused("pool-symlink-etc", lab(pool_path='"{tmp}/etclink"'), "lab.pool_path", "lab's own"),
    refused("pool-holds-config", lab(pool_path='"{tmp}"'), "lab.pool_path", "separate directory"),
    refused("pool-holds-repo", lab(pool_path=f'"{REPO}"'), "lab.pool_path", "separate directory"),
    ok("pool-new", lab(), "a directory that does not exist yet: the lab creates and marks it"),
    ok("pool-empty", lab(pool_path='"{tmp}/emptydir"'), "an empty directory holds nothing to lose"),
    ok("pool-ours", lab(pool_path='"{tmp}/ourpool"'),
       f"it carries {NAME}{POOL_OWNER_SUFFIX}: this lab made it"),
]
NETWORKS = [
    refused("mgmt-loopback", '[network]\nmanagement = "127.0.0.0/24"\n', "network.management",
            "10.0.0.0/8"),
    refused("mgmt-zero", '[network]\nmanagement = "0.0.0.0/24"\n', "network.management", "RFC"),
    refused("mgmt-default-route", '[network]\nmanagement = "0.0.0.0/0"\n', "network.management",
            "10.0.0.0/8"),
    refused("mgmt-link-local", '[network]\nmanagement = "169.254.1.0/24"\n',
            "network.management", "192.168.0.0/16"),
    refused("mgmt-public", '[network]\nmanagement = "8.8.8.0/24"\n', "network.management",
            "172.16.0.0/12"),
    refused("mgmt-cgnat", '[network]\nmanagement = "100.64.0.0/24"\n', "network.management",
            "10.0.0.0/8"),
    refused("mgmt-multicast", '[network]\nmanagement = "224.0.0.0/24"\n', "network.management",
            "10.0.0.0/8"),
    refused("test-loopback", '[network]\ntest = ["127.0.0.0/8", "10.2.0.0/24"]\n',
            "network.test[0]", "10.0.0.0/8"),
    refused("test-includes-loopback", '[network]\ntest = ["0.0.0.0/1", "10.2.0.0/24"]\n',
            "network.test[0]", "10.0.0.0/8"),
    refused("overlap", '[network]\nmanagement = "10.0.0.0/16"\ntest = ["10.0.1.0/24", '
            '"10.0.2.0/24"]\n', "network.test[0]", "own subnet"),
    refused("too-large", '[network]\nmanagement = "10.0.0.0/8"\n', "network.management", "/16"),
    refused("too-small", '[network]\nmanagement = "192.168.1.0/28"\n', "network.management",
            "/24 or larger"),
    refused("host-bits", '[network]\nmanagement = "192.168.1.5/24"\n', "network.management",
            "192.168.213.0/24"),
    refused("ipv6", '[network]\nmanagement = "fd00::/64"\n', "network.management", "192.168"),
    refused("empty-subnet", '[network]\nmanagement = ""\n', "network.management", "192.168"),
    ok("private-ranges", '[network]\nmanagement = "10.20.0.0/16"\ntest = ["172.16.5.0/24", '
       '"192.168.77.0/24"]\n' + lab(), "one subnet in each RFC 1918 range, none overlapping"),
]
SIZES = [
    refused("vcpus-0", "[vms]\nvcpus = 0\n", "vms.vcpus", "between 1 and 64"),
    refused("vcpus-65", "[vms]\nvcpus = 65\n", "vms.vcpus", "between 1 and 64"),
    refused("vcpus-bignum", "[vms]\nvcpus = 1000000000000000000000000000000\n", "vms.vcpus",
            "between 1 and 64"),
    refused("memory-64", "[vms]\nmemory_mib = 64\n", "vms.memory_mib", "between 128 and 65536"),
    refused("memory-1e9", "[vms]\nmemory_mib = 1000000000\n", "vms.memory_mib", "65536"),
    refused("hotplug-negative", "[vms]\nhotplug_slots = -1\n", "vms.hotplug_slots",
            "between 0 and 16"),
    refused("hotplug-17", "[vms]\nhotplug_slots = 17\n", "vms.hotplug_slots", "between 0 and 16"),
    refused("boot-timeout-0", "[vms]\nboot_timeout_s = 0\n", "vms.boot_timeout_s", "10 and 7200"),
    refused("boot-timeout-year", "[vms]\nboot_timeout_s = 31536000\n", "vms.boot_timeout_s",
            "10 and 7200"),
    refused("disk-1", "[image]\ndisk_size_mib = 1\n", "image.disk_size_mib", "128 and 65536"),
    refused("disk-10t", "[image]\ndisk_size_mib = 10000000\n", "image.disk_size_mib", "65536"),
    refused("win-disk-8g", "[windows_image]\ndisk_size_gib = 8\n", "windows_image.disk_size_gib",
            "between 32 and 4096"),
    refused("install-timeout-1", "[windows_image]\ninstall_timeout_s = 1\n",
            "windows_image.install_timeout_s", "between 600 and 86400"),
    refused("echo-port-0", "[windows_image]\necho_port = 0\n", "windows_image.echo_port",
            "between 1 and 65535"),
    refused("echo-port-70000", "[windows_image]\necho_port = 70000\n", "windows_image.echo_port",
            "between 1 and 65535"),
    ok("sizes-at-bounds", lab() + "[vms]\nvcpus = 64\nmemory_mib = 65536\nhotplug_slots = 0\n"
       "boot_timeout_s = 7200\n", "every size at the edge of its allowed range"),
]
COUNTS_NAMES = [
    refused("vms-65", NAMES_65, "vms.names", "between 1 and 64"),
    refused("nics-17", NICS_17, "vms.test_nics", "between 1 and 16"),
    refused("vm-trailing-dash", '[vms]\nnames = ["vm-"]\n', "vms.names", "not ending with '-'"),
    refused("vm-upper", '[vms]\nnames = ["VM1"]\n', "vms.names", "lowercase"),
    refused("vm-underscore", '[vms]\nnames = ["vm_1"]\n', "vms.names", "lowercase"),
    refused("vm-too-long", '[vms]\nnames = ["abcdefghijklmnop"]\n', "vms.names", "1-15"),
    refused("vm-shell", '[vms]\nnames = ["vm1;reboot"]\n', "vms.names", "lowercase"),
    refused("vm-option", '[vms]\nnames = ["-vm"]\n', "vms.names", "starting with a letter"),
    refused("vm-path", '[vms]\nnames = ["../vm"]\n', "vms.names", "lowercase"),
    refused("lab-name-shell", '[lab]\nname = "dl$(x)"\n', "lab.name", "lowercase letters"),
    refused("kernel-option", '[image]\nkernel_package = "-oAPT::Update::Pre-Invoke::=id"\n',
            "image.kernel_package", "package name"),
    refused("kernel-space", '[image]\nkernel_package = "linux image"\n', "image.kernel_package",
            "package name"),
    refused("edition-nul", '[windows_image]\nedition = "A\\u0000B"\n', "windows_image.edition",
            "one line"),
    refused("iso-escape", '[windows_image]\niso = "x\\u001b[2J"\n', "windows_image.iso",
            "one line"),
    refused("version-huge", '[image]\nwindows_version = "' + "x" * 5000 + '"\n',
            "image.windows_version", "under 1024"),
    ok("vms-64", lab() + NAMES_64, "64 VMs is the cap (one MAC byte, addresses in a /24)"),
    ok("vm-dash", lab() + '[vms]\nnames = ["web-1", "db"]\n', "a hyphen inside a name is safe"),
    ok("unicode-edition", lab() + '[windows_image]\nedition = "Windows 11 Pro für Workstations"\n',
       "printable Unicode reaches only escaped XML and Python comparisons"),
    ok("crlf", lab().replace("\n", "\r\n"), "TOML allows CRLF line endings"),
]
WINDOWS_DISK = [
    refused("win-disk-raw", lab() + WIN.replace("{disk}", "{tmp}/disk.raw"),
            "image.windows_disk", "qemu-img convert"),
    refused("win-disk-text-any-kind", lab() + '[image]\nwindows_disk = "{tmp}/fake.qcow2"\n',
            "image.windows_disk", "qemu-img convert"),
    refused("win-disk-dir", lab() + WIN.replace("{disk}", "{tmp}/adir"), "image.windows_disk",
            "golden qcow2"),
    refused("win-disk-device", lab() + '[image]\nwindows_disk = "/dev/zero"\n',
            "image.windows_disk", "golden qcow2"),
    refused("win-disk-long-name", lab() + '[image]\nwindows_disk = "' + "w" * 300 + '"\n',
            "image.windows_disk", "shorter path"),
    refused("win-disk-missing", lab() + WIN.replace("{disk}", "{tmp}/none.qcow2"),
            "image.windows_disk", "golden qcow2"),
    ok("win-disk-qcow2", lab() + WIN.replace("{disk}", "{tmp}/disk.qcow2"),
       "the file starts with the qcow2 magic QFI\\xfb"),
]
URIS = [
    refused("uri-ext", lab(uri='"qemu+ext:///system?command=/bin/sh"'), "lab.uri",
            "qemu:///system"),
    refused("uri-ssh-option-host", lab(uri='"qemu+ssh://-oProxyCommand=id/system"'), "lab.uri",
            "qemu+ssh://user@host/system"),
    refused("uri-command", lab(uri='"qemu+ssh://host/system?command=/bin/sh"'), "lab.uri",
            "use only"),
    refused("uri-netcat", lab(uri='"qemu+ssh://host/system?netcat=nc"'), "lab.uri", "use only"),
    refused("uri-xen", lab(uri='"xen:///system"'), "lab.uri", "qemu:///system"),
    refused("uri-embed", lab(uri='"qemu:///embed?root=/tmp"'), "lab.uri", "qemu:///system"),
    refused("uri-local-host", lab(uri='"qemu://host/system"'), "lab.uri", "add a transport"),
    refused("uri-ssh-no-host", lab(uri='"qemu+ssh:///system"'), "lab.uri", "qemu+ssh://"),
    refused("uri-bad-port", lab(uri='"qemu+tcp://host:99999/system"'), "lab.uri", "qemu+ssh://"),
    refused("uri-password", lab(uri='"qemu+ssh://u:pw@host/system"'), "lab.uri", "SSH key"),
    refused("uri-fragment", lab(uri='"qemu:///system#x"'), "lab.uri", "qemu:///system"),
    refused("uri-words", lab(uri='"not a uri"'), "lab.uri", "qemu:///system"),
    refused("uri-param-shell", lab(uri='"qemu+ssh://h/system?keyfile=$(id)"'), "lab.uri",
            "only letters"),
    ok("uri-ssh", lab(uri='"qemu+ssh://me@kvm.example/system"'), "remote libvirt over SSH"),
    ok("uri-tcp-port", lab(uri='"qemu+tcp://127.0.0.1:16509/system"'), "plain host and port"),
    ok("uri-session", lab(uri='"qemu:///session"'), "the user's own libvirtd"),
    ok("uri-keyfile", lab(uri='"qemu+ssh://h/system?keyfile=/root/.ssh/id&no_verify=1"'),
       "allowed parameters with plain values"),
]
CASES = FILES + TYPES + STATE_DIR + POOL + NETWORKS + SIZES + COUNTS_NAMES + WINDOWS_DISK + URIS
REFUSED = [c for c in CASES if c.key is not None]


def test_table_is_large_and_ids_unique() -> None:
    assert len(CASES) >= 60
    assert len({c.id for c in CASES}) == len(CASES)
    assert all(c.accepted for c in CASES if c.key is None)


def materialize(tmp: Path, case: Case) -> Path:
    """Write the case and its fixtures under ``tmp``; return what --config names."""
    (tmp / "adir").mkdir()
    (tmp / "emptydir").mkdir()
    (tmp / "nonempty").mkdir()
    (tmp / "nonempty" / "thesis.tex").write_text("the user's work\n")
    (tmp / "ourpool").mkdir()
    (tmp / "ourpool" / f"{NAME}{POOL_OWNER_SUFFIX}").write_bytes(b"")
    (tmp / "ourpool" / "vm1.qcow2").write_bytes(b"QFI\xfb" + bytes(60))
    (tmp / "afile").write_text("x\n")
    (tmp / "disk.qcow2").write_bytes(b"QFI\xfb\x00\x00\x00\x03" + bytes(504))
    (tmp / "disk.raw").write_bytes(bytes(512))
    (tmp / "fake.qcow2").write_text("this is not an image\n")
    (tmp / "etclink").symlink_to("/etc")
    os.mkfifo(tmp / "fifo")
    content = case.content
    if isinstance(content, str):
        (tmp / "lab.toml").write_text(content.replace("{tmp}", str(tmp)), encoding="utf-8",
                                      newline="")
    else:
        (tmp / "lab.toml").write_bytes(content)
    return tmp / case.path


def check_refusal(case: Case, message: str, config: Path) -> None:
    summary, _, fix = message.partition("\n  fix: ")
    assert str(config.resolve()) in summary, message
    assert f"[{case.key}]" in summary, message
    assert fix and "\n" not in summary and "\n" not in fix, message
    assert case.fix in message, message


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.id)
def test_each_input_is_refused_clearly_or_accepted_for_a_reason(tmp_path: Path,
                                                               case: Case) -> None:
    config = materialize(tmp_path, case)
    if case.key is None:
        cfg = load_config(config)
        assert isinstance(cfg, LabConfig), case.accepted
        return
    with pytest.raises(ConfigError) as info:
        load_config(config)
    check_refusal(case, str(info.value), config)
    assert not (tmp_path / "pwned").exists()


#: Every sub-command that reads the configuration, with the arguments it needs.
COMMANDS: list[list[str]] = [
    ["status"], ["config"], ["up"], ["down"], ["images"], ["ssh", "vm1", "true"],
    ["console", "vm1"], ["report"], ["history"], ["selftest"], ["image", "check"],
    ["image", "windows"],
]


def cli(config: Path, command: list[str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "lab", "--config", str(config), *command],
                          capture_output=True, text=True, timeout=60, cwd=REPO,
                          env={**os.environ, "PYTHONDONTWRITEBYTECODE": "1"}, check=False)


def check_one_line(res: subprocess.CompletedProcess[str]) -> None:
    lines = res.stderr.splitlines()
    assert res.returncode != 0, res
    assert "Traceback" not in res.stderr, res.stderr
    assert 1 <= len(lines) <= 2, res.stderr
    assert lines[0].startswith("lab"), res.stderr
    assert len(lines) == 1 or lines[1].startswith("  fix: "), res.stderr


def test_every_command_refuses_bad_configs_in_one_line(
        tmp_path_factory: pytest.TempPathFactory) -> None:
    # Every eighth refused input (each group is represented), under the commands in
    # turn, plus every command on the input the issue found most dangerous; as real
    # processes (about 0.5 s each: the run stays well under a minute).
    runs: list[tuple[Case, list[str]]] = [
        (case, COMMANDS[i % len(COMMANDS)]) for i, case in enumerate(REFUSED[::8])]
    worst = [c for c in REFUSED if c.id == "state-subshell"]
    runs += [(case, command) for case in worst for command in COMMANDS]
    jobs = [(case, materialize(tmp_path_factory.mktemp(f"cli{n}"), case), command)
            for n, (case, command) in enumerate(runs)]

    def run(job: tuple[Case, Path, list[str]]) -> subprocess.CompletedProcess[str]:
        return cli(job[1], job[2])

    with ThreadPoolExecutor(max_workers=4) as pool:
        results = list(pool.map(run, jobs))
    for (case, config, _), res in zip(jobs, results, strict=True):
        check_one_line(res)
        check_refusal(case, res.stderr.split(": ", 2)[-1].rstrip("\n"), config)
        assert not (config.parent / "pwned").exists()


def test_empty_config_argument_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="empty path") as info:
        load_config("")
    assert info.value.key == "-" and info.value.hint
    res = subprocess.run([sys.executable, "-m", "lab", "--config", "", "status"],
                         capture_output=True, text=True, timeout=60, cwd=tmp_path, check=False)
    check_one_line(res)
    assert "empty path" in res.stderr


@pytest.mark.skipif(shutil.which("make") is None, reason="needs make")
def test_makefile_never_runs_shell_syntax_from_the_config(tmp_path: Path) -> None:
    # The attack for real: the Makefile puts load_config(...).state_dir and
    # image.kernel_package into $(shell ...) results that recipes hand to sh. A
    # refused config yields nothing, so nothing from it reaches a shell.
    marker = tmp_path / "pwned"
    config = tmp_path / "lab.toml"
    config.write_text(f'[lab]\nname = "fz"\nstate_dir = "var$(touch {marker})"\n'
                      f'[image]\nkernel_package = "k$(touch {marker})"\n')
    probe = 'fuzz-probe: ; @echo "inventory=$(INVENTORY) meta=$(LINUX_TWINS_META)"'
    res = subprocess.run(["make", "-s", "--no-print-directory", "-C", str(REPO),
                          "--eval", probe, "fuzz-probe", f"CONFIG={config}"],
                         capture_output=True, text=True, timeout=120, check=False)
    assert res.returncode == 0, res.stderr
    assert "inventory= " in res.stdout and "meta=linux-image-cloud-amd64" in res.stdout
    assert not marker.exists()
