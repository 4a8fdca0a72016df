/*
 * labkern.c -- journal, registry knobs and the journal control device shared by
 * Driver Lab's Windows drivers (see labkern.h).
 *
 * The journal keeps the newest LAB_JOURNAL_SLOTS lines in nonpaged memory (read by
 * labctl.exe through IOCTL_LAB_READ_JOURNAL while the driver is loaded) and, when
 * the REG_SZ knob Parameters\JournalFile names a file (an NT path such as
 * \??\C:\wskecho.journal), also appends every line to that file, so the unload
 * events survive the unload itself.
 */
#include "labkern.h"

#define LAB_TAG 0x6a62614c /* 'Labj' */

static struct {
    LAB_LOCK Lock;
    BOOLEAN Ready;
    char Driver[16];
    char *Ring;             /* LAB_JOURNAL_SLOTS * LAB_JOURNAL_LINE bytes */
    ULONG64 Count;          /* lines ever recorded */
    HANDLE File;            /* NULL when no JournalFile knob */
    PDEVICE_OBJECT Control;
    UNICODE_STRING Link;
    WCHAR LinkBuffer[64];
} g_lab;

/* ---- small formatting helpers (no CRT in the kernel image) ---- */

static char *put_str(char *p, char *end, const char *s)
{
    while (*s && p < end)
        *p++ = *s++;
    return p;
}

static char *put_u64(char *p, char *end, ULONG64 v)
{
    char tmp[24];
    int n = 0;
    do {
        tmp[n++] = (char)('0' + (v % 10));
        v /= 10;
    } while (v && n < (int)sizeof(tmp));
    while (n && p < end)
        *p++ = tmp[--n];
    return p;
}

static char *put_hex(char *p, char *end, ULONG64 v, int digits)
{
    static const char hex[] = "0123456789abcdef";
    for (int i = digits - 1; i >= 0 && p < end; i--)
        *p++ = hex[(v >> (i * 4)) & 0xf];
    return p;
}

VOID LabFormatAdapter(char *out, const UCHAR mac[6], ULONG ifIndex)
{
    char *p = out, *end = out + 31;
    for (int i = 0; i < 6; i++) {
        if (i)
            p = put_str(p, end, ":");
        p = put_hex(p, end, mac[i], 2);
    }
    p = put_str(p, end, "@");
    p = put_u64(p, end, ifIndex);
    *p = 0;
}

VOID LabSleepMs(ULONG ms)
{
    LARGE_INTEGER t;
    t.QuadPart = -(LONGLONG)ms * 10000;
    KeDelayExecutionThread(KernelMode, FALSE, &t);
}

/* ---- registry ---- */

static NTSTATUS open_parameters(PUNICODE_STRING RegistryPath, HANDLE *out)
{
    OBJECT_ATTRIBUTES oa;
    UNICODE_STRING sub;
    HANDLE service;
    NTSTATUS st;

    InitializeObjectAttributes(&oa, RegistryPath, OBJ_CASE_INSENSITIVE | OBJ_KERNEL_HANDLE, NULL, NULL);
    st = ZwOpenKey(&service, KEY_READ, &oa);
    if (!NT_SUCCESS(st))
        return st;
    RtlInitUnicodeString(&sub, L"Parameters");
    InitializeObjectAttributes(&oa, &sub, OBJ_CASE_INSENSITIVE | OBJ_KERNEL_HANDLE, service, NULL);
    st = ZwOpenKey(out, KEY_READ, &oa);
    ZwClose(service);
    return st;
}

/* Reads value `name` into buf; returns its type or REG_NONE. */
static ULONG query_value(PUNICODE_STRING RegistryPath, PCWSTR name, UCHAR *buf, ULONG size, ULONG *len)
{
    HANDLE key;
    UNICODE_STRING vn;
    ULONG got = 0, type = REG_NONE;
    KEY_VALUE_PARTIAL_INFORMATION *info;
    ULONG infoSize = sizeof(KEY_VALUE_PARTIAL_INFORMATION) + size;

    if (!NT_SUCCESS(open_parameters(RegistryPath, &key)))
        return REG_NONE;
    info = ExAllocatePoolWithTag(PagedPool, infoSize, LAB_TAG);
    if (info) {
        RtlInitUnicodeString(&vn, name);
        if (NT_SUCCESS(ZwQueryValueKey(key, &vn, KeyValuePartialInformation, info, infoSize, &got))
            && info->DataLength <= size) {
            RtlCopyMemory(buf, info->Data, info->DataLength);
            *len = info->DataLength;
            type = info->Type;
        }
        ExFreePoolWithTag(info, LAB_TAG);
    }
    ZwClose(key);
    return type;
}

ULONG LabKnob(PUNICODE_STRING RegistryPath, PCWSTR name, ULONG fallback)
{
    ULONG value = 0, len = 0;
    if (query_value(RegistryPath, name, (UCHAR *)&value, sizeof(value), &len) == REG_DWORD
        && len == sizeof(value))
        return value;
    return fallback;
}

