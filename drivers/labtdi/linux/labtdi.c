// SPDX-License-Identifier: GPL-2.0
/*
 * labtdi -- Linux twin of the labtdi legacy TDI transport.
 *
 * A protocol module that binds to every Ethernet adapter of the initial
 * network namespace and answers an L2 echo on EtherType 0x88B5 on each
 * binding, so the host can probe every binding separately.  The wire format
 * is drivers/common/labl2echo.h, shared with the Windows labtdi.sys and the probes.
 *
 * The TDI/NDIS life cycle is mirrored with real kernel objects:
 *   PROTOCOL_(DE)REGISTERED  netdevice notifier (NDIS protocol registration)
 *   PROVIDER_(DE)REGISTERED  /proc/labtdi/adapters, where clients find the
 *                            transport's device objects (TdiRegisterProvider)
 *   BIND / UNBIND            a held reference on the net_device (netdev_hold)
 *   NETADDR_(DE)REGISTERED   the per-device packet_type for 0x88B5: the
 *                            adapter's L2 address this transport answers on
 *   DEVICE_(DE)REGISTERED    /proc/labtdi/adapters/<ifindex>
 *   QUERY_REMOVE             the adapter is being unregistered (or unbound)
 *   PNP_FORWARDED            the query was passed to the transport's clients
 *                            (a blocking notifier chain other modules join
 *                            with labtdi_register_client)
 *   LINK_DOWN / LINK_UP      the adapter's media state changed (NDIS status
 *                            indication NDIS_STATUS_LINK_STATE): carrier lost or
 *                            the device stopped / carrier back on a running
 *                            device (NETDEV_CHANGE, NETDEV_DOWN, NETDEV_UP);
 *                            the binding stays as it is
 *   SET_POWER_LOW / _ON      system sleep (NDIS NetEventSetPower to a low
 *                            device state / back to D0): a PM notifier journals
 *                            per bound adapter at PM_SUSPEND_PREPARE and
 *                            PM_POST_SUSPEND; the binding stays as it is
 *
 * Per adapter, removal (NETDEV_UNREGISTER) and "unbind <ifname>" written to
 * /proc/labtdi/control journal, in order: QUERY_REMOVE, PNP_FORWARDED, UNBIND,
 * NETADDR_DEREGISTERED, DEVICE_DEREGISTERED.  "bind <ifname>" binds again.
 * Unload unbinds every adapter (UNBIND, NETADDR_DEREGISTERED,
 * DEVICE_DEREGISTERED), then journals PROVIDER_DEREGISTERED and
 * PROTOCOL_DEREGISTERED.
 *
 * Fault knobs (module parameters, off by default; each one is a real bug):
 *   leak_ref_on_unregister=1  keep the adapter reference when the adapter is
 *                             unregistered: unregister_netdevice then waits
 *                             forever ("waiting for <dev> to become free")
 *   skip_deregister=1         forget unregister_netdevice_notifier at unload
 *                             (the next netdev event calls freed module text)
 *   block_unload=1            module_exit blocks forever
 *   crash_on_unbind=1         NULL pointer dereference in the unbind path
 *   teardown_on_link_down=1   unbind the adapter when its link goes down (a
 *                             media disconnect is not a removal): the binding
 *                             is gone and never comes back on link up
 *   no_rebind_after_resume=1  release every binding (in the removal order) when
 *                             the system goes to sleep and never bind again
 *                             after the resume
 *   config_after_register=1   apply the configuration (skip_macs) only after the
 *                             protocol registered, as a Windows protocol that reads
 *                             its Parameters after NdisRegisterProtocolDriver: NDIS
 *                             binds the adapters present at registration from inside
 *                             that call, so they miss the configuration.  At boot
 *                             every NIC is present: the management NIC gets bound
 *
 * skip_macs=<mac>[,<mac>...] (not a fault): adapters never bound, e.g. the
 * lab's management NIC, so a broken binding cannot cut the lab off the guest.
 */
