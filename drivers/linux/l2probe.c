// SPDX-License-Identifier: GPL-2.0
/*
 * l2probe -- send one lab L2 echo request out of an interface and wait for the
 * reply (guest-side helper for the Linux twin tests). Wire format: labl2echo.h,
 * the same header the Windows labtdi.sys and the Linux twin answer with.
 *
 *   l2probe <ifname> [dst-mac|broadcast] [timeout-ms] [payload-bytes]
 *     Builds the request itself. Prints one line and exits 0 when a matching,
 *     intact reply arrives:
 *       L2ECHO ok if=<ifname> from=<mac> ifindex=<responder ifindex> bytes=<n> rtt_us=<us>
 *     otherwise prints "L2ECHO fail if=<ifname> reason=<...>" and exits 1.
 *
 *   l2probe <ifname> --frame <file> [timeout-ms]
 *     Sends the request frame read from <file> (built on the host by lab/l2probe.py),
 *     with its destination set to broadcast and its source to <ifname>'s MAC, and
 *     prints the first reply carrying the same seq, byte for byte, for the host to
 *     judge:  L2RAW ok if=<ifname> reply=<hex>  (or L2RAW fail if=<ifname> reason=<...>).
 */
#include <arpa/inet.h>
#include <errno.h>
#include <net/ethernet.h>
#include <net/if.h>
#include <linux/if_packet.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "labl2echo.h"

#define MAX_PAYLOAD 1024
#define MAX_FRAME (LAB_L2ECHO_ETH_HLEN + LAB_L2ECHO_HDR_LEN + MAX_PAYLOAD)

static const char *tag = "L2ECHO";

