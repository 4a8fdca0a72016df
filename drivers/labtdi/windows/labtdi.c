/*
 * labtdi.sys -- Driver Lab's legacy TDI transport: an NDIS 6 protocol driver that is
 * also a TDI provider, and answers the lab's L2 echo probe on EtherType 0x88B5.
 *
 * NDIS 5 -> NDIS 6 mapping (Windows 10/11 load only NDIS 6 protocol drivers). The seed
 * document (unloading-deregistering-tdi-transport.txt) names NDIS 5 entry points; this
 * driver implements their NDIS 6 equivalents:
 *   NdisRegisterProtocol        -> NdisRegisterProtocolDriver
 *   NdisDeregisterProtocol      -> NdisDeregisterProtocolDriver
 *   ProtocolBindAdapter         -> ProtocolBindAdapterEx   (NdisOpenAdapterEx)
 *   ProtocolUnbindAdapter       -> ProtocolUnbindAdapterEx (NdisCloseAdapterEx)
 *   ProtocolPnPEvent            -> ProtocolNetPnPEvent     (NET_PNP_EVENT_NOTIFICATION)
 *   ProtocolReceive(Packet)     -> ProtocolReceiveNetBufferLists
 *   NdisSend(Packets)           -> NdisSendNetBufferLists
 *
 * Life cycle, per the seed's rules:
 *   DriverEntry: NdisRegisterProtocolDriver, TdiRegisterProvider. NDIS then binds:
 *   per adapter NdisOpenAdapterEx, TdiRegisterDeviceObject, TdiRegisterNetAddress.
 *   NetEventBindsComplete: TdiProviderReady.
 *   NetEventSetPower: journal SET_POWER_LOW (D1..D3) / SET_POWER_ON (D0); binding kept.
 *   StatusHandlerEx, NDIS_STATUS_LINK_STATE: journal LINK_DOWN / LINK_UP once per media
 *   change (MediaConnectState disconnected / connected); binding kept.
 *   NetEventQueryRemoveDevice: forward to TDI clients with TdiPnPPowerRequest and tear
 *   NOTHING down. UnbindAdapterEx: TdiDeregisterNetAddress, TdiDeregisterDeviceObject,
 *   NdisCloseAdapterEx. Unload: NdisDeregisterProtocolDriver (NDIS unbinds any adapter
 *   still bound, so every binding is released first), then TdiDeregisterProvider.
 *
 * L2 echo probe, wire format drivers/common/labl2echo.h (shared with the Linux twin, the
 * guest probe l2probe and the host probe lab/l2probe.py): a request of EtherType 0x88B5 is
 * answered from the adapter's MAC to the sender's MAC with op = reply, this binding's
 * ifindex and the payload echoed. Other frames are ignored.
 *
 * Send path: each reply NBL comes from this binding's pool; its SourceHandle is set to the
 * binding handle before NdisSendNetBufferLists (NDIS routes the send completion by it), the
 * reply buffer and MDL are kept in the NBL's ProtocolReserved area (ours for NBLs we own)
 * and freed in SendNetBufferListsComplete.
 *
 * Knobs (REG_DWORD under Services\labtdi\Parameters, read at load): FaultLeakAdapterRef
 * (unbind never releases the adapter: unplug hangs), FaultSkipDeregister (Unload skips
 * TdiDeregisterProvider), FaultBlockUnload, FaultCrashOnUnbind; JournalFile (REG_SZ).
 */
#include "labkern.h"
#include "labl2echo.h"
#include "labtdikrnl.h"

#define LABTDI_TAG 0x6964744c /* 'Ltdi' */
#define MAX_FRAME 1514
#define LINK_RING 16 /* media changes indicated before the journal caught up */

