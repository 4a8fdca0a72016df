/* SPDX-License-Identifier: GPL-2.0 */
/*
 * labtdi L2 echo wire format, shared by the kernel module and the probe tool.
 *
 * An Ethernet frame of EtherType 0x88B5 (IEEE local experimental) whose
 * payload starts with this header, followed by payload_len bytes.  A probe is
 * sent with op = LABTDI_OP_REQUEST; every labtdi binding that receives it
 * answers to the sender's MAC with op = LABTDI_OP_REPLY, the same magic,
 * version and seq, its own ifindex, and the payload echoed.
 */
#ifndef LABTDI_PROTO_H
#define LABTDI_PROTO_H

#include <linux/types.h>

#define LABTDI_ETHERTYPE 0x88B5
#define LABTDI_MAGIC 0x4c544449u	/* "LTDI" */
#define LABTDI_VERSION 1
#define LABTDI_OP_REQUEST 1
#define LABTDI_OP_REPLY 2

struct labtdi_hdr {
	__be32 magic;
	__u8 version;
	__u8 op;
	__be16 payload_len;
	__be32 seq;
	__be32 ifindex;		/* responder's ifindex in replies, 0 in requests */
};

#endif /* LABTDI_PROTO_H */
