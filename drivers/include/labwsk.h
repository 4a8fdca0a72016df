/*
 * labwsk.h -- Winsock Kernel (WSK) declarations for Driver Lab's Windows drivers.
 *
 * mingw-w64 ships no wsk.h, so this header declares the subset of WSK the WSK echo
 * driver uses, written from the public WSK documentation (wsk.h reference pages).
 * Struct layouts, constants and function signatures are interface facts of
 * NETIO.SYS; the order of members matters and must not be changed.
 *
 * Only x86-64 is supported (the lab's Windows guests are 64-bit).
 *
 * Pinned layouts (static asserts at the end) come from:
 *   [MSDOCS] learn.microsoft.com wsk.h reference (WSK_BUF, WSK_CLIENT_DISPATCH,
 *            WSK_REGISTRATION, WSK_PROVIDER_*_DISPATCH member order) and ws2def.h /
 *            ws2ipdef.h (SOCKADDR_IN 16 bytes, SOCKADDR_IN6 28 bytes);
 *   [WINE]   wine-mirror/wine include/ddk/wsk.h, which declares the same members in the
 *            same order and whose netio.sys runs the real wskecho.sys in the Wine smoke.
 * x64 offsets follow from those member lists (8-byte pointers and SIZE_T).
 */
#ifndef LAB_WSK_H
#define LAB_WSK_H

#include <ddk/wdm.h>

#if !defined(__x86_64__)
#error "labwsk.h is written for x86-64 kernel drivers only"
#endif

/* ---- socket addresses (ws2def.h / ws2ipdef.h layouts) ---- */
typedef USHORT ADDRESS_FAMILY;
#define AF_INET 2
#define AF_INET6 23
#define SOCK_STREAM 1
#define IPPROTO_TCP 6

typedef struct _LAB_SOCKADDR {
    ADDRESS_FAMILY sa_family;
    CHAR sa_data[14];
} SOCKADDR, *PSOCKADDR;

typedef struct _LAB_SOCKADDR_IN {
    ADDRESS_FAMILY sin_family;
    USHORT sin_port;          /* network byte order */
    ULONG sin_addr;           /* network byte order */
    CHAR sin_zero[8];
} SOCKADDR_IN, *PSOCKADDR_IN;

typedef struct _LAB_SOCKADDR_IN6 {
    ADDRESS_FAMILY sin6_family;
    USHORT sin6_port;         /* network byte order */
    ULONG sin6_flowinfo;
    UCHAR sin6_addr[16];
    ULONG sin6_scope_id;
} SOCKADDR_IN6, *PSOCKADDR_IN6;

_Static_assert(sizeof(SOCKADDR) == 16, "SOCKADDR is 16 bytes");
_Static_assert(sizeof(SOCKADDR_IN) == 16, "SOCKADDR_IN is 16 bytes");
_Static_assert(sizeof(SOCKADDR_IN6) == 28, "SOCKADDR_IN6 is 28 bytes");

/* ---- WSK constants ---- */
#define MAKE_WSK_VERSION(Mj, Mn) ((USHORT)((Mj) << 8) | (USHORT)((Mn) & 0xff))
#define WSK_NO_WAIT 0
#define WSK_INFINITE_WAIT 0xffffffffUL

#define WSK_FLAG_BASIC_SOCKET 0x00000000
#define WSK_FLAG_LISTEN_SOCKET 0x00000001
#define WSK_FLAG_CONNECTION_SOCKET 0x00000002
#define WSK_FLAG_DATAGRAM_SOCKET 0x00000004
#define WSK_FLAG_STREAM_SOCKET 0x00000008

/* WskReceive flags */
#define WSK_FLAG_WAITALL 0x00000002
/* WskDisconnect flags */
#define WSK_FLAG_ABORTIVE 0x00000001

typedef enum {
    WskSetOption,
    WskGetOption,
    WskIoctl,
    WskControlMax
} WSK_CONTROL_SOCKET_TYPE;