typedef struct _ADAPTER {
    LIST_ENTRY Link;
    NDIS_HANDLE Binding;
    KEVENT OpenDone, CloseDone, OidDone, PnpDone;
    NDIS_STATUS OpenStatus, OidStatus;
    NTSTATUS PnpStatus;
    UCHAR Mac[6];
    ULONG IfIndex;
    char Name[32];               /* journal adapter field: mac@ifindex */
    PDEVICE_OBJECT Device;       /* the TDI device object of this binding */
    UNICODE_STRING DeviceName;
    WCHAR DeviceNameBuffer[48];
    HANDLE DeviceRegistration;
    HANDLE AddressRegistration;
    NDIS_HANDLE NblPool;
    volatile LONG PendingSends;
    volatile LONG Paused;
    NDIS_OID_REQUEST Oid;
    ULONG PacketFilter;
    /* Media state (StatusHandlerEx may run at DISPATCH_LEVEL, the journal needs PASSIVE):
     * each change goes into a small ring that link_work drains in order. */
    volatile LONG LinkDown;      /* media state at bind or last indicated (1: disconnected) */
    volatile LONG LinkHead, LinkTail, LinkQueued;
    UCHAR LinkEvents[LINK_RING];
    PIO_WORKITEM LinkWork;
} ADAPTER;

static struct {
    PDRIVER_OBJECT Driver;
    NDIS_HANDLE Protocol;
    HANDLE Provider;
    KEVENT ProviderRegistered;
    KMUTEX Lock;
    LIST_ENTRY Adapters;
    ULONG SkipDeregister, BlockUnload, LeakAdapterRef, CrashOnUnbind;
} g;

/* ---- helpers ---- */

static VOID wait_event(PKEVENT e)
{
    KeWaitForSingleObject(e, Executive, KernelMode, FALSE, NULL);
}

static VOID append_decimal(WCHAR *buf, ULONG *n, ULONG v)
{
    WCHAR tmp[12];
    int k = 0;
    do {
        tmp[k++] = (WCHAR)(L'0' + v % 10);
        v /= 10;
    } while (v);
    while (k)
        buf[(*n)++] = tmp[--k];
}

static VOID drain_sends(ADAPTER *a)
{
    while (a->PendingSends > 0)
        LabSleepMs(10);
}

/* ---- L2 echo ---- */

/* Copies the frame of nb into a new pool buffer; NULL if it is not an echo request. */
static UCHAR *echo_request(PNET_BUFFER nb, ULONG *replyLen)
{
    ULONG len = nb->DataLength;
    UCHAR *buf, *frame;
    int payload;

    if (len < LAB_L2ECHO_ETH_HLEN + LAB_L2ECHO_HDR_LEN || len > MAX_FRAME)
        return NULL;
    buf = ExAllocatePoolWithTag(LAB_NONPAGED_POOL, len, LABTDI_TAG);
    if (!buf)
        return NULL;
    frame = NdisGetDataBuffer(nb, len, buf, 1, 0);
    if (frame && frame != buf)
        RtlCopyMemory(buf, frame, len);
    payload = frame ? lab_l2echo_request_payload(buf + LAB_L2ECHO_ETH_HLEN, len - LAB_L2ECHO_ETH_HLEN) : -1;
    if (payload < 0 || lab_l2echo_get_be16(buf + 12) != LAB_L2ECHO_ETHERTYPE) {
        ExFreePoolWithTag(buf, LABTDI_TAG);
        return NULL;
    }
    *replyLen = LAB_L2ECHO_ETH_HLEN + LAB_L2ECHO_HDR_LEN + (ULONG)payload;
    return buf;
}

