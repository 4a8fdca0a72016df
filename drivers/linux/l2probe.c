// SPDX-License-Identifier: GPL-2.0
/*
 * l2probe -- send one labtdi L2 echo request out of an interface and wait for
 * the reply (guest-side helper for the Linux twin tests).
 *
 *   l2probe <ifname> [dst-mac|broadcast] [timeout-ms] [payload-bytes]
 *
 * Prints one line and exits 0 when a matching, intact reply arrives:
 *   L2ECHO ok if=<ifname> from=<mac> ifindex=<responder ifindex> bytes=<n> rtt_us=<us>
 * otherwise prints "L2ECHO fail if=<ifname> reason=<...>" and exits 1.
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

#include "labtdi_proto.h"

#define MAX_PAYLOAD 1024

static long long now_us(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (long long)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

static int fail(const char *ifname, const char *reason)
{
	printf("L2ECHO fail if=%s reason=%s\n", ifname, reason);
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

struct frame {
	struct ether_header eth;
	struct labtdi_hdr hdr;
	unsigned char payload[MAX_PAYLOAD];
} __attribute__((packed));

static int check_reply(const struct frame *f, ssize_t n, const struct frame *req, size_t plen)
{
	ssize_t min = (ssize_t)(sizeof(f->eth) + sizeof(f->hdr) + plen);

	if (n < min || f->hdr.magic != htonl(LABTDI_MAGIC) || f->hdr.op != LABTDI_OP_REPLY)
		return 0;
	if (f->hdr.seq != req->hdr.seq)
		return 0;
	if (ntohs(f->hdr.payload_len) != plen || memcmp(f->payload, req->payload, plen))
		return -1;	/* a reply, but corrupted */
	return 1;
}

int main(int argc, char **argv)
{
	const char *ifname = argc > 1 ? argv[1] : NULL;
	int timeout_ms = argc > 3 ? atoi(argv[3]) : 2000;
	size_t plen = argc > 4 ? (size_t)atoi(argv[4]) : 64;
	struct sockaddr_ll sll = { 0 };
	struct frame req = { 0 }, rep;
	unsigned char dst[ETH_ALEN];
	struct ifreq ifr = { 0 };
	long long start, deadline;
	size_t i;
	int fd;

	if (!ifname || parse_mac(argc > 2 ? argv[2] : "broadcast", dst) || plen > MAX_PAYLOAD) {
		fprintf(stderr, "usage: l2probe <ifname> [dst-mac|broadcast] [timeout-ms] [bytes<=%d]\n",
			MAX_PAYLOAD);
		return 2;
	}
	fd = socket(AF_PACKET, SOCK_RAW, htons(LABTDI_ETHERTYPE));
	if (fd < 0)
		return fail(ifname, "socket");
	strncpy(ifr.ifr_name, ifname, IFNAMSIZ - 1);
	if (ioctl(fd, SIOCGIFINDEX, &ifr) < 0)
		return fail(ifname, "no-such-interface");
	sll.sll_family = AF_PACKET;
	sll.sll_protocol = htons(LABTDI_ETHERTYPE);
	sll.sll_ifindex = ifr.ifr_ifindex;
	if (bind(fd, (struct sockaddr *)&sll, sizeof(sll)) < 0)
		return fail(ifname, "bind");
	if (ioctl(fd, SIOCGIFHWADDR, &ifr) < 0)
		return fail(ifname, "hwaddr");

	memcpy(req.eth.ether_dhost, dst, ETH_ALEN);
	memcpy(req.eth.ether_shost, ifr.ifr_hwaddr.sa_data, ETH_ALEN);
	req.eth.ether_type = htons(LABTDI_ETHERTYPE);
	req.hdr.magic = htonl(LABTDI_MAGIC);
	req.hdr.version = LABTDI_VERSION;
	req.hdr.op = LABTDI_OP_REQUEST;
	req.hdr.payload_len = htons((unsigned short)plen);
	req.hdr.seq = htonl((unsigned int)getpid() ^ (unsigned int)now_us());
	for (i = 0; i < plen; i++)
		req.payload[i] = (unsigned char)(i * 7 + 1);

	start = now_us();
	deadline = start + (long long)timeout_ms * 1000;
	if (send(fd, &req, sizeof(req.eth) + sizeof(req.hdr) + plen, 0) < 0)
		return fail(ifname, "send");
	for (;;) {
		long long left = deadline - now_us();
		struct pollfd p = { .fd = fd, .events = POLLIN };
		ssize_t n;
		int ok;

		if (left <= 0 || poll(&p, 1, (int)(left / 1000) + 1) <= 0)
			return fail(ifname, "timeout");
		n = recv(fd, &rep, sizeof(rep), 0);
		if (n < 0)
			return fail(ifname, strerror(errno));
		ok = check_reply(&rep, n, &req, plen);
		if (ok < 0)
			return fail(ifname, "corrupt-reply");
		if (ok > 0)
			break;
	}
	printf("L2ECHO ok if=%s from=%02x:%02x:%02x:%02x:%02x:%02x ifindex=%u bytes=%zu rtt_us=%lld\n",
	       ifname, rep.eth.ether_shost[0], rep.eth.ether_shost[1], rep.eth.ether_shost[2],
	       rep.eth.ether_shost[3], rep.eth.ether_shost[4], rep.eth.ether_shost[5],
	       ntohl(rep.hdr.ifindex), plen, now_us() - start);
	return 0;
}