#include <linux/completion.h>
#include <linux/ctype.h>
#include <linux/etherdevice.h>
#include <linux/if_arp.h>
#include <linux/list.h>
#include <linux/module.h>
#include <linux/netdevice.h>
#include <linux/notifier.h>
#include <linux/rtnetlink.h>
#include <linux/skbuff.h>
#include <linux/slab.h>
#include <linux/suspend.h>
#include <linux/uaccess.h>
#include <net/net_namespace.h>

#include "labjournal.h"
#include "labtdi_client.h"
#include "labl2echo.h"

#define LABTDI_NAME "labtdi"

static uint journal_lines = 8192;
module_param(journal_lines, uint, 0444);
MODULE_PARM_DESC(journal_lines, "journal ring capacity in lines (default 8192)");

static bool leak_ref_on_unregister;
module_param(leak_ref_on_unregister, bool, 0644);
MODULE_PARM_DESC(leak_ref_on_unregister, "FAULT: leak the adapter reference on unregister");

static bool skip_deregister;
module_param(skip_deregister, bool, 0644);
MODULE_PARM_DESC(skip_deregister, "FAULT: skip the protocol deregistration at unload");

static bool block_unload;
module_param(block_unload, bool, 0644);
MODULE_PARM_DESC(block_unload, "FAULT: block forever in module_exit");

static bool crash_on_unbind;
module_param(crash_on_unbind, bool, 0644);
MODULE_PARM_DESC(crash_on_unbind, "FAULT: NULL pointer dereference when unbinding");

#define LABTDI_MAX_SKIP 8
static char *skip_macs = "";
module_param(skip_macs, charp, 0444);
MODULE_PARM_DESC(skip_macs, "comma list of MAC addresses never bound (the lab's management NIC)");
static u8 skip_mac[LABTDI_MAX_SKIP][ETH_ALEN];
static unsigned int skip_count;		/* RTNL once the notifier is registered */

static bool config_after_register;
module_param(config_after_register, bool, 0444);
MODULE_PARM_DESC(config_after_register,
		 "FAULT: apply skip_macs only after the protocol registered (adapters present at load ignore it)");

struct labtdi_binding {
	struct list_head node;
	struct net_device *dev;
	netdevice_tracker tracker;
	struct packet_type pt;
	struct proc_dir_entry *pde;
	char adapter[LABJ_ADAPTER_LEN];	/* snapshot at bind time */
	char ifname[IFNAMSIZ];
	int ifindex;
	atomic64_t requests;
	atomic64_t replies;
	bool link_down;			/* media state at bind or last journaled (RTNL) */
};

static struct labjournal journal;
static struct proc_dir_entry *proc_dir;
static struct proc_dir_entry *adapters_dir;	/* the TDI provider */
static struct proc_dir_entry *control_pde;
static LIST_HEAD(bindings);			/* protected by RTNL */
static bool unloading;				/* protected by RTNL */
static BLOCKING_NOTIFIER_HEAD(labtdi_clients);
static DECLARE_COMPLETION(never_completed);

int labtdi_register_client(struct notifier_block *nb)
{
	return blocking_notifier_chain_register(&labtdi_clients, nb);
}
EXPORT_SYMBOL_GPL(labtdi_register_client);

int labtdi_unregister_client(struct notifier_block *nb)
{
	return blocking_notifier_chain_unregister(&labtdi_clients, nb);
}
EXPORT_SYMBOL_GPL(labtdi_unregister_client);

static void labtdi_log(const char *event, const struct labtdi_binding *b, int status)
{
	labj_log(&journal, event, b ? b->adapter : NULL, status);
}

/* ---- L2 echo (softirq context) ---- */

