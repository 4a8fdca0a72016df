"""Post-link steps for Driver Lab's Windows drivers: PE fix-up and checks, the lab
test CA, Authenticode signing with osslsigncode, and the INF package catalog.

Run with the venv python (see drivers/windows.mk):

    winbuild.py fixup <image>           write the correct PE checksum
    winbuild.py check <image> <kind>    pefile checks (kind: wskecho, labtdi, labctl)
    winbuild.py all --out DIR           check + CA + sign + verify + catalog for DIR

Nothing here talks to the network; the CA is generated locally and never committed.
"""

from __future__ import annotations

import argparse
import datetime as dt
import hashlib
import json
import os
import shutil
import subprocess
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import pefile  # type: ignore[import-untyped]
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

sys.path.insert(0, str(Path(__file__).resolve().parent))
import catalog

KERNEL_DLLS = frozenset({"ntoskrnl.exe", "hal.dll", "netio.sys", "ndis.sys", "tdi.sys"})
USER_DLLS = frozenset({"kernel32.dll", "advapi32.dll", "msvcrt.dll"})
SUBSYSTEM_NATIVE = 1
SUBSYSTEM_CONSOLE = 3
DYNAMIC_BASE = 0x0040
NX_COMPAT = 0x0100
SCN_EXECUTE = 0x20000000
RELOCS_STRIPPED = 0x0001
SCN_WRITE = 0x80000000
OSSL_TIMEOUT = 60


@dataclass(frozen=True)
class Contract:
    """What one image must look like."""

    kind: str
    subsystem: int
    allowed_dlls: frozenset[str]
    required_imports: frozenset[str]


CONTRACTS = {
    "wskecho": Contract(
        "wskecho",
        SUBSYSTEM_NATIVE,
        KERNEL_DLLS,
        frozenset(
            {
                "WskRegister",
                "WskDeregister",
                "WskCaptureProviderNPI",
                "WskReleaseProviderNPI",
                "IoCreateDevice",
                "PsCreateSystemThread",
            }
        ),
    ),
    "labtdi": Contract(
        "labtdi",
        SUBSYSTEM_NATIVE,
        KERNEL_DLLS,
        frozenset(
            {
                "NdisRegisterProtocolDriver",
                "NdisDeregisterProtocolDriver",
                "NdisOpenAdapterEx",
                "NdisCloseAdapterEx",
                "TdiRegisterProvider",
                "TdiDeregisterProvider",
                "TdiRegisterDeviceObject",
                "TdiDeregisterDeviceObject",
                "TdiRegisterNetAddress",
                "TdiDeregisterNetAddress",
                "TdiProviderReady",
                "TdiPnPPowerRequest",
                "IoCreateDevice",
            }
        ),
    ),
    "labctl": Contract(
        "labctl",
        SUBSYSTEM_CONSOLE,
        USER_DLLS,
        frozenset({"DeviceIoControl", "RegSetValueExA", "CreateFileA"}),
    ),
}


class CheckError(Exception):
    """An image, signature or catalog failed a check."""


# ---------------------------------------------------------------- PE


def fixup(image: Path) -> None:
    """Writes the correct PE checksum (the linker leaves it zero)."""
    pe = pefile.PE(str(image))
    pe.OPTIONAL_HEADER.CheckSum = pe.generate_checksum()
    data = pe.write()
    pe.close()
    image.write_bytes(bytes(data))


def imports_of(pe: pefile.PE) -> dict[str, set[str]]:
    out: dict[str, set[str]] = {}
    for entry in getattr(pe, "DIRECTORY_ENTRY_IMPORT", []):
        dll = entry.dll.decode().lower()
        names = {imp.name.decode() for imp in entry.imports if imp.name}
        out.setdefault(dll, set()).update(names)
    return out


def check_image(image: Path, kind: str) -> list[str]:
    """Returns the list of problems with `image` (empty means it passed)."""
    contract = CONTRACTS[kind]
    pe = pefile.PE(str(image))
    try:
        return _problems(pe, contract)
    finally:
        pe.close()


