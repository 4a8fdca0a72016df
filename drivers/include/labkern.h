/*
 * labkern.h -- kernel-mode helpers shared by Driver Lab's Windows drivers:
 * the event journal (drivers/events.txt vocabulary), registry knobs and the
 * journal control device. Implemented in drivers/common/windows/labkern.c.
 * All functions run at PASSIVE_LEVEL.
 */
#ifndef LAB_KERN_H
#define LAB_KERN_H

#include <ddk/wdm.h>

#include "labctl_ioctl.h"

/* ntifs.h declares this; mingw-w64's wdm.h does not. Exported by ntoskrnl. */
NTSYSAPI NTSTATUS NTAPI ZwWaitForSingleObject(HANDLE Handle, BOOLEAN Alertable, PLARGE_INTEGER Timeout);

/* Opens the service's Parameters key, reads the journal file knob and starts the
 * journal. `driver` is the short name written in every line (wskecho / labtdi). */
NTSTATUS LabJournalInit(const char *driver, PUNICODE_STRING RegistryPath);
/* Appends "<t_ns> <driver> <event> <adapter or -> <ok | err:0xSTATUS>". */
VOID LabJournal(const char *event, const char *adapter, NTSTATUS status);
VOID LabJournalClose(VOID);

/* Reads a REG_DWORD from <service>\Parameters; returns `fallback` if absent. */
ULONG LabKnob(PUNICODE_STRING RegistryPath, PCWSTR name, ULONG fallback);

/* Control device \Device\<name> + \DosDevices\<name> answering IOCTL_LAB_READ_JOURNAL. */
NTSTATUS LabControlCreate(PDRIVER_OBJECT Driver, PCWSTR name);
VOID LabControlDelete(VOID);

/* Formats "aa:bb:cc:dd:ee:ff@<ifindex>" into out (at least 32 bytes). */
VOID LabFormatAdapter(char *out, const UCHAR mac[6], ULONG ifIndex);

/* Sleeps for `ms` milliseconds (PASSIVE_LEVEL). */
VOID LabSleepMs(ULONG ms);

#endif /* LAB_KERN_H */