static void labtdi_reply(struct labtdi_binding *b, struct sk_buff *req,
			 const unsigned char *rh, unsigned int payload)
{
	struct net_device *dev = b->dev;
	unsigned int len = LAB_L2ECHO_HDR_LEN + payload;
	unsigned char *h;
	struct sk_buff *skb;

	skb = alloc_skb(LL_RESERVED_SPACE(dev) + len + dev->needed_tailroom, GFP_ATOMIC);
	if (!skb)
		return;
	skb_reserve(skb, LL_RESERVED_SPACE(dev));
	skb_reset_network_header(skb);
	h = skb_put(skb, len);
	memcpy(h, rh, LAB_L2ECHO_HDR_LEN);
	lab_l2echo_make_reply(h, payload, dev->ifindex);
	if (skb_copy_bits(req, LAB_L2ECHO_HDR_LEN, h + LAB_L2ECHO_HDR_LEN, payload) < 0) {
		kfree_skb(skb);
		return;
	}
	skb->dev = dev;
	skb->protocol = htons(LAB_L2ECHO_ETHERTYPE);
	skb->priority = TC_PRIO_CONTROL;
	if (dev_hard_header(skb, dev, LAB_L2ECHO_ETHERTYPE, eth_hdr(req)->h_source,
			    dev->dev_addr, skb->len) < 0) {
		kfree_skb(skb);
		return;
	}
	if (dev_queue_xmit(skb) == NET_XMIT_SUCCESS)
		atomic64_inc(&b->replies);
}

/* Answers every request of the shared format (labl2echo.h) on this binding. */
static int labtdi_rcv(struct sk_buff *skb, struct net_device *dev,
		      struct packet_type *pt, struct net_device *orig_dev)
{
	struct labtdi_binding *b = container_of(pt, struct labtdi_binding, pt);
	unsigned char rh[LAB_L2ECHO_HDR_LEN];
	int payload;

	if (skb->pkt_type == PACKET_OTHERHOST || skb->pkt_type == PACKET_LOOPBACK)
		goto drop;
	if (skb_copy_bits(skb, 0, rh, sizeof(rh)) < 0)
		goto drop;
	payload = lab_l2echo_request_payload(rh, skb->len);
	if (payload < 0)
		goto drop;
	atomic64_inc(&b->requests);
	payload = min_t(int, payload, (int)dev->mtu - LAB_L2ECHO_HDR_LEN);
	labtdi_reply(b, skb, rh, payload);
	consume_skb(skb);
	return NET_RX_SUCCESS;
drop:
	kfree_skb(skb);
	return NET_RX_DROP;
}

/* ---- bindings (all under RTNL) ---- */

static int labtdi_adapter_show(struct seq_file *m, void *unused)
{
	const struct labtdi_binding *b = m->private;

	seq_printf(m, "name %s\nadapter %s\nrequests %lld\nreplies %lld\n", b->ifname,
		   b->adapter, atomic64_read(&b->requests), atomic64_read(&b->replies));
	return 0;
}

/* Parses skip_macs ("aa:bb:cc:dd:ee:ff,..."); -EINVAL on anything else. */
static int labtdi_parse_skip_macs(void)
{
	const char *p = skip_macs;

	while (p && *p) {
		if (skip_count == LABTDI_MAX_SKIP || strlen(p) < 3 * ETH_ALEN - 1 ||
		    !mac_pton(p, skip_mac[skip_count]))
			return -EINVAL;
		skip_count++;
		p += 3 * ETH_ALEN - 1;
		if (*p == ',')
			p++;
		else if (*p)
			return -EINVAL;
	}
	return 0;
}

static bool labtdi_skipped(const struct net_device *dev)
{
	unsigned int i;

	for (i = 0; i < skip_count; i++)
		if (ether_addr_equal(dev->dev_addr, skip_mac[i]))
			return true;
	return false;
}

static bool labtdi_eligible(const struct net_device *dev)
{
	return net_eq(dev_net(dev), &init_net) && dev->type == ARPHRD_ETHER &&
	       dev->addr_len == ETH_ALEN && !(dev->flags & IFF_LOOPBACK) &&
	       !labtdi_skipped(dev);
}

static struct labtdi_binding *labtdi_find(const struct net_device *dev)
{
	struct labtdi_binding *b;

	list_for_each_entry(b, &bindings, node)
		if (b->dev == dev)
			return b;
	return NULL;
}

