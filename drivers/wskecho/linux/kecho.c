// SPDX-License-Identifier: GPL-2.0
/*
 * kecho -- Linux twin of the wskecho WSK TCP echo server driver.
 *
 * An in-kernel TCP echo server on kernel sockets: one listening socket on all
 * addresses (IPv6 dual-stack, IPv4 only if IPv6 is unavailable), an accept
 * thread, and one kernel thread per connection, with no limit on the number of
 * concurrent connections.
 *
 * The WSK life cycle is mirrored with real kernel objects:
 *   WSK_REGISTER / WSK_DEREGISTER      register_pernet_subsys / unregister_pernet_subsys
 *   WSK_CAPTURE_NPI / WSK_RELEASE_NPI  get_net(&init_net) / put_net(&init_net)
 * and module_exit behaves like a WSK client's unload: it closes the listener,
 * releases the provider NPI, then (like WskDeregister) blocks until every live
 * connection has been closed by its peer.  The kernel log says how many
 * connections it is waiting for, so the lab can close its clients.
 *
 * Fault knobs (module parameters, off by default; each one is a real bug):
 *   corrupt_every_kib=N  flip one echoed byte at the end of every N KiB of a
 *                        connection's stream (offsets N*1024-1, 2*N*1024-1, ...)
 *   skip_deregister=1    forget unregister_pernet_subsys at unload (the kernel
 *                        keeps calling into the unloaded module for every new
 *                        network namespace)
 *   block_unload=1       module_exit blocks forever after closing the listener
 */
#include <linux/completion.h>
#include <linux/in.h>
#include <linux/in6.h>
#include <linux/kthread.h>
#include <linux/list.h>
#include <linux/module.h>
#include <linux/mutex.h>
#include <linux/net.h>
#include <linux/slab.h>
#include <net/net_namespace.h>
#include <net/sock.h>

#include "labjournal.h"

#define KECHO_NAME "kecho"
#define KECHO_BUF_SIZE (16 * 1024)

static ushort port = 7007;
module_param(port, ushort, 0444);
MODULE_PARM_DESC(port, "TCP port to listen on, all addresses (default 7007)");

static uint backlog = 128;
module_param(backlog, uint, 0444);
MODULE_PARM_DESC(backlog, "listen backlog (default 128)");

static uint journal_lines = 8192;
module_param(journal_lines, uint, 0444);
MODULE_PARM_DESC(journal_lines, "journal ring capacity in lines (default 8192)");

static uint corrupt_every_kib;
module_param(corrupt_every_kib, uint, 0644);
MODULE_PARM_DESC(corrupt_every_kib, "FAULT: corrupt one echoed byte every N KiB (0 = off)");

static bool skip_deregister;
module_param(skip_deregister, bool, 0644);
MODULE_PARM_DESC(skip_deregister, "FAULT: skip the WSK deregistration at unload");

static bool block_unload;
module_param(block_unload, bool, 0644);
MODULE_PARM_DESC(block_unload, "FAULT: block forever in module_exit");

struct kecho_conn {
	struct list_head node;
	struct socket *sock;
	struct completion done;	/* completed by the thread as it exits */
	u64 echoed;		/* bytes echoed so far on this connection */
	unsigned int id;
};

static struct labjournal journal;
static struct proc_dir_entry *proc_dir;
static struct socket *listener;
static struct task_struct *accept_task;
static LIST_HEAD(conns);		/* owned by accept_task, then by exit */
static DEFINE_MUTEX(conns_lock);
static DECLARE_COMPLETION(never_completed);
static atomic_t netns_count = ATOMIC_INIT(0);

static int __net_init kecho_net_init(struct net *net)
{
	atomic_inc(&netns_count);
	return 0;
}

static void __net_exit kecho_net_exit(struct net *net)
{
	atomic_dec(&netns_count);
}

/* The "WSK registration": one registration per loaded module. */
static struct pernet_operations kecho_net_ops = {
	.init = kecho_net_init,
	.exit = kecho_net_exit,
};

static void kecho_log(const char *event, int status)
{
	labj_log(&journal, event, NULL, status);
}

