/*
 * wskecho.sys -- Driver Lab's Winsock Kernel (WSK) TCP echo server.
 *
 * A legacy (non-PnP) kernel service. DriverEntry registers with WSK (WskRegister),
 * captures the provider NPI, opens one listening stream socket per address family
 * (IPv4, and IPv6 where the platform allows it) on the port read from
 * HKLM\SYSTEM\CurrentControlSet\Services\wskecho\Parameters\Port and echoes every
 * byte on any number of connections, one system thread per connection.
 *
 * Unload: every thread closes the socket it owns (the listener threads first stop
 * accepting, connection threads close live connections), then WskReleaseProviderNPI
 * and WskDeregister. WskDeregister BLOCKS until every socket of the registration is
 * closed and every captured NPI released, so the driver closes its sockets itself
 * before calling it and the lab's unload path closes its clients before `sc stop`
 * (a client that keeps a connection open only delays the unload by the poll period).
 *
 * Every successful WskRegister is matched by exactly one WskDeregister (unless the
 * FaultSkipDeregister knob is set on purpose). The WSK_REGISTRATION block is a static
 * of this image, so it stays allocated as long as the registration exists.
 *
 * Knobs (REG_DWORD under Parameters, read once at load):
 *   Port                 listening port (default 7007)
 *   LoopbackOnly         1: bind 127.0.0.1 / ::1 instead of the wildcard addresses
 *   FaultSkipDeregister  1: skip WskDeregister at unload
 *   FaultCorruptEveryKiB N: flip the last byte of every N KiB echoed on a connection
 *   FaultBlockUnload     1: the Unload routine never returns
 *   JournalFile (REG_SZ) NT path of a file that receives a copy of the journal
 */
#include "labkern.h"
#include "labwsk.h"

#define WSKECHO_TAG 0x6f63654c /* 'Leco' */
#define ECHO_BUFFER 16384
#define POLL_MS 200
#define DEFAULT_PORT 7007

typedef struct _SYNC_IRP {
    KEVENT Done;
    PIRP Irp;
} SYNC_IRP;

typedef struct _ECHO_CONN {
    LIST_ENTRY Link;
    PWSK_SOCKET Socket;
    HANDLE Thread;
    volatile LONG Finished;
    ULONG64 Echoed;
} ECHO_CONN;

typedef struct _LISTENER {
    PWSK_SOCKET Socket;
    HANDLE Thread;
    ADDRESS_FAMILY Family;
} LISTENER;

static struct {
    WSK_REGISTRATION Registration; /* lives as long as the image: registration memory */
    WSK_PROVIDER_NPI Npi;
    BOOLEAN Registered;
    BOOLEAN Captured;
    LISTENER Listeners[2];
    ULONG ListenerCount;
    LIST_ENTRY Conns;
    LAB_LOCK ConnLock;
    volatile LONG Stopping;
    ULONG Port;
    ULONG LoopbackOnly;
    ULONG SkipDeregister;
    ULONG CorruptEveryKiB;
    ULONG BlockUnload;
} g;

static const WSK_CLIENT_DISPATCH g_client_dispatch = {MAKE_WSK_VERSION(1, 0), 0, NULL};

static USHORT htons_(USHORT v) { return (USHORT)((v << 8) | (v >> 8)); }

/* ---- IRP helpers: every WSK call gets an IRP whose completion sets an event ---- */

static NTSTATUS WINAPI sync_irp_done(PDEVICE_OBJECT dev, PIRP irp, PVOID ctx)
{
    (void)dev;
    (void)irp;
    KeSetEvent((PKEVENT)ctx, IO_NO_INCREMENT, FALSE);
    return STATUS_MORE_PROCESSING_REQUIRED; /* the IRP is ours; we reuse and free it */
}

static NTSTATUS sync_irp_init(SYNC_IRP *s)
{
    KeInitializeEvent(&s->Done, NotificationEvent, FALSE);
    s->Irp = IoAllocateIrp(1, FALSE);
    return s->Irp ? STATUS_SUCCESS : STATUS_INSUFFICIENT_RESOURCES;
}