def _problems(pe: pefile.PE, c: Contract) -> list[str]:
    p: list[str] = []
    oh = pe.OPTIONAL_HEADER
    if pe.FILE_HEADER.Machine != pefile.MACHINE_TYPE["IMAGE_FILE_MACHINE_AMD64"]:
        p.append(f"machine {pe.FILE_HEADER.Machine:#x} is not AMD64")
    if oh.Subsystem != c.subsystem:
        p.append(f"subsystem {oh.Subsystem} != {c.subsystem}")
    if not oh.DllCharacteristics & DYNAMIC_BASE:
        p.append("DYNAMIC_BASE not set")
    if not oh.DllCharacteristics & NX_COMPAT:
        p.append("NX_COMPAT not set")
    # A driver is loaded at any address: relocations must not be stripped. (An image
    # whose code is fully RIP-relative legitimately has an empty .reloc.)
    if pe.FILE_HEADER.Characteristics & RELOCS_STRIPPED:
        p.append("relocations stripped (a driver must be relocatable)")
    if oh.CheckSum != pe.generate_checksum():
        p.append(f"PE checksum {oh.CheckSum:#x} != {pe.generate_checksum():#x}")
    for s in pe.sections:
        if s.Characteristics & SCN_EXECUTE and s.Characteristics & SCN_WRITE:
            name = s.Name.rstrip(b"\0").decode()
            p.append(f"section {name} is writable and executable")
    entry = oh.AddressOfEntryPoint
    text = [s for s in pe.sections if s.Characteristics & SCN_EXECUTE]
    if not any(s.VirtualAddress <= entry < s.VirtualAddress + s.Misc_VirtualSize for s in text):
        p.append(f"entry point {entry:#x} is not in an executable section")
    imports = imports_of(pe)
    for dll in sorted(set(imports) - c.allowed_dlls):
        p.append(f"imports from {dll} (allowed: {', '.join(sorted(c.allowed_dlls))})")
    have = set().union(*imports.values()) if imports else set()
    for name in sorted(c.required_imports - have):
        p.append(f"required import {name} missing")
    return p


# ---------------------------------------------------------------- CA


@dataclass(frozen=True)
class Pki:
    """Paths of the lab test CA and its code-signing certificate."""

    root: Path

    @property
    def ca_key(self) -> Path:
        return self.root / "lab-test-ca.key"

    @property
    def ca_pem(self) -> Path:
        return self.root / "lab-test-ca.pem"

    @property
    def ca_cer(self) -> Path:
        """DER form for the golden image (Import-Certificate / certutil -addstore)."""
        return self.root / "lab-test-ca.cer"

    @property
    def sign_key(self) -> Path:
        return self.root / "lab-codesign.key"

    @property
    def sign_pem(self) -> Path:
        return self.root / "lab-codesign.pem"


def _name(cn: str) -> x509.Name:
    return x509.Name(
        [
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "Driver Lab (test only)"),
            x509.NameAttribute(NameOID.COMMON_NAME, cn),
        ]
    )


def _write_key(path: Path, key: rsa.RSAPrivateKey) -> None:
    pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(pem)


def ensure_pki(root: Path) -> Pki:
    """Creates the lab test CA and a code-signing leaf once per build tree."""
    pki = Pki(root)
    if all(p.exists() for p in (pki.ca_key, pki.ca_pem, pki.ca_cer, pki.sign_key, pki.sign_pem)):
        return pki
    root.mkdir(parents=True, exist_ok=True)
    now = dt.datetime.now(dt.UTC) - dt.timedelta(days=1)
    ca_key = rsa.generate_private_key(public_exponent=65537, key_size=3072)
    ca = (
        x509.CertificateBuilder()
        .subject_name(_name("Driver Lab Test Root CA"))
        .issuer_name(_name("Driver Lab Test Root CA"))
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now)
        .not_valid_after(now + dt.timedelta(days=3650))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(False, False, False, False, False, True, True, False, False),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), False)
        .sign(ca_key, hashes.SHA256())
    )
    leaf_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    leaf = (
        x509.CertificateBuilder()
        .subject_name(_name("Driver Lab Test Code Signing"))
        .issuer_name(ca.subject)
        .public_key(leaf_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now)
        .not_valid_after(now + dt.timedelta(days=825))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(True, False, False, False, False, False, False, False, False),
            critical=True,
        )
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CODE_SIGNING]), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), False
        )
        .sign(ca_key, hashes.SHA256())
    )
    _write_key(pki.ca_key, ca_key)
    _write_key(pki.sign_key, leaf_key)
    pki.ca_pem.write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    pki.ca_cer.write_bytes(ca.public_bytes(serialization.Encoding.DER))
    pki.sign_pem.write_bytes(
        leaf.public_bytes(serialization.Encoding.PEM) + ca.public_bytes(serialization.Encoding.PEM)
    )
    return pki


# ---------------------------------------------------------------- signing


def _run(cmd: Sequence[str]) -> str:
    try:
        r = subprocess.run(
            list(cmd), capture_output=True, text=True, timeout=OSSL_TIMEOUT, check=False
        )
    except subprocess.TimeoutExpired as e:
        raise CheckError(f"{cmd[0]} timed out after {OSSL_TIMEOUT}s") from e
    if r.returncode != 0:
        raise CheckError(f"{' '.join(cmd)} failed ({r.returncode}):\n{r.stdout}{r.stderr}")
    return r.stdout + r.stderr


