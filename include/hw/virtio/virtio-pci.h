/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * The virtio 1.x modern PCI transport (virtio spec 4.1), QEMU's layout: one
 * 64-bit memory BAR with the common configuration, ISR, device
 * configuration and notify structures, each announced by a vendor
 * capability, plus the PCI-configuration-access capability. The device
 * model behind it (virtio-net-pci) supplies features and configuration and
 * is told about status changes; the data plane is not here (the queues are
 * served elsewhere, e.g. by a vhost-user back-end).
 *
 * Threads: BQL held for everything (guest accesses on vCPU threads,
 * interrupts from the main loop, migration loads).
 */
#ifndef GODWIT_HW_VIRTIO_PCI_H
#define GODWIT_HW_VIRTIO_PCI_H

#include "qemu/osdep.h"
#include "hw/pci/pci.h"

/* Device status bits (virtio 2.1). */
#define VIRTIO_CONFIG_S_ACKNOWLEDGE  0x01
#define VIRTIO_CONFIG_S_DRIVER       0x02
#define VIRTIO_CONFIG_S_DRIVER_OK    0x04
#define VIRTIO_CONFIG_S_FEATURES_OK  0x08
#define VIRTIO_CONFIG_S_NEEDS_RESET  0x40
#define VIRTIO_CONFIG_S_FAILED       0x80

/* Transport and ring feature bits. */
#define VIRTIO_F_NOTIFY_ON_EMPTY     24
#define VIRTIO_F_ANY_LAYOUT          27
#define VIRTIO_RING_F_INDIRECT_DESC  28
#define VIRTIO_RING_F_EVENT_IDX      29
#define VIRTIO_F_VERSION_1           32
#define VIRTIO_F_ACCESS_PLATFORM     33
#define VIRTIO_F_RING_PACKED         34

/* ISR bits. */
#define VIRTIO_ISR_QUEUE             0x1
#define VIRTIO_ISR_CONFIG            0x2

#define VIRTIO_NO_VECTOR             0xffff
#define VIRTIO_PCI_VENDOR            0x1af4
#define VIRTIO_PCI_DEVICE_MODERN     0x1040    /* + virtio device id */
#define VIRTIO_PCI_SUBSYS            0x1100    /* QEMU's subsystem id (>= 0x40, as the spec asks) */

/* Vendor capability types (cfg_type). */
#define VIRTIO_PCI_CAP_COMMON_CFG    1
#define VIRTIO_PCI_CAP_NOTIFY_CFG    2
#define VIRTIO_PCI_CAP_ISR_CFG       3
#define VIRTIO_PCI_CAP_DEVICE_CFG    4
#define VIRTIO_PCI_CAP_PCI_CFG       5

/* The BAR: where each structure lives (QEMU's modern layout). */
#define VIRTIO_PCI_BAR               4
#define VIRTIO_PCI_BAR_SIZE          0x4000
#define VIRTIO_PCI_COMMON_OFF        0x0000
#define VIRTIO_PCI_COMMON_LEN        0x38
#define VIRTIO_PCI_ISR_OFF           0x1000
#define VIRTIO_PCI_DEVICE_OFF        0x2000
#define VIRTIO_PCI_NOTIFY_OFF        0x3000
#define VIRTIO_PCI_NOTIFY_MULT       4
#define VIRTIO_PCI_REGION_LEN        0x1000

#define VIRTIO_PCI_QUEUES_MAX        8
#define VIRTIO_PCI_DEVCFG_MAX        64

typedef struct VirtIOPCI VirtIOPCI;

typedef struct VirtQueueConf {
    uint16_t size_max;        /* the device's maximum (queue_size reads it after reset) */
    uint16_t size;            /* the driver's choice */
    bool enabled;
    uint64_t desc, avail, used;   /* guest-physical ring addresses */
    uint16_t last_avail;      /* next available index the device will take (vring base) */
    int kick_fd;              /* eventfd: the queue's doorbell (KVM ioeventfd) */
    bool ioeventfd_bound;     /* kick_fd is bound to the notify address */
} VirtQueueConf;

