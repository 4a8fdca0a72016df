"""Build tier: the Windows driver images, their signatures and the INF catalog."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "drivers" / "windows" / "tools"))

import catalog  # noqa: E402
import winbuild  # noqa: E402

IMAGES = [("wskecho.sys", "wskecho"), ("labtdi.sys", "labtdi"), ("labctl.exe", "labctl")]


@pytest.mark.parametrize(("name", "kind"), IMAGES)
def test_image_passes_pe_checks(windows_build: Path, name: str, kind: str) -> None:
    assert winbuild.check_image(windows_build / name, kind) == []


@pytest.mark.parametrize(("name", "kind"), IMAGES)
def test_image_signature_verifies(windows_build: Path, name: str, kind: str) -> None:
    pki = winbuild.Pki(windows_build / "pki")
    assert "Succeeded" in winbuild.verify(pki, windows_build / name)


def test_driver_imports_only_kernel_modules(windows_build: Path) -> None:
    import pefile  # type: ignore[import-untyped]

    pe = pefile.PE(str(windows_build / "wskecho.sys"))
    dlls = set(winbuild.imports_of(pe))
    pe.close()
    assert dlls == {"ntoskrnl.exe", "netio.sys", "hal.dll"}


def test_tampered_image_fails_verification(windows_build: Path, tmp_path: Path) -> None:
    copy = tmp_path / "wskecho.sys"
    shutil.copy2(windows_build / "wskecho.sys", copy)
    data = bytearray(copy.read_bytes())
    data[0x400 + 0x20] ^= 0xFF  # a byte of .text
    copy.write_bytes(bytes(data))
    with pytest.raises(winbuild.CheckError):
        winbuild.verify(winbuild.Pki(windows_build / "pki"), copy)


def test_check_rejects_writable_executable_section(windows_build: Path, tmp_path: Path) -> None:
    import pefile

    copy = tmp_path / "wskecho.sys"
    shutil.copy2(windows_build / "wskecho.sys", copy)
    pe = pefile.PE(str(copy))
    pe.sections[0].Characteristics |= winbuild.SCN_WRITE
    pe.write(str(copy))
    pe.close()
    problems = winbuild.check_image(copy, "wskecho")
    assert any("writable and executable" in p for p in problems)
    assert any("checksum" in p for p in problems)  # the edit also broke the checksum


def test_catalog_lists_the_package_with_correct_hashes(windows_build: Path) -> None:
    cat = (windows_build / "labtdi.cat").read_bytes()
    members = catalog.members_of(cat)
    assert set(members) == {"labtdi.inf", "labtdi.sys"}
    for name, digest in members.items():
        assert digest == catalog.member_hash(windows_build / name)[0]


def test_catalog_rejects_a_changed_inf(windows_build: Path, tmp_path: Path) -> None:
    inf = tmp_path / "labtdi.inf"
    inf.write_bytes((windows_build / "labtdi.inf").read_bytes() + b"; changed\r\n")
    with pytest.raises(ValueError, match="does not match"):
        catalog.check_member((windows_build / "labtdi.cat").read_bytes(), inf)


def test_catalog_signature_and_membership_verify_with_osslsigncode(windows_build: Path) -> None:
    pki = winbuild.Pki(windows_build / "pki")
    winbuild.verify(pki, windows_build / "labtdi.cat")
    winbuild.verify(pki, windows_build / "labtdi.sys", catalog_file=windows_build / "labtdi.cat")
    with pytest.raises(winbuild.CheckError):  # not a package member
        winbuild.verify(
            pki, windows_build / "wskecho.sys", catalog_file=windows_build / "labtdi.cat"
        )


def test_test_ca_public_cert_is_a_ca_and_signs_the_leaf(windows_build: Path) -> None:
    from cryptography import x509

    pki = winbuild.Pki(windows_build / "pki")
    ca = x509.load_der_x509_certificate(pki.ca_cer.read_bytes())
    assert ca.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    leaf = x509.load_pem_x509_certificates(pki.sign_pem.read_bytes())[0]
    leaf.verify_directly_issued_by(ca)
    eku = leaf.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    assert x509.oid.ExtendedKeyUsageOID.CODE_SIGNING in eku
    assert (pki.ca_key.stat().st_mode & 0o077) == 0  # private keys stay private


def test_no_generated_key_is_tracked_by_git() -> None:
    r = subprocess.run(
        ["git", "-C", str(ROOT), "ls-files", "*.key", "*.pfx", "*.sys", "*.cat"],
        capture_output=True,
        text=True,
        timeout=30,
        check=True,
    )
    assert r.stdout.strip() == ""


# ---- labtdi.inf: where the binary goes, per Windows build -------------------------


def _inf_sections(text: str) -> dict[str, list[str]]:
    """INF sections (lower-case names) -> their non-comment lines."""
    sections: dict[str, list[str]] = {}
    current: list[str] = []
    for raw in text.splitlines():
        line = raw.split(";", 1)[0].strip()
        if line.startswith("[") and line.endswith("]"):
            current = sections.setdefault(line[1:-1].strip().lower(), [])
        elif line:
            current.append(line)
    return sections


def _value(lines: list[str], key: str) -> str:
    return next(v.strip() for k, _, v in (ln.partition("=") for ln in lines)
                if k.strip().lower() == key.lower())


@pytest.mark.parametrize(("models", "dirid"), [
    pytest.param("driverlab.ntamd64.10.0...25292", "13", id="build-25292-and-later-driver-store"),
    pytest.param("driverlab.ntamd64", "12", id="earlier-builds-system32-drivers"),
])
def test_inf_installs_the_binary_where_the_build_runs_it(windows_build: Path, models: str,
                                                        dirid: str) -> None:
    inf = _inf_sections((windows_build / "labtdi.inf").read_text())
    manufacturer = _value(inf["manufacturer"], "%ManufacturerName%")
    assert [m.strip() for m in manufacturer.split(",")] == [
        "DriverLab", "NTamd64.10.0...25292", "NTamd64"]
    install = _value(inf[models], "%LabTdi.DeviceDesc%").split(",")[0].strip()
    copy = _value(inf[install.lower()], "CopyFiles")
    assert _value(inf["destinationdirs"], copy) == dirid
    service = _value(inf[f"{install.lower()}.services"], "AddService").split(",")[2].strip()
    assert _value(inf[service.lower()], "ServiceBinary") == f"%{dirid}%\\labtdi.sys"
    assert f"{install.lower()}.remove.services" in inf


def test_inf_has_no_notify_object_clsid(windows_build: Path) -> None:
    assert "clsid" not in (windows_build / "labtdi.inf").read_text().lower()