/* ---- journal ---- */

static ULONG64 now_ns(VOID)
{
    /* mingw's wdm.h turns KeQueryInterruptTime into a read of KUSER_SHARED_DATA at its
     * kernel address; use the HAL's performance counter (monotonic) instead. */
    LARGE_INTEGER freq, now = KeQueryPerformanceCounter(&freq);
    ULONG64 f = (ULONG64)freq.QuadPart, c = (ULONG64)now.QuadPart;
    if (!f)
        return 0;
    return (c / f) * 1000000000ULL + ((c % f) * 1000000000ULL) / f;
}

VOID LabLockInit(LAB_LOCK *lock)
{
    KeInitializeEvent(&lock->Free, SynchronizationEvent, TRUE);
}

VOID LabLockAcquire(LAB_LOCK *lock)
{
    KeEnterCriticalRegion();
    KeWaitForSingleObject(&lock->Free, Executive, KernelMode, FALSE, NULL);
}

VOID LabLockRelease(LAB_LOCK *lock)
{
    KeSetEvent(&lock->Free, IO_NO_INCREMENT, FALSE);
    KeLeaveCriticalRegion();
}

NTSTATUS LabJournalInit(const char *driver, PUNICODE_STRING RegistryPath)
{
    WCHAR path[260];
    ULONG len = 0;

    RtlZeroMemory(&g_lab, sizeof(g_lab));
    LabLockInit(&g_lab.Lock);
    put_str(g_lab.Driver, g_lab.Driver + sizeof(g_lab.Driver) - 1, driver);
    g_lab.Ring = ExAllocatePoolWithTag(LAB_NONPAGED_POOL, (SIZE_T)LAB_JOURNAL_SLOTS * LAB_JOURNAL_LINE, LAB_TAG);
    if (!g_lab.Ring)
        return STATUS_INSUFFICIENT_RESOURCES;

    RtlZeroMemory(path, sizeof(path));
    if (query_value(RegistryPath, L"JournalFile", (UCHAR *)path, sizeof(path) - sizeof(WCHAR), &len) == REG_SZ
        && path[0]) {
        UNICODE_STRING name;
        OBJECT_ATTRIBUTES oa;
        IO_STATUS_BLOCK iosb;
        NTSTATUS st;

        RtlInitUnicodeString(&name, path);
        InitializeObjectAttributes(&oa, &name, OBJ_CASE_INSENSITIVE | OBJ_KERNEL_HANDLE, NULL, NULL);
        st = ZwCreateFile(&g_lab.File, FILE_APPEND_DATA | SYNCHRONIZE, &oa, &iosb, NULL,
                          FILE_ATTRIBUTE_NORMAL, FILE_SHARE_READ | FILE_SHARE_WRITE, FILE_OPEN_IF,
                          FILE_SYNCHRONOUS_IO_NONALERT | FILE_NON_DIRECTORY_FILE, NULL, 0);
        if (!NT_SUCCESS(st)) {
            DbgPrint("%s: journal file open failed 0x%08lx\n", driver, (unsigned long)st);
            g_lab.File = NULL;
        }
    }
    g_lab.Ready = TRUE;
    return STATUS_SUCCESS;
}

VOID LabJournal(const char *event, const char *adapter, NTSTATUS status)
{
    char line[LAB_JOURNAL_LINE];
    char *p = line, *end = line + sizeof(line) - 1;
    ULONG n;

    if (!g_lab.Ready)
        return;
    p = put_u64(p, end, now_ns());
    p = put_str(p, end, " ");
    p = put_str(p, end, g_lab.Driver);
    p = put_str(p, end, " ");
    p = put_str(p, end, event);
    p = put_str(p, end, " ");
    p = put_str(p, end, adapter ? adapter : "-");
    if (NT_SUCCESS(status)) {
        p = put_str(p, end, " ok");
    } else {
        p = put_str(p, end, " err:0x");
        p = put_hex(p, end, (ULONG)status, 8);
    }
    *p++ = '\n';
    n = (ULONG)(p - line);

    LabLockAcquire(&g_lab.Lock);
    {
        char *slot = g_lab.Ring + (g_lab.Count % LAB_JOURNAL_SLOTS) * LAB_JOURNAL_LINE;
        RtlZeroMemory(slot, LAB_JOURNAL_LINE);
        RtlCopyMemory(slot, line, n);
        g_lab.Count++;
        if (g_lab.File) {
            IO_STATUS_BLOCK iosb;
            LARGE_INTEGER off;
            off.HighPart = -1;
            off.LowPart = FILE_WRITE_TO_END_OF_FILE;
            ZwWriteFile(g_lab.File, NULL, NULL, NULL, &iosb, line, n, &off, NULL);
        }
    }
    LabLockRelease(&g_lab.Lock);
    DbgPrint("LABJ %.*s", (int)n, line);
}

