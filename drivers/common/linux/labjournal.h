/* SPDX-License-Identifier: GPL-2.0 */
/*
 * Driver Lab event journal for the Linux twins (kecho, labtdi).
 *
 * One text line per event, in the format fixed by drivers/events.txt:
 *
 *     <t_ns> <driver> <EVENT> <adapter> <status>
 *
 * Lines are kept in a ring readable at /proc/<driver>/journal while the module
 * is loaded, and every line is also mirrored to the kernel log prefixed with
 * "labjournal: " so the events logged during and after module_exit (when the
 * proc file is gone) can still be read with dmesg.  If the ring overflows, the
 * proc file starts with a "# dropped <n>" comment line.
 *
 * Header-only on purpose: each module gets its own private copy.
 */
#ifndef LAB_JOURNAL_H
#define LAB_JOURNAL_H

#include <linux/etherdevice.h>
#include <linux/kernel.h>
#include <linux/netdevice.h>
#include <linux/proc_fs.h>
#include <linux/seq_file.h>
#include <linux/spinlock.h>
#include <linux/timekeeping.h>
#include <linux/vmalloc.h>

/* "52:54:00:12:34:56@2147483647" plus NUL */
#define LABJ_ADAPTER_LEN 32
#define LABJ_NO_ADAPTER "-"

struct labj_entry {
	u64 t_ns;
	const char *event;	/* a string literal of the owning module */
	char adapter[LABJ_ADAPTER_LEN];
	int status;		/* 0 = ok, negative errno otherwise */
};

struct labjournal {
	const char *driver;
	spinlock_t lock;
	struct labj_entry *ring;
	unsigned int cap;
	unsigned int next;	/* slot the next entry goes to */
	unsigned int count;	/* valid entries, <= cap */
	u64 dropped;
};

static inline int labj_init(struct labjournal *j, const char *driver,
			    unsigned int cap)
{
	if (cap < 16)
		cap = 16;
	j->ring = vzalloc(array_size(cap, sizeof(*j->ring)));
	if (!j->ring)
		return -ENOMEM;
	spin_lock_init(&j->lock);
	j->driver = driver;
	j->cap = cap;
	j->next = 0;
	j->count = 0;
	j->dropped = 0;
	return 0;
}

static inline void labj_free(struct labjournal *j)
{
	vfree(j->ring);
	j->ring = NULL;
}

/* Formats "<mac>@<ifindex>" for a network device. */
static inline void labj_adapter(char *buf, size_t len,
				const struct net_device *dev)
{
	snprintf(buf, len, "%pM@%d", dev->dev_addr, dev->ifindex);
}

static inline void labj_format_status(char *buf, size_t len, int status)
{
	if (status == 0)
		strscpy(buf, "ok", len);
	else
		snprintf(buf, len, "err:%d", status);
}

/* Records one event; adapter may be NULL for driver-wide events. */
static inline void labj_log(struct labjournal *j, const char *event,
			    const char *adapter, int status)
{
	struct labj_entry *e;
	unsigned long flags;
	char st[24];
	u64 now = ktime_get_ns();

	if (!adapter)
		adapter = LABJ_NO_ADAPTER;
	spin_lock_irqsave(&j->lock, flags);
	e = &j->ring[j->next];
	e->t_ns = now;
	e->event = event;
	strscpy(e->adapter, adapter, sizeof(e->adapter));
	e->status = status;
	j->next = (j->next + 1) % j->cap;
	if (j->count < j->cap)
		j->count++;
	else
		j->dropped++;
	spin_unlock_irqrestore(&j->lock, flags);

	labj_format_status(st, sizeof(st), status);
	pr_info("labjournal: %llu %s %s %s %s\n", now, j->driver, event,
		adapter, st);
}

/* seq_file show routine for /proc/<driver>/journal (single_open). */
static inline int labj_show(struct seq_file *m, void *unused)
{
	struct labjournal *j = m->private;
	unsigned int i, first;
	unsigned long flags;
	char st[24];

	spin_lock_irqsave(&j->lock, flags);
	if (j->dropped)
		seq_printf(m, "# dropped %llu\n", j->dropped);
	first = (j->next + j->cap - j->count) % j->cap;
	for (i = 0; i < j->count; i++) {
		const struct labj_entry *e = &j->ring[(first + i) % j->cap];

		labj_format_status(st, sizeof(st), e->status);
		seq_printf(m, "%llu %s %s %s %s\n", e->t_ns, j->driver,
			   e->event, e->adapter, st);
	}
	spin_unlock_irqrestore(&j->lock, flags);
	return 0;
}

static inline struct proc_dir_entry *labj_proc_create(struct labjournal *j,
						      struct proc_dir_entry *dir)
{
	return proc_create_single_data("journal", 0444, dir, labj_show, j);
}

#endif /* LAB_JOURNAL_H */
