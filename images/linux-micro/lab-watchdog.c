// SPDX-License-Identifier: GPL-2.0
/*
 * lab-watchdog -- arms the domain's i6300esb watchdog and pets it (lab.domxml).
 *
 * The Debian cloud kernel has no i6300esb driver (CONFIG_I6300ESB_WDT is not
 * set), so this drives the device from user space, through its PCI config
 * space and its memory BAR in sysfs (the register layout of the Intel 6300ESB
 * datasheet, as QEMU's hw/watchdog/wdt_i6300esb.c models it):
 *
 *   config 0x60 (16 bit)  bits 1:0 = 11 no stage-1 interrupt, bit 2 = 0 1 kHz
 *                         tick, bit 5 = 0 the stage-2 expiry acts (QEMU runs
 *                         the domain's <watchdog action>: inject-nmi)
 *   config 0x68 (8 bit)   bit 1 enable, bit 0 lock until reset (not used)
 *   BAR0 0x00 / 0x04      stage-1 / stage-2 preload (20 bit, ticks of 2^15
 *                         PCI clocks: ~0.983 ms)
 *   BAR0 0x0c (16 bit)    bit 8 reload (restart stage 1), bit 9 "the last
 *                         reset came from the watchdog" (write 1 clears it)
 *
 * Every BAR write goes after the unlock sequence 0x80, 0x86 at BAR0 0x0c.
 *
 * Petting runs in user space on purpose: when the kernel stops scheduling it
 * (a CPU spinning with interrupts off, which a TCG guest has no NMI watchdog
 * for), the timeout runs out, QEMU injects an NMI, the guest (booted with
 * unknown_nmi_panic) panics and pvpanic tells libvirt "crashed".
 * Started (and respawned) by busybox init (/etc/inittab).
 */
#include <dirent.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#define PCI_DEVICES "/sys/bus/pci/devices"
#define ESB_VENDOR 0x8086
#define ESB_DEVICE 0x25ab

#define CFG_CONFIG 0x60
#define CFG_LOCK 0x68
#define CONFIG_NO_IRQ_1KHZ_OUTPUT 0x0003
#define LOCK_ENABLE 0x02

#define BAR_PRELOAD1 0x00
#define BAR_PRELOAD2 0x04
#define BAR_RELOAD 0x0c
#define RELOAD_RESTART 0x0100
#define RELOAD_FIRED 0x0200

/* The whole timeout (two equal stages) and the petting period, in seconds. */
#define TIMEOUT_S 30
#define PET_S 5

static void say(const char *what, const char *detail)
{
	fprintf(stderr, "lab-watchdog: %s %s\n", what, detail);
}

static unsigned long read_hex(const char *dir, const char *file)
{
	char path[512], text[64] = "";
	FILE *f;

	snprintf(path, sizeof(path), "%s/%s", dir, file);
	f = fopen(path, "r");
	if (!f)
		return 0;
	if (!fgets(text, sizeof(text), f))
		text[0] = '\0';
	fclose(f);
	return strtoul(text, NULL, 0);
}

/* The sysfs folder of the first i6300esb, or 0 when the domain has none. */
static int find_device(char *dir, size_t len)
{
	DIR *d = opendir(PCI_DEVICES);
	struct dirent *e;
	int found = 0;

	if (!d)
		return 0;
	while (!found && (e = readdir(d))) {
		if (e->d_name[0] == '.')
			continue;
		snprintf(dir, len, PCI_DEVICES "/%s", e->d_name);
		found = read_hex(dir, "vendor") == ESB_VENDOR &&
			read_hex(dir, "device") == ESB_DEVICE;
	}
	closedir(d);
	return found;
}

struct esb {
	int config;			/* fd of the config space */
	volatile uint8_t *bar;		/* BAR0, mapped */
};

static int cfg_write(struct esb *w, off_t reg, const void *val, size_t len)
{
	return pwrite(w->config, val, len, reg) == (ssize_t)len ? 0 : -1;
}

static void bar_unlock(struct esb *w)
{
	*(volatile uint16_t *)(w->bar + BAR_RELOAD) = 0x80;
	*(volatile uint16_t *)(w->bar + BAR_RELOAD) = 0x86;
}

