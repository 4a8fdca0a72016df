/*
 * labndis6.h -- the NDIS 6.x protocol-driver subset used by labtdi.sys.
 *
 * mingw-w64's ddk/ndis.h describes NDIS 5 (and does not build cleanly for x64 kernel
 * code), so it is NOT included. These declarations are written from the public NDIS 6
 * reference; layouts are x64. Structures NDIS hands us (bind parameters, PnP
 * notifications, NBLs) are declared only up to the last member we touch; structures we
 * hand NDIS are declared completely (through the revision-1 size).
 *
 * Every offset and size the driver relies on is pinned with a _Static_assert whose value
 * comes from a public source, cited at the assert:
 *   [MSDOCS]  Microsoft's WDK reference pages (learn.microsoft.com, source repository
 *             MicrosoftDocs/windows-driver-docs-ddi, wdk-ddi-src/content/{ndis,nbl}/...)
 *   [PDB-x64] x64 layouts that ntdiff/headers extracted from the public symbols of
 *             Windows' own ndis.sys: Win7/x64/System32/ndis.sys/ALL_SORTED.h (offsets
 *             printed per member), Win10_1607_RS1/.../_NET_PNP_EVENT.h and
 *             Win10_20H1_19037/.../_NDIS_PROTOCOL_DRIVER_CHARACTERISTICS.h (member types)
 *   [WDK]     Microsoft's ndis/nbl.h as published in WDK copies (the DECLSPEC_ALIGN(
 *             MEMORY_ALLOCATION_ALIGNMENT) on the reserved NBL areas)
 * A change to a declared field that moves any of them breaks the build
 * (tests/drivers/test_layouts.py proves it). The emulator of tests/drivers keeps its own,
 * independently written copy of these layouts (tests/drivers/ndislayout.py).
 */
#ifndef LAB_NDIS6_H
#define LAB_NDIS6_H

#include <ddk/wdm.h>

#if !defined(__x86_64__)
#error "labndis6.h is written for x86-64 kernel drivers only"
#endif

#define LAB_OFFSET(type, field) __builtin_offsetof(type, field)
/* x64 MEMORY_ALLOCATION_ALIGNMENT: ntdef.h / winnt.h; [WDK] nbl.h aligns NBL areas with it. */
#define LAB_MEMORY_ALLOCATION_ALIGNMENT 16
#define LAB_NDIS_ALIGNED __attribute__((aligned(LAB_MEMORY_ALLOCATION_ALIGNMENT)))

typedef int NDIS_STATUS, *PNDIS_STATUS;
typedef PVOID NDIS_HANDLE, *PNDIS_HANDLE;
typedef UNICODE_STRING NDIS_STRING, *PNDIS_STRING;
typedef ULONG NDIS_PORT_NUMBER;
typedef ULONG NDIS_OID;
typedef ULONG NET_IFINDEX;
typedef unsigned int UINT, *PUINT;

#define NDIS_STATUS_SUCCESS ((NDIS_STATUS)STATUS_SUCCESS)
#define NDIS_STATUS_PENDING ((NDIS_STATUS)STATUS_PENDING)
#define NDIS_STATUS_FAILURE ((NDIS_STATUS)0xC0000001L)
#define NDIS_STATUS_RESOURCES ((NDIS_STATUS)STATUS_INSUFFICIENT_RESOURCES)
#define NDIS_STATUS_UNSUPPORTED_MEDIA ((NDIS_STATUS)0xC0010019L)
#define NDIS_STATUS_NOT_SUPPORTED ((NDIS_STATUS)STATUS_NOT_SUPPORTED)

typedef struct _NDIS_OBJECT_HEADER {
    UCHAR Type;
    UCHAR Revision;
    USHORT Size;
} NDIS_OBJECT_HEADER, *PNDIS_OBJECT_HEADER;
/* [PDB-x64] _NDIS_OBJECT_HEADER: Type 0x0, Revision 0x1, Size 0x2, size 0x4 */
_Static_assert(sizeof(NDIS_OBJECT_HEADER) == 4, "NDIS_OBJECT_HEADER size");
_Static_assert(LAB_OFFSET(NDIS_OBJECT_HEADER, Size) == 2, "NDIS_OBJECT_HEADER.Size");

#define NDIS_OBJECT_TYPE_DEFAULT 0x80
#define NDIS_OBJECT_TYPE_OPEN_PARAMETERS 0x87
#define NDIS_OBJECT_TYPE_PROTOCOL_DRIVER_CHARACTERISTICS 0x95
#define NDIS_OBJECT_TYPE_OID_REQUEST 0x96

typedef enum _NDIS_MEDIUM { NdisMedium802_3 = 0 } NDIS_MEDIUM, *PNDIS_MEDIUM;
typedef enum _NDIS_REQUEST_TYPE {
    NdisRequestQueryInformation = 0,
    NdisRequestSetInformation = 1
} NDIS_REQUEST_TYPE;

#define OID_GEN_CURRENT_PACKET_FILTER 0x0001010E
#define NDIS_PACKET_TYPE_DIRECTED 0x00000001
#define NDIS_PACKET_TYPE_BROADCAST 0x00000008

/* NetPnPEventHandler codes (NET_PNP_EVENT_CODE). [PDB-x64] Win10_1607_RS1 ndis.sys
 * _NET_PNP_EVENT.h: NetEventNDKEnable = 13 ... NetEventUploadGftFlowEntries = 22,
 * NetEventMaximum = 23 ([MSDOCS] ns-ndis-_net_pnp_event lists the same codes). */
