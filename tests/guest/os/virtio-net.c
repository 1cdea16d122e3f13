/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * gwos virtio-net set-up, ring 0: find the device on the PCI bus, walk its
 * virtio vendor capabilities (common, notify, ISR, device config), reset,
 * negotiate VERSION_1 (+ MAC), set up RX queue 0 and TX queue 1 as split
 * rings in .bss, post every RX buffer, DRIVER_OK, and route its INTx line
 * to the net vCPU. MSI-X stays off; the interrupt only counts (net_stub in
 * boot.S), the ring-3 loop polls the used rings.
 */
#include "virtio-net.h"

#define VIRTIO_VENDOR          0x1af4
#define VIRTIO_NET_MODERN      0x1041
#define VIRTIO_TRANSITIONAL    0x1000      /* 0x1000..0x103f: type in subsystem id */
#define VIRTIO_SUBSYS_NET      1
#define PCI_SUBSYSTEM_ID       0x2e
#define PCI_INTERRUPT_LINE     0x3c
#define PCI_INTERRUPT_PIN      0x3d
#define PCI_CAP_VENDOR         0x09

/* virtio_pci_cap.cfg_type */
#define VIRTIO_PCI_CAP_COMMON  1
#define VIRTIO_PCI_CAP_NOTIFY  2
#define VIRTIO_PCI_CAP_ISR     3
#define VIRTIO_PCI_CAP_DEVICE  4

/* device_status bits */
#define VIRTIO_ACKNOWLEDGE     1
#define VIRTIO_DRIVER          2
#define VIRTIO_DRIVER_OK       4
#define VIRTIO_FEATURES_OK     8
#define VIRTIO_NEEDS_RESET     0x40
#define VIRTIO_FAILED          0x80

#define VIRTIO_NET_F_MAC       (1ull << 5)
#define VIRTIO_F_VERSION_1     (1ull << 32)
#define VIRTIO_NO_VECTOR       0xffff

/* The common configuration structure (virtio 1.x, 4.1.4.3). */
typedef struct VirtioCommonCfg {
    uint32_t device_feature_select;
    uint32_t device_feature;
    uint32_t driver_feature_select;
    uint32_t driver_feature;
    uint16_t config_msix_vector;
    uint16_t num_queues;
    uint8_t device_status;
    uint8_t config_generation;
    uint16_t queue_select;
    uint16_t queue_size;
    uint16_t queue_msix_vector;
    uint16_t queue_enable;
    uint16_t queue_notify_off;
    uint32_t queue_desc_lo, queue_desc_hi;
    uint32_t queue_driver_lo, queue_driver_hi;
    uint32_t queue_device_lo, queue_device_hi;
} VirtioCommonCfg;

_Static_assert(sizeof(VirtioCommonCfg) == 0x38, "common cfg layout");

typedef struct VirtioCap {
    uint8_t bar;
    uint32_t offset;
    uint32_t length;
    uint32_t notify_mult;           /* notify only */
    bool found;
} VirtioCap;

VNet vnet;
VQueue vnet_q[2] __attribute__((aligned(4096)));
/* The ISR register, read by net_stub (boot.S); 0 until the device is up. */
volatile uint8_t *vnet_isr_addr;

static volatile VirtioCommonCfg *common;

static bool is_virtio_net(const PciDev *d)
{
    if (d->vendor != VIRTIO_VENDOR) {
        return false;
    }
    if (d->device == VIRTIO_NET_MODERN) {
        return true;
    }
    return d->device == VIRTIO_TRANSITIONAL &&
           pci_read16(d, PCI_SUBSYSTEM_ID) == VIRTIO_SUBSYS_NET;
}

/* The first virtio capability of each type (the spec's preferred one). */
static void read_caps(const PciDev *d, VirtioCap caps[5])
{
    for (uint8_t p = pci_find_cap(d, PCI_CAP_VENDOR, 0); p;
         p = pci_find_cap(d, PCI_CAP_VENDOR, p)) {
        uint8_t type = pci_read8(d, p + 3u);
        uint8_t len = pci_read8(d, p + 2u);
        if (type < VIRTIO_PCI_CAP_COMMON || type > VIRTIO_PCI_CAP_DEVICE ||
            caps[type].found || len < 16) {
            continue;
        }
        caps[type].bar = pci_read8(d, p + 4u);
        caps[type].offset = pci_read32(d, p + 8u);
        caps[type].length = pci_read32(d, p + 12u);
        caps[type].notify_mult = type == VIRTIO_PCI_CAP_NOTIFY && len >= 20 ?
                                 pci_read32(d, p + 16u) : 0;
        caps[type].found = caps[type].bar <= 5;
    }
}