static long long now_us(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (long long)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

static int fail(const char *ifname, const char *reason)
{
	printf("%s fail if=%s reason=%s\n", tag, ifname, reason);
	return 1;
}

static int parse_mac(const char *s, unsigned char mac[ETH_ALEN])
{
	unsigned int b[ETH_ALEN];
	int i;

	if (!strcmp(s, "broadcast")) {
		memset(mac, 0xff, ETH_ALEN);
		return 0;
	}
	if (sscanf(s, "%x:%x:%x:%x:%x:%x", &b[0], &b[1], &b[2], &b[3], &b[4], &b[5]) != 6)
		return -1;
	for (i = 0; i < ETH_ALEN; i++)
		mac[i] = (unsigned char)b[i];
	return 0;
}

/* Opens a raw socket bound to ifname for the lab EtherType; fills mac. */
static int open_if(const char *ifname, unsigned char mac[ETH_ALEN], const char **why)
{
	struct sockaddr_ll sll = { 0 };
	struct ifreq ifr = { 0 };
	int fd = socket(AF_PACKET, SOCK_RAW, htons(LAB_L2ECHO_ETHERTYPE));

	*why = "socket";
	if (fd < 0)
		return -1;
	strncpy(ifr.ifr_name, ifname, IFNAMSIZ - 1);
	*why = "no-such-interface";
	if (ioctl(fd, SIOCGIFINDEX, &ifr) < 0)
		goto out;
	sll.sll_family = AF_PACKET;
	sll.sll_protocol = htons(LAB_L2ECHO_ETHERTYPE);
	sll.sll_ifindex = ifr.ifr_ifindex;
	*why = "bind";
	if (bind(fd, (struct sockaddr *)&sll, sizeof(sll)) < 0)
		goto out;
	*why = "hwaddr";
	if (ioctl(fd, SIOCGIFHWADDR, &ifr) < 0)
		goto out;
	memcpy(mac, ifr.ifr_hwaddr.sa_data, ETH_ALEN);
	return fd;
out:
	close(fd);
	return -1;
}

/*
 * Waits until a reply to `seq` arrives (op reply, same seq). Returns its length,
 * 0 on timeout, -1 on a receive error.
 */
static ssize_t wait_reply(int fd, unsigned int seq, long long deadline, unsigned char *rep)
{
	for (;;) {
		long long left = deadline - now_us();
		struct pollfd p = { .fd = fd, .events = POLLIN };
		const unsigned char *h = rep + LAB_L2ECHO_ETH_HLEN;
		ssize_t n;

		if (left <= 0 || poll(&p, 1, (int)(left / 1000) + 1) <= 0)
			return 0;
		n = recv(fd, rep, MAX_FRAME, 0);
		if (n < 0)
			return -1;
		if (n < LAB_L2ECHO_ETH_HLEN + LAB_L2ECHO_HDR_LEN)
			continue;
		if (lab_l2echo_get_be32(h + LAB_L2ECHO_OFF_MAGIC) == LAB_L2ECHO_MAGIC &&
		    h[LAB_L2ECHO_OFF_OP] == LAB_L2ECHO_OP_REPLY &&
		    lab_l2echo_get_be32(h + LAB_L2ECHO_OFF_SEQ) == seq)
			return n;
	}
}

static void build_request(unsigned char *f, const unsigned char dst[ETH_ALEN],
			  const unsigned char src[ETH_ALEN], unsigned int seq, size_t plen)
{
	unsigned char *h = f + LAB_L2ECHO_ETH_HLEN;
	size_t i;

	memcpy(f, dst, ETH_ALEN);
	memcpy(f + ETH_ALEN, src, ETH_ALEN);
	lab_l2echo_put_be16(f + 2 * ETH_ALEN, LAB_L2ECHO_ETHERTYPE);
	memset(h, 0, LAB_L2ECHO_HDR_LEN);
	lab_l2echo_put_be32(h + LAB_L2ECHO_OFF_MAGIC, LAB_L2ECHO_MAGIC);
	h[LAB_L2ECHO_OFF_VERSION] = LAB_L2ECHO_VERSION;
	h[LAB_L2ECHO_OFF_OP] = LAB_L2ECHO_OP_REQUEST;
	lab_l2echo_put_be16(h + LAB_L2ECHO_OFF_PAYLOAD_LEN, (unsigned int)plen);
	lab_l2echo_put_be32(h + LAB_L2ECHO_OFF_SEQ, seq);
	for (i = 0; i < plen; i++)
		h[LAB_L2ECHO_HDR_LEN + i] = (unsigned char)(i * 7 + 1);
}

static int probe(const char *ifname, const unsigned char dst[ETH_ALEN], int timeout_ms,
		 size_t plen)
{
	static unsigned char req[MAX_FRAME], rep[MAX_FRAME];
	const unsigned char *rh = rep + LAB_L2ECHO_ETH_HLEN;
	size_t total = LAB_L2ECHO_ETH_HLEN + LAB_L2ECHO_HDR_LEN + plen;
	unsigned int seq = ((unsigned int)getpid() ^ (unsigned int)now_us()) & 0x7fffffff;
	unsigned char mac[ETH_ALEN];
	const char *why;
	long long start;
	ssize_t n;
	int fd = open_if(ifname, mac, &why);

	if (fd < 0)
		return fail(ifname, why);
	build_request(req, dst, mac, seq, plen);
	start = now_us();
	if (send(fd, req, total, 0) < 0)
		return fail(ifname, "send");
	n = wait_reply(fd, seq, start + (long long)timeout_ms * 1000, rep);
	if (n <= 0)
		return fail(ifname, n < 0 ? strerror(errno) : "timeout");
	if ((size_t)n < total || lab_l2echo_get_be16(rh + LAB_L2ECHO_OFF_PAYLOAD_LEN) != plen ||
	    rh[LAB_L2ECHO_OFF_VERSION] != LAB_L2ECHO_VERSION ||
	    memcmp(rh + LAB_L2ECHO_HDR_LEN, req + LAB_L2ECHO_ETH_HLEN + LAB_L2ECHO_HDR_LEN, plen))
		return fail(ifname, "corrupt-reply");
	printf("L2ECHO ok if=%s from=%02x:%02x:%02x:%02x:%02x:%02x ifindex=%u bytes=%zu rtt_us=%lld\n",
	       ifname, rep[6], rep[7], rep[8], rep[9], rep[10], rep[11],
	       lab_l2echo_get_be32(rh + LAB_L2ECHO_OFF_IFINDEX), plen, now_us() - start);
	return 0;
}

static int probe_frame(const char *ifname, const char *path, int timeout_ms)
{
	static unsigned char req[MAX_FRAME], rep[MAX_FRAME];
	unsigned char mac[ETH_ALEN];
	const char *why;
	FILE *f = fopen(path, "rb");
	size_t total = f ? fread(req, 1, sizeof(req), f) : 0;
	ssize_t n, i;
	int fd;

	tag = "L2RAW";
	if (f)
		fclose(f);
	if (total < LAB_L2ECHO_ETH_HLEN + LAB_L2ECHO_HDR_LEN)
		return fail(ifname, "bad-frame-file");
	fd = open_if(ifname, mac, &why);
	if (fd < 0)
		return fail(ifname, why);
	memset(req, 0xff, ETH_ALEN);
	memcpy(req + ETH_ALEN, mac, ETH_ALEN);
	if (send(fd, req, total, 0) < 0)
		return fail(ifname, "send");
	n = wait_reply(fd, lab_l2echo_get_be32(req + LAB_L2ECHO_ETH_HLEN + LAB_L2ECHO_OFF_SEQ),
		       now_us() + (long long)timeout_ms * 1000, rep);
	if (n <= 0)
		return fail(ifname, n < 0 ? strerror(errno) : "timeout");
	printf("L2RAW ok if=%s reply=", ifname);
	for (i = 0; i < n; i++)
		printf("%02x", rep[i]);
	printf("\n");
	return 0;
}

int main(int argc, char **argv)
{
	const char *ifname = argc > 1 ? argv[1] : NULL;
	unsigned char dst[ETH_ALEN];
	size_t plen = argc > 4 ? (size_t)atoi(argv[4]) : 64;

	if (ifname && argc > 3 && !strcmp(argv[2], "--frame"))
		return probe_frame(ifname, argv[3], argc > 4 ? atoi(argv[4]) : 2000);
	if (!ifname || parse_mac(argc > 2 ? argv[2] : "broadcast", dst) || plen > MAX_PAYLOAD) {
		fprintf(stderr, "usage: l2probe <ifname> [dst-mac|broadcast] [timeout-ms] [bytes<=%d]\n"
			"       l2probe <ifname> --frame <file> [timeout-ms]\n", MAX_PAYLOAD);
		return 2;
	}
	return probe(ifname, dst, argc > 3 ? atoi(argv[3]) : 2000, plen);
}
