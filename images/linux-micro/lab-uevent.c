// SPDX-License-Identifier: GPL-2.0
/*
 * lab-uevent -- the micro guest's hotplug handler (started by /etc/init.d/rcS).
 *
 * Listens to the kernel's uevents (netlink, NETLINK_KOBJECT_UEVENT, group 1) and,
 * for each, in order and one at a time, runs only what the event needs:
 *
 *   ACTION=add with MODALIAS          -> modprobe -q <alias>   (load the driver)
 *   ACTION=add, SUBSYSTEM=net         -> netup(INTERFACE), in-process (below)
 *   any event naming a DEVNAME        -> mdev                  (device node rules)
 *
 * each with the event's variables in its environment. It replaces busybox's `uevent`
 * applet running a shell script for every event: a NIC hot-plug makes about eight
 * events, most of which need nothing, and every shell costs tens of milliseconds of an
 * emulated CPU (a VM restored from the lab's template gets three NICs at once).
 *
 * netup(IF): the NIC gets the address the lab assigned to its MAC (/run/lab/net, which a
 * VM restored from the lab's template gets from lab-agent's lab-identity, else lab.net=
 * on the kernel command line: "<mac>=<ip>/<len>,..."), through rtnetlink, and is set up;
 * "lab-guest: IF MAC IP/LEN up" goes to the console. A NIC with no address stays down.
 * rcS sets arp_notify, so bringing it up announces the address (gratuitous ARP).
 *
 *   lab-uevent --netup IF  netup(IF) once (rcS, lab-agent's lab-identity: NICs already there)
 *   lab-uevent --explain   reads one event (the netlink payload: "action@devpath" and
 *                          NUL-separated KEY=VALUE) from stdin and prints what it would
 *                          do, one line each, without doing it (for tests; the lab's
 *                          list of addresses may then come from $LAB_EXPLAIN_NETS).
 */
#include <arpa/inet.h>
#include <linux/netlink.h>
#include <linux/rtnetlink.h>
#include <net/if.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define MAX_ENV 64
#define BUSYBOX "/bin/busybox"

struct event {
	char *env[MAX_ENV + 2];
	const char *action, *modalias, *subsystem, *interface, *devname;
};

static const char *value(const char *entry, const char *key)
{
	size_t len = strlen(key);

	return strncmp(entry, key, len) == 0 && entry[len] == '=' ? entry + len + 1 : NULL;
}

/* The event in buf[0..len) (NUL-terminated by the caller); 0, or -1 if malformed. */
static int parse(char *buf, size_t len, struct event *ev)
{
	static char path_env[] = "PATH=/sbin:/bin:/usr/sbin:/usr/bin";
	size_t n = 0;
	char *p;

	memset(ev, 0, sizeof(*ev));
	if (len == 0 || !strchr(buf, '@'))
		return -1; /* not a kernel event ("libudev" messages are on group 2) */
	for (p = buf + strlen(buf) + 1; p < buf + len && n < MAX_ENV; p += strlen(p) + 1) {
		const char *v;

		if (!*p || !strchr(p, '='))
			continue;
		ev->env[n++] = p;
		if ((v = value(p, "ACTION")))
			ev->action = v;
		else if ((v = value(p, "MODALIAS")))
			ev->modalias = v;
		else if ((v = value(p, "SUBSYSTEM")))
			ev->subsystem = v;
		else if ((v = value(p, "INTERFACE")))
			ev->interface = v;
		else if ((v = value(p, "DEVNAME")))
			ev->devname = v;
	}
	ev->env[n++] = path_env;
	ev->env[n] = NULL;
	return ev->action ? 0 : -1;
}

static void run(char *const argv[], const struct event *ev, int explain)
{
	pid_t pid;
	int i;

	if (explain) {
		for (i = 0; argv[i]; i++)
			printf("%s%s", i ? " " : "", argv[i]);
		printf("\n");
		return;
	}
	pid = fork();
	if (pid == 0) {
		execve(argv[0][0] == '/' ? argv[0] : BUSYBOX, argv, ev->env);
		_exit(127);
	}
	while (pid > 0 && waitpid(pid, NULL, 0) < 0 && errno == EINTR)
		;
}

static int explaining; /* --explain: say what would be done, do nothing */

/* The whole of a small file, NUL-terminated and without its last newline; -1 if none. */
static int slurp(const char *path, char *buf, size_t size)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	ssize_t n;

	if (fd < 0)
		return -1;
	n = read(fd, buf, size - 1);
	close(fd);
	if (n < 0)
		return -1;
	buf[n] = '\0';
	while (n > 0 && (buf[n - 1] == '\n' || buf[n - 1] == ' '))
		buf[--n] = '\0';
	return 0;
}