typedef struct VirtioPCIOps {
    /* Features the device offers (the driver reads them in 32-bit halves). */
    uint64_t (*get_features)(VirtIOPCI *vp);
    /*
     * The driver wrote a non-zero status (FEATURES_OK already validated:
     * refused features leave it clear); @old is the previous value.
     */
    void (*status_changed)(VirtIOPCI *vp, uint8_t old);
    /* The driver wrote 0, or the system reset: stop everything. Before the registers reset. */
    void (*reset)(VirtIOPCI *vp);
    /* Optional: a notify write that did not go through an ioeventfd (kick_fd already signalled). */
    void (*queue_notified)(VirtIOPCI *vp, unsigned q);
} VirtioPCIOps;

/* Bind or unbind an eventfd to a guest-physical doorbell (KVM ioeventfd). */
typedef bool (*VirtioIoeventfdFn)(void *opaque, int fd, uint64_t gpa, bool assign,
                                  GError **errp);

struct VirtIOPCI {
    PCIDevice pci;
    const VirtioPCIOps *ops;
    void *opaque;                 /* the device model */
    VirtioIoeventfdFn ioeventfd;  /* may be NULL: every notify exits */
    void *ioeventfd_opaque;

    /* Transport state (migrated). */
    uint8_t status;
    uint8_t isr;
    uint8_t config_generation;
    uint16_t queue_select;
    uint32_t device_feature_select;
    uint32_t driver_feature_select;
    uint64_t driver_features;     /* what the driver accepted */
    unsigned nqueues;
    VirtQueueConf vq[VIRTIO_PCI_QUEUES_MAX];
    uint8_t devcfg[VIRTIO_PCI_DEVCFG_MAX];   /* device configuration (read-only to the driver) */
    uint32_t devcfg_len;

    uint8_t pci_cfg_cap;          /* offset of the PCI-configuration-access capability */
    bool notify_mapped;
    uint64_t notify_gpa;          /* where the notify structure decodes */
    bool ioeventfd_warned;
};

/*
 * Set up the PCI function (virtio device id @virtio_id, PCI class @class_prog)
 * with @nqueues queues of at most @queue_max[i] entries and a device
 * configuration of @devcfg_len bytes (filled by the caller in vp->devcfg).
 * Creates the kick eventfds. Machine creation.
 */
bool virtio_pci_init(VirtIOPCI *vp, const char *name, uint16_t virtio_id, uint32_t class_prog,
                     unsigned nqueues, const uint16_t *queue_max, uint32_t devcfg_len,
                     const VirtioPCIOps *ops, void *opaque, GError **errp);
void virtio_pci_set_ioeventfd_fn(VirtIOPCI *vp, VirtioIoeventfdFn fn, void *opaque);

/* The device used buffers of queue @q: ISR bit 0 and INTx. */
void virtio_pci_notify_queue(VirtIOPCI *vp, unsigned q);
/* The configuration changed (or NEEDS_RESET was set): ISR bit 1 and INTx. */
void virtio_pci_notify_config(VirtIOPCI *vp);
/* Set DEVICE_NEEDS_RESET and tell the driver. */
void virtio_pci_set_needs_reset(VirtIOPCI *vp);
/* Whether the driver accepted feature bit @bit. */
static inline bool virtio_pci_has_feature(VirtIOPCI *vp, unsigned bit)
{
    return (vp->driver_features >> bit) & 1;
}

/* The BAR's MMIO handlers (exposed for tests). */
uint64_t virtio_pci_bar_read(void *opaque, uint64_t off, unsigned size);
void virtio_pci_bar_write(void *opaque, uint64_t off, uint64_t val, unsigned size);

/*
 * Transport state for a device's migration record (little-endian, sized
 * by the queue count). load checks it (hostile input); post_load re-drives
 * the INTx line from ISR.
 */
void virtio_pci_save(VirtIOPCI *vp, GByteArray *out);
/* Consumes its part of @buf; *used gets the byte count. */
bool virtio_pci_load(VirtIOPCI *vp, const uint8_t *buf, size_t len, size_t *used,
                     GError **errp);
void virtio_pci_post_load(VirtIOPCI *vp);

#endif
