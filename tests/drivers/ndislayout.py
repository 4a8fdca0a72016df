"""x64 layouts of the NT/NDIS/TDI structures the labtdi emulator reads and writes.

Written for the emulator INDEPENDENTLY of drivers/include/ (which the driver compiles
against): every number here was taken from a public source, never from our headers, so a
mistake in a header shows up as a disagreement between the driver and the model.
test_layouts.py also compiles these numbers against the headers.

Sources:
  PDB   ntdiff/headers, layouts extracted from the public symbols of Windows' own
        binaries, x64, with the offset printed per member:
        Win7/x64/System32/ndis.sys/ALL_SORTED.h (_NET_BUFFER_LIST, _NET_BUFFER,
        _NDIS_BIND_PARAMETERS, _NDIS_OID_REQUEST, _NET_PNP_EVENT,
        _NET_PNP_EVENT_NOTIFICATION, _NDIS_OBJECT_HEADER, _MDL, _DRIVER_OBJECT);
        Win10_20H1_19037/.../_NDIS_PROTOCOL_DRIVER_CHARACTERISTICS.h (member types:
        UCHAR driver versions, ULONG Flags) and Win10_1607_RS1/.../_NET_PNP_EVENT.h
        (event codes, NetEventMaximum = 23).
  DOCS  Microsoft's WDK reference (MicrosoftDocs/windows-driver-docs-ddi): member lists
        of NDIS_OPEN_PARAMETERS, NET_BUFFER_LIST_POOL_PARAMETERS, NDIS_STATUS_INDICATION,
        NDIS_LINK_STATE (and NET_IF_MEDIA_CONNECT_STATE's values),
        NDIS_PROTOCOL_DRIVER_CHARACTERISTICS (revision 1 ends with
        SendNetBufferListsCompleteHandler), NET_BUFFER_LIST (who owns which member).
  DDK   Microsoft's tdikrnl.h (public DDK copy, 9176324/Shark WinDDK/3790.1830):
        TDI_PNP_CONTEXT_XP's ContextData is POINTER_ALIGNMENT (8 on x64).
Offsets not printed by a source are derived from the documented member list with x64
natural alignment (8-byte pointers); those are marked "derived".
"""

from __future__ import annotations

from collections.abc import Mapping

# ---- NDIS_OBJECT_HEADER (PDB): Type 0, Revision 1, Size 2 ----
HDR_TYPE, HDR_REVISION, HDR_SIZE = 0x0, 0x1, 0x2

# ---- NET_BUFFER_LIST (PDB, x64; 16-byte aligned) ----
NBL_NEXT = 0x00
NBL_FIRST_NET_BUFFER = 0x08
NBL_CONTEXT = 0x10
NBL_PARENT = 0x18
NBL_NDIS_POOL_HANDLE = 0x20
NBL_NDIS_RESERVED = 0x30          # PVOID[2]
NBL_PROTOCOL_RESERVED = 0x40      # PVOID[4]
NBL_MINIPORT_RESERVED = 0x60      # PVOID[2]
NBL_SCRATCH = 0x70
NBL_SOURCE_HANDLE = 0x78
NBL_NBL_FLAGS = 0x80
NBL_CHILD_REF_COUNT = 0x84
NBL_FLAGS = 0x88
NBL_STATUS = 0x8C
NBL_INFO = 0x90                   # NetBufferListInfo[MaxNetBufferListInfo]
#: The model allocates room for 40 NetBufferListInfo entries (the count grows by release).
NBL_ALLOC = NBL_INFO + 40 * 8

