/*
 * labtdikrnl.h -- the TDI provider-registration subset used by labtdi.sys, written
 * from the public TDI reference (tdikrnl.h). Imported from TDI.SYS through an import
 * library that the build generates with dlltool from drivers/windows/lib/tdi.def.
 */
#ifndef LAB_TDIKRNL_H
#define LAB_TDIKRNL_H

#include "labndis6.h"

typedef struct _TA_ADDRESS {
    USHORT AddressLength;
    USHORT AddressType;
    UCHAR Address[1];
} TA_ADDRESS, *PTA_ADDRESS;

#define TDI_ADDRESS_TYPE_UNSPEC 0

typedef struct _TDI_PNP_CONTEXT {
    USHORT ContextSize;
    USHORT ContextType;
    UCHAR ContextData[1];
} TDI_PNP_CONTEXT, *PTDI_PNP_CONTEXT;

typedef VOID (WINAPI *ProviderPnPPowerComplete)(PNET_PNP_EVENT NetEvent, NTSTATUS ProviderStatus);

NTSTATUS WINAPI TdiRegisterProvider(PUNICODE_STRING ProviderName, HANDLE *ProviderHandle);
NTSTATUS WINAPI TdiDeregisterProvider(HANDLE ProviderHandle);
NTSTATUS WINAPI TdiProviderReady(HANDLE ProviderHandle);
NTSTATUS WINAPI TdiRegisterDeviceObject(PUNICODE_STRING DeviceName, HANDLE *RegistrationHandle);
NTSTATUS WINAPI TdiDeregisterDeviceObject(HANDLE RegistrationHandle);
NTSTATUS WINAPI TdiRegisterNetAddress(PTA_ADDRESS Address, PUNICODE_STRING DeviceName,
                                      PTDI_PNP_CONTEXT Context, HANDLE *AddressHandle);
NTSTATUS WINAPI TdiDeregisterNetAddress(HANDLE AddressHandle);
NTSTATUS WINAPI TdiPnPPowerRequest(PUNICODE_STRING DeviceName, PNET_PNP_EVENT PowerEvent,
                                   PTDI_PNP_CONTEXT Context1, PTDI_PNP_CONTEXT Context2,
                                   ProviderPnPPowerComplete ProtocolCompletionHandler);

#endif /* LAB_TDIKRNL_H */