static VOID echo_frame(ADAPTER *a, PNET_BUFFER nb, ULONG flags)
{
    ULONG len = 0;
    UCHAR *reply;
    PMDL mdl;
    PNET_BUFFER_LIST nbl;

    if (a->Paused || !(reply = echo_request(nb, &len)))
        return;
    RtlCopyMemory(reply, reply + 6, 6); /* back to the sender */
    RtlCopyMemory(reply + 6, a->Mac, 6);
    lab_l2echo_make_reply(reply + LAB_L2ECHO_ETH_HLEN, len - LAB_L2ECHO_ETH_HLEN - LAB_L2ECHO_HDR_LEN,
                          a->IfIndex);
    mdl = IoAllocateMdl(reply, len, FALSE, FALSE, NULL);
    if (!mdl) {
        ExFreePoolWithTag(reply, LABTDI_TAG);
        return;
    }
    MmBuildMdlForNonPagedPool(mdl);
    nbl = NdisAllocateNetBufferAndNetBufferList(a->NblPool, 0, 0, mdl, 0, len);
    if (!nbl) {
        IoFreeMdl(mdl);
        ExFreePoolWithTag(reply, LABTDI_TAG);
        return;
    }
    nbl->ProtocolReserved[0] = reply;
    nbl->ProtocolReserved[1] = mdl;
    nbl->SourceHandle = a->Binding; /* NDIS returns the NBL to this binding's send-complete */
    InterlockedIncrement(&a->PendingSends);
    NdisSendNetBufferLists(a->Binding, nbl, 0,
                           (flags & NDIS_RECEIVE_FLAGS_DISPATCH_LEVEL) ? NDIS_SEND_FLAGS_DISPATCH_LEVEL : 0);
}

static VOID WINAPI receive_nbls(NDIS_HANDLE ctx, PNET_BUFFER_LIST nbls, NDIS_PORT_NUMBER port,
                                ULONG count, ULONG flags)
{
    ADAPTER *a = ctx;
    PNET_BUFFER_LIST nbl;
    (void)port;
    (void)count;
    for (nbl = nbls; nbl; nbl = nbl->Next) {
        PNET_BUFFER nb;
        for (nb = nbl->FirstNetBuffer; nb; nb = nb->Next)
            echo_frame(a, nb, flags);
    }
    if (!(flags & NDIS_RECEIVE_FLAGS_RESOURCES))
        NdisReturnNetBufferLists(a->Binding, nbls,
                                 (flags & NDIS_RECEIVE_FLAGS_DISPATCH_LEVEL) ? NDIS_RETURN_FLAGS_DISPATCH_LEVEL : 0);
}

static VOID WINAPI send_complete(NDIS_HANDLE ctx, PNET_BUFFER_LIST nbls, ULONG flags)
{
    ADAPTER *a = ctx;
    (void)flags;
    while (nbls) {
        PNET_BUFFER_LIST next = nbls->Next;
        UCHAR *buf = nbls->ProtocolReserved[0];
        PMDL mdl = nbls->ProtocolReserved[1];
        nbls->Next = NULL;
        NdisFreeNetBufferList(nbls);
        IoFreeMdl(mdl);
        ExFreePoolWithTag(buf, LABTDI_TAG);
        InterlockedDecrement(&a->PendingSends);
        nbls = next;
    }
}

/* ---- completion handlers ---- */

static VOID WINAPI open_complete(NDIS_HANDLE ctx, NDIS_STATUS status)
{
    ADAPTER *a = ctx;
    a->OpenStatus = status;
    KeSetEvent(&a->OpenDone, IO_NO_INCREMENT, FALSE);
}

static VOID WINAPI close_complete(NDIS_HANDLE ctx)
{
    ADAPTER *a = ctx;
    KeSetEvent(&a->CloseDone, IO_NO_INCREMENT, FALSE);
}

static VOID WINAPI oid_complete(NDIS_HANDLE ctx, PNDIS_OID_REQUEST req, NDIS_STATUS status)
{
    ADAPTER *a = ctx;
    (void)req;
    a->OidStatus = status;
    KeSetEvent(&a->OidDone, IO_NO_INCREMENT, FALSE);
}

