/* SPDX-License-Identifier: GPL-2.0 */
/*
 * labtdi client interface (the Linux stand-in for TDI client PnP handlers).
 * A client module registers a notifier block; labtdi calls it with
 * LABTDI_QUERY_REMOVE and the struct net_device * of an adapter that is about
 * to be unbound (removal or admin unbind), before it tears the binding down.
 */
#ifndef LABTDI_CLIENT_H
#define LABTDI_CLIENT_H

#include <linux/notifier.h>

enum labtdi_client_event {
	LABTDI_QUERY_REMOVE = 1,
};

int labtdi_register_client(struct notifier_block *nb);
int labtdi_unregister_client(struct notifier_block *nb);

#endif /* LABTDI_CLIENT_H */