static int labtdi_bind(struct net_device *dev)
{
	struct labtdi_binding *b = kzalloc(sizeof(*b), GFP_KERNEL);
	char name[16];

	ASSERT_RTNL();
	if (!b)
		return -ENOMEM;
	netdev_hold(dev, &b->tracker, GFP_KERNEL);
	b->dev = dev;
	b->ifindex = dev->ifindex;
	b->link_down = !(netif_running(dev) && netif_carrier_ok(dev));	/* media state at bind */
	strscpy(b->ifname, dev->name, sizeof(b->ifname));
	labj_adapter(b->adapter, sizeof(b->adapter), dev);
	list_add_tail(&b->node, &bindings);
	labtdi_log("BIND", b, 0);

	b->pt.type = htons(LAB_L2ECHO_ETHERTYPE);
	b->pt.dev = dev;
	b->pt.func = labtdi_rcv;
	dev_add_pack(&b->pt);
	labtdi_log("NETADDR_REGISTERED", b, 0);

	snprintf(name, sizeof(name), "%d", dev->ifindex);
	b->pde = proc_create_single_data(name, 0444, adapters_dir, labtdi_adapter_show, b);
	labtdi_log("DEVICE_REGISTERED", b, b->pde ? 0 : -ENOMEM);
	return 0;
}

static void labtdi_crash(const struct labtdi_binding *b)
{
	/* FAULT crash_on_unbind: the binding pointer "was already cleared". */
	struct labtdi_binding *volatile gone = NULL;

	pr_info("labtdi: unbinding %s (ifindex %d)\n", b->ifname, gone->ifindex);
}

/*
 * Tears one binding down.  query: journal the query-remove and forward it to
 * the clients first (removal, admin unbind).  unregistering: the adapter
 * itself is going away (the leak knob applies only then).
 */
static void labtdi_unbind(struct labtdi_binding *b, bool query, bool unregistering)
{
	ASSERT_RTNL();
	if (query) {
		int ret;

		labtdi_log("QUERY_REMOVE", b, 0);
		ret = blocking_notifier_call_chain(&labtdi_clients, LABTDI_QUERY_REMOVE, b->dev);
		labtdi_log("PNP_FORWARDED", b, notifier_to_errno(ret));
	}
	labtdi_log("UNBIND", b, 0);
	if (READ_ONCE(crash_on_unbind))
		labtdi_crash(b);
	list_del(&b->node);

	dev_remove_pack(&b->pt);	/* waits for running handlers */
	labtdi_log("NETADDR_DEREGISTERED", b, 0);
	proc_remove(b->pde);		/* waits for running readers */
	labtdi_log("DEVICE_DEREGISTERED", b, 0);

	if (unregistering && READ_ONCE(leak_ref_on_unregister))
		return;			/* FAULT: reference and binding leaked */
	netdev_put(b->dev, &b->tracker);
	kfree(b);
}

static bool teardown_on_link_down;
module_param(teardown_on_link_down, bool, 0644);
MODULE_PARM_DESC(teardown_on_link_down, "FAULT: unbind the adapter when its link goes down");

/*
 * The media state of a bound adapter changed (carrier, or the device stopped or
 * started): journal LINK_DOWN / LINK_UP once per change.  A media disconnect tears
 * nothing down -- unless the fault knob says so.
 */
static void labtdi_link_event(struct labtdi_binding *b)
{
	bool down = !(netif_running(b->dev) && netif_carrier_ok(b->dev));

	ASSERT_RTNL();
	if (down == b->link_down)
		return;
	b->link_down = down;
	labtdi_log(down ? "LINK_DOWN" : "LINK_UP", b, 0);
	if (down && READ_ONCE(teardown_on_link_down))
		labtdi_unbind(b, false, false);	/* FAULT: binding gone for good */
}

static int labtdi_link_notify(struct notifier_block *nb, unsigned long event, void *ptr)
{
	struct net_device *dev = netdev_notifier_info_to_dev(ptr);
	struct labtdi_binding *b;

	if (event != NETDEV_CHANGE && event != NETDEV_UP && event != NETDEV_DOWN)
		return NOTIFY_DONE;
	b = labtdi_find(dev);
	if (b)
		labtdi_link_event(b);
	return NOTIFY_DONE;
}