typedef enum _NET_PNP_EVENT_CODE {
    NetEventSetPower,
    NetEventQueryPower,
    NetEventQueryRemoveDevice,
    NetEventCancelRemoveDevice,
    NetEventReconfigure,
    NetEventBindList,
    NetEventBindsComplete,
    NetEventPnPCapabilities,
    NetEventPause,
    NetEventRestart,
    NetEventPortActivation,
    NetEventPortDeactivation,
    NetEventIMReEnableDevice,
    NetEventNDKEnable,
    NetEventNDKDisable,
    NetEventFilterPreDetach,
    NetEventBindFailed,
    NetEventSwitchActivate,
    NetEventAllowBindsAbove,
    NetEventInhibitBindsAbove,
    NetEventAllowStart,
    NetEventRequirePause,
    NetEventUploadGftFlowEntries,
    NetEventMaximum
} NET_PNP_EVENT_CODE;
_Static_assert(NetEventQueryRemoveDevice == 2 && NetEventBindsComplete == 6, "NET_PNP_EVENT_CODE");
_Static_assert(NetEventPause == 8 && NetEventRestart == 9, "NET_PNP_EVENT_CODE pause/restart");
_Static_assert(NetEventMaximum == 23, "NetEventMaximum");
_Static_assert(sizeof(NET_PNP_EVENT_CODE) == 4, "NET_PNP_EVENT_CODE is a 32-bit enum");

/* NetEventSetPower / NetEventQueryPower: NET_PNP_EVENT.Buffer points to the target
 * NET_DEVICE_POWER_STATE ([MSDOCS] ns-ndis-_net_pnp_event, "NetEventSetPower";
 * netpnp.h: NetDeviceStateUnspecified, D0, D1, D2, D3, Maximum). */
typedef enum _NET_DEVICE_POWER_STATE {
    NetDeviceStateUnspecified,
    NetDeviceStateD0,
    NetDeviceStateD1,
    NetDeviceStateD2,
    NetDeviceStateD3,
    NetDeviceStateMaximum
} NET_DEVICE_POWER_STATE;
_Static_assert(NetDeviceStateD0 == 1 && NetDeviceStateD3 == 4, "NET_DEVICE_POWER_STATE");

typedef struct _NET_PNP_EVENT {
    NET_PNP_EVENT_CODE NetEvent;
    PVOID Buffer;
    ULONG BufferLength;
    ULONG_PTR NdisReserved[4];
    ULONG_PTR TransportReserved[4];
    ULONG_PTR TdiReserved[4];
    ULONG_PTR TdiClientReserved[4];
} NET_PNP_EVENT, *PNET_PNP_EVENT;

typedef struct _NET_PNP_EVENT_NOTIFICATION {
    NDIS_OBJECT_HEADER Header;
    NDIS_PORT_NUMBER PortNumber;
    NET_PNP_EVENT NetPnPEvent;
} NET_PNP_EVENT_NOTIFICATION, *PNET_PNP_EVENT_NOTIFICATION;
/* [PDB-x64] _NET_PNP_EVENT: NetEvent 0x0, Buffer 0x8, BufferLength 0x10, NdisReserved 0x18,
 * TransportReserved 0x38, TdiReserved 0x58, TdiClientReserved 0x78, size 0x98.
 * _NET_PNP_EVENT_NOTIFICATION: PortNumber 0x4, NetPnPEvent 0x8 (later members, e.g. Flags
 * at 0xa0, are not declared: NDIS owns this structure). [MSDOCS]: TransportReserved is
 * the transport's (labtdi keeps its forward context there). */
_Static_assert(LAB_OFFSET(NET_PNP_EVENT, Buffer) == 0x8, "NET_PNP_EVENT.Buffer");
_Static_assert(LAB_OFFSET(NET_PNP_EVENT, BufferLength) == 0x10, "NET_PNP_EVENT.BufferLength");
_Static_assert(LAB_OFFSET(NET_PNP_EVENT, NdisReserved) == 0x18, "NET_PNP_EVENT.NdisReserved");
_Static_assert(LAB_OFFSET(NET_PNP_EVENT, TransportReserved) == 0x38, "NET_PNP_EVENT.TransportReserved");
_Static_assert(LAB_OFFSET(NET_PNP_EVENT, TdiReserved) == 0x58, "NET_PNP_EVENT.TdiReserved");
_Static_assert(LAB_OFFSET(NET_PNP_EVENT, TdiClientReserved) == 0x78, "NET_PNP_EVENT.TdiClientReserved");
_Static_assert(sizeof(NET_PNP_EVENT) == 0x98, "NET_PNP_EVENT size");
_Static_assert(LAB_OFFSET(NET_PNP_EVENT_NOTIFICATION, PortNumber) == 0x4, "NOTIFICATION.PortNumber");
_Static_assert(LAB_OFFSET(NET_PNP_EVENT_NOTIFICATION, NetPnPEvent) == 0x8, "NOTIFICATION.NetPnPEvent");

