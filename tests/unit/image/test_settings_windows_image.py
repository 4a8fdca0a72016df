"""[windows_image] and settings_from(): typed settings, one line (file, key, fix) per bad input."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from lab import config as config_mod
from lab.config import load_config
from lab.errors import ConfigError, LabFailure
from lab.image.settings import check_installer_iso, release_of, settings_from

needs_xorriso = pytest.mark.skipif(shutil.which("xorriso") is None,
                                   reason="xorriso is not installed (make setup)")


def make_iso(root: Path, files: dict[str, bytes], out: Path, label: str = "TEST") -> Path:
    for name, data in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
    subprocess.run(["xorriso", "-no_rc", "-as", "mkisofs", "-quiet", "-o", str(out), "-V", label,
                    "-J", "-r", str(root)], check=True, capture_output=True, timeout=120)
    return out


def fake_iso(path: Path) -> Path:
    """Enough of an ISO 9660 image for the signature check: CD001 at sector 16, byte 1."""
    data = bytearray(18 * 2048)
    data[16 * 2048 + 1:16 * 2048 + 6] = b"CD001"
    path.write_bytes(bytes(data))
    return path


def _config(tmp_path: Path, body: str) -> Path:
    path = tmp_path / "lab.toml"
    path.write_text("[windows_image]\n" + body)
    return path


def test_explain_prints_every_windows_image_key() -> None:
    text = config_mod.explain()
    assert "[windows_image]" in text
    for key in ("iso", "virtio_win", "edition", "version", "locale", "admin_user", "product_key",
                "openssh_zip", "disk_size_gib", "disk_bus", "tpm", "install_timeout_s",
                "echo_port"):
        assert f"\n{key} = " in text.split("\n[windows_image]")[1]


def test_config_values_become_settings(tmp_path: Path) -> None:
    fake_iso(tmp_path / "win.iso")
    fake_iso(tmp_path / "virtio.iso")
    (tmp_path / "ssh.zip").write_bytes(b"PK\x03\x04rest")
    cfg = load_config(_config(tmp_path, "iso = 'win.iso'\nvirtio_win = 'virtio.iso'\n"
                                        "edition = '2'\nversion = '11'\nlocale = 'de-DE'\n"
                                        "admin_user = 'labadmin'\nopenssh_zip = 'ssh.zip'\n"
                                        "disk_bus = 'virtio'\necho_port = 9000\n"))
    s = settings_from(cfg)
    assert s.iso == tmp_path / "win.iso" and s.virtio_win == tmp_path / "virtio.iso"
    assert (s.edition, s.edition_index, s.windows_version) == ("2", 2, "11")
    assert (s.locale, s.admin_user, s.disk_bus, s.echo_port) == ("de-DE", "labadmin", "virtio",
                                                                 9000)
    assert s.openssh_zip == tmp_path / "ssh.zip"
    assert (s.tpm, s.disk_size_gib, s.install_timeout_s, s.product_key) == (False, 64, 7200, "")


def test_cli_overrides_config_and_edition_names_its_release(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    fake_iso(tmp_path / "cfg.iso")
    cli_iso = fake_iso(tmp_path / "cli.iso")
    cfg = load_config(_config(tmp_path, "iso = 'cfg.iso'\n"))
    monkeypatch.chdir(tmp_path)
    s = settings_from(cfg, iso="cli.iso", edition="Windows 11 Pro")
    assert s.iso == cli_iso and s.edition == "Windows 11 Pro" and s.windows_version == "11"
    assert s.edition_index is None and s.virtio_win is None
    assert release_of("Windows Server 2019 SERVERDATACENTER") == "server2019"
    assert release_of("3") is None


BAD_CONFIG = [
    ("locale = 'english'\n", "windows_image.locale", "en-US"),
    ("disk_bus = 'ide'\n", "windows_image.disk_bus", "sata"),
    ("version = '7'\n", "windows_image.version", "server2022"),
    ("edition = ''\n", "windows_image.edition", "index"),
    ("product_key = 'abc'\n", "windows_image.product_key", "XXXXX-"),
    ("tpm = 'yes'\n", "windows_image.tpm", "tpm = true"),
    ("disk_size_gib = 8\n", "windows_image.disk_size_gib", "between 32"),
    ("echo_port = 70000\n", "windows_image.echo_port", "65535"),
    ("admin_user = 'a b'\n", "windows_image.admin_user", "Administrator"),
]


@pytest.mark.parametrize(("body", "key", "fix"), BAD_CONFIG)
def test_bad_keys_name_file_key_and_fix(tmp_path: Path, body: str, key: str, fix: str) -> None:
    path = _config(tmp_path, body)
    with pytest.raises(ConfigError) as info:
        load_config(path)
    assert info.value.key == key and str(path) in info.value.summary and fix in str(info.value)
    assert len(info.value.summary.splitlines()) == 1


def _settings_error(tmp_path: Path, body: str, **cli: str) -> LabFailure:
    fake_iso(tmp_path / "win.iso")
    cfg = load_config(_config(tmp_path, body))
    with pytest.raises(LabFailure) as info:
        settings_from(cfg, **cli)
    assert len(info.value.summary.splitlines()) == 1 and info.value.hint
    return info.value


def test_no_iso_at_all(tmp_path: Path) -> None:
    err = _settings_error(tmp_path, "")
    assert isinstance(err, ConfigError) and err.key == "windows_image.iso"
    assert "--iso" in str(err)


def test_missing_iso_in_config_names_the_key(tmp_path: Path) -> None:
    err = _settings_error(tmp_path, "iso = 'nope.iso'\n")
    assert isinstance(err, ConfigError) and err.key == "windows_image.iso"
    assert "'nope.iso' does not exist" in err.summary


def test_missing_iso_on_the_command_line_names_the_flag(tmp_path: Path) -> None:
    err = _settings_error(tmp_path, "", iso=str(tmp_path / "gone.iso"))
    assert not isinstance(err, ConfigError)
    assert err.summary.startswith("--iso ") and "does not exist" in err.summary


def test_a_folder_or_a_non_iso_is_refused(tmp_path: Path) -> None:
    (tmp_path / "dir.iso").mkdir()
    assert "is not a file" in _settings_error(tmp_path, "iso = 'dir.iso'\n").summary
    (tmp_path / "text.iso").write_text("hello" * 10000)
    err = _settings_error(tmp_path, "", iso=str(tmp_path / "text.iso"))
    assert "is not an ISO 9660 image" in err.summary


def test_virtio_bus_needs_virtio_win(tmp_path: Path) -> None:
    err = _settings_error(tmp_path, "iso = 'win.iso'\ndisk_bus = 'virtio'\n")
    assert isinstance(err, ConfigError) and err.key == "windows_image.disk_bus"
    assert "--virtio-win" in str(err)


def test_virtio_win_that_is_not_an_iso(tmp_path: Path) -> None:
    (tmp_path / "v.iso").write_bytes(b"x" * 40000)
    err = _settings_error(tmp_path, "iso = 'win.iso'\n", virtio_win=str(tmp_path / "v.iso"))
    assert err.summary.startswith("--virtio-win ") and "virtio-win" in str(err.hint)


def test_openssh_zip_must_be_a_zip(tmp_path: Path) -> None:
    (tmp_path / "ssh.zip").write_text("not a zip")
    err = _settings_error(tmp_path, "iso = 'win.iso'\nopenssh_zip = 'ssh.zip'\n")
    assert isinstance(err, ConfigError) and err.key == "windows_image.openssh_zip"


def test_tpm_without_swtpm(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(shutil, "which", lambda name: None)
    err = _settings_error(tmp_path, "iso = 'win.iso'\ntpm = true\n")
    assert isinstance(err, ConfigError) and err.key == "windows_image.tpm"
    assert "swtpm" in str(err)


def test_edition_zero_from_the_command_line(tmp_path: Path) -> None:
    err = _settings_error(tmp_path, "iso = 'win.iso'\n", edition="0")
    assert err.summary.startswith("--edition ")


@needs_xorriso
def test_installer_iso_contents_are_checked(tmp_path: Path) -> None:
    good = make_iso(tmp_path / "g", {"sources/install.wim": b"w", "efi/boot/bootx64.efi": b"e"},
                    tmp_path / "good.iso")
    assert check_installer_iso(good) is True
    arm = make_iso(tmp_path / "a", {"sources/install.wim": b"w", "efi/boot/bootaa64.efi": b"e"},
                   tmp_path / "arm.iso")
    with pytest.raises(LabFailure, match="wrong architecture"):
        check_installer_iso(arm)
    other = make_iso(tmp_path / "o", {"README.TXT": b"r"}, tmp_path / "other.iso")
    with pytest.raises(LabFailure, match="not a Windows installer"):
        check_installer_iso(other)
