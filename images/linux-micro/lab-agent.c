// SPDX-License-Identifier: GPL-2.0
/*
 * lab-agent -- the micro guest's out-of-band channel (lab/agent.py on the host).
 *
 * Serves the virtio-serial port named org.qemu.guest_agent.0, so libvirt's guest
 * agent client (virDomainQemuAgentCommand) talks to it, with the subset of the
 * QEMU guest agent protocol the lab needs (JSON objects, one reply each):
 *
 *   {"execute":"guest-sync","arguments":{"id":N}}    -> {"return": N}
 *   {"execute":"guest-sync-delimited",...}           -> 0xFF {"return": N}
 *   {"execute":"guest-ping"}                         -> {"return": {}}
 *   {"execute":"lab-sysrq","arguments":{"keys":"wt"}} -> each key written to
 *       /proc/sysrq-trigger (w: blocked tasks, t: all tasks), then
 *       {"return": {"done": "wt"}}
 *   {"execute":"lab-identity","arguments":{"hostname":"vm1","net":"<mac>=<ip/len>,...",
 *       "hostkey":"<hex>","seed":"<hex>","epoch":N}} -> a VM restored from the lab's
 *       template (lab/template.py) takes its own identity: the hostname, the NIC
 *       addresses /sbin/lab-netup gives hot-plugged NICs (/run/lab/net), 32+ bytes
 *       credited to the kernel's random pool and a reseed forced (so clones do not
 *       share the template's generator, and nothing waits for the pool to fill), the
 *       wall clock, and its own SSH host key (into the RAM-only /etc/dropbear), with
 *       which it restarts dropbear, then configures the NICs already there; then
 *       {"return": {"identity": "vm1"}}. No shell runs: each command a busybox sh
 *       forks costs a restored TCG guest tens of milliseconds of translation.
 *   anything else -> {"error": {"class": "CommandNotFound", "desc": ...}}
 *
 * It answers as long as the kernel schedules user space, whatever happened to
 * the guest's network: the host tells "the driver broke the network" (agent
 * answers, SSH does not) from "the lab lost the guest" (neither answers).
 * Started (and respawned) by busybox init (/etc/inittab).
 */
#include <dirent.h>
#include <linux/random.h>
#include <sys/ioctl.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define PORT_NAME "org.qemu.guest_agent.0"
#define PORTS_DIR "/sys/class/virtio-ports"
#define MAX_REQUEST 4096
#define IDENTITY_DIR "/run/lab"

static void say(const char *what, const char *detail)
{
	fprintf(stderr, "lab-agent: %s %s\n", what, detail);
}

/* /dev/<vportNpM> of the port named PORT_NAME, or 0 when it is not there yet. */
static int find_port(char *dev, size_t len)
{
	DIR *dir = opendir(PORTS_DIR);
	struct dirent *e;
	int found = 0;

	if (!dir)
		return 0;
	while (!found && (e = readdir(dir))) {
		char path[512], name[128] = "";
		FILE *f;

		if (e->d_name[0] == '.')
			continue;
		snprintf(path, sizeof(path), PORTS_DIR "/%s/name", e->d_name);
		f = fopen(path, "r");
		if (!f)
			continue;
		if (fgets(name, sizeof(name), f))
			name[strcspn(name, "\n")] = '\0';
		if (!strcmp(name, PORT_NAME)) {
			snprintf(dev, len, "/dev/%s", e->d_name);
			found = 1;
		}
		fclose(f);
	}
	closedir(dir);
	return found;
}

static int write_all(int fd, const char *buf, size_t len)
{
	while (len) {
		ssize_t n = write(fd, buf, len);

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return -1;
		buf += n;
		len -= (size_t)n;
	}
	return 0;
}

/* The string value of "key" in req (first occurrence) into out; 0 if absent. */
static int json_string(const char *req, const char *key, char *out, size_t len)
{
	const char *p = strstr(req, key);
	size_t i = 0;

	if (!p)
		return 0;
	p += strlen(key);
	while (*p == ' ' || *p == ':' || *p == '\t' || *p == '\n' || *p == '\r')
		p++;
	if (*p++ != '"')
		return 0;
	while (*p && *p != '"' && i + 1 < len)
		out[i++] = *p++;
	out[i] = '\0';
	return *p == '"';
}

