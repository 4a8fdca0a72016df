/*
 * labtdikrnl.h -- the TDI provider-registration subset used by labtdi.sys, written
 * from the public TDI reference (tdikrnl.h). Imported from TDI.SYS through an import
 * library that the build generates with dlltool from drivers/windows/lib/tdi.def.
 *
 * Sources of the pinned layouts:
 *   [DDK]    Microsoft's tdikrnl.h / tdi.h as shipped in the DDK (public copy:
 *            9176324/Shark WinDDK/3790.1830/inc/ddk/.../tdikrnl.h): TDI_PNP_CONTEXT_XP is
 *            { USHORT ContextSize; USHORT ContextType; UCHAR POINTER_ALIGNMENT ContextData[1]; }
 *            and POINTER_ALIGNMENT is DECLSPEC_ALIGN(8) on 64-bit Windows (ntdef.h).
 *   [MSDOCS] learn.microsoft.com TDI_PNP_CONTEXT, TA_ADDRESS and TdiRegisterNetAddress pages.
 * mingw-w64's ddk/tdikrnl.h drops POINTER_ALIGNMENT (ContextData at 4): it does NOT agree
 * with the DDK here and is not used.
 */
#ifndef LAB_TDIKRNL_H
#define LAB_TDIKRNL_H

#include "labndis6.h"

typedef struct _TA_ADDRESS {
    USHORT AddressLength;
    USHORT AddressType;
    UCHAR Address[1];
} TA_ADDRESS, *PTA_ADDRESS;
/* [MSDOCS]/[DDK] tdi.h TA_ADDRESS: AddressLength 0, AddressType 2, Address 4 (no padding). */
_Static_assert(LAB_OFFSET(TA_ADDRESS, AddressType) == 2, "TA_ADDRESS.AddressType");
_Static_assert(LAB_OFFSET(TA_ADDRESS, Address) == 4, "TA_ADDRESS.Address");

#define TDI_ADDRESS_TYPE_UNSPEC 0

#define LAB_POINTER_ALIGNMENT __attribute__((aligned(8))) /* [DDK] ntdef.h, _WIN64 */

typedef struct _TDI_PNP_CONTEXT {
    USHORT ContextSize;
    USHORT ContextType;
    UCHAR LAB_POINTER_ALIGNMENT ContextData[1];
} TDI_PNP_CONTEXT, *PTDI_PNP_CONTEXT;
/* [DDK] TDI_PNP_CONTEXT_XP on x64: ContextType 2, ContextData 8, size 16. */
_Static_assert(LAB_OFFSET(TDI_PNP_CONTEXT, ContextType) == 2, "TDI_PNP_CONTEXT.ContextType");
_Static_assert(LAB_OFFSET(TDI_PNP_CONTEXT, ContextData) == 8, "TDI_PNP_CONTEXT.ContextData");
_Static_assert(sizeof(TDI_PNP_CONTEXT) == 16, "TDI_PNP_CONTEXT size");

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