/*
 * netbarzero: clear the memory BARs the capabilities use, as a VMM without
 * firmware leaves them, so the assignment path runs under QEMU too. Memory
 * decode stays off (a BAR at 0 would shadow low RAM) until pci_enable().
 */
static void forget_bars(const PciDev *d, const VirtioCap caps[5])
{
    uint16_t cmd = pci_read16(d, 0x04);

    pci_write16(d, 0x04, cmd & ~0x2);
    for (int t = VIRTIO_PCI_CAP_COMMON; t <= VIRTIO_PCI_CAP_DEVICE; t++) {
        uint32_t off = 0x10 + 4u * caps[t].bar;
        uint32_t lo = pci_read32(d, off);
        if (lo & 1) {
            continue;                   /* I/O BAR: left alone, refused later */
        }
        pci_write32(d, off, lo & 0xf);
        if ((lo & 0x6) == 0x4 && caps[t].bar < 5) {
            pci_write32(d, off + 4, 0);
        }
    }
    kprintf("gwos: net: netbarzero: the device's BARs cleared\n");
}

/*
 * Where each capability's structure lives: BAR address (assigned if
 * firmware left it 0) plus offset; BARs above 4 GiB are mapped.
 */
static bool locate(const PciDev *d, VirtioCap caps[5], uint64_t bars[6], uint64_t addr[5])
{
    for (int t = VIRTIO_PCI_CAP_COMMON; t <= VIRTIO_PCI_CAP_DEVICE; t++) {
        int b = caps[t].bar;
        if (!bars[b]) {
            bars[b] = pci_bar_address(d, b);
        }
        if (!bars[b]) {
            kprintf("gwos: net: virtio capability %d points at bar%d, which is not a "
                    "usable memory BAR; network workload off\n", t, b);
            return false;
        }
        addr[t] = bars[b] + caps[t].offset;
    }
    for (int t = VIRTIO_PCI_CAP_COMMON; t <= VIRTIO_PCI_CAP_DEVICE; t++) {
        uint64_t end = addr[t] + caps[t].length;
        if (end > 4ull << 30 && !pci_map_high(addr[t], caps[t].length)) {
            kprintf("gwos: net: bar%d at 0x%lx is beyond the 64 GiB gwos maps; network "
                    "workload off\n", caps[t].bar, bars[caps[t].bar]);
            return false;
        }
    }
    return true;
}

static uint64_t device_features(void)
{
    common->device_feature_select = 0;
    uint64_t f = common->device_feature;
    common->device_feature_select = 1;
    return f | (uint64_t)common->device_feature << 32;
}

static void set_queue_addr(volatile uint32_t *lo, volatile uint32_t *hi, const void *p)
{
    uint64_t a = (uint64_t)(uintptr_t)p;
    *lo = (uint32_t)a;
    *hi = (uint32_t)(a >> 32);
}

/* The largest queue size both queues take: min(device max, ours), a power of 2. */
static uint32_t common_queue_size(void)
{
    uint32_t size = VNET_QUEUE_MAX;

    for (uint16_t q = 0; q < 2; q++) {
        common->queue_select = q;
        uint32_t max = common->queue_size;
        size = max < size ? max : size;
    }
    while (size & (size - 1)) {
        size &= size - 1;               /* split rings: a power of two */
    }
    return size;
}

/* Queue @q: size, no MSI-X vector, ring addresses, notify address, enable. */
static void setup_queue(int q, uint64_t notify_base, uint32_t notify_mult)
{
    VQueue *vq = &vnet_q[q];

    common->queue_select = (uint16_t)q;
    common->queue_size = (uint16_t)vnet.qsize;
    common->queue_msix_vector = VIRTIO_NO_VECTOR;
    set_queue_addr(&common->queue_desc_lo, &common->queue_desc_hi, vq->desc);
    set_queue_addr(&common->queue_driver_lo, &common->queue_driver_hi, &vq->avail);
    set_queue_addr(&common->queue_device_lo, &common->queue_device_hi, &vq->used);
    vnet.notify[q] = (volatile uint16_t *)(uintptr_t)(notify_base +
                     (uint64_t)common->queue_notify_off * notify_mult);
    common->queue_enable = 1;
}