/* The unsigned integer value of "key" in req; 0 if absent. */
static int json_uint(const char *req, const char *key, unsigned long long *out)
{
	const char *p = strstr(req, key);
	char *end;

	if (!p)
		return 0;
	p += strlen(key);
	while (*p == ' ' || *p == ':' || *p == '\t')
		p++;
	*out = strtoull(p, &end, 10);
	return end != p;
}

/* Every character of s is in allowed (and s is not empty). */
static int only(const char *s, const char *allowed)
{
	return *s && strspn(s, allowed) == strlen(s);
}

/* hex (an even count of [0-9a-f]) into out; the byte count, or -1. */
static long unhex(const char *hex, unsigned char *out, size_t len)
{
	size_t n = strlen(hex), i;

	if (n % 2 || n / 2 > len || !only(hex, "0123456789abcdef"))
		return -1;
	for (i = 0; i < n / 2; i++) {
		unsigned int byte;

		if (sscanf(hex + 2 * i, "%2x", &byte) != 1)
			return -1;
		out[i] = (unsigned char)byte;
	}
	return (long)(n / 2);
}

/* Write len bytes to path (created 0600, replaced whole: written then renamed). */
static int put_file(const char *path, const void *data, size_t len)
{
	char tmp[256];
	int fd, rc;

	snprintf(tmp, sizeof(tmp), "%s.new", path);
	fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	if (fd < 0)
		return -1;
	rc = write_all(fd, data, len);
	if (close(fd) < 0 || rc < 0)
		return -1;
	return rename(tmp, path);
}

#define KEY_DIR "/etc/dropbear"
#define HOST_KEY KEY_DIR "/dropbear_ed25519_host_key"
#define DROPBEAR_PID "/run/dropbear.pid"
#define TMPFS_MAGIC_FS 0x01021994