/*
 * ProtocolStatusEx ([MSDOCS] nc-ndis-protocol_status_ex): NDIS hands the binding's context
 * and an NDIS_STATUS_INDICATION ([MSDOCS] ns-ndis-_ndis_status_indication), at IRQL <=
 * DISPATCH_LEVEL, so nothing here waits or takes g.Lock. For NDIS_STATUS_LINK_STATE the
 * StatusBuffer holds an NDIS_LINK_STATE ([MSDOCS] network/ndis-status-link-state,
 * ns-ntddndis-_ndis_link_state); NDIS may repeat an unchanged state, so the binding keeps
 * the last one and journals LINK_DOWN / LINK_UP only on a change (drivers/events.txt). A
 * media disconnect is not a removal: the binding stays. MediaConnectStateUnknown (what a
 * miniport indicates on its way to a low power state, same page) changes nothing here:
 * the sleep is journaled by NetEventSetPower.
 */
static VOID drain_link_events(ADAPTER *a)
{
    do {
        while (a->LinkTail != a->LinkHead) {
            LONG t = a->LinkTail;
            LabJournal(a->LinkEvents[t % LINK_RING] ? "LINK_DOWN" : "LINK_UP", a->Name, STATUS_SUCCESS);
            InterlockedExchange(&a->LinkTail, t + 1);
        }
        InterlockedExchange(&a->LinkQueued, 0);
        /* a change indicated after the last look and before the flag fell: take it too */
    } while (a->LinkTail != a->LinkHead && !InterlockedExchange(&a->LinkQueued, 1));
}

static VOID WINAPI link_work(PDEVICE_OBJECT dev, PVOID ctx)
{
    (void)dev;
    drain_link_events(ctx);
}

static VOID link_changed(ADAPTER *a, LONG down)
{
    LONG h = a->LinkHead;
    if (h - a->LinkTail >= LINK_RING) {
        DbgPrint("labtdi: %s: more than %d link changes pending, one not journaled\n", a->Name, LINK_RING);
        return;
    }
    a->LinkEvents[h % LINK_RING] = (UCHAR)down;
    InterlockedExchange(&a->LinkHead, h + 1);
    if (InterlockedExchange(&a->LinkQueued, 1))
        return; /* a drain is queued or running: it journals this one too */
    if (KeGetCurrentIrql() == PASSIVE_LEVEL)
        drain_link_events(a);
    else
        IoQueueWorkItem(a->LinkWork, link_work, DelayedWorkQueue, a);
}

/* Waits (PASSIVE_LEVEL) until every link change indicated so far is journaled. */
static VOID flush_link_events(ADAPTER *a)
{
    while (a->LinkQueued)
        LabSleepMs(10);
}

static VOID WINAPI status_indication(NDIS_HANDLE ctx, PVOID indication)
{
    ADAPTER *a = ctx;
    PNDIS_STATUS_INDICATION si = indication;
    PNDIS_LINK_STATE ls;
    LONG down;

    if (!a || !si || si->StatusCode != NDIS_STATUS_LINK_STATE)
        return;
    ls = si->StatusBuffer;
    if (!ls || si->StatusBufferSize < LAB_OFFSET(NDIS_LINK_STATE, MediaConnectState) + sizeof(ULONG))
        return;
    if (ls->MediaConnectState == MediaConnectStateDisconnected)
        down = 1;
    else if (ls->MediaConnectState == MediaConnectStateConnected)
        down = 0;
    else
        return;
    if (InterlockedExchange(&a->LinkDown, down) != down) /* NDIS serializes them per binding */
        link_changed(a, down);
}

static VOID WINAPI pnp_forward_complete(PNET_PNP_EVENT event, NTSTATUS status)
{
    ADAPTER *a = (ADAPTER *)event->TransportReserved[0];
    a->PnpStatus = status;
    KeSetEvent(&a->PnpDone, IO_NO_INCREMENT, FALSE);
}

/* ---- bind / unbind ---- */