static void fail(const char *why, uint64_t v)
{
    common->device_status = common->device_status | VIRTIO_FAILED;
    kprintf("gwos: net: %s (0x%lx); network workload off\n", why, v);
    results->net.state = GWOS_NET_FAILED;
}

bool vnet_init(uint32_t dest_apic)
{
    static PciDev devs[64];
    int n = pci_scan(devs, 64);
    const PciDev *d = NULL;
    VirtioCap caps[5] = { 0 };
    uint64_t bars[6] = { 0 }, addr[5] = { 0 };

    for (int i = 0; i < n && !d; i++) {
        if (is_virtio_net(&devs[i])) {
            d = &devs[i];
        }
    }
    if (!d) {
        kprintf("gwos: net: no virtio-net device on the PCI bus; network workload off\n");
        results->net.state = GWOS_NET_NO_DEVICE;
        return false;
    }
    vnet.pci = *d;
    results->net.pci_bdf = (uint32_t)d->bus << 8 | (uint32_t)d->dev << 3 | d->fn;
    results->net.vendor = d->vendor;
    results->net.device = d->device;
    read_caps(d, caps);
    for (int t = VIRTIO_PCI_CAP_COMMON; t <= VIRTIO_PCI_CAP_DEVICE; t++) {
        if (!caps[t].found) {
            kprintf("gwos: net: pci %02x:%02x.%u has no virtio 1.x capability of type %d "
                    "(a legacy-only device?); network workload off\n", d->bus, d->dev,
                    d->fn, t);
            results->net.state = GWOS_NET_FAILED;
            return false;
        }
    }
    if (cfg.net_bar_zero) {
        forget_bars(d, caps);
    }
    if (!locate(d, caps, bars, addr)) {
        results->net.state = GWOS_NET_FAILED;
        return false;
    }
    pci_enable(d);
    common = (volatile VirtioCommonCfg *)(uintptr_t)addr[VIRTIO_PCI_CAP_COMMON];

    /* Reset, then the status dance of virtio 1.x, 3.1.1. */
    common->device_status = 0;
    for (int i = 0; i < 1000000 && common->device_status; i++) {
        cpu_relax();
    }
    common->device_status = VIRTIO_ACKNOWLEDGE;
    common->device_status = VIRTIO_ACKNOWLEDGE | VIRTIO_DRIVER;
    uint64_t offered = device_features();
    if (!(offered & VIRTIO_F_VERSION_1)) {
        fail("the device does not offer VIRTIO_F_VERSION_1", offered);
        return false;
    }
    /* No offloads, no mergeable buffers, no event index, no control queue. */
    uint64_t want = VIRTIO_F_VERSION_1 | (offered & VIRTIO_NET_F_MAC);
    common->driver_feature_select = 0;
    common->driver_feature = (uint32_t)want;
    common->driver_feature_select = 1;
    common->driver_feature = (uint32_t)(want >> 32);
    common->device_status = VIRTIO_ACKNOWLEDGE | VIRTIO_DRIVER | VIRTIO_FEATURES_OK;
    if (!(common->device_status & VIRTIO_FEATURES_OK)) {
        fail("the device refused features", want);
        return false;
    }
    vnet.features = want;
    common->config_msix_vector = VIRTIO_NO_VECTOR;

    if (common->num_queues < 2) {
        fail("the device has fewer than 2 queues", common->num_queues);
        return false;
    }
    vnet.qsize = common_queue_size();
    if (vnet.qsize < 2) {
        fail("unusable queue size", vnet.qsize);
        return false;
    }
    uint64_t notify_base = addr[VIRTIO_PCI_CAP_NOTIFY];
    setup_queue(VNET_RXQ, notify_base, caps[VIRTIO_PCI_CAP_NOTIFY].notify_mult);
    setup_queue(VNET_TXQ, notify_base, caps[VIRTIO_PCI_CAP_NOTIFY].notify_mult);

    /* MAC: the device's, or a locally administered one if it offers none. */
    static const uint8_t fallback_mac[6] = { 0x52, 0x54, 0x00, 0x9e, 0x57, 0x01 };
    volatile uint8_t *devcfg = (volatile uint8_t *)(uintptr_t)addr[VIRTIO_PCI_CAP_DEVICE];
    for (int i = 0; i < 6; i++) {
        vnet.mac[i] = want & VIRTIO_NET_F_MAC ? devcfg[i] : fallback_mac[i];
        results->net.mac[i] = vnet.mac[i];
    }

    /* RX: descriptor i is buffer i for good; post them all. TX: all free. */
    VQueue *rx = &vnet_q[VNET_RXQ], *tx = &vnet_q[VNET_TXQ];
    for (uint32_t i = 0; i < vnet.qsize; i++) {
        rx->desc[i] = (VringDesc){ (uint64_t)(uintptr_t)rx->buf[i], VNET_BUF_SIZE,
                                   VRING_DESC_F_WRITE, 0 };
        rx->avail.ring[i] = (uint16_t)i;
        tx->desc[i] = (VringDesc){ (uint64_t)(uintptr_t)tx->buf[i], 0, 0, 0 };
        vnet.tx_free[i] = (uint16_t)(vnet.qsize - 1 - i);
    }
    vnet.tx_nfree = vnet.qsize;
    /* Completed TX buffers are reclaimed by polling: no interrupt for them. */
    tx->avail.flags = VRING_AVAIL_F_NO_INTERRUPT;
    barrier();
    rx->avail.idx = (uint16_t)vnet.qsize;
    vnet.avail_idx[VNET_RXQ] = (uint16_t)vnet.qsize;

    /* INTx to the net vCPU; the handler reads ISR, which lowers the line. */
    uint8_t line = pci_read8(d, PCI_INTERRUPT_LINE);
    uint8_t pin = pci_read8(d, PCI_INTERRUPT_PIN);
    bool level = false, low = false;
    results->net.irq_line = line;
    results->net.irq_pin = pin;
    vnet_isr_addr = (volatile uint8_t *)(uintptr_t)addr[VIRTIO_PCI_CAP_ISR];
    int gsi = pin ? ioapic_route_pci(line, VEC_NET, dest_apic, &level, &low) : -1;

    common->device_status = VIRTIO_ACKNOWLEDGE | VIRTIO_DRIVER | VIRTIO_FEATURES_OK |
                            VIRTIO_DRIVER_OK;
    uint8_t st = common->device_status;
    if (st & (VIRTIO_NEEDS_RESET | VIRTIO_FAILED)) {
        fail("the device failed at DRIVER_OK", st);
        return false;
    }
    vnet_kick(VNET_RXQ);

    kprintf("gwos: pci %02x:%02x.%u %04x:%04x virtio-net", d->bus, d->dev, d->fn, d->vendor,
            d->device);
    for (int b = 0; b < 6; b++) {
        if (bars[b]) {
            kprintf(" bar%d=0x%lx", b, bars[b]);
        }
    }
    kprintf(" mac=%02x:%02x:%02x:%02x:%02x:%02x\n", vnet.mac[0], vnet.mac[1], vnet.mac[2],
            vnet.mac[3], vnet.mac[4], vnet.mac[5]);
    if (gsi >= 0) {
        results->net.gsi = (uint32_t)gsi;
        kprintf("gwos: net: intx pin %u line %u -> gsi %d (%s, active %s) vector 0x%x\n",
                pin, line, gsi, level ? "level" : "edge", low ? "low" : "high", VEC_NET);
    } else {
        results->net.gsi = 0xffffffffu;
        kprintf("gwos: net: warning: no usable INTx line (pin %u line %u); polling only\n",
                pin, line);
    }
    results->net.features = vnet.features;
    results->net.queue_size = vnet.qsize;
    return true;
}

void vnet_kick(int q)
{
    /* The new avail index must be visible before the flag is read. */
    __asm__ volatile("mfence" ::: "memory");
    if (!(READ_ONCE(vnet_q[q].used.flags) & VRING_USED_F_NO_NOTIFY)) {
        *vnet.notify[q] = (uint16_t)q;
        if (q == VNET_TXQ) {
            results->net.tx_kicks++;
        } else {
            results->net.rx_kicks++;
        }
    }
}
