"""Builds and checks the security catalog (.cat) of the labtdi INF package.

A catalog is a PKCS#7 SignedData whose content (type szOID_CTL) is a Certificate
Trust List: one TrustedSubject per package file, identified by the hex of the file's
hash, carrying the file name (CAT_NAMEVALUE "File"), the member info GUID and an
SpcIndirectDataContent with the hash (the Authenticode PE hash for images, the plain
file hash for flat files such as the INF). The structures below are written from the
public Authenticode / catalog format descriptions; the encoding is done by asn1crypto.

`build_catalog` returns the *unsigned* SignedData (no signer); osslsigncode then signs
it (see winbuild.py), which keeps the CTL content and adds the SHA-256 signature.
"""

# asn1crypto declares structures with class-level `_fields` lists (its API), hence:
# ruff: noqa: RUF012
from __future__ import annotations

import datetime as dt
import hashlib
import struct
from pathlib import Path

from asn1crypto import algos, core  # type: ignore[import-untyped]

OID_CTL = "1.3.6.1.4.1.311.10.1"
OID_SIGNED_DATA = "1.2.840.113549.1.7.2"
OID_CATALOG_LIST = "1.3.6.1.4.1.311.12.1.1"
OID_CATALOG_LIST_MEMBER = "1.3.6.1.4.1.311.12.1.2"
OID_CAT_NAMEVALUE = "1.3.6.1.4.1.311.12.2.1"
OID_CAT_MEMBERINFO = "1.3.6.1.4.1.311.12.2.2"
OID_SPC_INDIRECT_DATA = "1.3.6.1.4.1.311.2.1.4"
OID_SPC_PE_IMAGE_DATA = "1.3.6.1.4.1.311.2.1.15"
OID_SPC_CAB_DATA = "1.3.6.1.4.1.311.2.1.25"  # used by catalogs for flat files
GUID_PE = "{C689AAB8-8E78-11D0-8C47-00C04FC295EE}"
GUID_FLAT = "{DE351A42-8E59-11D0-8C47-00C04FC295EE}"
NAMEVALUE_FLAGS = 0x10010001  # CRYPTCAT_ATTR_NAMEASCII | DATAASCII | AUTHENTICATED
OS_ATTR = "2:6.1,2:6.2,2:6.3,2:10.0"


class SpcString(core.Choice):  # type: ignore[misc]
    _alternatives = [
        ("unicode", core.BMPString, {"implicit": 0}),
        ("ascii", core.IA5String, {"implicit": 1}),
    ]


class SpcLink(core.Choice):  # type: ignore[misc]
    _alternatives = [
        ("url", core.IA5String, {"implicit": 0}),
        ("moniker", core.Any, {"implicit": 1}),
        ("file", SpcString, {"explicit": 2}),
    ]


class SpcPeImageData(core.Sequence):  # type: ignore[misc]
    _fields = [
        ("flags", core.BitString),
        ("file", SpcLink, {"explicit": 0, "optional": True}),
    ]


class SpcAttributeTypeAndOptionalValue(core.Sequence):  # type: ignore[misc]
    _fields = [("type", core.ObjectIdentifier), ("value", core.Any, {"optional": True})]


class DigestInfo(core.Sequence):  # type: ignore[misc]
    _fields = [("digest_algorithm", algos.DigestAlgorithm), ("digest", core.OctetString)]


class SpcIndirectDataContent(core.Sequence):  # type: ignore[misc]
    _fields = [("data", SpcAttributeTypeAndOptionalValue), ("message_digest", DigestInfo)]


class CatNameValue(core.Sequence):  # type: ignore[misc]
    _fields = [("tag", core.BMPString), ("flags", core.Integer), ("value", core.OctetString)]


class CatMemberInfo(core.Sequence):  # type: ignore[misc]
    _fields = [("guid", core.BMPString), ("cert_version", core.Integer)]


class AnySet(core.SetOf):  # type: ignore[misc]
    _child_spec = core.Any


class CtlAttribute(core.Sequence):  # type: ignore[misc]
    _fields = [("type", core.ObjectIdentifier), ("values", AnySet)]


class CtlAttributes(core.SetOf):  # type: ignore[misc]
    _child_spec = CtlAttribute


class TrustedSubject(core.Sequence):  # type: ignore[misc]
    _fields = [
        ("identifier", core.OctetString),
        ("attributes", CtlAttributes, {"optional": True}),
    ]


class TrustedSubjects(core.SequenceOf):  # type: ignore[misc]
    _child_spec = TrustedSubject


class OidSequence(core.SequenceOf):  # type: ignore[misc]
    _child_spec = core.ObjectIdentifier


