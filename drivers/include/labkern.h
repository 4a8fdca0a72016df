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

/*
 * Kernel layouts the drivers (and tests/drivers' emulator) rely on. They come from
 * mingw-w64's ddk/wdm.h, pinned here against x64 layouts from the public symbols of
 * Windows (ntdiff/headers Win7/x64/System32/ndis.sys/ALL_SORTED.h: _DRIVER_OBJECT,
 * _MDL, _UNICODE_STRING, _OBJECT_ATTRIBUTES) so a header change cannot move them silently.
 */
_Static_assert(__builtin_offsetof(DRIVER_OBJECT, DriverUnload) == 0x68, "DRIVER_OBJECT.DriverUnload");
_Static_assert(__builtin_offsetof(DRIVER_OBJECT, MajorFunction) == 0x70, "DRIVER_OBJECT.MajorFunction");
_Static_assert(__builtin_offsetof(MDL, MappedSystemVa) == 0x18, "MDL.MappedSystemVa");
_Static_assert(__builtin_offsetof(MDL, StartVa) == 0x20, "MDL.StartVa");
_Static_assert(__builtin_offsetof(MDL, ByteCount) == 0x28, "MDL.ByteCount");
_Static_assert(sizeof(MDL) == 0x30, "MDL size");
_Static_assert(__builtin_offsetof(UNICODE_STRING, Buffer) == 8, "UNICODE_STRING.Buffer");
_Static_assert(__builtin_offsetof(OBJECT_ATTRIBUTES, RootDirectory) == 8, "OBJECT_ATTRIBUTES.RootDirectory");
_Static_assert(__builtin_offsetof(OBJECT_ATTRIBUTES, ObjectName) == 16, "OBJECT_ATTRIBUTES.ObjectName");
_Static_assert(__builtin_offsetof(KEY_VALUE_PARTIAL_INFORMATION, Data) == 12, "KEY_VALUE_PARTIAL_INFORMATION.Data");
/* labctl_ioctl.h spells its IOCTL out (it is shared with user mode); it must be the
 * CTL_CODE(FILE_DEVICE_UNKNOWN, 0x801, METHOD_BUFFERED, FILE_READ_ACCESS) of wdm.h. */
_Static_assert(IOCTL_LAB_READ_JOURNAL == CTL_CODE(FILE_DEVICE_UNKNOWN, 0x801, METHOD_BUFFERED, FILE_READ_ACCESS),
               "IOCTL_LAB_READ_JOURNAL");

/* Memory integrity (HVCI) wants data in non-executable pool: every nonpaged allocation of
 * the lab's drivers uses LAB_NONPAGED_POOL. POOL_TYPE value 512 per learn.microsoft.com
 * "POOL_TYPE enumeration" (NonPagedPoolNx, Windows 8 and later). */
#define LAB_NONPAGED_POOL NonPagedPoolNx
_Static_assert(NonPagedPoolNx == 512, "NonPagedPoolNx");

/* ntifs.h declares this; mingw-w64's wdm.h does not. Exported by ntoskrnl. */
NTSYSAPI NTSTATUS NTAPI ZwWaitForSingleObject(HANDLE Handle, BOOLEAN Alertable, PLARGE_INTEGER Timeout);

/* A lock for PASSIVE_LEVEL code (not recursive): a synchronization event that is set
 * while the lock is free, held inside a critical region (no normal kernel APC, so the
 * holder cannot be suspended with it). Not a KMUTEX: Wine 8's ntoskrnl backs a KMUTEX
 * with a Win32 mutex that KeReleaseMutex never releases while another thread waits on
 * it, so that waiter blocks until the releasing thread exits (under Wine, dozens of
 * wskecho connection threads stuck on the journal lock held by the live accept
 * thread). A synchronization event means the same on Windows and under Wine. */
typedef struct _LAB_LOCK {
    KEVENT Free;
} LAB_LOCK;
VOID LabLockInit(LAB_LOCK *lock);
VOID LabLockAcquire(LAB_LOCK *lock);
VOID LabLockRelease(LAB_LOCK *lock);

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
/* The control device (NULL before LabControlCreate): e.g. for IoAllocateWorkItem. */
PDEVICE_OBJECT LabControlDevice(VOID);

/* Formats "aa:bb:cc:dd:ee:ff@<ifindex>" into out (at least 32 bytes). */
VOID LabFormatAdapter(char *out, const UCHAR mac[6], ULONG ifIndex);

/* Sleeps for `ms` milliseconds (PASSIVE_LEVEL). */
VOID LabSleepMs(ULONG ms);

#endif /* LAB_KERN_H */
