/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * virtio-net-pci: a virtio 1.x NIC whose queues a vhost-user back-end
 * serves (the only network back-end godwit has). One queue pair, no control
 * queue. docs/devel/vhost-user.md.
 */
#ifndef GODWIT_HW_VIRTIO_NET_H
#define GODWIT_HW_VIRTIO_NET_H

#include "qemu/osdep.h"
#include "hw/machine.h"
#include "hw/pci/pci.h"
#include "sysemu/options.h"

typedef struct VirtIONetPCI VirtIONetPCI;

/*
 * Create the NIC for -device @d on -netdev @n: connects to (or waits for)
 * the back-end, adds the PCI function to @bus, registers its migration
 * record and its run-state notifier. Main thread, machine creation.
 */
VirtIONetPCI *virtio_net_pci_create(Machine *ms, PCIBus *bus, const NetDeviceOpts *d,
                                    const NetdevOpts *n, GError **errp);

#endif