/* FAULT corrupt_every_kib: flip the last byte of every N KiB of the stream. */
static void kecho_maybe_corrupt(struct kecho_conn *c, u8 *buf, size_t len)
{
	u64 every = (u64)READ_ONCE(corrupt_every_kib) * 1024;
	u64 next;

	if (!every)
		return;
	next = div64_u64(c->echoed, every) * every + every - 1;
	for (; next < c->echoed + len; next += every)
		buf[next - c->echoed] ^= 0xff;
}

static int kecho_send_all(struct socket *sock, u8 *buf, size_t len)
{
	size_t off = 0;

	while (off < len) {
		struct kvec iov = { .iov_base = buf + off, .iov_len = len - off };
		struct msghdr msg = { .msg_flags = MSG_NOSIGNAL };
		int n = kernel_sendmsg(sock, &msg, &iov, 1, len - off);

		if (n <= 0)
			return n ? n : -EPIPE;
		off += n;
	}
	return 0;
}

static int kecho_conn_thread(void *arg)
{
	struct kecho_conn *c = arg;
	int status = 0;
	u8 *buf = kmalloc(KECHO_BUF_SIZE, GFP_KERNEL);

	if (!buf)
		status = -ENOMEM;
	while (buf) {
		struct kvec iov = { .iov_base = buf, .iov_len = KECHO_BUF_SIZE };
		struct msghdr msg = {};
		int n = kernel_recvmsg(c->sock, &msg, &iov, 1, KECHO_BUF_SIZE, 0);

		if (n <= 0) {
			status = n;	/* 0: orderly close by the peer */
			break;
		}
		kecho_maybe_corrupt(c, buf, n);
		status = kecho_send_all(c->sock, buf, n);
		if (status)
			break;
		c->echoed += n;
	}
	kfree(buf);
	kernel_sock_shutdown(c->sock, SHUT_RDWR);
	sock_release(c->sock);
	c->sock = NULL;
	kecho_log("CLOSE", status);
	/* Never returns into module text: safe against a concurrent module_exit. */
	kthread_complete_and_exit(&c->done, 0);
}

/* Frees connections whose thread has finished. Caller holds conns_lock. */
static void kecho_reap(bool wait)
{
	struct kecho_conn *c, *tmp;

	list_for_each_entry_safe(c, tmp, &conns, node) {
		if (wait)
			wait_for_completion(&c->done);
		else if (!completion_done(&c->done))
			continue;
		list_del(&c->node);
		kfree(c);
	}
}

static unsigned int kecho_live_count(void)
{
	struct kecho_conn *c;
	unsigned int live = 0;

	list_for_each_entry(c, &conns, node)
		if (!completion_done(&c->done))
			live++;
	return live;
}

static void kecho_start_conn(struct socket *sock, unsigned int id)
{
	struct kecho_conn *c = kzalloc(sizeof(*c), GFP_KERNEL);
	struct task_struct *t;

	if (!c) {
		sock_release(sock);
		kecho_log("ACCEPT", -ENOMEM);
		return;
	}
	c->sock = sock;
	c->id = id;
	init_completion(&c->done);
	kecho_log("ACCEPT", 0);
	mutex_lock(&conns_lock);
	kecho_reap(false);
	list_add_tail(&c->node, &conns);
	t = kthread_run(kecho_conn_thread, c, "kecho-c%u", id);
	if (IS_ERR(t)) {
		list_del(&c->node);
		sock_release(sock);
		kfree(c);
		kecho_log("CLOSE", PTR_ERR(t));
	}
	mutex_unlock(&conns_lock);
}

static int kecho_accept_thread(void *unused)
{
	unsigned int id = 0;

	while (!kthread_should_stop()) {
		struct socket *sock;
		int err = kernel_accept(listener, &sock, 0);

		if (err) {
			/* -EINVAL once module_exit shut the listener down */
			if (!kthread_should_stop())
				schedule_timeout_interruptible(HZ / 10);
			continue;
		}
		kecho_start_conn(sock, ++id);
	}
	return 0;
}