static PIRP sync_irp_arm(SYNC_IRP *s)
{
    KeClearEvent(&s->Done);
    IoReuseIrp(s->Irp, STATUS_UNSUCCESSFUL);
    IoSetCompletionRoutine(s->Irp, sync_irp_done, &s->Done, TRUE, TRUE, TRUE);
    return s->Irp;
}

static VOID sync_irp_free(SYNC_IRP *s)
{
    if (s->Irp)
        IoFreeIrp(s->Irp);
    s->Irp = NULL;
}

/* WSK always completes the IRP it was given, whatever the call returned. */
static NTSTATUS sync_irp_wait(SYNC_IRP *s)
{
    KeWaitForSingleObject(&s->Done, Executive, KernelMode, FALSE, NULL);
    return s->Irp->IoStatus.Status;
}

static NTSTATUS close_socket(PWSK_SOCKET sock)
{
    const WSK_PROVIDER_BASIC_DISPATCH *d = sock->Dispatch;
    SYNC_IRP s;
    NTSTATUS st = sync_irp_init(&s);
    if (!NT_SUCCESS(st))
        return st;
    d->WskCloseSocket(sock, sync_irp_arm(&s));
    st = sync_irp_wait(&s);
    sync_irp_free(&s);
    return st;
}

/*
 * Waits for an operation IRP on `sock`. While waiting, if the driver is stopping,
 * the owning thread closes the socket (WSK then completes the pending IRP, cancelled)
 * and sets *closed. Returns the operation's status.
 */
static NTSTATUS wait_or_close(SYNC_IRP *op, PWSK_SOCKET sock, BOOLEAN *closed)
{
    LARGE_INTEGER tick;
    tick.QuadPart = -(LONGLONG)POLL_MS * 10000;
    for (;;) {
        if (KeWaitForSingleObject(&op->Done, Executive, KernelMode, FALSE, &tick) == STATUS_SUCCESS)
            return op->Irp->IoStatus.Status;
        if (g.Stopping && !*closed) {
            close_socket(sock);
            *closed = TRUE;
        }
    }
}

/* ---- connections ---- */

static VOID corrupt(ECHO_CONN *c, UCHAR *buf, SIZE_T n)
{
    ULONG64 period = (ULONG64)g.CorruptEveryKiB * 1024;
    ULONG64 next = (c->Echoed / period + 1) * period - 1; /* stream offset of the next victim */
    while (next < c->Echoed + n) {
        buf[next - c->Echoed] ^= 0x5a;
        next += period;
    }
}

static NTSTATUS send_all(PWSK_SOCKET sock, PMDL mdl, SIZE_T len, SYNC_IRP *op, BOOLEAN *closed)
{
    const WSK_PROVIDER_CONNECTION_DISPATCH *d = sock->Dispatch;
    SIZE_T off = 0;
    while (off < len) {
        WSK_BUF wb;
        NTSTATUS st;
        wb.Mdl = mdl;
        wb.Offset = (ULONG)off;
        wb.Length = len - off;
        d->WskSend(sock, &wb, 0, sync_irp_arm(op));
        st = wait_or_close(op, sock, closed);
        if (!NT_SUCCESS(st))
            return st;
        if (op->Irp->IoStatus.Information == 0)
            return STATUS_CONNECTION_DISCONNECTED;
        off += op->Irp->IoStatus.Information;
    }
    return STATUS_SUCCESS;
}

