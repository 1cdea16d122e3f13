/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * gwos virtio-net (virtio 1.x, modern PCI transport): the split-ring
 * layout, the device as the driver sees it, and what the ring-3 network
 * loop (net.c) needs to move frames. virtio-net.c sets the device up in
 * ring 0; after DRIVER_OK only ring 3 touches the rings.
 */
#ifndef GWOS_VIRTIO_NET_H
#define GWOS_VIRTIO_NET_H

#include "gwos.h"

#define VNET_QUEUE_MAX   256u       /* entries per ring: min(device max, this) */
#define VNET_BUF_SIZE    2048u      /* per descriptor: header + a 1514-byte frame */
#define VNET_HDR_LEN     12u        /* struct virtio_net_hdr with VERSION_1 */
#define VNET_RXQ         0
#define VNET_TXQ         1

/* Split virtqueue (virtio 1.x, section 2.7), little-endian like x86. */
#define VRING_DESC_F_NEXT        1
#define VRING_DESC_F_WRITE       2
#define VRING_AVAIL_F_NO_INTERRUPT 1
#define VRING_USED_F_NO_NOTIFY   1

typedef struct VringDesc {
    uint64_t addr;
    uint32_t len;
    uint16_t flags;
    uint16_t next;
} VringDesc;

typedef struct VringAvail {
    uint16_t flags;
    uint16_t idx;
    uint16_t ring[VNET_QUEUE_MAX];
} VringAvail;

typedef struct VringUsedElem {
    uint32_t id;
    uint32_t len;
} VringUsedElem;

typedef struct VringUsed {
    uint16_t flags;
    uint16_t idx;
    VringUsedElem ring[VNET_QUEUE_MAX];
} VringUsed;

/* One queue: its three parts each on their own page, and its buffers. */
typedef struct VQueue {
    VringDesc desc[VNET_QUEUE_MAX];
    VringAvail avail __attribute__((aligned(4096)));
    VringUsed used __attribute__((aligned(4096)));
    uint8_t buf[VNET_QUEUE_MAX][VNET_BUF_SIZE] __attribute__((aligned(4096)));
} VQueue;

typedef struct VNet {
    PciDev pci;
    uint32_t qsize;                 /* both queues */
    volatile uint16_t *notify[2];   /* per queue: where to write its index */
    volatile uint8_t *isr;
    uint8_t mac[6];
    uint64_t features;
    /* ring 3 state, owned by the net vCPU's loop */
    uint16_t avail_idx[2];          /* next avail slot to publish */
    uint16_t used_seen[2];          /* used entries consumed */
    uint16_t tx_free[VNET_QUEUE_MAX];   /* free TX descriptor ids (a stack) */
    uint32_t tx_nfree;
} VNet;

extern VNet vnet;
extern VQueue vnet_q[2];

/*
 * Find the device and bring it to DRIVER_OK with every RX buffer posted.
 * Ring 0. Prints a "gwos: net: ..." line and returns false when the
 * network workload cannot run (no device, features refused, ...).
 */
bool vnet_init(uint32_t dest_apic);

/* Ring 3: tell the device about new avail entries of @q, unless it said not to. */
void vnet_kick(int q);

#endif
