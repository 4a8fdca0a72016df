// SPDX-License-Identifier: GPL-2.0
/*
 * labtdiobs -- an independent observer of labtdi: a TDI client.
 *
 * The lab's rule "the query-remove is forwarded to the transport's clients
 * while the binding is still intact" is about what a client observes, so a
 * client checks it, not labtdi's own PNP_FORWARDED line.  This module joins
 * labtdi's client chain (labtdi_register_client, labtdi_client.h) and, on each
 * LABTDI_QUERY_REMOVE, looks at the adapter itself at that moment, without
 * calling into labtdi or reading its bookkeeping:
 *
 *   device object  does /proc/labtdi/adapters/<ifindex> still resolve?
 *                  (a path lookup, as any client finds the transport's devices)
 *   net address    is a packet handler for EtherType 0x88B5 still registered
 *                  on the net_device? (dev->ptype_specific, walked under RCU)
 *
 * Journal (/proc/labtdiobs/journal, driver name "labtdiobs", format
 * drivers/events.txt): LOAD, CLIENT_REGISTERED, then one CLIENT_QUERY_REMOVE
 * per notification, CLIENT_DEREGISTERED and UNLOAD.  CLIENT_QUERY_REMOVE's
 * status says what was already gone when the client was notified:
 *
 *   ok            both the device object and the 0x88B5 handler were there
 *   err:-2        ENOENT   the device object was gone (handler still there)
 *   err:-67       ENOLINK  the 0x88B5 handler was gone (device object there)
 *   err:-19       ENODEV   both were gone
 *   other err:-N  the device-object lookup itself failed with -N (no verdict)
 *
 * labtdi must be loaded first (this module uses its exported symbols).
 */
#include <linux/errno.h>
#include <linux/module.h>
#include <linux/namei.h>
#include <linux/netdevice.h>
#include <linux/notifier.h>
#include <linux/path.h>
#include <linux/rcupdate.h>

#include "labjournal.h"
#include "labtdi_client.h"
#include "labl2echo.h"

#define LABTDIOBS_NAME "labtdiobs"
/* where labtdi registers its device object per adapter (TdiRegisterDeviceObject) */
#define LABTDIOBS_DEVICE_FMT "/proc/labtdi/adapters/%d"

static uint journal_lines = 1024;
module_param(journal_lines, uint, 0444);
MODULE_PARM_DESC(journal_lines, "journal ring capacity in lines (default 1024)");

static struct labjournal journal;
static struct proc_dir_entry *proc_dir;

/* 0 if the device object resolves, -ENOENT if it is gone, another -errno if unknown. */
static int labtdiobs_device_object(int ifindex)
{
	char name[48];
	struct path path;
	int err;

	snprintf(name, sizeof(name), LABTDIOBS_DEVICE_FMT, ifindex);
	err = kern_path(name, LOOKUP_FOLLOW, &path);
	if (!err)
		path_put(&path);
	return err;
}

/* Is any packet handler for the L2 echo EtherType registered on this device? */
static bool labtdiobs_has_handler(struct net_device *dev)
{
	struct packet_type *pt;
	bool found = false;

	rcu_read_lock();
	list_for_each_entry_rcu(pt, &dev->ptype_specific, list) {
		if (pt->type == htons(LAB_L2ECHO_ETHERTYPE) && pt->dev == dev) {
			found = true;
			break;
		}
	}
	rcu_read_unlock();
	return found;
}

static int labtdiobs_binding_status(struct net_device *dev)
{
	int device = labtdiobs_device_object(dev->ifindex);
	bool handler = labtdiobs_has_handler(dev);

	if (device && device != -ENOENT)
		return device;
	if (device == -ENOENT)
		return handler ? -ENOENT : -ENODEV;
	return handler ? 0 : -ENOLINK;
}

static int labtdiobs_event(struct notifier_block *nb, unsigned long event, void *ptr)
{
	struct net_device *dev = ptr;
	char adapter[LABJ_ADAPTER_LEN];

	if (event != LABTDI_QUERY_REMOVE || !dev)
		return NOTIFY_DONE;
	labj_adapter(adapter, sizeof(adapter), dev);
	labj_log(&journal, "CLIENT_QUERY_REMOVE", adapter, labtdiobs_binding_status(dev));
	return NOTIFY_DONE;
}

static struct notifier_block labtdiobs_client = {
	.notifier_call = labtdiobs_event,
};

static int __init labtdiobs_init(void)
{
	int err = labj_init(&journal, LABTDIOBS_NAME, journal_lines);

	if (err)
		return err;
	proc_dir = proc_mkdir(LABTDIOBS_NAME, NULL);
	if (!proc_dir || !labj_proc_create(&journal, proc_dir)) {
		err = -ENOMEM;
		goto out;
	}
	labj_log(&journal, "LOAD", NULL, 0);
	err = labtdi_register_client(&labtdiobs_client);
	labj_log(&journal, "CLIENT_REGISTERED", NULL, err);
	if (!err)
		return 0;
	labj_log(&journal, "UNLOAD", NULL, err);
out:
	proc_remove(proc_dir);
	labj_free(&journal);
	return err;
}

static void __exit labtdiobs_exit(void)
{
	int err = labtdi_unregister_client(&labtdiobs_client);

	labj_log(&journal, "CLIENT_DEREGISTERED", NULL, err);
	labj_log(&journal, "UNLOAD", NULL, 0);
	proc_remove(proc_dir);
	labj_free(&journal);
}

module_init(labtdiobs_init);
module_exit(labtdiobs_exit);

MODULE_LICENSE("GPL");
MODULE_DESCRIPTION("Driver Lab: independent TDI client observing labtdi's query-remove");