static VOID echo_loop(ECHO_CONN *c, UCHAR *buf, PMDL mdl, SYNC_IRP *op, BOOLEAN *closed)
{
    const WSK_PROVIDER_CONNECTION_DISPATCH *d = c->Socket->Dispatch;
    for (;;) {
        WSK_BUF wb;
        NTSTATUS st;
        SIZE_T got;
        if (g.Stopping)
            return;
        wb.Mdl = mdl;
        wb.Offset = 0;
        wb.Length = ECHO_BUFFER;
        d->WskReceive(c->Socket, &wb, 0, sync_irp_arm(op));
        st = wait_or_close(op, c->Socket, closed);
        got = op->Irp->IoStatus.Information;
        if (!NT_SUCCESS(st) || got == 0)
            return; /* error, cancelled by stop, or orderly close by the peer */
        if (g.CorruptEveryKiB)
            corrupt(c, buf, got);
        if (!NT_SUCCESS(send_all(c->Socket, mdl, got, op, closed)))
            return;
        c->Echoed += got;
    }
}

static VOID WINAPI conn_thread(PVOID ctx)
{
    ECHO_CONN *c = ctx;
    SYNC_IRP op;
    BOOLEAN closed = FALSE;
    UCHAR *buf = ExAllocatePoolWithTag(LAB_NONPAGED_POOL, ECHO_BUFFER, WSKECHO_TAG);
    PMDL mdl = buf ? IoAllocateMdl(buf, ECHO_BUFFER, FALSE, FALSE, NULL) : NULL;

    if (mdl && NT_SUCCESS(sync_irp_init(&op))) {
        MmBuildMdlForNonPagedPool(mdl);
        echo_loop(c, buf, mdl, &op, &closed);
        sync_irp_free(&op);
    }
    if (!closed)
        close_socket(c->Socket);
    LabJournal("CLOSE", NULL, STATUS_SUCCESS);
    if (mdl)
        IoFreeMdl(mdl);
    if (buf)
        ExFreePoolWithTag(buf, WSKECHO_TAG);
    InterlockedExchange(&c->Finished, 1);
    PsTerminateSystemThread(STATUS_SUCCESS);
}

static VOID reap_conn(ECHO_CONN *c)
{
    ZwWaitForSingleObject(c->Thread, FALSE, NULL);
    ZwClose(c->Thread);
    ExFreePoolWithTag(c, WSKECHO_TAG);
}

/* Frees finished connections; with `all`, waits for every connection thread. */
static VOID reap_conns(BOOLEAN all)
{
    LIST_ENTRY *e, *next;
    LabLockAcquire(&g.ConnLock);
    for (e = g.Conns.Flink; e != &g.Conns; e = next) {
        ECHO_CONN *c = CONTAINING_RECORD(e, ECHO_CONN, Link);
        next = e->Flink;
        if (all || c->Finished) {
            RemoveEntryList(e);
            reap_conn(c);
        }
    }
    LabLockRelease(&g.ConnLock);
}

static VOID start_conn(PWSK_SOCKET sock)
{
    OBJECT_ATTRIBUTES oa;
    ECHO_CONN *c = ExAllocatePoolWithTag(LAB_NONPAGED_POOL, sizeof(*c), WSKECHO_TAG);
    if (!c) {
        close_socket(sock);
        LabJournal("CLOSE", NULL, STATUS_INSUFFICIENT_RESOURCES);
        return;
    }
    RtlZeroMemory(c, sizeof(*c));
    c->Socket = sock;
    InitializeObjectAttributes(&oa, NULL, OBJ_KERNEL_HANDLE, NULL, NULL);
    LabLockAcquire(&g.ConnLock);
    if (NT_SUCCESS(PsCreateSystemThread(&c->Thread, THREAD_ALL_ACCESS, &oa, NULL, NULL, conn_thread, c))) {
        InsertTailList(&g.Conns, &c->Link);
        c = NULL;
    }
    LabLockRelease(&g.ConnLock);
    if (c) {
        close_socket(sock);
        LabJournal("CLOSE", NULL, STATUS_INSUFFICIENT_RESOURCES);
        ExFreePoolWithTag(c, WSKECHO_TAG);
    }
}

/* ---- listeners ---- */

