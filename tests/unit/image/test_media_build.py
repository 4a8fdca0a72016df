"""The config media ISO, built for real with xorriso and read back file by file."""

from __future__ import annotations

import shutil
import stat
import subprocess
import xml.etree.ElementTree as ET
from dataclasses import replace
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization

from lab.errors import LabFailure
from lab.guests.windows_identity import boot_script
from lab.image.markers import CONFIG_MEDIA_LABEL
from lab.image.media import build_config_media, read_media
from lab.image.settings import WindowsImageSettings

pytestmark = pytest.mark.skipif(shutil.which("xorriso") is None,
                                reason="xorriso is not installed (make setup)")

#: A synthetic virtio-win: the drivers of two releases, plus one this build does not need.
VIRTIO_FILES = {
    "viostor/2k22/amd64/viostor.inf": b"[Version]\nviostor 2k22\n",
    "viostor/2k22/amd64/viostor.sys": b"MZ viostor",
    "vioscsi/2k22/amd64/vioscsi.inf": b"[Version]\nvioscsi 2k22\n",
    "NetKVM/2k22/amd64/netkvm.inf": b"[Version]\nnetkvm 2k22\n",
    "pvpanic/2k22/amd64/pvpanic.inf": b"[Version]\npvpanic 2k22\n",
    "viostor/w11/amd64/viostor.inf": b"[Version]\nviostor w11\n",
    "Balloon/2k22/amd64/balloon.inf": b"[Version]\nballoon\n",
}
CA = b"-----BEGIN CERTIFICATE-----\nnot really a cert, bytes only\n-----END CERTIFICATE-----\n"


def make_iso(root: Path, files: dict[str, bytes], out: Path) -> Path:
    for name, data in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
    subprocess.run(["xorriso", "-no_rc", "-as", "mkisofs", "-quiet", "-o", str(out), "-V",
                    "VIRTIO", "-J", "-r", str(root)], check=True, capture_output=True,
                   timeout=120)
    return out


@pytest.fixture(scope="module")
def virtio_iso(tmp_path_factory: pytest.TempPathFactory) -> Path:
    base = tmp_path_factory.mktemp("virtio")
    return make_iso(base / "tree", VIRTIO_FILES, base / "virtio-win.iso")


@pytest.fixture
def settings(virtio_iso: Path, tmp_path: Path) -> WindowsImageSettings:
    (tmp_path / "OpenSSH-Win64.zip").write_bytes(b"PK\x03\x04 fake zip")
    return WindowsImageSettings(
        iso=Path("/unused/win.iso"), virtio_win=virtio_iso,
        edition="Windows Server 2022 SERVERSTANDARD", locale="en-US",
        admin_user="Administrator", product_key="", openssh_zip=tmp_path / "OpenSSH-Win64.zip",
        disk_size_gib=64, disk_bus="virtio", tpm=False, install_timeout_s=7200, echo_port=7007,
        windows_version="server2022")


@pytest.fixture
def ca(tmp_path: Path) -> Path:
    path = tmp_path / "lab-test-ca.cer"
    path.write_bytes(CA)
    return path


def test_media_holds_every_file_with_its_bytes(settings: WindowsImageSettings, tmp_path: Path,
                                               ca: Path) -> None:
    work = tmp_path / "work"
    media = build_config_media(settings, work, ca)
    files = read_media(media.iso)
    assert tuple(sorted(files)) == media.files
    drivers = "$WinPEDriver$/{}/2k22/amd64/{}"
    assert set(files) == {
        "autounattend.xml", "provision.ps1", "lab-test-ca.cer", "administrators_authorized_keys",
        "ssh_host_ed25519_key", "ssh_host_ed25519_key.pub", "OpenSSH-Win64.zip",
        "lab-identity.ps1",
        drivers.format("viostor", "viostor.inf"), drivers.format("viostor", "viostor.sys"),
        drivers.format("vioscsi", "vioscsi.inf"), drivers.format("NetKVM", "netkvm.inf"),
        drivers.format("pvpanic", "pvpanic.inf")}
    for name, data in VIRTIO_FILES.items():
        if "/2k22/" in name and not name.startswith("Balloon"):
            assert files["$WinPEDriver$/" + name] == data
    assert files["lab-test-ca.cer"] == CA
    assert files["OpenSSH-Win64.zip"] == b"PK\x03\x04 fake zip"
    assert files["administrators_authorized_keys"] == (work / "id_ed25519.pub").read_bytes()
    assert files["ssh_host_ed25519_key"] == (work / "ssh_host_ed25519_key").read_bytes()
    assert files["ssh_host_ed25519_key.pub"] == media.host_key_pub.read_bytes()
    assert b"'$WinPEDriver$\\pvpanic\\2k22\\amd64\\*.inf'" in files["provision.ps1"]
    assert b"Expand-Archive" in files["provision.ps1"]
    assert files["lab-identity.ps1"] == boot_script().encode("ascii")  # the per-VM key step
    password = (work / "admin-password").read_text()
    answer = ET.fromstring(files["autounattend.xml"])
    values = [el.text for el in answer.iter("{urn:schemas-microsoft-com:unattend}Value")]
    assert password in values and "Windows Server 2022 SERVERSTANDARD" in values