/* ---- status indications (the protocol's StatusHandlerEx) ----
 * [MSDOCS] nc-ndis-protocol_status_ex: ProtocolStatusEx(ProtocolBindingContext,
 * PNDIS_STATUS_INDICATION), called at IRQL <= DISPATCH_LEVEL; "to determine link state,
 * use the status indications of underlying drivers instead of OID queries".
 * [MSDOCS] ns-ndis-_ndis_status_indication: member list Header, SourceHandle, PortNumber,
 * StatusCode, Flags, DestinationHandle, RequestId, StatusBuffer, StatusBufferSize, Guid,
 * NdisReserved[4]; revision-1 size RTL_SIZEOF_THROUGH_FIELD(..., NdisReserved). x64
 * offsets derived with natural alignment (GUID: 4-byte aligned, 16 bytes).
 * [MSDOCS] network/ndis-status-link-state: NDIS_STATUS_LINK_STATE's StatusBuffer holds an
 * NDIS_LINK_STATE; NDIS may (not guaranteed) drop an indication that changes nothing, so
 * the receiver must work out what changed. Value 0x40010017 (ndis.h, NDIS 6 codes). */
#define NDIS_STATUS_LINK_STATE ((NDIS_STATUS)0x40010017L)

typedef struct _NDIS_STATUS_INDICATION {
    NDIS_OBJECT_HEADER Header;
    NDIS_HANDLE SourceHandle;
    NDIS_PORT_NUMBER PortNumber;
    NDIS_STATUS StatusCode;
    ULONG Flags;
    NDIS_HANDLE DestinationHandle;
    PVOID RequestId;
    PVOID StatusBuffer;
    ULONG StatusBufferSize;
    GUID Guid;
    PVOID NdisReserved[4];
} NDIS_STATUS_INDICATION, *PNDIS_STATUS_INDICATION;
_Static_assert(LAB_OFFSET(NDIS_STATUS_INDICATION, SourceHandle) == 0x8, "STATUS.SourceHandle");
_Static_assert(LAB_OFFSET(NDIS_STATUS_INDICATION, PortNumber) == 0x10, "STATUS.PortNumber");
_Static_assert(LAB_OFFSET(NDIS_STATUS_INDICATION, StatusCode) == 0x14, "STATUS.StatusCode");
_Static_assert(LAB_OFFSET(NDIS_STATUS_INDICATION, DestinationHandle) == 0x20, "STATUS.DestinationHandle");
_Static_assert(LAB_OFFSET(NDIS_STATUS_INDICATION, StatusBuffer) == 0x30, "STATUS.StatusBuffer");
_Static_assert(LAB_OFFSET(NDIS_STATUS_INDICATION, StatusBufferSize) == 0x38, "STATUS.StatusBufferSize");
_Static_assert(LAB_OFFSET(NDIS_STATUS_INDICATION, Guid) == 0x3c, "STATUS.Guid");
_Static_assert(LAB_OFFSET(NDIS_STATUS_INDICATION, NdisReserved) == 0x50, "STATUS.NdisReserved");
_Static_assert(sizeof(NDIS_STATUS_INDICATION) == 0x70, "NDIS_STATUS_INDICATION size");

/* [MSDOCS] ne-ifdef-net_if_media_connect_state: NDIS_MEDIA_CONNECT_STATE is
 * NET_IF_MEDIA_CONNECT_STATE {MediaConnectStateUnknown, ..Connected, ..Disconnected}. */
typedef enum _NET_IF_MEDIA_CONNECT_STATE {
    MediaConnectStateUnknown,
    MediaConnectStateConnected,
    MediaConnectStateDisconnected
} NET_IF_MEDIA_CONNECT_STATE, NDIS_MEDIA_CONNECT_STATE;
_Static_assert(MediaConnectStateConnected == 1 && MediaConnectStateDisconnected == 2,
               "NDIS_MEDIA_CONNECT_STATE");

/* [MSDOCS] ns-ntddndis-_ndis_link_state: Header, MediaConnectState, MediaDuplexState,
 * XmitLinkSpeed (ULONG64), RcvLinkSpeed (ULONG64), PauseFunctions, AutoNegotiationFlags;
 * revision-1 size through AutoNegotiationFlags. x64 offsets derived (enums are 4 bytes). */
typedef struct _NDIS_LINK_STATE {
    NDIS_OBJECT_HEADER Header;
    NDIS_MEDIA_CONNECT_STATE MediaConnectState;
    ULONG MediaDuplexState;
    ULONG64 XmitLinkSpeed;
    ULONG64 RcvLinkSpeed;
    ULONG PauseFunctions;
    ULONG AutoNegotiationFlags;
} NDIS_LINK_STATE, *PNDIS_LINK_STATE;
#define NDIS_SIZEOF_LINK_STATE_REVISION_1 \
    (LAB_OFFSET(NDIS_LINK_STATE, AutoNegotiationFlags) + sizeof(ULONG))
_Static_assert(LAB_OFFSET(NDIS_LINK_STATE, MediaConnectState) == 0x4, "LINK.MediaConnectState");
_Static_assert(LAB_OFFSET(NDIS_LINK_STATE, XmitLinkSpeed) == 0x10, "LINK.XmitLinkSpeed");
_Static_assert(LAB_OFFSET(NDIS_LINK_STATE, AutoNegotiationFlags) == 0x24, "LINK.AutoNegotiationFlags");
_Static_assert(NDIS_SIZEOF_LINK_STATE_REVISION_1 == 0x28, "NDIS_LINK_STATE revision-1 size");