static int kecho_listen(void)
{
	struct sockaddr_in6 a6 = { .sin6_family = AF_INET6, .sin6_addr = IN6ADDR_ANY_INIT };
	struct sockaddr_in a4 = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_ANY) };
	struct sockaddr *addr = (struct sockaddr *)&a6;
	int addrlen = sizeof(a6);
	int err;

	a6.sin6_port = htons(port);
	a4.sin_port = htons(port);
	err = sock_create_kern(&init_net, AF_INET6, SOCK_STREAM, IPPROTO_TCP, &listener);
	if (err) {
		addr = (struct sockaddr *)&a4;
		addrlen = sizeof(a4);
		err = sock_create_kern(&init_net, AF_INET, SOCK_STREAM, IPPROTO_TCP,
				       &listener);
	}
	if (err)
		return err;
	sock_set_reuseaddr(listener->sk);
	err = kernel_bind(listener, addr, addrlen);
	if (!err)
		err = kernel_listen(listener, backlog);
	if (err) {
		sock_release(listener);
		listener = NULL;
	}
	return err;
}

static void kecho_close_listener(void)
{
	kernel_sock_shutdown(listener, SHUT_RDWR);	/* wakes the accept */
	kthread_stop(accept_task);
	sock_release(listener);
	listener = NULL;
	kecho_log("LISTENER_CLOSED", 0);
}

static void kecho_log_knobs(void)
{
	if (corrupt_every_kib)
		pr_warn("kecho: fault knob corrupt_every_kib=%u is on\n", corrupt_every_kib);
	if (skip_deregister)
		pr_warn("kecho: fault knob skip_deregister is on\n");
	if (block_unload)
		pr_warn("kecho: fault knob block_unload is on\n");
}

static int __init kecho_init(void)
{
	int err = labj_init(&journal, KECHO_NAME, journal_lines);

	if (err)
		return err;
	proc_dir = proc_mkdir(KECHO_NAME, NULL);
	if (!proc_dir || !labj_proc_create(&journal, proc_dir)) {
		err = -ENOMEM;
		goto out_proc;
	}
	kecho_log_knobs();
	kecho_log("LOAD", 0);

	err = register_pernet_subsys(&kecho_net_ops);
	kecho_log("WSK_REGISTER", err);
	if (err)
		goto out_proc;
	get_net(&init_net);
	kecho_log("WSK_CAPTURE_NPI", 0);

	err = kecho_listen();
	kecho_log("LISTEN", err);
	if (err)
		goto out_npi;
	pr_info("kecho: listening on port %u\n", port);
	accept_task = kthread_run(kecho_accept_thread, NULL, "kecho-accept");
	if (IS_ERR(accept_task)) {
		err = PTR_ERR(accept_task);
		sock_release(listener);
		kecho_log("LISTENER_CLOSED", err);
		goto out_npi;
	}
	return 0;

out_npi:
	put_net(&init_net);
	kecho_log("WSK_RELEASE_NPI", 0);
	unregister_pernet_subsys(&kecho_net_ops);
	kecho_log("WSK_DEREGISTER", 0);
out_proc:
	kecho_log("UNLOAD", err);
	proc_remove(proc_dir);
	labj_free(&journal);
	return err;
}

static void __exit kecho_exit(void)
{
	unsigned int live;

	kecho_close_listener();
	if (block_unload)
		wait_for_completion(&never_completed);	/* FAULT: hangs rmmod */

	put_net(&init_net);
	kecho_log("WSK_RELEASE_NPI", 0);

	/* Like WskDeregister: return only once every socket is closed. */
	mutex_lock(&conns_lock);
	live = kecho_live_count();
	if (live)
		pr_info("kecho: unload waiting for %u live connection(s) to close\n", live);
	kecho_reap(true);
	mutex_unlock(&conns_lock);
	if (live)
		pr_info("kecho: all connections closed\n");

	if (!skip_deregister) {
		unregister_pernet_subsys(&kecho_net_ops);
		kecho_log("WSK_DEREGISTER", 0);
	}
	kecho_log("UNLOAD", 0);
	proc_remove(proc_dir);
	labj_free(&journal);
}

module_init(kecho_init);
module_exit(kecho_exit);

MODULE_LICENSE("GPL");
MODULE_DESCRIPTION("Driver Lab: in-kernel TCP echo server, Linux twin of wskecho");