static VOID WINAPI accept_thread(PVOID ctx)
{
    LISTENER *l = ctx;
    const WSK_PROVIDER_LISTEN_DISPATCH *d = l->Socket->Dispatch;
    SOCKADDR_IN6 remote;
    SYNC_IRP op;
    BOOLEAN closed = FALSE;

    if (NT_SUCCESS(sync_irp_init(&op))) {
        while (!g.Stopping) {
            NTSTATUS st;
            d->WskAccept(l->Socket, 0, NULL, NULL, NULL, (PSOCKADDR)&remote, sync_irp_arm(&op));
            st = wait_or_close(&op, l->Socket, &closed);
            if (NT_SUCCESS(st) && op.Irp->IoStatus.Information) {
                LabJournal("ACCEPT", NULL, STATUS_SUCCESS);
                start_conn((PWSK_SOCKET)op.Irp->IoStatus.Information);
            } else if (!g.Stopping) {
                LabJournal("ACCEPT", NULL, NT_SUCCESS(st) ? STATUS_UNSUCCESSFUL : st);
                LabSleepMs(POLL_MS); /* do not spin on a persistent error */
            }
            reap_conns(FALSE);
        }
        sync_irp_free(&op);
    }
    if (!closed)
        close_socket(l->Socket);
    LabJournal("LISTENER_CLOSED", NULL, STATUS_SUCCESS);
    PsTerminateSystemThread(STATUS_SUCCESS);
}

static NTSTATUS open_listener(ADDRESS_FAMILY family, LISTENER *l)
{
    SOCKADDR_IN6 addr; /* large enough for both families */
    SYNC_IRP s;
    NTSTATUS st;
    OBJECT_ATTRIBUTES oa;

    st = sync_irp_init(&s);
    if (!NT_SUCCESS(st))
        return st;
    g.Npi.Dispatch->WskSocket(g.Npi.Client, family, SOCK_STREAM, IPPROTO_TCP, WSK_FLAG_LISTEN_SOCKET,
                              NULL, NULL, NULL, NULL, NULL, sync_irp_arm(&s));
    st = sync_irp_wait(&s);
    if (NT_SUCCESS(st)) {
        l->Socket = (PWSK_SOCKET)s.Irp->IoStatus.Information;
        l->Family = family;
        RtlZeroMemory(&addr, sizeof(addr));
        if (family == AF_INET) {
            SOCKADDR_IN *a4 = (SOCKADDR_IN *)&addr;
            a4->sin_family = AF_INET;
            a4->sin_port = htons_((USHORT)g.Port);
            a4->sin_addr = g.LoopbackOnly ? 0x0100007f : 0; /* 127.0.0.1 in network order */
        } else {
            addr.sin6_family = AF_INET6;
            addr.sin6_port = htons_((USHORT)g.Port);
            if (g.LoopbackOnly)
                addr.sin6_addr[15] = 1; /* ::1 */
        }
        ((const WSK_PROVIDER_LISTEN_DISPATCH *)l->Socket->Dispatch)
            ->WskBind(l->Socket, (PSOCKADDR)&addr, 0, sync_irp_arm(&s));
        st = sync_irp_wait(&s);
        if (!NT_SUCCESS(st)) {
            close_socket(l->Socket);
            l->Socket = NULL;
        }
    }
    sync_irp_free(&s);
    LabJournal("LISTEN", NULL, st); /* one line per address family */
    if (!NT_SUCCESS(st))
        return st;

    InitializeObjectAttributes(&oa, NULL, OBJ_KERNEL_HANDLE, NULL, NULL);
    st = PsCreateSystemThread(&l->Thread, THREAD_ALL_ACCESS, &oa, NULL, NULL, accept_thread, l);
    if (!NT_SUCCESS(st)) {
        close_socket(l->Socket);
        l->Socket = NULL;
        LabJournal("LISTENER_CLOSED", NULL, st);
    }
    return st;
}

/* ---- load / unload ---- */