/* Bind parameters: declared up to BoundIfIndex (the last member labtdi reads). */
typedef struct _NDIS_BIND_PARAMETERS {
    NDIS_OBJECT_HEADER Header;
    PNDIS_STRING ProtocolSection;
    PNDIS_STRING AdapterName;
    PDEVICE_OBJECT PhysicalDeviceObject;
    NDIS_MEDIUM MediaType;
    ULONG MtuSize;
    ULONG64 MaxXmitLinkSpeed;
    ULONG64 XmitLinkSpeed;
    ULONG64 MaxRcvLinkSpeed;
    ULONG64 RcvLinkSpeed;
    ULONG MediaConnectState;
    ULONG MediaDuplexState;
    ULONG LookaheadSize;
    PVOID PowerManagementCapabilities;
    ULONG SupportedPacketFilters;
    ULONG MaxMulticastListSize;
    USHORT MacAddressLength;
    UCHAR CurrentMacAddress[32];
    ULONG PhysicalMediumType;
    PVOID RcvScaleCapabilities;
    ULONG64 BoundIfNetluid;
    NET_IFINDEX BoundIfIndex;
} NDIS_BIND_PARAMETERS, *PNDIS_BIND_PARAMETERS;

/* [PDB-x64] _NDIS_BIND_PARAMETERS: ProtocolSection 0x8, AdapterName 0x10, MediaType 0x20,
 * MtuSize 0x24, MacAddressLength 0x68, CurrentMacAddress[32] 0x6a, PhysicalMediumType 0x8c,
 * BoundIfNetluid 0x98, BoundIfIndex 0xa0. */
_Static_assert(LAB_OFFSET(NDIS_BIND_PARAMETERS, ProtocolSection) == 0x8, "BIND.ProtocolSection");
_Static_assert(LAB_OFFSET(NDIS_BIND_PARAMETERS, AdapterName) == 0x10, "BIND.AdapterName");
_Static_assert(LAB_OFFSET(NDIS_BIND_PARAMETERS, MediaType) == 0x20, "BIND.MediaType");
_Static_assert(LAB_OFFSET(NDIS_BIND_PARAMETERS, MtuSize) == 0x24, "BIND.MtuSize");
_Static_assert(LAB_OFFSET(NDIS_BIND_PARAMETERS, MediaConnectState) == 0x48, "BIND.MediaConnectState");
_Static_assert(LAB_OFFSET(NDIS_BIND_PARAMETERS, MacAddressLength) == 0x68, "BIND.MacAddressLength");
_Static_assert(LAB_OFFSET(NDIS_BIND_PARAMETERS, CurrentMacAddress) == 0x6a, "BIND.CurrentMacAddress");
_Static_assert(LAB_OFFSET(NDIS_BIND_PARAMETERS, PhysicalMediumType) == 0x8c, "BIND.PhysicalMediumType");
_Static_assert(LAB_OFFSET(NDIS_BIND_PARAMETERS, BoundIfNetluid) == 0x98, "BIND.BoundIfNetluid");
_Static_assert(LAB_OFFSET(NDIS_BIND_PARAMETERS, BoundIfIndex) == 0xa0, "BIND.BoundIfIndex");

typedef struct _NDIS_OPEN_PARAMETERS {
    NDIS_OBJECT_HEADER Header;
    PNDIS_STRING AdapterName;
    PNDIS_MEDIUM MediumArray;
    UINT MediumArraySize;
    PUINT SelectedMediumIndex;
    PUSHORT FrameTypeArray;
    UINT FrameTypeArraySize;
} NDIS_OPEN_PARAMETERS, *PNDIS_OPEN_PARAMETERS;
#define NDIS_OPEN_PARAMETERS_REVISION_1 1
/* [MSDOCS] ns-ndis-_ndis_open_parameters: NDIS_SIZEOF_OPEN_PARAMETERS_REVISION_1 is
 * RTL_SIZEOF_THROUGH_FIELD(NDIS_OPEN_PARAMETERS, FrameTypeArraySize). x64 natural layout of
 * the documented members: AdapterName 0x8, MediumArray 0x10, MediumArraySize 0x18,
 * SelectedMediumIndex 0x20, FrameTypeArray 0x28, FrameTypeArraySize 0x30 (through: 0x34). */
#define NDIS_SIZEOF_OPEN_PARAMETERS_REVISION_1 \
    (LAB_OFFSET(NDIS_OPEN_PARAMETERS, FrameTypeArraySize) + sizeof(UINT))
_Static_assert(LAB_OFFSET(NDIS_OPEN_PARAMETERS, AdapterName) == 0x8, "OPEN.AdapterName");
_Static_assert(LAB_OFFSET(NDIS_OPEN_PARAMETERS, MediumArray) == 0x10, "OPEN.MediumArray");
_Static_assert(LAB_OFFSET(NDIS_OPEN_PARAMETERS, MediumArraySize) == 0x18, "OPEN.MediumArraySize");
_Static_assert(LAB_OFFSET(NDIS_OPEN_PARAMETERS, SelectedMediumIndex) == 0x20, "OPEN.SelectedMediumIndex");
_Static_assert(LAB_OFFSET(NDIS_OPEN_PARAMETERS, FrameTypeArray) == 0x28, "OPEN.FrameTypeArray");
_Static_assert(NDIS_SIZEOF_OPEN_PARAMETERS_REVISION_1 == 0x34, "NDIS_SIZEOF_OPEN_PARAMETERS_REVISION_1");