typedef enum {
    WskInspectReject,
    WskInspectAccept,
    WskInspectPend,
    WskInspectMax
} WSK_INSPECT_ACTION;

typedef struct _WSK_BUF {
    PMDL Mdl;
    ULONG Offset;
    SIZE_T Length;
} WSK_BUF, *PWSK_BUF;

typedef struct _WSK_INSPECT_ID {
    ULONG_PTR Key;
    ULONG SerialNumber;
} WSK_INSPECT_ID, *PWSK_INSPECT_ID;

typedef struct _WSK_DATA_INDICATION WSK_DATA_INDICATION, *PWSK_DATA_INDICATION;

/* Opaque provider-side client handle. */
typedef struct _WSK_CLIENT WSK_CLIENT, *PWSK_CLIENT;

typedef struct _WSK_SOCKET {
    const VOID *Dispatch;
} WSK_SOCKET, *PWSK_SOCKET;

/* ---- client side ---- */
typedef NTSTATUS (WINAPI *PFN_WSK_CLIENT_EVENT)(PVOID ClientContext, ULONG EventType,
                                                PVOID Information, SIZE_T InformationLength);

typedef struct _WSK_CLIENT_DISPATCH {
    USHORT Version;
    USHORT Reserved;
    PFN_WSK_CLIENT_EVENT WskClientEvent;
} WSK_CLIENT_DISPATCH, *PWSK_CLIENT_DISPATCH;

typedef struct _WSK_CLIENT_NPI {
    PVOID ClientContext;
    const WSK_CLIENT_DISPATCH *Dispatch;
} WSK_CLIENT_NPI, *PWSK_CLIENT_NPI;

/* Client connection dispatch: event callbacks (all optional, NULL = not used). */
typedef struct _WSK_CLIENT_CONNECTION_DISPATCH {
    PVOID WskReceiveEvent;
    PVOID WskDisconnectEvent;
    PVOID WskSendBacklogEvent;
} WSK_CLIENT_CONNECTION_DISPATCH, *PWSK_CLIENT_CONNECTION_DISPATCH;

/* The registration block the client owns; it must stay allocated from WskRegister
 * until WskDeregister has returned. */
typedef struct _WSK_REGISTRATION {
    ULONGLONG ReservedRegistrationState;
    PVOID ReservedRegistrationContext;
    KSPIN_LOCK ReservedRegistrationLock;
} WSK_REGISTRATION, *PWSK_REGISTRATION;

/* ---- provider dispatch tables ---- */
typedef NTSTATUS (WINAPI *PFN_WSK_SOCKET)(PWSK_CLIENT Client, ADDRESS_FAMILY AddressFamily,
    USHORT SocketType, ULONG Protocol, ULONG Flags, PVOID SocketContext, const VOID *Dispatch,
    PEPROCESS OwningProcess, PETHREAD OwningThread, PSECURITY_DESCRIPTOR SecurityDescriptor,
    PIRP Irp);
typedef NTSTATUS (WINAPI *PFN_WSK_SOCKET_CONNECT)(PWSK_CLIENT Client, USHORT SocketType,
    ULONG Protocol, PSOCKADDR LocalAddress, PSOCKADDR RemoteAddress, ULONG Flags,
    PVOID SocketContext, const WSK_CLIENT_CONNECTION_DISPATCH *Dispatch, PEPROCESS OwningProcess,
    PETHREAD OwningThread, PSECURITY_DESCRIPTOR SecurityDescriptor, PIRP Irp);
typedef NTSTATUS (WINAPI *PFN_WSK_CONTROL_CLIENT)(PWSK_CLIENT Client, ULONG ControlCode,
    SIZE_T InputSize, PVOID InputBuffer, SIZE_T OutputSize, PVOID OutputBuffer,
    SIZE_T *OutputSizeReturned, PIRP Irp);
typedef NTSTATUS (WINAPI *PFN_WSK_GET_ADDRESS_INFO)(PWSK_CLIENT Client, PUNICODE_STRING NodeName,
    PUNICODE_STRING ServiceName, ULONG NameSpace, GUID *Provider, PVOID Hints, PVOID *Result,
    PEPROCESS OwningProcess, PETHREAD OwningThread, PIRP Irp);