static NDIS_STATUS set_packet_filter(ADAPTER *a)
{
    NDIS_STATUS st;
    RtlZeroMemory(&a->Oid, sizeof(a->Oid));
    a->Oid.Header.Type = NDIS_OBJECT_TYPE_OID_REQUEST;
    a->Oid.Header.Revision = NDIS_OID_REQUEST_REVISION_1;
    a->Oid.Header.Size = NDIS_SIZEOF_OID_REQUEST_REVISION_1;
    a->Oid.RequestType = NdisRequestSetInformation;
    a->PacketFilter = NDIS_PACKET_TYPE_DIRECTED | NDIS_PACKET_TYPE_BROADCAST;
    a->Oid.DATA.SET_INFORMATION.Oid = OID_GEN_CURRENT_PACKET_FILTER;
    a->Oid.DATA.SET_INFORMATION.InformationBuffer = &a->PacketFilter;
    a->Oid.DATA.SET_INFORMATION.InformationBufferLength = sizeof(a->PacketFilter);
    KeClearEvent(&a->OidDone);
    st = NdisOidRequest(a->Binding, &a->Oid);
    if (st == NDIS_STATUS_PENDING) {
        wait_event(&a->OidDone);
        st = a->OidStatus;
    }
    return st;
}

static NTSTATUS register_tdi(ADAPTER *a)
{
    UCHAR addrBuf[sizeof(TA_ADDRESS) + 8];
    PTA_ADDRESS addr = (PTA_ADDRESS)addrBuf;
    NTSTATUS st;
    ULONG n = 0;
    static const WCHAR prefix[] = L"\\Device\\LabTdi_";

    for (int i = 0; prefix[i]; i++)
        a->DeviceNameBuffer[n++] = prefix[i];
    append_decimal(a->DeviceNameBuffer, &n, a->IfIndex);
    a->DeviceNameBuffer[n] = 0;
    RtlInitUnicodeString(&a->DeviceName, a->DeviceNameBuffer);

    st = IoCreateDevice(g.Driver, 0, &a->DeviceName, FILE_DEVICE_NETWORK, FILE_DEVICE_SECURE_OPEN,
                        FALSE, &a->Device);
    if (!NT_SUCCESS(st))
        return st;
    st = TdiRegisterDeviceObject(&a->DeviceName, &a->DeviceRegistration);
    LabJournal("DEVICE_REGISTERED", a->Name, st);
    if (!NT_SUCCESS(st))
        return st;
    addr->AddressLength = 6;
    addr->AddressType = TDI_ADDRESS_TYPE_UNSPEC;
    RtlCopyMemory(addr->Address, a->Mac, 6);
    st = TdiRegisterNetAddress(addr, &a->DeviceName, NULL, &a->AddressRegistration);
    LabJournal("NETADDR_REGISTERED", a->Name, st);
    return st;
}

static VOID deregister_tdi(ADAPTER *a)
{
    if (a->AddressRegistration) {
        LabJournal("NETADDR_DEREGISTERED", a->Name, TdiDeregisterNetAddress(a->AddressRegistration));
        a->AddressRegistration = NULL;
    }
    if (a->DeviceRegistration) {
        LabJournal("DEVICE_DEREGISTERED", a->Name, TdiDeregisterDeviceObject(a->DeviceRegistration));
        a->DeviceRegistration = NULL;
    }
    if (a->Device) {
        IoDeleteDevice(a->Device);
        a->Device = NULL;
    }
}

static VOID close_binding(ADAPTER *a)
{
    drain_sends(a);
    KeClearEvent(&a->CloseDone);
    if (NdisCloseAdapterEx(a->Binding) == NDIS_STATUS_PENDING)
        wait_event(&a->CloseDone);
    a->Binding = NULL;
    flush_link_events(a); /* closed: no more indications; the work item is idle */
}

static VOID free_adapter(ADAPTER *a)
{
    if (a->LinkWork)
        IoFreeWorkItem(a->LinkWork);
    if (a->NblPool)
        NdisFreeNetBufferListPool(a->NblPool);
    ExFreePoolWithTag(a, LABTDI_TAG);
}