typedef struct _NDIS_OID_REQUEST {
    NDIS_OBJECT_HEADER Header;
    NDIS_REQUEST_TYPE RequestType;
    NDIS_PORT_NUMBER PortNumber;
    UINT Timeout;
    PVOID RequestId;
    NDIS_HANDLE RequestHandle;
    union {
        struct {
            NDIS_OID Oid;
            PVOID InformationBuffer;
            UINT InformationBufferLength;
            UINT BytesRead;
            UINT BytesNeeded;
        } SET_INFORMATION;
        struct {
            NDIS_OID Oid;
            PVOID InformationBuffer;
            ULONG InputBufferLength;
            ULONG OutputBufferLength;
            ULONG MethodId;
            UINT BytesWritten;
            UINT BytesRead;
            UINT BytesNeeded;
        } METHOD_INFORMATION;
    } DATA;
    UCHAR NdisReserved[16 * sizeof(PVOID)];
    UCHAR MiniportReserved[2 * sizeof(PVOID)];
    UCHAR SourceReserved[2 * sizeof(PVOID)];
    UCHAR SupportedRevision;
    UCHAR Reserved1;
    USHORT Reserved2;
} NDIS_OID_REQUEST, *PNDIS_OID_REQUEST;
#define NDIS_OID_REQUEST_REVISION_1 1
#define NDIS_SIZEOF_OID_REQUEST_REVISION_1 (LAB_OFFSET(NDIS_OID_REQUEST, Reserved2) + sizeof(USHORT))
/* [PDB-x64] _NDIS_OID_REQUEST: RequestType 0x4, PortNumber 0x8, Timeout 0xc, RequestId 0x10,
 * RequestHandle 0x18, DATA 0x20, NdisReserved[128] 0x48, MiniportReserved 0xc8,
 * SourceReserved 0xd8, SupportedRevision 0xe8, Reserved2 0xea, size 0xf0. SET_INFORMATION
 * ([MSDOCS] ns-ndis-_ndis_oid_request): Oid, InformationBuffer, InformationBufferLength. */
_Static_assert(LAB_OFFSET(NDIS_OID_REQUEST, RequestType) == 0x4, "OID.RequestType");
_Static_assert(LAB_OFFSET(NDIS_OID_REQUEST, RequestHandle) == 0x18, "OID.RequestHandle");
_Static_assert(LAB_OFFSET(NDIS_OID_REQUEST, DATA) == 0x20, "OID.DATA");
_Static_assert(LAB_OFFSET(NDIS_OID_REQUEST, DATA.SET_INFORMATION.InformationBuffer) == 0x28,
               "OID.SET_INFORMATION.InformationBuffer");
_Static_assert(LAB_OFFSET(NDIS_OID_REQUEST, DATA.SET_INFORMATION.InformationBufferLength) == 0x30,
               "OID.SET_INFORMATION.InformationBufferLength");
_Static_assert(LAB_OFFSET(NDIS_OID_REQUEST, NdisReserved) == 0x48, "OID.NdisReserved");
_Static_assert(LAB_OFFSET(NDIS_OID_REQUEST, SourceReserved) == 0xd8, "OID.SourceReserved");
_Static_assert(LAB_OFFSET(NDIS_OID_REQUEST, SupportedRevision) == 0xe8, "OID.SupportedRevision");
_Static_assert(NDIS_SIZEOF_OID_REQUEST_REVISION_1 == 0xec, "NDIS_SIZEOF_OID_REQUEST_REVISION_1");
_Static_assert(sizeof(NDIS_OID_REQUEST) == 0xf0, "NDIS_OID_REQUEST size");

/* NET_BUFFER / NET_BUFFER_LIST: declared up to the members labtdi touches. The leading
 * union with SLIST_HEADER (16 bytes, 16-aligned on x64) and the 16-byte alignment of the
 * three reserved NBL areas are part of the published layout ([WDK] nbl.h:
 * DECLSPEC_ALIGN(MEMORY_ALLOCATION_ALIGNMENT) PVOID NdisReserved[2] / ProtocolReserved[4] /
 * MiniportReserved[2]); without them every NBL field from NdisReserved on sits 8 bytes
 * too early and the driver writes into NDIS's own area. */
typedef struct _NET_BUFFER NET_BUFFER, *PNET_BUFFER;
typedef struct _NET_BUFFER_LIST NET_BUFFER_LIST, *PNET_BUFFER_LIST;

struct _NET_BUFFER {
    union {
        struct {
            PNET_BUFFER Next;
            PMDL CurrentMdl;
            ULONG CurrentMdlOffset;
            union {
                ULONG DataLength;
                SIZE_T stDataLength;
            };
            PMDL MdlChain;
            ULONG DataOffset;
        };
        SLIST_HEADER Link;
    };
};
/* [PDB-x64] _NET_BUFFER: Next 0x0, CurrentMdl 0x8, CurrentMdlOffset 0x10, DataLength 0x18,
 * MdlChain 0x20, DataOffset 0x28. */
_Static_assert(LAB_OFFSET(NET_BUFFER, CurrentMdl) == 0x8, "NB.CurrentMdl");
_Static_assert(LAB_OFFSET(NET_BUFFER, CurrentMdlOffset) == 0x10, "NB.CurrentMdlOffset");
_Static_assert(LAB_OFFSET(NET_BUFFER, DataLength) == 0x18, "NB.DataLength");
_Static_assert(LAB_OFFSET(NET_BUFFER, MdlChain) == 0x20, "NB.MdlChain");
_Static_assert(LAB_OFFSET(NET_BUFFER, DataOffset) == 0x28, "NB.DataOffset");