#: NBL members as [start, end) ranges, with who may write them (DOCS: NdisReserved and
#: NdisReserved2 "reserved for NDIS", MiniportReserved "for miniport drivers",
#: ProtocolReserved "for protocol drivers", Scratch "the current owner", SourceHandle the
#: sender's binding handle; Status the miniport's completion status).
NBL_FIELDS: tuple[tuple[int, int, str], ...] = (
    (NBL_NEXT, NBL_FIRST_NET_BUFFER, "Next"),
    (NBL_FIRST_NET_BUFFER, NBL_CONTEXT, "FirstNetBuffer"),
    (NBL_CONTEXT, NBL_PARENT, "Context"),
    (NBL_PARENT, NBL_NDIS_POOL_HANDLE, "ParentNetBufferList"),
    (NBL_NDIS_POOL_HANDLE, NBL_NDIS_POOL_HANDLE + 8, "NdisPoolHandle"),
    (NBL_NDIS_POOL_HANDLE + 8, NBL_NDIS_RESERVED, "(alignment padding)"),
    (NBL_NDIS_RESERVED, NBL_PROTOCOL_RESERVED, "NdisReserved"),
    (NBL_PROTOCOL_RESERVED, NBL_MINIPORT_RESERVED, "ProtocolReserved"),
    (NBL_MINIPORT_RESERVED, NBL_SCRATCH, "MiniportReserved"),
    (NBL_SCRATCH, NBL_SOURCE_HANDLE, "Scratch"),
    (NBL_SOURCE_HANDLE, NBL_NBL_FLAGS, "SourceHandle"),
    (NBL_NBL_FLAGS, NBL_CHILD_REF_COUNT, "NblFlags"),
    (NBL_CHILD_REF_COUNT, NBL_FLAGS, "ChildRefCount"),
    (NBL_FLAGS, NBL_STATUS, "Flags"),
    (NBL_STATUS, NBL_INFO, "Status/NdisReserved2"),
    (NBL_INFO, NBL_ALLOC, "NetBufferListInfo"),
)
#: What a protocol driver may write in an NBL it allocated and sends ...
NBL_WRITABLE_OWN = frozenset({"Next", "ProtocolReserved", "Scratch", "SourceHandle", "Flags",
                              "NetBufferListInfo"})
#: ... and in an NBL NDIS indicated to it (it may chain them and use its reserved area).
NBL_WRITABLE_RECEIVED = frozenset({"Next", "ProtocolReserved", "Scratch"})


def nbl_field(offset: int) -> str:
    """The NBL member that holds byte ``offset``."""
    for start, end, name in NBL_FIELDS:
        if start <= offset < end:
            return name
    return f"(beyond the model's NBL, +0x{offset:x})"


# ---- NET_BUFFER (PDB): ----
NB_NEXT, NB_CURRENT_MDL, NB_CURRENT_MDL_OFFSET = 0x00, 0x08, 0x10
NB_DATA_LENGTH, NB_MDL_CHAIN, NB_DATA_OFFSET = 0x18, 0x20, 0x28
NB_ALLOC = 0xB0  # PDB size 0xb0

# ---- MDL (PDB): ----
MDL_MAPPED_SYSTEM_VA, MDL_START_VA, MDL_BYTE_COUNT, MDL_BYTE_OFFSET = 0x18, 0x20, 0x28, 0x2C
MDL_SIZE = 0x30

# ---- DRIVER_OBJECT (PDB): ----
DRVOBJ_DRIVER_UNLOAD, DRVOBJ_MAJOR_FUNCTION, DRIVER_OBJECT_SIZE = 0x68, 0x70, 0x150

# ---- UNICODE_STRING / OBJECT_ATTRIBUTES (PDB): ----
US_LENGTH, US_MAXIMUM_LENGTH, US_BUFFER, US_SIZE = 0x0, 0x2, 0x8, 0x10
OA_ROOT_DIRECTORY, OA_OBJECT_NAME = 0x8, 0x10

# ---- NDIS_PROTOCOL_DRIVER_CHARACTERISTICS (PDB member types; x64 derived) ----
PC_MAJOR_NDIS, PC_MINOR_NDIS, PC_MAJOR_DRIVER, PC_MINOR_DRIVER, PC_FLAGS = 4, 5, 6, 7, 8
PC_NAME = 0x10
PC_HANDLERS: tuple[tuple[int, str], ...] = (
    (0x20, "SetOptionsHandler"), (0x28, "BindAdapterHandlerEx"),
    (0x30, "UnbindAdapterHandlerEx"), (0x38, "OpenAdapterCompleteHandlerEx"),
    (0x40, "CloseAdapterCompleteHandlerEx"), (0x48, "NetPnPEventHandler"),
    (0x50, "UninstallHandler"), (0x58, "OidRequestCompleteHandler"),
    (0x60, "StatusHandlerEx"), (0x68, "ReceiveNetBufferListsHandler"),
    (0x70, "SendNetBufferListsCompleteHandler"),
)
PC_SIZE_REVISION_1 = 0x78  # DOCS: through SendNetBufferListsCompleteHandler