typedef VOID (WINAPI *PFN_WSK_FREE_ADDRESS_INFO)(PWSK_CLIENT Client, PVOID AddrInfo);
typedef NTSTATUS (WINAPI *PFN_WSK_GET_NAME_INFO)(PWSK_CLIENT Client, PSOCKADDR SockAddr,
    ULONG SockAddrLength, PUNICODE_STRING NodeName, PUNICODE_STRING ServiceName, ULONG Flags,
    PEPROCESS OwningProcess, PETHREAD OwningThread, PIRP Irp);

typedef struct _WSK_PROVIDER_DISPATCH {
    USHORT Version;
    USHORT Reserved;
    PFN_WSK_SOCKET WskSocket;
    PFN_WSK_SOCKET_CONNECT WskSocketConnect;
    PFN_WSK_CONTROL_CLIENT WskControlClient;
    PFN_WSK_GET_ADDRESS_INFO WskGetAddressInfo;
    PFN_WSK_FREE_ADDRESS_INFO WskFreeAddressInfo;
    PFN_WSK_GET_NAME_INFO WskGetNameInfo;
} WSK_PROVIDER_DISPATCH, *PWSK_PROVIDER_DISPATCH;

typedef struct _WSK_PROVIDER_NPI {
    PWSK_CLIENT Client;
    const WSK_PROVIDER_DISPATCH *Dispatch;
} WSK_PROVIDER_NPI, *PWSK_PROVIDER_NPI;

typedef NTSTATUS (WINAPI *PFN_WSK_CONTROL_SOCKET)(PWSK_SOCKET Socket,
    WSK_CONTROL_SOCKET_TYPE RequestType, ULONG ControlCode, ULONG Level, SIZE_T InputSize,
    PVOID InputBuffer, SIZE_T OutputSize, PVOID OutputBuffer, SIZE_T *OutputSizeReturned,
    PIRP Irp);
typedef NTSTATUS (WINAPI *PFN_WSK_CLOSE_SOCKET)(PWSK_SOCKET Socket, PIRP Irp);
typedef NTSTATUS (WINAPI *PFN_WSK_BIND)(PWSK_SOCKET Socket, PSOCKADDR LocalAddress, ULONG Flags,
    PIRP Irp);
typedef NTSTATUS (WINAPI *PFN_WSK_ACCEPT)(PWSK_SOCKET ListenSocket, ULONG Flags,
    PVOID AcceptSocketContext, const WSK_CLIENT_CONNECTION_DISPATCH *AcceptSocketDispatch,
    PSOCKADDR LocalAddress, PSOCKADDR RemoteAddress, PIRP Irp);
typedef NTSTATUS (WINAPI *PFN_WSK_INSPECT_COMPLETE)(PWSK_SOCKET ListenSocket,
    PWSK_INSPECT_ID InspectID, WSK_INSPECT_ACTION Action, PIRP Irp);
typedef NTSTATUS (WINAPI *PFN_WSK_GET_LOCAL_ADDRESS)(PWSK_SOCKET Socket, PSOCKADDR LocalAddress,
    PIRP Irp);
typedef NTSTATUS (WINAPI *PFN_WSK_GET_REMOTE_ADDRESS)(PWSK_SOCKET Socket,
    PSOCKADDR RemoteAddress, PIRP Irp);
typedef NTSTATUS (WINAPI *PFN_WSK_CONNECT)(PWSK_SOCKET Socket, PSOCKADDR RemoteAddress,
    ULONG Flags, PIRP Irp);
typedef NTSTATUS (WINAPI *PFN_WSK_SEND)(PWSK_SOCKET Socket, PWSK_BUF Buffer, ULONG Flags,
    PIRP Irp);
typedef NTSTATUS (WINAPI *PFN_WSK_RECEIVE)(PWSK_SOCKET Socket, PWSK_BUF Buffer, ULONG Flags,
    PIRP Irp);