struct _NET_BUFFER_LIST {
    union {
        struct {
            PNET_BUFFER_LIST Next;
            PNET_BUFFER FirstNetBuffer;
        };
        SLIST_HEADER Link;
    };
    PVOID Context;
    PNET_BUFFER_LIST ParentNetBufferList;
    NDIS_HANDLE NdisPoolHandle;
    LAB_NDIS_ALIGNED PVOID NdisReserved[2];
    LAB_NDIS_ALIGNED PVOID ProtocolReserved[4];
    LAB_NDIS_ALIGNED PVOID MiniportReserved[2];
    PVOID Scratch;
    NDIS_HANDLE SourceHandle;
    ULONG NblFlags;
    LONG ChildRefCount;
    ULONG Flags;
    union {
        NDIS_STATUS Status;
        ULONG NdisReserved2;
    };
};
/* [PDB-x64] _NET_BUFFER_LIST: FirstNetBuffer 0x8, Context 0x10, ParentNetBufferList 0x18,
 * NdisPoolHandle 0x20, NdisReserved 0x30, ProtocolReserved 0x40, MiniportReserved 0x60,
 * Scratch 0x70, SourceHandle 0x78, NblFlags 0x80, ChildRefCount 0x84, Flags 0x88,
 * Status 0x8c, NetBufferListInfo 0x90 (not declared). */
_Static_assert(LAB_OFFSET(NET_BUFFER_LIST, FirstNetBuffer) == 0x8, "NBL.FirstNetBuffer");
_Static_assert(LAB_OFFSET(NET_BUFFER_LIST, Context) == 0x10, "NBL.Context");
_Static_assert(LAB_OFFSET(NET_BUFFER_LIST, NdisPoolHandle) == 0x20, "NBL.NdisPoolHandle");
_Static_assert(LAB_OFFSET(NET_BUFFER_LIST, NdisReserved) == 48, "NBL.NdisReserved");
_Static_assert(LAB_OFFSET(NET_BUFFER_LIST, ProtocolReserved) == 64, "NBL.ProtocolReserved");
_Static_assert(LAB_OFFSET(NET_BUFFER_LIST, MiniportReserved) == 96, "NBL.MiniportReserved");
_Static_assert(LAB_OFFSET(NET_BUFFER_LIST, Scratch) == 112, "NBL.Scratch");
_Static_assert(LAB_OFFSET(NET_BUFFER_LIST, SourceHandle) == 120, "NBL.SourceHandle");
_Static_assert(LAB_OFFSET(NET_BUFFER_LIST, NblFlags) == 128, "NBL.NblFlags");
_Static_assert(LAB_OFFSET(NET_BUFFER_LIST, ChildRefCount) == 132, "NBL.ChildRefCount");
_Static_assert(LAB_OFFSET(NET_BUFFER_LIST, Flags) == 136, "NBL.Flags");
_Static_assert(LAB_OFFSET(NET_BUFFER_LIST, Status) == 140, "NBL.Status");
_Static_assert(_Alignof(NET_BUFFER_LIST) == 16, "NBL is 16-byte aligned on x64");

#define NDIS_RECEIVE_FLAGS_RESOURCES 0x00000002
#define NDIS_RETURN_FLAGS_DISPATCH_LEVEL 0x00000001
#define NDIS_RECEIVE_FLAGS_DISPATCH_LEVEL 0x00000001
#define NDIS_SEND_FLAGS_DISPATCH_LEVEL 0x00000001
#define NDIS_SEND_COMPLETE_FLAGS_DISPATCH_LEVEL 0x00000001

typedef struct _NET_BUFFER_LIST_POOL_PARAMETERS {
    NDIS_OBJECT_HEADER Header;
    UCHAR ProtocolId;
    BOOLEAN fAllocateNetBuffer;
    USHORT ContextSize;
    ULONG PoolTag;
    ULONG DataSize;
} NET_BUFFER_LIST_POOL_PARAMETERS, *PNET_BUFFER_LIST_POOL_PARAMETERS;
#define NET_BUFFER_LIST_POOL_PARAMETERS_REVISION_1 1
#define NDIS_PROTOCOL_ID_DEFAULT 0x00
/* [MSDOCS] ns-ndis-_net_buffer_list_pool_parameters: Header, ProtocolId (UCHAR),
 * fAllocateNetBuffer (BOOLEAN), ContextSize (USHORT), PoolTag, DataSize; revision-1 size is
 * RTL_SIZEOF_THROUGH_FIELD(..., DataSize) = 0x10. */
#define NDIS_SIZEOF_NET_BUFFER_LIST_POOL_PARAMETERS_REVISION_1 \
    (LAB_OFFSET(NET_BUFFER_LIST_POOL_PARAMETERS, DataSize) + sizeof(ULONG))
_Static_assert(LAB_OFFSET(NET_BUFFER_LIST_POOL_PARAMETERS, ProtocolId) == 4, "POOL.ProtocolId");
_Static_assert(LAB_OFFSET(NET_BUFFER_LIST_POOL_PARAMETERS, fAllocateNetBuffer) == 5, "POOL.fAllocateNetBuffer");
_Static_assert(LAB_OFFSET(NET_BUFFER_LIST_POOL_PARAMETERS, ContextSize) == 6, "POOL.ContextSize");
_Static_assert(LAB_OFFSET(NET_BUFFER_LIST_POOL_PARAMETERS, PoolTag) == 8, "POOL.PoolTag");
_Static_assert(NDIS_SIZEOF_NET_BUFFER_LIST_POOL_PARAMETERS_REVISION_1 == 0x10, "POOL size");

