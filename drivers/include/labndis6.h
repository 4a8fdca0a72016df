/*
 * labndis6.h -- the NDIS 6.x protocol-driver subset used by labtdi.sys.
 *
 * mingw-w64's ddk/ndis.h describes NDIS 5 (and does not build cleanly for x64 kernel
 * code), so it is NOT included. These declarations are written from the public NDIS 6
 * reference; layouts are x64 and the offsets that matter are pinned with static
 * asserts. Structures NDIS hands us (bind parameters) are declared only up to the
 * last member we read; structures we hand NDIS are declared completely.
 */
#ifndef LAB_NDIS6_H
#define LAB_NDIS6_H

#include <ddk/wdm.h>

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

/* NetPnPEventHandler codes (NET_PNP_EVENT_CODE). */
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
    NetEventMaximum
} NET_PNP_EVENT_CODE;

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

_Static_assert(__builtin_offsetof(NDIS_BIND_PARAMETERS, AdapterName) == 16, "AdapterName");
_Static_assert(__builtin_offsetof(NDIS_BIND_PARAMETERS, MediaType) == 32, "MediaType");
_Static_assert(__builtin_offsetof(NDIS_BIND_PARAMETERS, MacAddressLength) == 104, "MacAddressLength");
_Static_assert(__builtin_offsetof(NDIS_BIND_PARAMETERS, CurrentMacAddress) == 106, "CurrentMacAddress");
_Static_assert(__builtin_offsetof(NDIS_BIND_PARAMETERS, BoundIfIndex) == 160, "BoundIfIndex");

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
#define NDIS_SIZEOF_OID_REQUEST_REVISION_1 (__builtin_offsetof(NDIS_OID_REQUEST, Reserved2) + sizeof(USHORT))
_Static_assert(__builtin_offsetof(NDIS_OID_REQUEST, DATA) == 32, "OID DATA");

/* NET_BUFFER / NET_BUFFER_LIST: declared up to the members labtdi touches. */
typedef struct _NET_BUFFER NET_BUFFER, *PNET_BUFFER;
typedef struct _NET_BUFFER_LIST NET_BUFFER_LIST, *PNET_BUFFER_LIST;

struct _NET_BUFFER {
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

struct _NET_BUFFER_LIST {
    PNET_BUFFER_LIST Next;
    PNET_BUFFER FirstNetBuffer;
    PVOID Context;
    PNET_BUFFER_LIST ParentNetBufferList;
    NDIS_HANDLE NdisPoolHandle;
    PVOID NdisReserved[2];
    PVOID ProtocolReserved[4];
    PVOID MiniportReserved[2];
    PVOID Scratch;
    NDIS_HANDLE SourceHandle;
    ULONG NblFlags;
    LONG ChildRefCount;
    ULONG Flags;
    NDIS_STATUS Status;
};
_Static_assert(__builtin_offsetof(NET_BUFFER_LIST, ProtocolReserved) == 56, "ProtocolReserved");
_Static_assert(__builtin_offsetof(NET_BUFFER_LIST, Status) == 132, "NBL Status");

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
    USHORT MajorDriverVersion;
    USHORT MinorDriverVersion;
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
#define NDIS_SIZEOF_PROTOCOL_DRIVER_CHARACTERISTICS_REVISION_1 sizeof(NDIS_PROTOCOL_DRIVER_CHARACTERISTICS)

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