typedef NTSTATUS (WINAPI *PFN_WSK_DISCONNECT)(PWSK_SOCKET Socket, PWSK_BUF Buffer, ULONG Flags,
    PIRP Irp);
typedef NTSTATUS (WINAPI *PFN_WSK_RELEASE_DATA_INDICATION_LIST)(PWSK_SOCKET Socket,
    PWSK_DATA_INDICATION DataIndication);
typedef NTSTATUS (WINAPI *PFN_WSK_CONNECT_EX)(PWSK_SOCKET Socket, PSOCKADDR RemoteAddress,
    PWSK_BUF Buffer, ULONG Flags, PIRP Irp);

typedef struct _WSK_PROVIDER_BASIC_DISPATCH {
    PFN_WSK_CONTROL_SOCKET WskControlSocket;
    PFN_WSK_CLOSE_SOCKET WskCloseSocket;
} WSK_PROVIDER_BASIC_DISPATCH, *PWSK_PROVIDER_BASIC_DISPATCH;

typedef struct _WSK_PROVIDER_LISTEN_DISPATCH {
    WSK_PROVIDER_BASIC_DISPATCH Basic;
    PFN_WSK_BIND WskBind;
    PFN_WSK_ACCEPT WskAccept;
    PFN_WSK_INSPECT_COMPLETE WskInspectComplete;
    PFN_WSK_GET_LOCAL_ADDRESS WskGetLocalAddress;
} WSK_PROVIDER_LISTEN_DISPATCH, *PWSK_PROVIDER_LISTEN_DISPATCH;

typedef struct _WSK_PROVIDER_CONNECTION_DISPATCH {
    WSK_PROVIDER_BASIC_DISPATCH Basic;
    PFN_WSK_BIND WskBind;
    PFN_WSK_CONNECT WskConnect;
    PFN_WSK_GET_LOCAL_ADDRESS WskGetLocalAddress;
    PFN_WSK_GET_REMOTE_ADDRESS WskGetRemoteAddress;
    PFN_WSK_SEND WskSend;
    PFN_WSK_RECEIVE WskReceive;
    PFN_WSK_DISCONNECT WskDisconnect;
    PFN_WSK_RELEASE_DATA_INDICATION_LIST WskRelease;
    PFN_WSK_CONNECT_EX WskConnectEx;
    PVOID WskSendEx;      /* WSK 1.1+, unused here */
    PVOID WskReceiveEx;   /* WSK 1.1+, unused here */
} WSK_PROVIDER_CONNECTION_DISPATCH, *PWSK_PROVIDER_CONNECTION_DISPATCH;

/* ---- pinned layouts ([MSDOCS], [WINE]) ---- */
#define LAB_WSK_OFFSET(type, field) __builtin_offsetof(type, field)
_Static_assert(LAB_WSK_OFFSET(SOCKADDR_IN, sin_port) == 2 && LAB_WSK_OFFSET(SOCKADDR_IN, sin_addr) == 4,
               "SOCKADDR_IN members");
_Static_assert(LAB_WSK_OFFSET(SOCKADDR_IN6, sin6_addr) == 8 && LAB_WSK_OFFSET(SOCKADDR_IN6, sin6_scope_id) == 24,
               "SOCKADDR_IN6 members");
_Static_assert(LAB_WSK_OFFSET(WSK_BUF, Offset) == 8 && LAB_WSK_OFFSET(WSK_BUF, Length) == 16, "WSK_BUF members");
_Static_assert(sizeof(WSK_BUF) == 24, "WSK_BUF size");
_Static_assert(LAB_WSK_OFFSET(WSK_INSPECT_ID, SerialNumber) == 8 && sizeof(WSK_INSPECT_ID) == 16, "WSK_INSPECT_ID");
_Static_assert(LAB_WSK_OFFSET(WSK_CLIENT_DISPATCH, WskClientEvent) == 8 && sizeof(WSK_CLIENT_DISPATCH) == 16,
               "WSK_CLIENT_DISPATCH");