VOID LabJournalClose(VOID)
{
    if (!g_lab.Ready)
        return;
    LabLockAcquire(&g_lab.Lock);
    g_lab.Ready = FALSE;
    if (g_lab.File) {
        ZwClose(g_lab.File);
        g_lab.File = NULL;
    }
    LabLockRelease(&g_lab.Lock);
    if (g_lab.Ring) {
        ExFreePoolWithTag(g_lab.Ring, LAB_TAG);
        g_lab.Ring = NULL;
    }
}

/* Copies the kept lines, oldest first, as whole lines into out. */
static NTSTATUS journal_read(char *out, ULONG size, ULONG *written)
{
    NTSTATUS st = STATUS_SUCCESS;
    ULONG64 first, i;
    ULONG used = 0;

    LabLockAcquire(&g_lab.Lock);
    first = g_lab.Count > LAB_JOURNAL_SLOTS ? g_lab.Count - LAB_JOURNAL_SLOTS : 0;
    for (i = first; i < g_lab.Count; i++) {
        const char *slot = g_lab.Ring + (i % LAB_JOURNAL_SLOTS) * LAB_JOURNAL_LINE;
        ULONG n = 0;
        while (n < LAB_JOURNAL_LINE && slot[n])
            n++;
        if (used + n > size) {
            st = STATUS_BUFFER_OVERFLOW;
            break;
        }
        RtlCopyMemory(out + used, slot, n);
        used += n;
    }
    LabLockRelease(&g_lab.Lock);
    *written = used;
    return st;
}

/* ---- control device ---- */

static NTSTATUS WINAPI control_dispatch(PDEVICE_OBJECT dev, PIRP irp)
{
    PIO_STACK_LOCATION sl = IoGetCurrentIrpStackLocation(irp);
    NTSTATUS st = STATUS_SUCCESS;
    ULONG written = 0;

    (void)dev;
    switch (sl->MajorFunction) {
    case IRP_MJ_CREATE:
    case IRP_MJ_CLOSE:
    case IRP_MJ_CLEANUP:
        break;
    case IRP_MJ_DEVICE_CONTROL:
        if (sl->Parameters.DeviceIoControl.IoControlCode == IOCTL_LAB_READ_JOURNAL && g_lab.Ready)
            st = journal_read(irp->AssociatedIrp.SystemBuffer,
                              sl->Parameters.DeviceIoControl.OutputBufferLength, &written);
        else
            st = STATUS_INVALID_DEVICE_REQUEST;
        break;
    default:
        st = STATUS_INVALID_DEVICE_REQUEST;
    }
    irp->IoStatus.Status = st;
    irp->IoStatus.Information = written;
    IoCompleteRequest(irp, IO_NO_INCREMENT);
    return st;
}

PDEVICE_OBJECT LabControlDevice(VOID)
{
    return g_lab.Control;
}

NTSTATUS LabControlCreate(PDRIVER_OBJECT Driver, PCWSTR name)
{
    WCHAR devBuf[64];
    UNICODE_STRING dev;
    NTSTATUS st;
    int i, n = 0;
    static const WCHAR devPrefix[] = L"\\Device\\";
    static const WCHAR linkPrefix[] = L"\\DosDevices\\";

    for (i = 0; devPrefix[i]; i++)
        devBuf[n++] = devPrefix[i];
    for (i = 0; name[i] && n < 63; i++)
        devBuf[n++] = name[i];
    devBuf[n] = 0;
    n = 0;
    for (i = 0; linkPrefix[i]; i++)
        g_lab.LinkBuffer[n++] = linkPrefix[i];
    for (i = 0; name[i] && n < 63; i++)
        g_lab.LinkBuffer[n++] = name[i];
    g_lab.LinkBuffer[n] = 0;
    RtlInitUnicodeString(&dev, devBuf);
    RtlInitUnicodeString(&g_lab.Link, g_lab.LinkBuffer);

    st = IoCreateDevice(Driver, 0, &dev, FILE_DEVICE_UNKNOWN, FILE_DEVICE_SECURE_OPEN, FALSE, &g_lab.Control);
    if (!NT_SUCCESS(st))
        return st;
    st = IoCreateSymbolicLink(&g_lab.Link, &dev);
    if (!NT_SUCCESS(st)) {
        IoDeleteDevice(g_lab.Control);
        g_lab.Control = NULL;
        return st;
    }
    Driver->MajorFunction[IRP_MJ_CREATE] = control_dispatch;
    Driver->MajorFunction[IRP_MJ_CLOSE] = control_dispatch;
    Driver->MajorFunction[IRP_MJ_CLEANUP] = control_dispatch;
    Driver->MajorFunction[IRP_MJ_DEVICE_CONTROL] = control_dispatch;
    return STATUS_SUCCESS;
}

VOID LabControlDelete(VOID)
{
    if (!g_lab.Control)
        return;
    IoDeleteSymbolicLink(&g_lab.Link);
    IoDeleteDevice(g_lab.Control);
    g_lab.Control = NULL;
}
