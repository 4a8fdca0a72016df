/* SPDX-License-Identifier: GPL-2.0 */
/*
 * labl2echo.h -- the lab's L2 echo wire format: ONE definition, used by
 *   drivers/labtdi/windows/labtdi.c   (Windows labtdi.sys, answers)
 *   drivers/labtdi/linux/labtdi.c     (Linux twin labtdi.ko, answers)
 *   drivers/linux/l2probe.c           (guest-side probe)
 * and mirrored by the host probe lab/l2probe.py, which tests/unit/test_l2echo_format.py
 * checks against this file with the C compiler (constants, offsets, a reply built here).
 *
 * Frame: Ethernet header (dst, src, EtherType 0x88B5 -- IEEE 802 local experimental),
 * then struct lab_l2echo_hdr (16 bytes, every multi-byte field big endian), then
 * payload_len payload bytes. A request has op = LAB_L2ECHO_OP_REQUEST and ifindex 0.
 * A responder answers every request it receives on a binding with a frame to the
 * request's source MAC, from the binding's MAC, carrying the same magic, version and
 * seq, op = LAB_L2ECHO_OP_REPLY, its own ifindex, and the payload echoed. It echoes
 * min(payload_len, bytes present after the header) and writes that length back into
 * payload_len (Ethernet padding of short frames is not echoed).
 *
 * Freestanding C11: compiles in the Linux kernel, in user space and in the mingw-w64
 * Windows kernel build; no library calls, byte-wise big-endian access only.
 */
#ifndef LAB_L2ECHO_H
#define LAB_L2ECHO_H

#define LAB_L2ECHO_ETHERTYPE 0x88B5
#define LAB_L2ECHO_MAGIC 0x4c544449u /* "LTDI" */
#define LAB_L2ECHO_VERSION 1
#define LAB_L2ECHO_OP_REQUEST 1
#define LAB_L2ECHO_OP_REPLY 2

#define LAB_L2ECHO_ETH_HLEN 14 /* dst[6] src[6] ethertype[2] */
#define LAB_L2ECHO_HDR_LEN 16

/* Byte offsets inside struct lab_l2echo_hdr (the wire layout). */
#define LAB_L2ECHO_OFF_MAGIC 0
#define LAB_L2ECHO_OFF_VERSION 4
#define LAB_L2ECHO_OFF_OP 5
#define LAB_L2ECHO_OFF_PAYLOAD_LEN 6
#define LAB_L2ECHO_OFF_SEQ 8
#define LAB_L2ECHO_OFF_IFINDEX 12

struct lab_l2echo_hdr {
	unsigned int magic;		/* big endian LAB_L2ECHO_MAGIC */
	unsigned char version;		/* LAB_L2ECHO_VERSION */
	unsigned char op;		/* LAB_L2ECHO_OP_* */
	unsigned short payload_len;	/* big endian */
	unsigned int seq;		/* big endian, chosen by the prober, echoed */
	unsigned int ifindex;		/* big endian, responder's ifindex; 0 in requests */
};

_Static_assert(sizeof(struct lab_l2echo_hdr) == LAB_L2ECHO_HDR_LEN, "l2echo header size");
_Static_assert(__builtin_offsetof(struct lab_l2echo_hdr, magic) == LAB_L2ECHO_OFF_MAGIC, "magic");
_Static_assert(__builtin_offsetof(struct lab_l2echo_hdr, version) == LAB_L2ECHO_OFF_VERSION, "version");
_Static_assert(__builtin_offsetof(struct lab_l2echo_hdr, op) == LAB_L2ECHO_OFF_OP, "op");
_Static_assert(__builtin_offsetof(struct lab_l2echo_hdr, payload_len) == LAB_L2ECHO_OFF_PAYLOAD_LEN,
	       "payload_len");
_Static_assert(__builtin_offsetof(struct lab_l2echo_hdr, seq) == LAB_L2ECHO_OFF_SEQ, "seq");
_Static_assert(__builtin_offsetof(struct lab_l2echo_hdr, ifindex) == LAB_L2ECHO_OFF_IFINDEX, "ifindex");

static inline unsigned int lab_l2echo_get_be32(const unsigned char *p)
{
	return ((unsigned int)p[0] << 24) | ((unsigned int)p[1] << 16) |
	       ((unsigned int)p[2] << 8) | (unsigned int)p[3];
}

static inline unsigned int lab_l2echo_get_be16(const unsigned char *p)
{
	return ((unsigned int)p[0] << 8) | (unsigned int)p[1];
}

static inline void lab_l2echo_put_be32(unsigned char *p, unsigned int v)
{
	p[0] = (unsigned char)(v >> 24);
	p[1] = (unsigned char)(v >> 16);
	p[2] = (unsigned char)(v >> 8);
	p[3] = (unsigned char)v;
}

static inline void lab_l2echo_put_be16(unsigned char *p, unsigned int v)
{
	p[0] = (unsigned char)(v >> 8);
	p[1] = (unsigned char)v;
}

/*
 * hdr points at the echo header, len bytes are present from there on (header and
 * payload). Returns the number of payload bytes to echo if this is a request of
 * this format, or -1 if the responder must ignore it.
 */
static inline int lab_l2echo_request_payload(const unsigned char *hdr, unsigned int len)
{
	unsigned int want, have;

	if (len < LAB_L2ECHO_HDR_LEN)
		return -1;
	if (lab_l2echo_get_be32(hdr + LAB_L2ECHO_OFF_MAGIC) != LAB_L2ECHO_MAGIC ||
	    hdr[LAB_L2ECHO_OFF_VERSION] != LAB_L2ECHO_VERSION ||
	    hdr[LAB_L2ECHO_OFF_OP] != LAB_L2ECHO_OP_REQUEST)
		return -1;
	want = lab_l2echo_get_be16(hdr + LAB_L2ECHO_OFF_PAYLOAD_LEN);
	have = len - LAB_L2ECHO_HDR_LEN;
	return (int)(want < have ? want : have);
}

/* Turns a request header (already validated) into the reply header, in place. */
static inline void lab_l2echo_make_reply(unsigned char *hdr, unsigned int payload,
					 unsigned int ifindex)
{
	hdr[LAB_L2ECHO_OFF_OP] = LAB_L2ECHO_OP_REPLY;
	lab_l2echo_put_be16(hdr + LAB_L2ECHO_OFF_PAYLOAD_LEN, payload);
	lab_l2echo_put_be32(hdr + LAB_L2ECHO_OFF_IFINDEX, ifindex);
}

#endif /* LAB_L2ECHO_H */