class AlgorithmIdentifier(core.Sequence):  # type: ignore[misc]
    _fields = [("algorithm", core.ObjectIdentifier), ("parameters", core.Any, {"optional": True})]


class CtlExtension(core.Sequence):  # type: ignore[misc]
    _fields = [
        ("extn_id", core.ObjectIdentifier),
        ("critical", core.Boolean, {"default": False}),
        ("extn_value", core.OctetString),
    ]


class CtlExtensions(core.SequenceOf):  # type: ignore[misc]
    _child_spec = CtlExtension


class CertificateTrustList(core.Sequence):  # type: ignore[misc]
    _fields = [
        ("subject_usage", OidSequence),
        ("list_identifier", core.OctetString, {"optional": True}),
        ("sequence_number", core.Integer, {"optional": True}),
        ("this_update", core.UTCTime),
        ("next_update", core.UTCTime, {"optional": True}),
        ("subject_algorithm", AlgorithmIdentifier),
        ("trusted_subjects", TrustedSubjects, {"optional": True}),
        ("extensions", CtlExtensions, {"explicit": 0, "optional": True}),
    ]


# ---------------------------------------------------------------- hashes


def authenticode_pe_hash(data: bytes) -> bytes:
    """SHA-256 Authenticode hash of a PE image: the whole file except the checksum
    field, the certificate-table directory entry and the certificate table itself."""
    pe_off = struct.unpack_from("<I", data, 0x3C)[0]
    opt = pe_off + 24
    magic = struct.unpack_from("<H", data, opt)[0]
    if magic != 0x20B:
        raise ValueError("not a PE32+ image")
    checksum_off = opt + 64
    certdir_off = opt + 112 + 4 * 8  # data directory 4 (security) in a PE32+ header
    cert_rva, cert_size = struct.unpack_from("<II", data, certdir_off)
    end = cert_rva if cert_size else len(data)  # the security entry holds a file offset
    h = hashlib.sha256()
    h.update(data[:checksum_off])
    h.update(data[checksum_off + 4 : certdir_off])
    h.update(data[certdir_off + 8 : end])
    if cert_size:
        h.update(data[cert_rva + cert_size :])
    return h.digest()


def member_hash(path: Path) -> tuple[bytes, bool]:
    """(hash, is_pe) for a package member."""
    data = path.read_bytes()
    if data[:2] == b"MZ":
        return authenticode_pe_hash(data), True
    return hashlib.sha256(data).digest(), False


# ---------------------------------------------------------------- build


def _attr(oid: str, value: core.Asn1Value) -> CtlAttribute:
    return CtlAttribute({"type": oid, "values": [core.Any.load(value.dump())]})


def _name_value(tag: str, text: str) -> CatNameValue:
    return CatNameValue(
        {"tag": tag, "flags": NAMEVALUE_FLAGS, "value": (text + "\0").encode("utf-16-le")}
    )


def _subject(path: Path) -> TrustedSubject:
    digest, is_pe = member_hash(path)
    obsolete = SpcLink(name="file", value=SpcString(name="unicode", value="<<<Obsolete>>>"))
    if is_pe:
        data = SpcAttributeTypeAndOptionalValue(
            {
                "type": OID_SPC_PE_IMAGE_DATA,
                "value": core.Any.load(
                    SpcPeImageData({"flags": core.BitString(()), "file": obsolete}).dump()
                ),
            }
        )
    else:
        data = SpcAttributeTypeAndOptionalValue(
            {"type": OID_SPC_CAB_DATA, "value": core.Any.load(obsolete.dump())}
        )
    indirect = SpcIndirectDataContent(
        {
            "data": data,
            "message_digest": DigestInfo(
                {"digest_algorithm": {"algorithm": "sha256", "parameters": None}, "digest": digest}
            ),
        }
    )
    info = CatMemberInfo({"guid": GUID_PE if is_pe else GUID_FLAT, "cert_version": 512})
    return TrustedSubject(
        {
            "identifier": digest.hex().upper().encode("utf-16-le"),
            "attributes": [
                _attr(OID_CAT_NAMEVALUE, _name_value("File", path.name)),
                _attr(OID_CAT_MEMBERINFO, info),
                _attr(OID_SPC_INDIRECT_DATA, indirect),
            ],
        }
    )