# ---- NDIS_BIND_PARAMETERS (PDB): ----
BIND_PROTOCOL_SECTION, BIND_ADAPTER_NAME, BIND_MEDIA_TYPE, BIND_MTU = 0x08, 0x10, 0x20, 0x24
BIND_MAC_LENGTH, BIND_MAC, BIND_BOUND_IF_INDEX = 0x68, 0x6A, 0xA0
BIND_MEDIA_CONNECT_STATE = 0x48  # derived: after four ULONG64 link speeds from 0x28
BIND_SIZE_REVISION_1 = 0xF8  # PDB: through BoundAdapterName at 0xf0

# ---- NDIS_OPEN_PARAMETERS (DOCS member list; x64 derived) ----
OPEN_ADAPTER_NAME, OPEN_MEDIUM_ARRAY, OPEN_MEDIUM_ARRAY_SIZE = 0x08, 0x10, 0x18
OPEN_SELECTED_MEDIUM_INDEX, OPEN_FRAME_TYPE_ARRAY, OPEN_FRAME_TYPE_ARRAY_SIZE = 0x20, 0x28, 0x30
OPEN_SIZE_REVISION_1 = 0x34  # DOCS: RTL_SIZEOF_THROUGH_FIELD(..., FrameTypeArraySize)

# ---- NDIS_OID_REQUEST (PDB): ----
OID_REQUEST_TYPE, OID_PORT_NUMBER, OID_DATA = 0x04, 0x08, 0x20
OID_SET_OID, OID_SET_BUFFER, OID_SET_BUFFER_LENGTH = 0x20, 0x28, 0x30
OID_SIZE_REVISION_1 = 0xEC  # PDB: through Reserved2 at 0xea

# ---- NET_BUFFER_LIST_POOL_PARAMETERS (DOCS member list; x64 derived) ----
POOL_PROTOCOL_ID, POOL_ALLOCATE_NB, POOL_CONTEXT_SIZE, POOL_TAG, POOL_DATA_SIZE = 4, 5, 6, 8, 12
POOL_SIZE_REVISION_1 = 0x10

# ---- NET_PNP_EVENT / NET_PNP_EVENT_NOTIFICATION (PDB): ----
PNP_NET_EVENT, PNP_BUFFER, PNP_BUFFER_LENGTH = 0x00, 0x08, 0x10
PNP_NDIS_RESERVED, PNP_TRANSPORT_RESERVED, PNP_TDI_RESERVED = 0x18, 0x38, 0x58
PNP_TDI_CLIENT_RESERVED, PNP_EVENT_SIZE = 0x78, 0x98
NOTIFY_PORT_NUMBER, NOTIFY_EVENT, NOTIFY_FLAGS, NOTIFY_SIZE = 0x04, 0x08, 0xA0, 0xA8

# ---- NDIS_STATUS_INDICATION (DOCS member list: ns-ndis-_ndis_status_indication; x64 derived:
# Header, SourceHandle 8, PortNumber, StatusCode, Flags, DestinationHandle, RequestId,
# StatusBuffer, StatusBufferSize, Guid (16 bytes, 4-aligned), NdisReserved[4]) ----
STATUS_SOURCE_HANDLE, STATUS_PORT_NUMBER, STATUS_CODE, STATUS_FLAGS = 0x08, 0x10, 0x14, 0x18
STATUS_DESTINATION_HANDLE, STATUS_REQUEST_ID, STATUS_BUFFER = 0x20, 0x28, 0x30
STATUS_BUFFER_SIZE, STATUS_GUID, STATUS_NDIS_RESERVED = 0x38, 0x3C, 0x50
STATUS_SIZE_REVISION_1 = 0x70  # DOCS: RTL_SIZEOF_THROUGH_FIELD(..., NdisReserved)
#: DOCS (network/ndis-status-link-state; the value as ndis.h defines it for NDIS 6).
NDIS_STATUS_LINK_STATE = 0x40010017