static NDIS_STATUS WINAPI bind_adapter(NDIS_HANDLE driverCtx, NDIS_HANDLE bindCtx, PNDIS_BIND_PARAMETERS bp)
{
    NDIS_MEDIUM media[1] = {NdisMedium802_3};
    UINT selected = 0;
    NDIS_OPEN_PARAMETERS op;
    NET_BUFFER_LIST_POOL_PARAMETERS pp;
    NDIS_STATUS st;
    ADAPTER *a;

    (void)driverCtx;
    a = ExAllocatePoolWithTag(LAB_NONPAGED_POOL, sizeof(*a), LABTDI_TAG);
    if (!a)
        return NDIS_STATUS_RESOURCES;
    RtlZeroMemory(a, sizeof(*a));
    KeInitializeEvent(&a->OpenDone, NotificationEvent, FALSE);
    KeInitializeEvent(&a->CloseDone, NotificationEvent, FALSE);
    KeInitializeEvent(&a->OidDone, NotificationEvent, FALSE);
    KeInitializeEvent(&a->PnpDone, NotificationEvent, FALSE);
    if (bp->MacAddressLength == 6)
        RtlCopyMemory(a->Mac, bp->CurrentMacAddress, 6);
    a->IfIndex = bp->BoundIfIndex;
    a->LinkDown = bp->MediaConnectState == MediaConnectStateDisconnected;
    LabFormatAdapter(a->Name, a->Mac, a->IfIndex);

    RtlZeroMemory(&pp, sizeof(pp));
    pp.Header.Type = NDIS_OBJECT_TYPE_DEFAULT;
    pp.Header.Revision = NET_BUFFER_LIST_POOL_PARAMETERS_REVISION_1;
    pp.Header.Size = NDIS_SIZEOF_NET_BUFFER_LIST_POOL_PARAMETERS_REVISION_1;
    pp.ProtocolId = NDIS_PROTOCOL_ID_DEFAULT;
    pp.fAllocateNetBuffer = TRUE;
    pp.PoolTag = LABTDI_TAG;
    a->NblPool = NdisAllocateNetBufferListPool(g.Protocol, &pp);
    a->LinkWork = IoAllocateWorkItem(LabControlDevice());

    RtlZeroMemory(&op, sizeof(op));
    op.Header.Type = NDIS_OBJECT_TYPE_OPEN_PARAMETERS;
    op.Header.Revision = NDIS_OPEN_PARAMETERS_REVISION_1;
    op.Header.Size = NDIS_SIZEOF_OPEN_PARAMETERS_REVISION_1;
    op.AdapterName = bp->AdapterName;
    op.MediumArray = media;
    op.MediumArraySize = 1;
    op.SelectedMediumIndex = &selected;
    st = a->NblPool && a->LinkWork ? NdisOpenAdapterEx(g.Protocol, a, &op, bindCtx, &a->Binding) : NDIS_STATUS_RESOURCES;
    if (st == NDIS_STATUS_PENDING) {
        wait_event(&a->OpenDone);
        st = a->OpenStatus;
    }
    LabJournal("BIND", a->Name, st);
    if (st != NDIS_STATUS_SUCCESS) {
        free_adapter(a);
        return st;
    }
    st = set_packet_filter(a);
    if (st == NDIS_STATUS_SUCCESS)
        st = register_tdi(a);
    if (st != NDIS_STATUS_SUCCESS) {
        deregister_tdi(a);
        close_binding(a);
        free_adapter(a);
        return st;
    }
    KeWaitForSingleObject(&g.Lock, Executive, KernelMode, FALSE, NULL);
    InsertTailList(&g.Adapters, &a->Link);
    KeReleaseMutex(&g.Lock, FALSE);
    return NDIS_STATUS_SUCCESS;
}