/* "<mac>=<ip>/<len>,..." from /run/lab/net, else from lab.net= on the command line. */
static int lab_nets(char *buf, size_t size)
{
	static char cmdline[4096];
	const char *given = explaining ? getenv("LAB_EXPLAIN_NETS") : NULL;
	char *tok, *save = NULL;

	if (given && strlen(given) < size) { /* --explain only: the list a test gives */
		strcpy(buf, given);
		return 0;
	}
	if (slurp("/run/lab/net", buf, size) == 0)
		return 0;
	if (slurp("/proc/cmdline", cmdline, sizeof(cmdline)) < 0)
		return -1;
	for (tok = strtok_r(cmdline, " ", &save); tok; tok = strtok_r(NULL, " ", &save)) {
		if (strncmp(tok, "lab.net=", 8) == 0 && strlen(tok + 8) < size) {
			strcpy(buf, tok + 8);
			return 0;
		}
	}
	return -1;
}

/* rtnetlink RTM_NEWADDR (what `ip addr add IP/LEN dev IF` sends); 0 or -errno. */
static int add_address(unsigned int index, struct in_addr ip, int len)
{
	struct {
		struct nlmsghdr nh;
		struct ifaddrmsg ifa;
		char attrs[64];
	} req;
	struct sockaddr_nl kernel = { .nl_family = AF_NETLINK };
	struct rtattr *rta;
	char reply[512];
	ssize_t n;
	int fd, rc = -EIO, i;

	memset(&req, 0, sizeof(req));
	req.nh.nlmsg_len = NLMSG_LENGTH(sizeof(req.ifa));
	req.nh.nlmsg_type = RTM_NEWADDR;
	req.nh.nlmsg_flags = NLM_F_REQUEST | NLM_F_ACK | NLM_F_CREATE | NLM_F_EXCL;
	req.ifa.ifa_family = AF_INET;
	req.ifa.ifa_prefixlen = (unsigned char)len;
	req.ifa.ifa_index = index;
	for (i = 0; i < 2; i++) { /* IFA_LOCAL, then IFA_ADDRESS: both the address */
		rta = (struct rtattr *)((char *)&req + NLMSG_ALIGN(req.nh.nlmsg_len));
		rta->rta_type = i == 0 ? IFA_LOCAL : IFA_ADDRESS;
		rta->rta_len = RTA_LENGTH(sizeof(ip));
		memcpy(RTA_DATA(rta), &ip, sizeof(ip));
		req.nh.nlmsg_len = NLMSG_ALIGN(req.nh.nlmsg_len) + RTA_ALIGN(rta->rta_len);
	}
	fd = socket(AF_NETLINK, SOCK_DGRAM | SOCK_CLOEXEC, NETLINK_ROUTE);
	if (fd < 0)
		return -errno;
	if (sendto(fd, &req, req.nh.nlmsg_len, 0, (struct sockaddr *)&kernel,
		   sizeof(kernel)) < 0) {
		rc = -errno;
	} else if ((n = recv(fd, reply, sizeof(reply), 0)) >= (ssize_t)NLMSG_LENGTH(sizeof(int))) {
		struct nlmsghdr *nh = (struct nlmsghdr *)reply;

		if (nh->nlmsg_type == NLMSG_ERROR)
			rc = ((struct nlmsgerr *)NLMSG_DATA(nh))->error;
	}
	close(fd);
	return rc;
}

static int link_up(const char *ifname)
{
	struct ifreq ifr;
	int fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0), rc = -1;

	if (fd < 0)
		return -1;
	memset(&ifr, 0, sizeof(ifr));
	strncpy(ifr.ifr_name, ifname, IFNAMSIZ - 1);
	if (ioctl(fd, SIOCGIFFLAGS, &ifr) == 0) {
		ifr.ifr_flags |= IFF_UP;
		rc = ioctl(fd, SIOCSIFFLAGS, &ifr);
	}
	close(fd);
	return rc;
}