def test_volume_label_and_joliet(settings: WindowsImageSettings, tmp_path: Path,
                                 ca: Path) -> None:
    media = build_config_media(settings, tmp_path / "work", ca)
    info = subprocess.run(["xorriso", "-no_rc", "-indev", str(media.iso), "-pvd_info"],
                          capture_output=True, text=True, check=True, timeout=60)
    assert f"Volume Id    : {CONFIG_MEDIA_LABEL}" in info.stdout
    joliet = subprocess.run(["xorriso", "-no_rc", "-read_fs", "norock", "-indev",
                             str(media.iso), "-find", "/", "-name", "$WinPEDriver$"],
                            capture_output=True, text=True, check=True, timeout=60)
    assert "'/$WinPEDriver$'" in joliet.stdout  # the name Windows sees (Joliet)


def test_keys_are_private_openssh_ed25519_and_pinned(settings: WindowsImageSettings,
                                                     tmp_path: Path, ca: Path) -> None:
    work = tmp_path / "work"
    media = build_config_media(settings, work, ca)
    for path in (media.ssh_key, work / "ssh_host_ed25519_key", work / "admin-password",
                 media.iso):
        assert stat.S_IMODE(path.stat().st_mode) == 0o600, path
    assert stat.S_IMODE(work.stat().st_mode) == 0o700
    for private in (media.ssh_key, work / "ssh_host_ed25519_key"):
        key = serialization.load_ssh_private_key(private.read_bytes(), password=None)
        line = key.public_key().public_bytes(serialization.Encoding.OpenSSH,
                                             serialization.PublicFormat.OpenSSH)
        pub = private.with_name(private.name + ".pub").read_text()
        assert pub.startswith(line.decode() + " ") and pub.split()[0] == "ssh-ed25519"
    assert media.ssh_key.read_bytes().startswith(b"-----BEGIN OPENSSH PRIVATE KEY-----")


def test_same_workdir_same_digest_new_workdir_new_keys(settings: WindowsImageSettings,
                                                       tmp_path: Path, ca: Path) -> None:
    first = build_config_media(settings, tmp_path / "a", ca)
    again = build_config_media(settings, tmp_path / "a", ca)
    other = build_config_media(settings, tmp_path / "b", ca)
    assert first.digest == again.digest and first.files == again.files
    assert other.digest != first.digest
    assert other.host_key_pub.read_text() != first.host_key_pub.read_text()
    ca.write_bytes(CA + b"changed")
    assert build_config_media(settings, tmp_path / "a", ca).digest != first.digest
    assert sorted(p.name for p in (tmp_path / "a").iterdir()) == sorted(
        ["admin-password", "config-media.iso", "id_ed25519", "id_ed25519.pub",
         "ssh_host_ed25519_key", "ssh_host_ed25519_key.pub"])


def test_without_virtio_win_no_drivers(settings: WindowsImageSettings, tmp_path: Path,
                                       ca: Path) -> None:
    plain = replace(settings, virtio_win=None, disk_bus="sata", openssh_zip=None)
    media = build_config_media(plain, tmp_path / "work", ca)
    assert not any(name.startswith("$WinPEDriver$") for name in media.files)
    files = read_media(media.iso)
    assert b"PnpCustomizationsWinPE" not in files["autounattend.xml"]
    assert b"skipped" in files["provision.ps1"] and "OpenSSH-Win64.zip" not in files


def test_release_without_viostor_fails_and_leaves_no_media(settings: WindowsImageSettings,
                                                           tmp_path: Path, ca: Path) -> None:
    work = tmp_path / "work"
    with pytest.raises(LabFailure) as info:
        build_config_media(replace(settings, windows_version="server2019"), work, ca)
    assert "viostor/2k19/amd64" in info.value.summary and "disk_bus" in str(info.value.hint)
    assert len(info.value.summary.splitlines()) == 1
    assert not (work / "config-media.iso").exists()
    assert not [p for p in work.iterdir() if p.name.startswith(".")]


def test_missing_ca_is_one_line_with_the_fix(settings: WindowsImageSettings,
                                             tmp_path: Path) -> None:
    with pytest.raises(LabFailure) as info:
        build_config_media(settings, tmp_path / "work", tmp_path / "none.cer")
    assert "none.cer" in info.value.summary and "make drivers-windows" in str(info.value.hint)


def test_read_media_of_a_non_iso_fails_clearly(tmp_path: Path) -> None:
    bogus = tmp_path / "bogus.iso"
    bogus.write_bytes(b"\0" * 70000)
    with pytest.raises(LabFailure, match="reading"):
        read_media(bogus)