# ---- NDIS_LINK_STATE (DOCS member list: ns-ntddndis-_ndis_link_state; x64 derived:
# Header, MediaConnectState, MediaDuplexState, ULONG64 XmitLinkSpeed, ULONG64
# RcvLinkSpeed, PauseFunctions, AutoNegotiationFlags) ----
LINK_MEDIA_CONNECT_STATE, LINK_MEDIA_DUPLEX_STATE = 0x04, 0x08
LINK_XMIT_LINK_SPEED, LINK_RCV_LINK_SPEED = 0x10, 0x18
LINK_PAUSE_FUNCTIONS, LINK_AUTO_NEGOTIATION_FLAGS = 0x20, 0x24
LINK_STATE_SIZE_REVISION_1 = 0x28  # DOCS: through AutoNegotiationFlags
#: NDIS_MEDIA_CONNECT_STATE = NET_IF_MEDIA_CONNECT_STATE
#: (DOCS: ne-ifdef-net_if_media_connect_state).
MEDIA_CONNECT_STATE: Mapping[str, int] = {
    "MediaConnectStateUnknown": 0, "MediaConnectStateConnected": 1,
    "MediaConnectStateDisconnected": 2,
}

#: NET_PNP_EVENT_CODE (PDB, Win10 1607 ndis.sys).
NET_EVENTS: Mapping[int, str] = {
    0: "NetEventSetPower", 1: "NetEventQueryPower", 2: "NetEventQueryRemoveDevice",
    3: "NetEventCancelRemoveDevice", 4: "NetEventReconfigure", 5: "NetEventBindList",
    6: "NetEventBindsComplete", 7: "NetEventPnPCapabilities", 8: "NetEventPause",
    9: "NetEventRestart", 10: "NetEventPortActivation", 11: "NetEventPortDeactivation",
    12: "NetEventIMReEnableDevice", 13: "NetEventNDKEnable", 14: "NetEventNDKDisable",
    15: "NetEventFilterPreDetach", 16: "NetEventBindFailed", 17: "NetEventSwitchActivate",
    18: "NetEventAllowBindsAbove", 19: "NetEventInhibitBindsAbove", 20: "NetEventAllowStart",
    21: "NetEventRequirePause", 22: "NetEventUploadGftFlowEntries",
}
NET_EVENT_MAXIMUM = 23

# ---- TDI (DDK): TA_ADDRESS and TDI_PNP_CONTEXT ----
TA_ADDRESS_LENGTH, TA_ADDRESS_TYPE, TA_ADDRESS_DATA = 0, 2, 4
TDI_PNP_CONTEXT_SIZE_FIELD, TDI_PNP_CONTEXT_TYPE, TDI_PNP_CONTEXT_DATA = 0, 2, 8
TDI_PNP_CONTEXT_SIZE = 16

# ---- POOL_TYPE (learn.microsoft.com "POOL_TYPE enumeration") ----
NON_PAGED_POOL, PAGED_POOL, NON_PAGED_POOL_NX, NON_PAGED_POOL_NX_CACHE_ALIGNED = 0, 1, 512, 516
#: Pool types a driver for memory-integrity (HVCI) systems may allocate data from.
NX_POOL_TYPES = frozenset({PAGED_POOL, NON_PAGED_POOL_NX, NON_PAGED_POOL_NX_CACHE_ALIGNED})