static NDIS_STATUS WINAPI unbind_adapter(NDIS_HANDLE unbindCtx, NDIS_HANDLE ctx)
{
    ADAPTER *a = ctx;
    (void)unbindCtx;
    flush_link_events(a); /* a link change indicated before the unbind is journaled first */
    LabJournal("UNBIND", a->Name, STATUS_SUCCESS);
    if (g.CrashOnUnbind)
        KeBugCheckEx(0xE2 /* MANUALLY_INITIATED_CRASH */, 0x1ab7d1, (ULONG_PTR)a, 0, 0);
    KeWaitForSingleObject(&g.Lock, Executive, KernelMode, FALSE, NULL);
    RemoveEntryList(&a->Link);
    KeReleaseMutex(&g.Lock, FALSE);
    deregister_tdi(a);
    if (g.LeakAdapterRef) {
        DbgPrint("labtdi: FAULT FaultLeakAdapterRef set: binding %s never released\n", a->Name);
        return NDIS_STATUS_PENDING; /* never completed: NDIS keeps waiting for the binding */
    }
    close_binding(a);
    free_adapter(a);
    return NDIS_STATUS_SUCCESS;
}

static NDIS_STATUS WINAPI pnp_event(NDIS_HANDLE ctx, PNET_PNP_EVENT_NOTIFICATION n)
{
    ADAPTER *a = ctx;
    NTSTATUS st;

    switch (n->NetPnPEvent.NetEvent) {
    case NetEventQueryRemoveDevice:
        if (!a)
            return NDIS_STATUS_SUCCESS;
        LabJournal("QUERY_REMOVE", a->Name, STATUS_SUCCESS);
        /* Forward to TDI clients; nothing is torn down until UnbindAdapterEx. */
        KeClearEvent(&a->PnpDone);
        n->NetPnPEvent.TransportReserved[0] = (ULONG_PTR)a;
        st = TdiPnPPowerRequest(&a->DeviceName, &n->NetPnPEvent, NULL, NULL, pnp_forward_complete);
        if (st == STATUS_PENDING) {
            wait_event(&a->PnpDone);
            st = a->PnpStatus;
        }
        LabJournal("PNP_FORWARDED", a->Name, st);
        return NT_SUCCESS(st) ? NDIS_STATUS_SUCCESS : (NDIS_STATUS)st;
    case NetEventPause:
        if (a) {
            InterlockedExchange(&a->Paused, 1);
            drain_sends(a);
        }
        return NDIS_STATUS_SUCCESS;
    case NetEventRestart:
        if (a)
            InterlockedExchange(&a->Paused, 0);
        return NDIS_STATUS_SUCCESS;
    case NetEventSetPower:
        /* The adapter goes to a low state with the system (D1..D3) or back to D0: the
         * binding stays; the journal records each change (drivers/events.txt). */
        if (a && n->NetPnPEvent.Buffer &&
            n->NetPnPEvent.BufferLength >= sizeof(NET_DEVICE_POWER_STATE))
            LabJournal(*(NET_DEVICE_POWER_STATE *)n->NetPnPEvent.Buffer == NetDeviceStateD0
                       ? "SET_POWER_ON" : "SET_POWER_LOW", a->Name, STATUS_SUCCESS);
        return NDIS_STATUS_SUCCESS;
    case NetEventBindsComplete:
        wait_event(&g.ProviderRegistered);
        LabJournal("PROVIDER_READY", NULL, g.Provider ? TdiProviderReady(g.Provider) : STATUS_UNSUCCESSFUL);
        return NDIS_STATUS_SUCCESS;
    default:
        return NDIS_STATUS_SUCCESS;
    }
}

/* ---- load / unload ---- */

static VOID WINAPI labtdi_unload(PDRIVER_OBJECT driver)
{
    (void)driver;
    if (g.BlockUnload) {
        DbgPrint("labtdi: FAULT FaultBlockUnload set: Unload blocks forever\n");
        for (;;)
            LabSleepMs(1000);
    }
    /* NDIS unbinds every adapter still bound before this returns. */
    NdisDeregisterProtocolDriver(g.Protocol);
    LabJournal("PROTOCOL_DEREGISTERED", NULL, STATUS_SUCCESS);
    if (g.SkipDeregister) {
        DbgPrint("labtdi: FAULT FaultSkipDeregister set: TdiDeregisterProvider skipped\n");
    } else {
        LabJournal("PROVIDER_DEREGISTERED", NULL, TdiDeregisterProvider(g.Provider));
    }
    LabControlDelete();
    LabJournal("UNLOAD", NULL, STATUS_SUCCESS);
    LabJournalClose();
}