static void bar_write16(struct esb *w, unsigned int reg, uint16_t val)
{
	bar_unlock(w);
	*(volatile uint16_t *)(w->bar + reg) = val;
}

static void bar_write32(struct esb *w, unsigned int reg, uint32_t val)
{
	bar_unlock(w);
	*(volatile uint32_t *)(w->bar + reg) = val;
}

/* Memory decoding on (pci_enable_device), config space open, BAR0 mapped. */
static int esb_open(struct esb *w, const char *dir)
{
	char path[600];
	unsigned long long start = 0;
	long page = sysconf(_SC_PAGESIZE);
	void *map;
	int fd;
	FILE *f;

	/* a kernel driver (the generic kernel's i6300esb.ko) would own BAR0: take it back */
	snprintf(path, sizeof(path), "%s/driver/unbind", dir);
	fd = open(path, O_WRONLY);
	if (fd >= 0) {
		if (write(fd, strrchr(dir, '/') + 1, strlen(strrchr(dir, '/') + 1)) < 0)
			say("cannot unbind the kernel driver via", path);
		close(fd);
	}
	snprintf(path, sizeof(path), "%s/enable", dir);
	fd = open(path, O_WRONLY);
	if (fd < 0 || write(fd, "1", 1) != 1)
		say("cannot enable", path);
	if (fd >= 0)
		close(fd);
	snprintf(path, sizeof(path), "%s/resource", dir);
	f = fopen(path, "r");
	if (!f || fscanf(f, "%llx", &start) != 1 || !start) {
		say("no BAR0 in", path);
		if (f)
			fclose(f);
		return -1;
	}
	fclose(f);
	snprintf(path, sizeof(path), "%s/config", dir);
	w->config = open(path, O_RDWR | O_CLOEXEC);
	snprintf(path, sizeof(path), "%s/resource0", dir);
	fd = open(path, O_RDWR | O_SYNC | O_CLOEXEC);
	if (w->config < 0 || fd < 0) {
		say("cannot open", path);
		return -1;
	}
	map = mmap(NULL, page, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	close(fd);
	if (map == MAP_FAILED) {
		say("cannot map", path);
		return -1;
	}
	/* sysfs maps the page holding the BAR: the registers sit at its offset */
	w->bar = (volatile uint8_t *)map + (start & (unsigned long long)(page - 1));
	return 0;
}

static int esb_arm(struct esb *w)
{
	uint16_t config = CONFIG_NO_IRQ_1KHZ_OUTPUT;
	uint8_t lock = 0;
	uint32_t ticks = (uint32_t)(TIMEOUT_S * 1000000ULL / 2 / 983);

	if (cfg_write(w, CFG_CONFIG, &config, sizeof(config)) ||
	    cfg_write(w, CFG_LOCK, &lock, sizeof(lock)))
		return -1;
	if (*(volatile uint16_t *)(w->bar + BAR_RELOAD) & RELOAD_FIRED)
		say("note:", "the last reset came from this watchdog");
	bar_write16(w, BAR_RELOAD, RELOAD_FIRED | RELOAD_RESTART);
	bar_write32(w, BAR_PRELOAD1, ticks);
	bar_write32(w, BAR_PRELOAD2, ticks);
	bar_write16(w, BAR_RELOAD, RELOAD_RESTART);
	lock = LOCK_ENABLE;
	if (cfg_write(w, CFG_LOCK, &lock, sizeof(lock)) ||
	    pread(w->config, &lock, 1, CFG_LOCK) != 1 || !(lock & LOCK_ENABLE))
		return -1;
	return 0;
}

int main(void)
{
	char dir[300], detail[400];
	struct esb w = { .config = -1, .bar = NULL };

	if (!find_device(dir, sizeof(dir))) {
		say("no i6300esb in", PCI_DEVICES);
		for (;;)
			pause();	/* init would respawn an exit at once */
	}
	if (esb_open(&w, dir) || esb_arm(&w)) {
		say("cannot arm the watchdog at", dir);
		for (;;)
			pause();
	}
	snprintf(detail, sizeof(detail), "%s: %d s timeout, petted every %d s",
		 strrchr(dir, '/') + 1, TIMEOUT_S, PET_S);
	say("armed i6300esb", detail);
	for (;;) {
		sleep(PET_S);
		bar_write16(&w, BAR_RELOAD, RELOAD_RESTART);
	}
}