/* ---- protocol characteristics (NDIS 6.0, revision 1) ---- */
typedef NDIS_STATUS (WINAPI *SET_OPTIONS_HANDLER)(NDIS_HANDLE, NDIS_HANDLE);
typedef NDIS_STATUS (WINAPI *BIND_ADAPTER_HANDLER_EX)(NDIS_HANDLE ProtocolDriverContext,
    NDIS_HANDLE BindContext, PNDIS_BIND_PARAMETERS BindParameters);
typedef NDIS_STATUS (WINAPI *UNBIND_ADAPTER_HANDLER_EX)(NDIS_HANDLE UnbindContext,
    NDIS_HANDLE ProtocolBindingContext);
typedef VOID (WINAPI *OPEN_ADAPTER_COMPLETE_HANDLER_EX)(NDIS_HANDLE ProtocolBindingContext,
    NDIS_STATUS Status);
typedef VOID (WINAPI *CLOSE_ADAPTER_COMPLETE_HANDLER_EX)(NDIS_HANDLE ProtocolBindingContext);
typedef NDIS_STATUS (WINAPI *NET_PNP_EVENT_HANDLER)(NDIS_HANDLE ProtocolBindingContext,
    PNET_PNP_EVENT_NOTIFICATION NetPnPEventNotification);
typedef VOID (WINAPI *UNINSTALL_PROTOCOL_HANDLER)(VOID);
typedef VOID (WINAPI *OID_REQUEST_COMPLETE_HANDLER)(NDIS_HANDLE ProtocolBindingContext,
    PNDIS_OID_REQUEST OidRequest, NDIS_STATUS Status);
typedef VOID (WINAPI *STATUS_HANDLER_EX)(NDIS_HANDLE ProtocolBindingContext, PVOID StatusIndication);
typedef VOID (WINAPI *RECEIVE_NET_BUFFER_LISTS_HANDLER)(NDIS_HANDLE ProtocolBindingContext,
    PNET_BUFFER_LIST NetBufferLists, NDIS_PORT_NUMBER PortNumber, ULONG NumberOfNetBufferLists,
    ULONG ReceiveFlags);
typedef VOID (WINAPI *SEND_NET_BUFFER_LISTS_COMPLETE_HANDLER)(NDIS_HANDLE ProtocolBindingContext,
    PNET_BUFFER_LIST NetBufferList, ULONG SendCompleteFlags);

typedef struct _NDIS_PROTOCOL_DRIVER_CHARACTERISTICS {
    NDIS_OBJECT_HEADER Header;
    UCHAR MajorNdisVersion;
    UCHAR MinorNdisVersion;
    UCHAR MajorDriverVersion;
    UCHAR MinorDriverVersion;
    ULONG Flags;
    NDIS_STRING Name;
    SET_OPTIONS_HANDLER SetOptionsHandler;
    BIND_ADAPTER_HANDLER_EX BindAdapterHandlerEx;
    UNBIND_ADAPTER_HANDLER_EX UnbindAdapterHandlerEx;
    OPEN_ADAPTER_COMPLETE_HANDLER_EX OpenAdapterCompleteHandlerEx;
    CLOSE_ADAPTER_COMPLETE_HANDLER_EX CloseAdapterCompleteHandlerEx;
    NET_PNP_EVENT_HANDLER NetPnPEventHandler;
    UNINSTALL_PROTOCOL_HANDLER UninstallHandler;
    OID_REQUEST_COMPLETE_HANDLER OidRequestCompleteHandler;
    STATUS_HANDLER_EX StatusHandlerEx;
    RECEIVE_NET_BUFFER_LISTS_HANDLER ReceiveNetBufferListsHandler;
    SEND_NET_BUFFER_LISTS_COMPLETE_HANDLER SendNetBufferListsCompleteHandler;
} NDIS_PROTOCOL_DRIVER_CHARACTERISTICS, *PNDIS_PROTOCOL_DRIVER_CHARACTERISTICS;
#define NDIS_PROTOCOL_DRIVER_CHARACTERISTICS_REVISION_1 1
/* [MSDOCS] ns-ndis-_ndis_protocol_driver_characteristics: revision 1 ends with
 * SendNetBufferListsCompleteHandler. [PDB-x64] _NDIS_PROTOCOL_DRIVER_CHARACTERISTICS (member
 * types, Win10 ndis.sys): Major/MinorDriverVersion are UCHARs at 6 and 7, Flags at 8; x64
 * offsets follow: Name 0x10, SetOptionsHandler 0x20 ... SendNetBufferListsCompleteHandler 0x70. */
#define NDIS_SIZEOF_PROTOCOL_DRIVER_CHARACTERISTICS_REVISION_1 \
    (LAB_OFFSET(NDIS_PROTOCOL_DRIVER_CHARACTERISTICS, SendNetBufferListsCompleteHandler) + sizeof(PVOID))