NTSTATUS WINAPI DriverEntry(PDRIVER_OBJECT driver, PUNICODE_STRING registryPath)
{
    NDIS_PROTOCOL_DRIVER_CHARACTERISTICS pc;
    UNICODE_STRING provider;
    NTSTATUS st;

    RtlZeroMemory(&g, sizeof(g));
    g.Driver = driver;
    InitializeListHead(&g.Adapters);
    KeInitializeMutex(&g.Lock, 0);
    KeInitializeEvent(&g.ProviderRegistered, NotificationEvent, FALSE);
    st = LabJournalInit("labtdi", registryPath);
    if (!NT_SUCCESS(st))
        return st;
    LabJournal("LOAD", NULL, STATUS_SUCCESS);
    g.SkipDeregister = LabKnob(registryPath, LAB_KNOB_SKIP_DEREGISTER, 0);
    g.BlockUnload = LabKnob(registryPath, LAB_KNOB_BLOCK_UNLOAD, 0);
    g.LeakAdapterRef = LabKnob(registryPath, LAB_KNOB_LEAK_ADAPTER_REF, 0);
    g.CrashOnUnbind = LabKnob(registryPath, LAB_KNOB_CRASH_ON_UNBIND, 0);

    st = LabControlCreate(driver, L"LabTdiCtl");
    if (!NT_SUCCESS(st))
        goto fail;

    RtlZeroMemory(&pc, sizeof(pc));
    pc.Header.Type = NDIS_OBJECT_TYPE_PROTOCOL_DRIVER_CHARACTERISTICS;
    pc.Header.Revision = NDIS_PROTOCOL_DRIVER_CHARACTERISTICS_REVISION_1;
    pc.Header.Size = NDIS_SIZEOF_PROTOCOL_DRIVER_CHARACTERISTICS_REVISION_1;
    pc.MajorNdisVersion = 6;
    pc.MinorNdisVersion = 0;
    pc.MajorDriverVersion = 1;
    RtlInitUnicodeString(&pc.Name, L"labtdi"); /* the service name in labtdi.inf */
    pc.BindAdapterHandlerEx = bind_adapter;
    pc.UnbindAdapterHandlerEx = unbind_adapter;
    pc.OpenAdapterCompleteHandlerEx = open_complete;
    pc.CloseAdapterCompleteHandlerEx = close_complete;
    pc.NetPnPEventHandler = pnp_event;
    pc.OidRequestCompleteHandler = oid_complete;
    pc.StatusHandlerEx = status_indication;
    pc.ReceiveNetBufferListsHandler = receive_nbls;
    pc.SendNetBufferListsCompleteHandler = send_complete;
    st = NdisRegisterProtocolDriver(NULL, &pc, &g.Protocol);
    LabJournal("PROTOCOL_REGISTERED", NULL, st);
    if (!NT_SUCCESS(st))
        goto fail;

    RtlInitUnicodeString(&provider, L"\\Device\\LabTdi");
    st = TdiRegisterProvider(&provider, &g.Provider);
    LabJournal("PROVIDER_REGISTERED", NULL, st);
    if (!NT_SUCCESS(st)) {
        g.Provider = NULL;
        KeSetEvent(&g.ProviderRegistered, IO_NO_INCREMENT, FALSE);
        NdisDeregisterProtocolDriver(g.Protocol);
        LabJournal("PROTOCOL_DEREGISTERED", NULL, STATUS_SUCCESS);
        goto fail;
    }
    KeSetEvent(&g.ProviderRegistered, IO_NO_INCREMENT, FALSE);
    driver->DriverUnload = labtdi_unload;
    return STATUS_SUCCESS;

fail:
    LabControlDelete();
    LabJournal("UNLOAD", NULL, st);
    LabJournalClose();
    return st;
}