def sign(pki: Pki, path: Path, description: str) -> None:
    """Authenticode-signs `path` in place (SHA-256, no timestamp: no network)."""
    out = path.with_name(path.name + ".signing")
    out.unlink(missing_ok=True)
    _run(
        [
            "osslsigncode",
            "sign",
            "-certs",
            str(pki.sign_pem),
            "-key",
            str(pki.sign_key),
            "-h",
            "sha256",
            "-n",
            description,
            "-in",
            str(path),
            "-out",
            str(out),
        ]
    )
    out.replace(path)


def _supports(option: str) -> bool:
    r = subprocess.run(
        ["osslsigncode", "verify", "--help"],
        capture_output=True,
        text=True,
        timeout=OSSL_TIMEOUT,
        check=False,
    )
    return option in r.stdout + r.stderr


def verify(pki: Pki, path: Path, catalog_file: Path | None = None) -> str:
    cmd = ["osslsigncode", "verify", "-CAfile", str(pki.ca_pem)]
    if _supports("-ignore-crl"):  # osslsigncode >= 2.6; older ones do not fetch CRLs anyway
        cmd.append("-ignore-crl")
    if catalog_file is not None:
        cmd += ["-catalog", str(catalog_file)]
    out = _run([*cmd, "-in", str(path)])
    if "Succeeded" not in out:
        raise CheckError(f"osslsigncode did not report success for {path}:\n{out}")
    return out


def is_signed(path: Path) -> bool:
    pe = pefile.PE(str(path), fast_load=True)
    try:
        sec = pe.OPTIONAL_HEADER.DATA_DIRECTORY[
            pefile.DIRECTORY_ENTRY["IMAGE_DIRECTORY_ENTRY_SECURITY"]
        ]
        return bool(sec.Size)
    finally:
        pe.close()


# ---------------------------------------------------------------- all


IMAGES = (("wskecho.sys", "wskecho"), ("labtdi.sys", "labtdi"), ("labctl.exe", "labctl"))


def build_all(out: Path) -> dict[str, object]:
    pki = ensure_pki(out / "pki")
    report: dict[str, object] = {"ca_cert": str(pki.ca_cer), "ca_pem": str(pki.ca_pem)}
    for name, kind in IMAGES:
        path = out / name
        if not path.exists():
            raise CheckError(f"{path} was not built")
        problems = check_image(path, kind)
        if problems:
            raise CheckError(f"{name}: " + "; ".join(problems))
        if not is_signed(path):
            sign(pki, path, f"Driver Lab {kind}")
        verify(pki, path)
        problems = check_image(path, kind)  # the signed image must still pass
        if problems:
            raise CheckError(f"{name} after signing: " + "; ".join(problems))
        report[name] = hashlib.sha256(path.read_bytes()).hexdigest()
    # The INF package: labtdi.inf + labtdi.sys, listed in labtdi.cat.
    cat = out / "labtdi.cat"
    members = [out / "labtdi.inf", out / "labtdi.sys"]
    unsigned = out / "labtdi.cat.unsigned"
    unsigned.write_bytes(catalog.build_catalog(members))
    sign(pki, unsigned, "Driver Lab labtdi package")
    unsigned.replace(cat)
    verify(pki, cat)
    for member in members:
        try:
            catalog.check_member(cat.read_bytes(), member)
        except ValueError as e:
            raise CheckError(f"catalog {cat}: {e}") from e
        if member.suffix == ".sys":
            verify(pki, member, catalog_file=cat)  # osslsigncode's own catalog lookup
    report["labtdi.cat"] = hashlib.sha256(cat.read_bytes()).hexdigest()
    (out / "BUILD.json").write_text(json.dumps(report, indent=2) + "\n")
    return report


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    sub = ap.add_subparsers(dest="cmd", required=True)
    a = sub.add_parser("fixup")
    a.add_argument("image", type=Path)
    a = sub.add_parser("check")
    a.add_argument("image", type=Path)
    a.add_argument("kind", choices=sorted(CONTRACTS))
    a = sub.add_parser("all")
    a.add_argument("--out", type=Path, required=True)
    args = ap.parse_args(argv)
    try:
        if args.cmd == "fixup":
            fixup(args.image)
        elif args.cmd == "check":
            problems = check_image(args.image, args.kind)
            for prob in problems:
                print(f"{args.image}: {prob}", file=sys.stderr)
            return 1 if problems else 0
        else:
            if shutil.which("osslsigncode") is None:
                raise CheckError("osslsigncode is not installed (make setup)")
            report = build_all(args.out)
            for k, v in report.items():
                print(f"  {k}: {v}")
            print(f"windows drivers: built, checked, signed and verified in {args.out}")
    except CheckError as e:
        print(f"winbuild: FAILED: {e}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