static int labtdi_netdev_event(struct notifier_block *nb, unsigned long event, void *ptr)
{
	struct net_device *dev = netdev_notifier_info_to_dev(ptr);
	struct labtdi_binding *b;

	switch (event) {
	case NETDEV_REGISTER:
		if (!unloading && labtdi_eligible(dev) && !labtdi_find(dev))
			labtdi_bind(dev);
		break;
	case NETDEV_UNREGISTER:
		b = labtdi_find(dev);
		if (b)
			labtdi_unbind(b, true, true);
		break;
	default:
		return labtdi_link_notify(nb, event, ptr);
	}
	return NOTIFY_DONE;
}

static struct notifier_block labtdi_notifier = {
	.notifier_call = labtdi_netdev_event,
};

/* ---- system sleep: NDIS NetEventSetPower (PM notifier, process context) ---- */

static bool no_rebind_after_resume;
module_param(no_rebind_after_resume, bool, 0644);
MODULE_PARM_DESC(no_rebind_after_resume,
		 "FAULT: release every binding at suspend and never bind again after resume");

/*
 * Before the system sleeps (PM_SUSPEND_PREPARE, tasks not frozen yet) and after it
 * woke (PM_POST_SUSPEND, also after a failed suspend): one SET_POWER_LOW /
 * SET_POWER_ON per bound adapter.  The bindings survive the sleep.
 */
static int labtdi_pm_notify(struct notifier_block *nb, unsigned long action, void *unused)
{
	struct labtdi_binding *b, *tmp;
	bool low = action == PM_SUSPEND_PREPARE;

	if (!low && action != PM_POST_SUSPEND)
		return NOTIFY_DONE;
	rtnl_lock();
	list_for_each_entry_safe(b, tmp, &bindings, node) {
		if (unloading)
			break;
		labtdi_log(low ? "SET_POWER_LOW" : "SET_POWER_ON", b, 0);
		if (low && READ_ONCE(no_rebind_after_resume))
			labtdi_unbind(b, true, false);	/* FAULT: never bound again */
	}
	rtnl_unlock();
	return NOTIFY_DONE;
}

static struct notifier_block labtdi_pm_notifier = {
	.notifier_call = labtdi_pm_notify,
};

/* ---- /proc/labtdi/control: "unbind <ifname>" / "bind <ifname>" ---- */

static int labtdi_control(const char *verb, const char *ifname)
{
	struct labtdi_binding *b;
	struct net_device *dev;
	int err = 0;

	rtnl_lock();
	dev = __dev_get_by_name(&init_net, ifname);
	b = dev ? labtdi_find(dev) : NULL;
	if (!dev)
		err = -ENODEV;
	else if (unloading)
		err = -ESHUTDOWN;
	else if (!strcmp(verb, "unbind"))
		err = b ? (labtdi_unbind(b, true, false), 0) : -ENOENT;
	else if (!strcmp(verb, "bind"))
		err = b ? -EALREADY : labtdi_eligible(dev) ? labtdi_bind(dev) : -EINVAL;
	else
		err = -EINVAL;
	rtnl_unlock();
	return err;
}

static ssize_t labtdi_control_write(struct file *file, const char __user *ubuf,
				    size_t len, loff_t *pos)
{
	char buf[64];
	char *line, *verb;
	int err;

	if (len >= sizeof(buf))
		return -EINVAL;
	if (copy_from_user(buf, ubuf, len))
		return -EFAULT;
	buf[len] = '\0';
	line = strim(buf);
	verb = strsep(&line, " \t");
	if (!line)
		return -EINVAL;
	line = skip_spaces(line);
	if (!*line || strlen(line) >= IFNAMSIZ)
		return -EINVAL;
	err = labtdi_control(verb, line);
	return err ? err : len;
}

static const struct proc_ops labtdi_control_ops = {
	.proc_write = labtdi_control_write,
	.proc_lseek = noop_llseek,
};

/* ---- module life cycle ---- */