_Static_assert(LAB_WSK_OFFSET(WSK_CLIENT_NPI, Dispatch) == 8 && sizeof(WSK_CLIENT_NPI) == 16, "WSK_CLIENT_NPI");
_Static_assert(LAB_WSK_OFFSET(WSK_REGISTRATION, ReservedRegistrationContext) == 8
               && LAB_WSK_OFFSET(WSK_REGISTRATION, ReservedRegistrationLock) == 16
               && sizeof(WSK_REGISTRATION) == 24, "WSK_REGISTRATION");
_Static_assert(LAB_WSK_OFFSET(WSK_PROVIDER_NPI, Dispatch) == 8 && sizeof(WSK_PROVIDER_NPI) == 16, "WSK_PROVIDER_NPI");
_Static_assert(LAB_WSK_OFFSET(WSK_PROVIDER_DISPATCH, WskSocket) == 8
               && LAB_WSK_OFFSET(WSK_PROVIDER_DISPATCH, WskGetNameInfo) == 48
               && sizeof(WSK_PROVIDER_DISPATCH) == 56, "WSK_PROVIDER_DISPATCH");
_Static_assert(LAB_WSK_OFFSET(WSK_PROVIDER_BASIC_DISPATCH, WskCloseSocket) == 8, "BASIC.WskCloseSocket");
_Static_assert(LAB_WSK_OFFSET(WSK_PROVIDER_LISTEN_DISPATCH, WskBind) == 16
               && LAB_WSK_OFFSET(WSK_PROVIDER_LISTEN_DISPATCH, WskAccept) == 24
               && LAB_WSK_OFFSET(WSK_PROVIDER_LISTEN_DISPATCH, WskInspectComplete) == 32
               && LAB_WSK_OFFSET(WSK_PROVIDER_LISTEN_DISPATCH, WskGetLocalAddress) == 40, "LISTEN dispatch");
_Static_assert(LAB_WSK_OFFSET(WSK_PROVIDER_CONNECTION_DISPATCH, WskBind) == 16
               && LAB_WSK_OFFSET(WSK_PROVIDER_CONNECTION_DISPATCH, WskConnect) == 24
               && LAB_WSK_OFFSET(WSK_PROVIDER_CONNECTION_DISPATCH, WskGetLocalAddress) == 32
               && LAB_WSK_OFFSET(WSK_PROVIDER_CONNECTION_DISPATCH, WskGetRemoteAddress) == 40
               && LAB_WSK_OFFSET(WSK_PROVIDER_CONNECTION_DISPATCH, WskSend) == 48
               && LAB_WSK_OFFSET(WSK_PROVIDER_CONNECTION_DISPATCH, WskReceive) == 56
               && LAB_WSK_OFFSET(WSK_PROVIDER_CONNECTION_DISPATCH, WskDisconnect) == 64
               && LAB_WSK_OFFSET(WSK_PROVIDER_CONNECTION_DISPATCH, WskRelease) == 72
               && LAB_WSK_OFFSET(WSK_PROVIDER_CONNECTION_DISPATCH, WskConnectEx) == 80
               && sizeof(WSK_PROVIDER_CONNECTION_DISPATCH) == 104, "CONNECTION dispatch");
_Static_assert(WskInspectPend == 2 && WskIoctl == 2, "WSK enums");

/* ---- NETIO.SYS registration exports (import library built from netio.def) ---- */
NTSTATUS WINAPI WskRegister(PWSK_CLIENT_NPI WskClientNpi, PWSK_REGISTRATION WskRegistration);
VOID WINAPI WskDeregister(PWSK_REGISTRATION WskRegistration);
NTSTATUS WINAPI WskCaptureProviderNPI(PWSK_REGISTRATION WskRegistration, ULONG WaitTimeout,
                                      PWSK_PROVIDER_NPI WskProviderNpi);
VOID WINAPI WskReleaseProviderNPI(PWSK_REGISTRATION WskRegistration);

#endif /* LAB_WSK_H */