/* The NIC's entry in the lab's list ("<mac>=<ip>/<len>"), copied to out; -1 if none. */
static int find_entry(const char *ifname, char *out, size_t size)
{
	static char nets[4096];
	char path[64], mac[32], *tok, *save = NULL;
	size_t maclen;

	if (snprintf(path, sizeof(path), "/sys/class/net/%s/address", ifname) >= (int)sizeof(path)
	    || slurp(path, mac, sizeof(mac)) < 0 || lab_nets(nets, sizeof(nets)) < 0)
		return -1;
	maclen = strlen(mac);
	for (tok = strtok_r(nets, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
		if (strncmp(tok, mac, maclen) == 0 && tok[maclen] == '=' &&
		    strlen(tok) < size) {
			strcpy(out, tok);
			return 0;
		}
	}
	return -1;
}

static int netup(const char *ifname, int explain)
{
	char entry[96], *ip, *slash, line[160];
	struct in_addr addr;
	unsigned int index;
	int len, fd, rc;

	if (!*ifname || strlen(ifname) >= IFNAMSIZ || strchr(ifname, '/') ||
	    find_entry(ifname, entry, sizeof(entry)) < 0)
		return 0; /* not a NIC of the lab's: it stays down */
	ip = strchr(entry, '=') + 1;
	slash = strchr(ip, '/');
	if (!slash)
		return 1;
	*slash = '\0';
	len = atoi(slash + 1);
	if (inet_pton(AF_INET, ip, &addr) != 1 || len < 1 || len > 32)
		return 1;
	if (explain) {
		printf("netup %s %s/%d\n", ifname, ip, len);
		return 0;
	}
	index = if_nametoindex(ifname);
	rc = index ? add_address(index, addr, len) : -ENODEV;
	if ((rc < 0 && rc != -EEXIST) || link_up(ifname) < 0) {
		fprintf(stderr, "lab-uevent: %s: cannot configure %s/%d\n", ifname, ip, len);
		return 1;
	}
	*strchr(entry, '=') = '\0';
	snprintf(line, sizeof(line), "lab-guest: %s %s %s/%d up\n", ifname, entry, ip, len);
	fd = open("/dev/console", O_WRONLY | O_CLOEXEC | O_NOCTTY);
	if (fd >= 0) {
		ssize_t said = write(fd, line, strlen(line)); /* the console: best effort */

		(void)said;
		close(fd);
	}
	return 0;
}

static void handle(const struct event *ev, int explain)
{
	int add = strcmp(ev->action, "add") == 0;

	if (add && ev->modalias) {
		char *argv[] = { "modprobe", "-q", (char *)ev->modalias, NULL };
		run(argv, ev, explain);
	}
	if (add && ev->subsystem && ev->interface && strcmp(ev->subsystem, "net") == 0)
		netup(ev->interface, explain);
	if (ev->devname) {
		char *argv[] = { "mdev", NULL };
		run(argv, ev, explain);
	}
}

static int explain_stdin(void)
{
	static char buf[8192];
	struct event ev;
	size_t len = fread(buf, 1, sizeof(buf) - 1, stdin);

	buf[len] = '\0';
	if (parse(buf, len, &ev) < 0) {
		fprintf(stderr, "lab-uevent: not a uevent (action@devpath, then KEY=VALUE)\n");
		return 2;
	}
	handle(&ev, 1);
	return 0;
}

int main(int argc, char **argv)
{
	static char buf[16384];
	struct sockaddr_nl addr = { .nl_family = AF_NETLINK, .nl_groups = 1 };
	int size = 1 << 20, fd;

	if (argc == 2 && strcmp(argv[1], "--explain") == 0) {
		explaining = 1;
		return explain_stdin();
	}
	if (argc == 3 && strcmp(argv[1], "--netup") == 0)
		return netup(argv[2], 0);
	if (argc != 1) {
		fprintf(stderr, "usage: lab-uevent [--explain | --netup IF]\n");
		return 2;
	}
	fd = socket(AF_NETLINK, SOCK_DGRAM | SOCK_CLOEXEC, NETLINK_KOBJECT_UEVENT);
	if (fd < 0 || bind(fd, (struct sockaddr *)&addr, sizeof(addr)) < 0) {
		perror("lab-uevent: netlink");
		return 1;
	}
	/* a burst of events (three NICs at once) must not overflow the socket */
	setsockopt(fd, SOL_SOCKET, SO_RCVBUFFORCE, &size, sizeof(size));
	for (;;) {
		struct event ev;
		ssize_t len = recv(fd, buf, sizeof(buf) - 1, 0);

		if (len < 0) {
			if (errno == EINTR || errno == ENOBUFS)
				continue; /* ENOBUFS: events were lost; go on with the next */
			perror("lab-uevent: recv");
			return 1;
		}
		buf[len] = '\0';
		if (parse(buf, (size_t)len, &ev) == 0)
			handle(&ev, 0);
	}
}