static void labtdi_log_knobs(void)
{
	if (leak_ref_on_unregister)
		pr_warn("labtdi: fault knob leak_ref_on_unregister is on\n");
	if (skip_deregister)
		pr_warn("labtdi: fault knob skip_deregister is on\n");
	if (block_unload)
		pr_warn("labtdi: fault knob block_unload is on\n");
	if (crash_on_unbind)
		pr_warn("labtdi: fault knob crash_on_unbind is on\n");
	if (teardown_on_link_down)
		pr_warn("labtdi: fault knob teardown_on_link_down is on\n");
	if (no_rebind_after_resume)
		pr_warn("labtdi: fault knob no_rebind_after_resume is on\n");
	if (config_after_register)
		pr_warn("labtdi: fault knob config_after_register is on\n");
}

static int __init labtdi_init(void)
{
	int err = labtdi_parse_skip_macs();
	unsigned int parsed;

	if (err) {
		pr_err("labtdi: bad skip_macs \"%s\" (want aa:bb:cc:dd:ee:ff,...)\n", skip_macs);
		return err;
	}
	err = labj_init(&journal, LABTDI_NAME, journal_lines);
	if (err)
		return err;
	proc_dir = proc_mkdir(LABTDI_NAME, NULL);
	if (!proc_dir || !labj_proc_create(&journal, proc_dir)) {
		err = -ENOMEM;
		goto out_proc;
	}
	labtdi_log_knobs();
	labtdi_log("LOAD", NULL, 0);

	adapters_dir = proc_mkdir("adapters", proc_dir);
	labtdi_log("PROVIDER_REGISTERED", NULL, adapters_dir ? 0 : -ENOMEM);
	if (!adapters_dir) {
		err = -ENOMEM;
		goto out_proc;
	}
	/* Replays NETDEV_REGISTER: binds every existing Ethernet adapter. */
	parsed = skip_count;
	if (config_after_register)
		skip_count = 0;		/* FAULT: the configuration is not applied yet */
	err = register_netdevice_notifier(&labtdi_notifier);
	rtnl_lock();
	skip_count = parsed;		/* from now on every new adapter honours it */
	rtnl_unlock();
	labtdi_log("PROTOCOL_REGISTERED", NULL, err);
	if (err)
		goto out_provider;
	control_pde = proc_create("control", 0200, proc_dir, &labtdi_control_ops);
	if (!control_pde) {
		err = -ENOMEM;
		goto out_protocol;
	}
	register_pm_notifier(&labtdi_pm_notifier);	/* cannot fail */
	labtdi_log("PROVIDER_READY", NULL, 0);
	return 0;

out_protocol:
	rtnl_lock();
	unloading = true;
	rtnl_unlock();
	unregister_netdevice_notifier(&labtdi_notifier);	/* unbinds all */
	labtdi_log("PROTOCOL_DEREGISTERED", NULL, 0);
out_provider:
	proc_remove(adapters_dir);
	labtdi_log("PROVIDER_DEREGISTERED", NULL, 0);
out_proc:
	labtdi_log("UNLOAD", NULL, err);
	proc_remove(proc_dir);
	labj_free(&journal);
	return err;
}

static void __exit labtdi_exit(void)
{
	struct labtdi_binding *b, *tmp;

	proc_remove(control_pde);	/* no more bind/unbind requests */
	unregister_pm_notifier(&labtdi_pm_notifier);
	if (block_unload)
		wait_for_completion(&never_completed);	/* FAULT: hangs rmmod */

	/* A transport cannot unload before it released every binding. */
	rtnl_lock();
	unloading = true;
	list_for_each_entry_safe(b, tmp, &bindings, node)
		labtdi_unbind(b, false, false);
	rtnl_unlock();

	proc_remove(adapters_dir);
	labtdi_log("PROVIDER_DEREGISTERED", NULL, 0);
	if (!skip_deregister) {
		unregister_netdevice_notifier(&labtdi_notifier);
		labtdi_log("PROTOCOL_DEREGISTERED", NULL, 0);
	}
	labtdi_log("UNLOAD", NULL, 0);
	proc_remove(proc_dir);
	labj_free(&journal);
}

module_init(labtdi_init);
module_exit(labtdi_exit);

MODULE_LICENSE("GPL");
MODULE_DESCRIPTION("Driver Lab: L2 protocol module, Linux twin of the labtdi TDI transport");