def build_ctl(members: list[Path], now: dt.datetime | None = None) -> CertificateTrustList:
    when = now or dt.datetime.now(dt.UTC)
    list_id = hashlib.sha256(b"".join(member_hash(m)[0] for m in members)).digest()[:16]
    return CertificateTrustList(
        {
            "subject_usage": [OID_CATALOG_LIST],
            "list_identifier": list_id,
            "this_update": when.replace(microsecond=0),
            "subject_algorithm": {"algorithm": OID_CATALOG_LIST_MEMBER, "parameters": core.Null()},
            "trusted_subjects": [_subject(m) for m in sorted(members, key=lambda p: p.name)],
            "extensions": [
                {
                    "extn_id": OID_CAT_NAMEVALUE,
                    "extn_value": _name_value("OSAttr", OS_ATTR).dump(),
                }
            ],
        }
    )


class ContentInfo(core.Sequence):  # type: ignore[misc]
    """PKCS#7 ContentInfo; `content` holds the whole [0] EXPLICIT wrapper (see _explicit0)."""

    _fields = [
        ("content_type", core.ObjectIdentifier),
        ("content", core.Any, {"optional": True}),
    ]


def _explicit0(value: core.Asn1Value) -> core.Asn1Value:
    """The same value with [0] EXPLICIT tagging (PKCS#7 content fields)."""
    return value.retag({"explicit": 0})


def _unwrap0(value: core.Any) -> bytes:
    header = bytes(value._header or b"")  # asn1crypto parses Any lazily; read its tag byte
    if not header or header[0] != 0xA0:
        raise ValueError("expected a [0] EXPLICIT content")
    inner: bytes = value.contents
    return inner


class AlgorithmSet(core.SetOf):  # type: ignore[misc]
    _child_spec = AlgorithmIdentifier


class SignedData(core.Sequence):  # type: ignore[misc]
    """PKCS#7 SignedData; certificates/CRLs/signers stay opaque here."""

    _fields = [
        ("version", core.Integer),
        ("digest_algorithms", AlgorithmSet),
        ("content_info", ContentInfo),
        ("certificates", AnySet, {"implicit": 0, "optional": True}),
        ("crls", AnySet, {"implicit": 1, "optional": True}),
        ("signer_infos", AnySet),
    ]


def build_catalog(members: list[Path]) -> bytes:
    """DER of an unsigned PKCS#7 SignedData carrying the CTL of `members`."""
    ctl = build_ctl(members)
    signed = SignedData(
        {
            "version": 1,
            "digest_algorithms": [
                {"algorithm": "2.16.840.1.101.3.4.2.1", "parameters": core.Null()}
            ],
            "content_info": {"content_type": OID_CTL, "content": _explicit0(ctl)},
            "signer_infos": [],
        }
    )
    info = ContentInfo({"content_type": OID_SIGNED_DATA, "content": _explicit0(signed)})
    der: bytes = info.dump()
    return der


# ---------------------------------------------------------------- check


def parse_ctl(cat: bytes) -> CertificateTrustList:
    info = ContentInfo.load(cat)
    if info["content_type"].dotted != OID_SIGNED_DATA:
        raise ValueError("catalog is not a PKCS#7 SignedData")
    signed = SignedData.load(_unwrap0(info["content"]))
    eci = signed["content_info"]
    if eci["content_type"].dotted != OID_CTL:
        raise ValueError(f"catalog content type {eci['content_type'].dotted} is not szOID_CTL")
    ctl: CertificateTrustList = CertificateTrustList.load(_unwrap0(eci["content"]))
    if len(signed["signer_infos"]) != 1:
        raise ValueError(f"catalog has {len(signed['signer_infos'])} signers, expected 1")
    return ctl


def members_of(cat: bytes) -> dict[str, bytes]:
    """File name -> digest listed in the catalog."""
    out: dict[str, bytes] = {}
    for subject in parse_ctl(cat)["trusted_subjects"]:
        name = ""
        digest = b""
        for attr in subject["attributes"]:
            oid = attr["type"].dotted
            value = attr["values"][0].dump()
            if oid == OID_CAT_NAMEVALUE:
                nv = CatNameValue.load(value)
                if nv["tag"].native == "File":
                    name = nv["value"].native.decode("utf-16-le").rstrip("\0")
            elif oid == OID_SPC_INDIRECT_DATA:
                digest = SpcIndirectDataContent.load(value)["message_digest"]["digest"].native
        ident = subject["identifier"].native.decode("utf-16-le")
        if ident != digest.hex().upper():
            raise ValueError(f"member {name}: tag {ident} does not match its digest")
        out[name] = digest
    return out


def check_member(cat: bytes, path: Path) -> None:
    listed = members_of(cat)
    if path.name not in listed:
        raise ValueError(f"{path.name} is not listed in the catalog")
    if listed[path.name] != member_hash(path)[0]:
        raise ValueError(f"{path.name}: catalog hash does not match the file")