/* fork + exec argv[0] (a full path) with a fixed PATH; its exit status, -1 if none. */
static int run(char *const argv[])
{
	static char *const env[] = { "PATH=/sbin:/bin:/usr/sbin:/usr/bin", NULL };
	pid_t pid = fork();
	int status;

	if (pid < 0)
		return -1;
	if (pid == 0) {
		execve(argv[0], argv, env);
		_exit(127);
	}
	if (waitpid(pid, &status, 0) < 0)
		return -1;
	return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

/* The key into the RAM-only /etc/dropbear (a tmpfs: never on the shared golden disk). */
static int store_host_key(const unsigned char *key, size_t len)
{
	struct statfs fs;

	mkdir(KEY_DIR, 0700);
	if (statfs(KEY_DIR, &fs) < 0)
		return -1;
	if ((unsigned long)fs.f_type != TMPFS_MAGIC_FS &&
	    mount("labhostkey", KEY_DIR, "tmpfs", 0, "mode=0700,size=64k") < 0)
		return -1;
	return put_file(HOST_KEY, key, len);
}

/* dropbear started again with the VM's key (the old one, if any, stopped first). */
static int restart_dropbear(void)
{
	char *const argv[] = { "/usr/sbin/dropbear", "-r", HOST_KEY, "-s", "-g", "-p", "22",
			       "-P", DROPBEAR_PID, NULL };
	char buf[32] = "";
	int fd = open(DROPBEAR_PID, O_RDONLY | O_CLOEXEC);

	if (fd >= 0) {
		ssize_t n = read(fd, buf, sizeof(buf) - 1);
		long pid = n > 0 ? strtol(buf, NULL, 10) : 0;

		close(fd);
		if (pid > 1)
			kill((pid_t)pid, SIGTERM);
		unlink(DROPBEAR_PID);
	}
	return run(argv);  /* dropbear forks into the background; its parent exits 0 */
}

/* Each NIC already there (not lo) configured from /run/lab/net by lab-uevent; NICs
 * hot-plugged later get theirs from lab-uevent's own uevent handling. */
static void netup_present(void)
{
	DIR *dir = opendir("/sys/class/net");
	struct dirent *e;

	if (!dir)
		return;
	while ((e = readdir(dir))) {
		char *const argv[] = { "/sbin/lab-uevent", "--netup", e->d_name, NULL };

		if (e->d_name[0] != '.' && strcmp(e->d_name, "lo") != 0)
			run(argv);
	}
	closedir(dir);
}

static void console_line(const char *name)
{
	char line[128];
	int fd = open("/dev/console", O_WRONLY | O_NOCTTY | O_CLOEXEC);

	if (fd < 0)
		return;
	snprintf(line, sizeof(line), "lab-guest: identity %s\n", name);
	if (write_all(fd, line, strlen(line)) < 0)
		say("cannot write to", "/dev/console");
	close(fd);
}

/* lab-identity: see the header comment. Every argument is checked before anything
 * changes. NULL on success, else what failed. */
/*
 * The host's seed, credited as entropy (RNDADDENTROPY, bits = 8 per byte: it comes
 * from the host's CSPRNG), then a forced reseed (RNDRESEEDCRNG). A plain write to
 * /dev/urandom mixes without crediting: a template saved before the pool was ready
 * then left dropbear, restarted with the VM's key, blocked in getrandom() for
 * seconds; one saved after it kept the template's generator until the next reseed.
 */
static int credit_seed(int fd, const unsigned char *seed, int len)
{
	static union {
		struct rand_pool_info info;
		unsigned char raw[sizeof(struct rand_pool_info) + 256];
	} pool;

	if (len <= 0 || len > 256)
		return -1;
	pool.info.entropy_count = len * 8;
	pool.info.buf_size = len;
	memcpy(pool.info.buf, seed, (size_t)len);
	if (ioctl(fd, RNDADDENTROPY, &pool.info) < 0)
		return -1;
	/* ready now (256 credited bits); reseed even if it already was */
	return ioctl(fd, RNDRESEEDCRNG) < 0 ? -1 : 0;
}

static const char *identity(const char *req, char *name, size_t name_len)
{
	static char net[2048], hexbuf[1024];
	static unsigned char seed[256], key[512];
	unsigned long long epoch = 0;
	struct timeval now = { 0 };
	long seed_len, key_len;
	int fd, seeded;

	if (!json_string(req, "\"hostname\"", name, name_len) ||
	    !only(name, "abcdefghijklmnopqrstuvwxyz0123456789-"))
		return "bad hostname";
	if (!json_string(req, "\"net\"", net, sizeof(net)) ||
	    !only(net, "0123456789abcdef:=./,"))
		return "bad net";
	if (!json_string(req, "\"seed\"", hexbuf, sizeof(hexbuf)) ||
	    (seed_len = unhex(hexbuf, seed, sizeof(seed))) < 32)
		return "bad seed (32+ bytes of hex)";
	if (!json_string(req, "\"hostkey\"", hexbuf, sizeof(hexbuf)) ||
	    (key_len = unhex(hexbuf, key, sizeof(key))) <= 0)
		return "bad hostkey";
	if (!json_uint(req, "\"epoch\"", &epoch) || epoch == 0)
		return "bad epoch";
	mkdir(IDENTITY_DIR, 0700);
	if (sethostname(name, strlen(name)) < 0)
		return "sethostname failed";
	if (put_file(IDENTITY_DIR "/net", net, strlen(net)) < 0)
		return "cannot write " IDENTITY_DIR "/net";
	fd = open("/dev/urandom", O_WRONLY | O_CLOEXEC);
	if (fd < 0)
		return "cannot open /dev/urandom";
	seeded = credit_seed(fd, seed, seed_len);
	close(fd);
	if (seeded < 0)
		return "cannot credit the seed (RNDADDENTROPY)";
	now.tv_sec = (time_t)epoch;
	if (settimeofday(&now, NULL) < 0)
		return "settimeofday failed";
	if (store_host_key(key, (size_t)key_len) < 0)
		return "cannot write " HOST_KEY;
	if (restart_dropbear() != 0)
		return "dropbear did not start with the new host key";
	console_line(name);
	netup_present();
	return NULL;
}

static void sysrq(const char *keys, char *reply, size_t len)
{
	char done[16] = "";
	size_t n = 0;

	for (; *keys && n + 1 < sizeof(done); keys++) {
		int fd;

		if (*keys != 'w' && *keys != 't')
			continue;	/* only the hang evidence keys, never reboot & co */
		fd = open("/proc/sysrq-trigger", O_WRONLY);
		if (fd < 0)
			continue;
		if (write_all(fd, keys, 1) == 0)
			done[n++] = *keys;
		close(fd);
	}
	done[n] = '\0';
	snprintf(reply, len, "{\"return\": {\"done\": \"%s\"}}\n", done);
}

static void answer(int fd, const char *req)
{
	char cmd[64], keys[16], reply[256], name[64];
	unsigned long long id = 0;
	const char *failed;

	if (!json_string(req, "\"execute\"", cmd, sizeof(cmd)))
		snprintf(reply, sizeof(reply), "{\"error\": {\"class\": \"GenericError\", "
			 "\"desc\": \"no execute\"}}\n");
	else if (!strcmp(cmd, "guest-sync") || !strcmp(cmd, "guest-sync-delimited")) {
		json_uint(req, "\"id\"", &id);
		snprintf(reply, sizeof(reply), "%s{\"return\": %llu}\n",
			 strcmp(cmd, "guest-sync") ? "\xff" : "", id);
	} else if (!strcmp(cmd, "guest-ping"))
		snprintf(reply, sizeof(reply), "{\"return\": {}}\n");
	else if (!strcmp(cmd, "lab-sysrq")) {
		if (!json_string(req, "\"keys\"", keys, sizeof(keys)))
			strcpy(keys, "w");
		sysrq(keys, reply, sizeof(reply));
	} else if (!strcmp(cmd, "lab-identity")) {
		failed = identity(req, name, sizeof(name));
		if (failed)
			snprintf(reply, sizeof(reply), "{\"error\": {\"class\": \"GenericError\", "
				 "\"desc\": \"lab-agent: lab-identity: %s\"}}\n", failed);
		else
			snprintf(reply, sizeof(reply), "{\"return\": {\"identity\": \"%s\"}}\n",
				 name);
	} else
		snprintf(reply, sizeof(reply), "{\"error\": {\"class\": \"CommandNotFound\", "
			 "\"desc\": \"lab-agent: unknown command %s\"}}\n", cmd);
	if (write_all(fd, reply, strlen(reply)) < 0)
		say("reply failed:", strerror(errno));
}

/*
 * Splits the byte stream into top-level JSON objects (braces outside strings),
 * so requests with or without a trailing newline both work.
 */
struct splitter {
	char buf[MAX_REQUEST];
	size_t len;
	int depth, in_string, escaped;
};

static void feed(struct splitter *s, int fd, char c)
{
	if (s->depth == 0 && c != '{')
		return;			/* between objects: whitespace, 0xFF, junk */
	if (s->len + 1 >= sizeof(s->buf)) {
		s->len = 0;		/* oversized request: drop it and resync */
		s->depth = s->in_string = s->escaped = 0;
		return;
	}
	s->buf[s->len++] = c;
	if (s->in_string) {
		if (s->escaped)
			s->escaped = 0;
		else if (c == '\\')
			s->escaped = 1;
		else if (c == '"')
			s->in_string = 0;
		return;
	}
	if (c == '"')
		s->in_string = 1;
	else if (c == '{')
		s->depth++;
	else if (c == '}' && --s->depth == 0) {
		s->buf[s->len] = '\0';
		answer(fd, s->buf);
		s->len = 0;
	}
}

static void serve(const char *dev)
{
	struct splitter s = { .len = 0 };
	int fd = open(dev, O_RDWR | O_CLOEXEC);

	if (fd < 0) {
		say("cannot open", dev);
		return;
	}
	say("serving", dev);
	for (;;) {
		struct pollfd p = { .fd = fd, .events = POLLIN };
		char chunk[512];
		ssize_t n, i;

		if (poll(&p, 1, 1000) < 0 && errno != EINTR)
			break;
		if (!(p.revents & POLLIN)) {
			if (p.revents & (POLLHUP | POLLERR))
				usleep(200000);	/* host side not connected (yet) */
			continue;
		}
		n = read(fd, chunk, sizeof(chunk));
		if (n < 0 && (errno == EINTR || errno == EAGAIN))
			continue;
		if (n < 0)
			break;
		if (n == 0) {
			usleep(200000);		/* host side closed; it reconnects */
			continue;
		}
		for (i = 0; i < n; i++)
			feed(&s, fd, chunk[i]);
	}
	say("port failed:", strerror(errno));
	close(fd);
}

/* An argument names the port device instead (tests serve a pty). */
int main(int argc, char **argv)
{
	char dev[300];

	for (;;) {
		if (argc > 1)
			snprintf(dev, sizeof(dev), "%s", argv[1]);
		if (argc > 1 || find_port(dev, sizeof(dev)))
			serve(dev);
		sleep(1);
	}
}