#: (C type, member designator, offset) the headers must agree with; test_layouts.py
#: turns each into a compile-time check against drivers/include/.
HEADER_CHECKS: tuple[tuple[str, str, int], ...] = (
    ("NET_BUFFER_LIST", "FirstNetBuffer", NBL_FIRST_NET_BUFFER),
    ("NET_BUFFER_LIST", "NdisPoolHandle", NBL_NDIS_POOL_HANDLE),
    ("NET_BUFFER_LIST", "NdisReserved", NBL_NDIS_RESERVED),
    ("NET_BUFFER_LIST", "ProtocolReserved", NBL_PROTOCOL_RESERVED),
    ("NET_BUFFER_LIST", "MiniportReserved", NBL_MINIPORT_RESERVED),
    ("NET_BUFFER_LIST", "Scratch", NBL_SCRATCH),
    ("NET_BUFFER_LIST", "SourceHandle", NBL_SOURCE_HANDLE),
    ("NET_BUFFER_LIST", "NblFlags", NBL_NBL_FLAGS),
    ("NET_BUFFER_LIST", "ChildRefCount", NBL_CHILD_REF_COUNT),
    ("NET_BUFFER_LIST", "Flags", NBL_FLAGS),
    ("NET_BUFFER_LIST", "Status", NBL_STATUS),
    ("NET_BUFFER", "CurrentMdl", NB_CURRENT_MDL),
    ("NET_BUFFER", "CurrentMdlOffset", NB_CURRENT_MDL_OFFSET),
    ("NET_BUFFER", "DataLength", NB_DATA_LENGTH),
    ("NET_BUFFER", "MdlChain", NB_MDL_CHAIN),
    ("NET_BUFFER", "DataOffset", NB_DATA_OFFSET),
    ("NDIS_PROTOCOL_DRIVER_CHARACTERISTICS", "MajorDriverVersion", PC_MAJOR_DRIVER),
    ("NDIS_PROTOCOL_DRIVER_CHARACTERISTICS", "MinorDriverVersion", PC_MINOR_DRIVER),
    ("NDIS_PROTOCOL_DRIVER_CHARACTERISTICS", "Flags", PC_FLAGS),
    ("NDIS_PROTOCOL_DRIVER_CHARACTERISTICS", "Name", PC_NAME),
    *(("NDIS_PROTOCOL_DRIVER_CHARACTERISTICS", name, off) for off, name in PC_HANDLERS),
    ("NDIS_BIND_PARAMETERS", "AdapterName", BIND_ADAPTER_NAME),
    ("NDIS_BIND_PARAMETERS", "MediaType", BIND_MEDIA_TYPE),
    ("NDIS_BIND_PARAMETERS", "MacAddressLength", BIND_MAC_LENGTH),
    ("NDIS_BIND_PARAMETERS", "CurrentMacAddress", BIND_MAC),
    ("NDIS_BIND_PARAMETERS", "BoundIfIndex", BIND_BOUND_IF_INDEX),
    ("NDIS_BIND_PARAMETERS", "MediaConnectState", BIND_MEDIA_CONNECT_STATE),
    ("NDIS_STATUS_INDICATION", "SourceHandle", STATUS_SOURCE_HANDLE),
    ("NDIS_STATUS_INDICATION", "PortNumber", STATUS_PORT_NUMBER),
    ("NDIS_STATUS_INDICATION", "StatusCode", STATUS_CODE),
    ("NDIS_STATUS_INDICATION", "Flags", STATUS_FLAGS),
    ("NDIS_STATUS_INDICATION", "DestinationHandle", STATUS_DESTINATION_HANDLE),
    ("NDIS_STATUS_INDICATION", "RequestId", STATUS_REQUEST_ID),
    ("NDIS_STATUS_INDICATION", "StatusBuffer", STATUS_BUFFER),
    ("NDIS_STATUS_INDICATION", "StatusBufferSize", STATUS_BUFFER_SIZE),
    ("NDIS_STATUS_INDICATION", "Guid", STATUS_GUID),
    ("NDIS_STATUS_INDICATION", "NdisReserved", STATUS_NDIS_RESERVED),
    ("NDIS_LINK_STATE", "MediaConnectState", LINK_MEDIA_CONNECT_STATE),
    ("NDIS_LINK_STATE", "MediaDuplexState", LINK_MEDIA_DUPLEX_STATE),
    ("NDIS_LINK_STATE", "XmitLinkSpeed", LINK_XMIT_LINK_SPEED),
    ("NDIS_LINK_STATE", "RcvLinkSpeed", LINK_RCV_LINK_SPEED),
    ("NDIS_LINK_STATE", "PauseFunctions", LINK_PAUSE_FUNCTIONS),
    ("NDIS_LINK_STATE", "AutoNegotiationFlags", LINK_AUTO_NEGOTIATION_FLAGS),
    ("NDIS_OPEN_PARAMETERS", "AdapterName", OPEN_ADAPTER_NAME),
    ("NDIS_OPEN_PARAMETERS", "MediumArray", OPEN_MEDIUM_ARRAY),
    ("NDIS_OPEN_PARAMETERS", "MediumArraySize", OPEN_MEDIUM_ARRAY_SIZE),
    ("NDIS_OPEN_PARAMETERS", "SelectedMediumIndex", OPEN_SELECTED_MEDIUM_INDEX),
    ("NDIS_OPEN_PARAMETERS", "FrameTypeArraySize", OPEN_FRAME_TYPE_ARRAY_SIZE),
    ("NDIS_OID_REQUEST", "RequestType", OID_REQUEST_TYPE),
    ("NDIS_OID_REQUEST", "DATA.SET_INFORMATION.Oid", OID_SET_OID),
    ("NDIS_OID_REQUEST", "DATA.SET_INFORMATION.InformationBuffer", OID_SET_BUFFER),
    ("NDIS_OID_REQUEST", "DATA.SET_INFORMATION.InformationBufferLength", OID_SET_BUFFER_LENGTH),
    ("NET_BUFFER_LIST_POOL_PARAMETERS", "ProtocolId", POOL_PROTOCOL_ID),
    ("NET_BUFFER_LIST_POOL_PARAMETERS", "fAllocateNetBuffer", POOL_ALLOCATE_NB),
    ("NET_BUFFER_LIST_POOL_PARAMETERS", "PoolTag", POOL_TAG),
    ("NET_BUFFER_LIST_POOL_PARAMETERS", "DataSize", POOL_DATA_SIZE),
    ("NET_PNP_EVENT", "TransportReserved", PNP_TRANSPORT_RESERVED),
    ("NET_PNP_EVENT", "TdiReserved", PNP_TDI_RESERVED),
    ("NET_PNP_EVENT_NOTIFICATION", "NetPnPEvent", NOTIFY_EVENT),
    ("TA_ADDRESS", "Address", TA_ADDRESS_DATA),
    ("TDI_PNP_CONTEXT", "ContextData", TDI_PNP_CONTEXT_DATA),
    ("DRIVER_OBJECT", "DriverUnload", DRVOBJ_DRIVER_UNLOAD),
    ("DRIVER_OBJECT", "MajorFunction", DRVOBJ_MAJOR_FUNCTION),
    ("MDL", "MappedSystemVa", MDL_MAPPED_SYSTEM_VA),
    ("MDL", "StartVa", MDL_START_VA),
    ("MDL", "ByteCount", MDL_BYTE_COUNT),
)
#: (C expression, value) for sizes and constants the headers must agree with.
HEADER_VALUES: tuple[tuple[str, int], ...] = (
    ("NDIS_SIZEOF_PROTOCOL_DRIVER_CHARACTERISTICS_REVISION_1", PC_SIZE_REVISION_1),
    ("NDIS_SIZEOF_OPEN_PARAMETERS_REVISION_1", OPEN_SIZE_REVISION_1),
    ("NDIS_SIZEOF_OID_REQUEST_REVISION_1", OID_SIZE_REVISION_1),
    ("NDIS_SIZEOF_NET_BUFFER_LIST_POOL_PARAMETERS_REVISION_1", POOL_SIZE_REVISION_1),
    ("sizeof(NET_PNP_EVENT)", PNP_EVENT_SIZE),
    ("sizeof(NDIS_STATUS_INDICATION)", STATUS_SIZE_REVISION_1),
    ("NDIS_SIZEOF_LINK_STATE_REVISION_1", LINK_STATE_SIZE_REVISION_1),
    ("NDIS_STATUS_LINK_STATE", NDIS_STATUS_LINK_STATE),
    ("MediaConnectStateConnected", MEDIA_CONNECT_STATE["MediaConnectStateConnected"]),
    ("MediaConnectStateDisconnected", MEDIA_CONNECT_STATE["MediaConnectStateDisconnected"]),
    ("sizeof(TDI_PNP_CONTEXT)", TDI_PNP_CONTEXT_SIZE),
    ("NetEventMaximum", NET_EVENT_MAXIMUM),
    ("LAB_NONPAGED_POOL", NON_PAGED_POOL_NX),
)