static VOID stop_and_deregister(VOID)
{
    ULONG i;
    InterlockedExchange(&g.Stopping, 1);
    for (i = 0; i < g.ListenerCount; i++) {
        ZwWaitForSingleObject(g.Listeners[i].Thread, FALSE, NULL);
        ZwClose(g.Listeners[i].Thread);
    }
    g.ListenerCount = 0;
    reap_conns(TRUE);
    if (g.Captured) {
        WskReleaseProviderNPI(&g.Registration);
        g.Captured = FALSE;
        LabJournal("WSK_RELEASE_NPI", NULL, STATUS_SUCCESS);
    }
    if (g.Registered) {
        if (g.SkipDeregister) {
            DbgPrint("wskecho: FAULT FaultSkipDeregister set: WskDeregister skipped\n");
        } else {
            WskDeregister(&g.Registration); /* blocks until every socket is closed */
            LabJournal("WSK_DEREGISTER", NULL, STATUS_SUCCESS);
        }
        g.Registered = FALSE;
    }
}

static VOID WINAPI wskecho_unload(PDRIVER_OBJECT driver)
{
    (void)driver;
    if (g.BlockUnload) {
        DbgPrint("wskecho: FAULT FaultBlockUnload set: Unload blocks forever\n");
        for (;;)
            LabSleepMs(1000);
    }
    stop_and_deregister();
    LabControlDelete();
    LabJournal("UNLOAD", NULL, STATUS_SUCCESS);
    LabJournalClose();
}

NTSTATUS WINAPI DriverEntry(PDRIVER_OBJECT driver, PUNICODE_STRING registryPath)
{
    WSK_CLIENT_NPI client;
    NTSTATUS st;

    RtlZeroMemory(&g, sizeof(g));
    InitializeListHead(&g.Conns);
    LabLockInit(&g.ConnLock);
    st = LabJournalInit("wskecho", registryPath);
    if (!NT_SUCCESS(st))
        return st;
    LabJournal("LOAD", NULL, STATUS_SUCCESS);

    g.Port = LabKnob(registryPath, L"Port", DEFAULT_PORT) & 0xffff;
    g.LoopbackOnly = LabKnob(registryPath, L"LoopbackOnly", 0);
    g.SkipDeregister = LabKnob(registryPath, LAB_KNOB_SKIP_DEREGISTER, 0);
    g.CorruptEveryKiB = LabKnob(registryPath, LAB_KNOB_CORRUPT_EVERY_KIB, 0);
    g.BlockUnload = LabKnob(registryPath, LAB_KNOB_BLOCK_UNLOAD, 0);

    st = LabControlCreate(driver, L"WskEchoCtl");
    if (!NT_SUCCESS(st))
        goto fail;

    client.ClientContext = NULL;
    client.Dispatch = &g_client_dispatch;
    st = WskRegister(&client, &g.Registration);
    LabJournal("WSK_REGISTER", NULL, st);
    if (!NT_SUCCESS(st))
        goto fail;
    g.Registered = TRUE;

    /* Bounded wait: DriverEntry must not wait forever for the WSK subsystem. */
    st = WskCaptureProviderNPI(&g.Registration, 10000, &g.Npi);
    LabJournal("WSK_CAPTURE_NPI", NULL, st);
    if (!NT_SUCCESS(st))
        goto fail;
    g.Captured = TRUE;

    if (NT_SUCCESS(open_listener(AF_INET, &g.Listeners[g.ListenerCount])))
        g.ListenerCount++;
    if (NT_SUCCESS(open_listener(AF_INET6, &g.Listeners[g.ListenerCount])))
        g.ListenerCount++;
    if (g.ListenerCount == 0) {
        st = STATUS_UNSUCCESSFUL;
        goto fail;
    }
    driver->DriverUnload = wskecho_unload;
    return STATUS_SUCCESS;

fail:
    stop_and_deregister(); /* pairs WskRegister even when the load fails */
    LabControlDelete();
    LabJournal("UNLOAD", NULL, st);
    LabJournalClose();
    return st;
}