_Static_assert(LAB_OFFSET(NDIS_PROTOCOL_DRIVER_CHARACTERISTICS, MajorNdisVersion) == 4, "PC.MajorNdisVersion");
_Static_assert(LAB_OFFSET(NDIS_PROTOCOL_DRIVER_CHARACTERISTICS, MajorDriverVersion) == 6, "PC.MajorDriverVersion");
_Static_assert(LAB_OFFSET(NDIS_PROTOCOL_DRIVER_CHARACTERISTICS, MinorDriverVersion) == 7, "PC.MinorDriverVersion");
_Static_assert(LAB_OFFSET(NDIS_PROTOCOL_DRIVER_CHARACTERISTICS, Flags) == 8, "PC.Flags");
_Static_assert(LAB_OFFSET(NDIS_PROTOCOL_DRIVER_CHARACTERISTICS, Name) == 0x10, "PC.Name");
_Static_assert(LAB_OFFSET(NDIS_PROTOCOL_DRIVER_CHARACTERISTICS, SetOptionsHandler) == 0x20, "PC.SetOptionsHandler");
_Static_assert(LAB_OFFSET(NDIS_PROTOCOL_DRIVER_CHARACTERISTICS, BindAdapterHandlerEx) == 0x28, "PC.BindAdapterHandlerEx");
_Static_assert(LAB_OFFSET(NDIS_PROTOCOL_DRIVER_CHARACTERISTICS, UnbindAdapterHandlerEx) == 0x30, "PC.UnbindAdapterHandlerEx");
_Static_assert(LAB_OFFSET(NDIS_PROTOCOL_DRIVER_CHARACTERISTICS, OpenAdapterCompleteHandlerEx) == 0x38,
               "PC.OpenAdapterCompleteHandlerEx");
_Static_assert(LAB_OFFSET(NDIS_PROTOCOL_DRIVER_CHARACTERISTICS, CloseAdapterCompleteHandlerEx) == 0x40,
               "PC.CloseAdapterCompleteHandlerEx");
_Static_assert(LAB_OFFSET(NDIS_PROTOCOL_DRIVER_CHARACTERISTICS, NetPnPEventHandler) == 0x48, "PC.NetPnPEventHandler");
_Static_assert(LAB_OFFSET(NDIS_PROTOCOL_DRIVER_CHARACTERISTICS, UninstallHandler) == 0x50, "PC.UninstallHandler");
_Static_assert(LAB_OFFSET(NDIS_PROTOCOL_DRIVER_CHARACTERISTICS, OidRequestCompleteHandler) == 0x58,
               "PC.OidRequestCompleteHandler");
_Static_assert(LAB_OFFSET(NDIS_PROTOCOL_DRIVER_CHARACTERISTICS, StatusHandlerEx) == 0x60, "PC.StatusHandlerEx");
_Static_assert(LAB_OFFSET(NDIS_PROTOCOL_DRIVER_CHARACTERISTICS, ReceiveNetBufferListsHandler) == 0x68,
               "PC.ReceiveNetBufferListsHandler");
_Static_assert(LAB_OFFSET(NDIS_PROTOCOL_DRIVER_CHARACTERISTICS, SendNetBufferListsCompleteHandler) == 0x70,
               "PC.SendNetBufferListsCompleteHandler");
_Static_assert(NDIS_SIZEOF_PROTOCOL_DRIVER_CHARACTERISTICS_REVISION_1 == 0x78, "PC revision-1 size");

/* ---- NDIS.SYS exports (import library built from drivers/windows/lib/ndis.def) ---- */
NDIS_STATUS WINAPI NdisRegisterProtocolDriver(NDIS_HANDLE ProtocolDriverContext,
    PNDIS_PROTOCOL_DRIVER_CHARACTERISTICS Characteristics, PNDIS_HANDLE NdisProtocolHandle);
VOID WINAPI NdisDeregisterProtocolDriver(NDIS_HANDLE NdisProtocolHandle);
NDIS_STATUS WINAPI NdisOpenAdapterEx(NDIS_HANDLE NdisProtocolHandle, NDIS_HANDLE ProtocolBindingContext,
    PNDIS_OPEN_PARAMETERS OpenParameters, NDIS_HANDLE BindContext, PNDIS_HANDLE NdisBindingHandle);
NDIS_STATUS WINAPI NdisCloseAdapterEx(NDIS_HANDLE NdisBindingHandle);
VOID WINAPI NdisCompleteBindAdapterEx(NDIS_HANDLE BindAdapterContext, NDIS_STATUS Status);
VOID WINAPI NdisCompleteUnbindAdapterEx(NDIS_HANDLE UnbindContext);
NDIS_STATUS WINAPI NdisOidRequest(NDIS_HANDLE NdisBindingHandle, PNDIS_OID_REQUEST OidRequest);
NDIS_HANDLE WINAPI NdisAllocateNetBufferListPool(NDIS_HANDLE NdisHandle,
    PNET_BUFFER_LIST_POOL_PARAMETERS Parameters);
VOID WINAPI NdisFreeNetBufferListPool(NDIS_HANDLE PoolHandle);
PNET_BUFFER_LIST WINAPI NdisAllocateNetBufferAndNetBufferList(NDIS_HANDLE PoolHandle,
    USHORT ContextSize, USHORT ContextBackFill, PMDL MdlChain, ULONG DataOffset, SIZE_T DataLength);
VOID WINAPI NdisFreeNetBufferList(PNET_BUFFER_LIST NetBufferList);
VOID WINAPI NdisSendNetBufferLists(NDIS_HANDLE NdisBindingHandle, PNET_BUFFER_LIST NetBufferLists,
    NDIS_PORT_NUMBER PortNumber, ULONG SendFlags);
VOID WINAPI NdisReturnNetBufferLists(NDIS_HANDLE NdisBindingHandle, PNET_BUFFER_LIST NetBufferLists,
    ULONG ReturnFlags);
PVOID WINAPI NdisGetDataBuffer(PNET_BUFFER NetBuffer, ULONG BytesNeeded, PVOID Storage,
    UINT AlignMultiple, UINT AlignOffset);

#endif /* LAB_NDIS6_H */
