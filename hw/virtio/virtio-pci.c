/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * The virtio 1.x modern PCI transport: the registers of the common
 * configuration, ISR (read to acknowledge, which lowers INTx), device
 * configuration, the doorbells (bound to KVM ioeventfds while the BAR
 * decodes, so a kick never exits), the PCI-configuration-access
 * capability, and the transport's part of a device's migration record.
 */
#include "qemu/osdep.h"
#include "hw/virtio/virtio-pci.h"
#include <sys/eventfd.h>

/* Common configuration register offsets (virtio 4.1.4.3). */
enum {
    CC_DFSELECT = 0x00, CC_DF = 0x04, CC_GFSELECT = 0x08, CC_GF = 0x0c,
    CC_MSIX = 0x10, CC_NUMQ = 0x12, CC_STATUS = 0x14, CC_CFGGEN = 0x15,
    CC_Q_SELECT = 0x16, CC_Q_SIZE = 0x18, CC_Q_MSIX = 0x1a, CC_Q_ENABLE = 0x1c,
    CC_Q_NOFF = 0x1e, CC_Q_DESC = 0x20, CC_Q_AVAIL = 0x28, CC_Q_USED = 0x30,
};

static const struct { uint8_t off, len; } cc_fields[] = {
    { CC_DFSELECT, 4 }, { CC_DF, 4 }, { CC_GFSELECT, 4 }, { CC_GF, 4 },
    { CC_MSIX, 2 }, { CC_NUMQ, 2 }, { CC_STATUS, 1 }, { CC_CFGGEN, 1 },
    { CC_Q_SELECT, 2 }, { CC_Q_SIZE, 2 }, { CC_Q_MSIX, 2 }, { CC_Q_ENABLE, 2 },
    { CC_Q_NOFF, 2 }, { CC_Q_DESC, 8 }, { CC_Q_AVAIL, 8 }, { CC_Q_USED, 8 },
};

static void put_le(uint8_t *p, uint64_t v, unsigned len)
{
    for (unsigned i = 0; i < len; i++) {
        p[i] = (uint8_t)(v >> (8 * i));
    }
}

static uint64_t get_le(const uint8_t *p, unsigned len)
{
    uint64_t v = 0;
    for (unsigned i = 0; i < len; i++) {
        v |= (uint64_t)p[i] << (8 * i);
    }
    return v;
}

static VirtQueueConf *selected_queue(VirtIOPCI *vp)
{
    return vp->queue_select < vp->nqueues ? &vp->vq[vp->queue_select] : NULL;
}

/* The common configuration as the driver would read it right now. */
static void common_image(VirtIOPCI *vp, uint8_t img[VIRTIO_PCI_COMMON_LEN])
{
    uint64_t offered = vp->ops->get_features(vp);
    VirtQueueConf *q = selected_queue(vp);

    memset(img, 0, VIRTIO_PCI_COMMON_LEN);
    put_le(img + CC_DFSELECT, vp->device_feature_select, 4);
    put_le(img + CC_DF, vp->device_feature_select < 2 ?
           (uint32_t)(offered >> (32 * vp->device_feature_select)) : 0, 4);
    put_le(img + CC_GFSELECT, vp->driver_feature_select, 4);
    put_le(img + CC_GF, vp->driver_feature_select < 2 ?
           (uint32_t)(vp->driver_features >> (32 * vp->driver_feature_select)) : 0, 4);
    put_le(img + CC_MSIX, VIRTIO_NO_VECTOR, 2);      /* no MSI-X */
    put_le(img + CC_NUMQ, vp->nqueues, 2);
    img[CC_STATUS] = vp->status;
    img[CC_CFGGEN] = vp->config_generation;
    put_le(img + CC_Q_SELECT, vp->queue_select, 2);
    put_le(img + CC_Q_MSIX, VIRTIO_NO_VECTOR, 2);
    if (q) {
        put_le(img + CC_Q_SIZE, q->size, 2);
        put_le(img + CC_Q_ENABLE, q->enabled, 2);
        put_le(img + CC_Q_NOFF, vp->queue_select, 2);
        put_le(img + CC_Q_DESC, q->desc, 8);
        put_le(img + CC_Q_AVAIL, q->avail, 8);
        put_le(img + CC_Q_USED, q->used, 8);
    }
}

static void virtio_pci_update_irq(VirtIOPCI *vp)
{
    pci_device_set_irq(&vp->pci, vp->isr != 0);
}

static void drain_eventfd(int fd)
{
    uint64_t v;
    while (read(fd, &v, sizeof(v)) == sizeof(v)) {
    }
}

/* Device reset: registers to their initial values (virtio 2.4). */
static void virtio_pci_reset_registers(VirtIOPCI *vp)
{
    vp->status = 0;
    vp->isr = 0;
    vp->queue_select = 0;
    vp->device_feature_select = 0;
    vp->driver_feature_select = 0;
    vp->driver_features = 0;
    for (unsigned i = 0; i < vp->nqueues; i++) {
        VirtQueueConf *q = &vp->vq[i];
        q->size = q->size_max;
        q->enabled = false;
        q->desc = q->avail = q->used = 0;
        q->last_avail = 0;
        drain_eventfd(q->kick_fd);
    }
    virtio_pci_update_irq(vp);
}

static void virtio_pci_write_status(VirtIOPCI *vp, uint8_t val)
{
    uint8_t old = vp->status;

    if (val == 0) {
        vp->ops->reset(vp);
        virtio_pci_reset_registers(vp);
        return;
    }
    if ((val & VIRTIO_CONFIG_S_FEATURES_OK) && !(old & VIRTIO_CONFIG_S_FEATURES_OK)) {
        uint64_t offered = vp->ops->get_features(vp);
        /* A bit we did not offer, or a legacy driver: leave FEATURES_OK clear (2.2.2). */
        if ((vp->driver_features & ~offered) ||
            !((vp->driver_features >> VIRTIO_F_VERSION_1) & 1)) {
            val &= (uint8_t)~VIRTIO_CONFIG_S_FEATURES_OK;
        }
    }
    /* NEEDS_RESET is the device's to set; the driver cannot clear it but by a reset. */
    val = (uint8_t)((val & ~VIRTIO_CONFIG_S_NEEDS_RESET) | (old & VIRTIO_CONFIG_S_NEEDS_RESET));
    vp->status = val;
    if (val != old) {
        vp->ops->status_changed(vp, old);
    }
}

static void common_write_field(VirtIOPCI *vp, uint8_t off, uint64_t v)
{
    VirtQueueConf *q = selected_queue(vp);
    /* Features are frozen at FEATURES_OK, a queue's set-up once it is enabled. */
    bool features_frozen = vp->status & VIRTIO_CONFIG_S_FEATURES_OK;

    switch (off) {
    case CC_DFSELECT:
        vp->device_feature_select = (uint32_t)v;
        break;
    case CC_GFSELECT:
        vp->driver_feature_select = (uint32_t)v;
        break;
    case CC_GF:
        if (!features_frozen && vp->driver_feature_select < 2) {
            unsigned shift = 32 * vp->driver_feature_select;
            vp->driver_features = (vp->driver_features & ~(0xffffffffULL << shift)) |
                                  ((v & 0xffffffffULL) << shift);
        }
        break;
    case CC_STATUS:
        virtio_pci_write_status(vp, (uint8_t)v);
        break;
    case CC_Q_SELECT:
        vp->queue_select = (uint16_t)v;
        break;
    case CC_Q_SIZE:
        if (q && !q->enabled) {
            q->size = (uint16_t)MIN(v, (uint64_t)q->size_max);
        }
        break;
    case CC_Q_ENABLE:
        /* Only 1 is defined for a driver to write (0 needs VIRTIO_F_RING_RESET). */
        if (q && v == 1) {
            q->enabled = true;
        }
        break;
    case CC_Q_DESC:
        if (q && !q->enabled) {
            q->desc = v;
        }
        break;
    case CC_Q_AVAIL:
        if (q && !q->enabled) {
            q->avail = v;
        }
        break;
    case CC_Q_USED:
        if (q && !q->enabled) {
            q->used = v;
        }
        break;
    default:
        /* Read-only (features, queue count, generation, notify offset) or no MSI-X. */
        break;
    }
}

static void common_write(VirtIOPCI *vp, uint64_t off, uint64_t val, unsigned size)
{
    uint8_t img[VIRTIO_PCI_COMMON_LEN];

    if (off >= VIRTIO_PCI_COMMON_LEN) {
        return;
    }
    size = (unsigned)MIN((uint64_t)size, VIRTIO_PCI_COMMON_LEN - off);
    common_image(vp, img);
    put_le(img + off, val, size);
    /* Each register the access touches, whole (a 32-bit half of a ring address too). */
    for (size_t i = 0; i < G_N_ELEMENTS(cc_fields); i++) {
        uint8_t f = cc_fields[i].off, l = cc_fields[i].len;
        if (off < (uint64_t)f + l && f < off + size) {
            common_write_field(vp, f, get_le(img + f, l));
        }
    }
}

static uint64_t read_region(const uint8_t *img, uint64_t len, uint64_t off, unsigned size)
{
    uint64_t v = 0;
    for (unsigned i = 0; i < size; i++) {
        if (off + i < len) {
            v |= (uint64_t)img[off + i] << (8 * i);
        }
    }
    return v;
}

uint64_t virtio_pci_bar_read(void *opaque, uint64_t off, unsigned size)
{
    VirtIOPCI *vp = opaque;

    if (off < VIRTIO_PCI_COMMON_OFF + VIRTIO_PCI_REGION_LEN) {    /* the common config is at 0 */
        uint8_t img[VIRTIO_PCI_COMMON_LEN];
        common_image(vp, img);
        return read_region(img, sizeof(img), off - VIRTIO_PCI_COMMON_OFF, size);
    }
    if (off >= VIRTIO_PCI_ISR_OFF && off < VIRTIO_PCI_ISR_OFF + VIRTIO_PCI_REGION_LEN) {
        /* Reading ISR acknowledges it and lowers the line (4.1.4.5). */
        uint8_t v = vp->isr;
        if (off != VIRTIO_PCI_ISR_OFF) {
            return 0;
        }
        vp->isr = 0;
        virtio_pci_update_irq(vp);
        return v;
    }
    if (off >= VIRTIO_PCI_DEVICE_OFF && off < VIRTIO_PCI_DEVICE_OFF + VIRTIO_PCI_REGION_LEN) {
        return read_region(vp->devcfg, vp->devcfg_len, off - VIRTIO_PCI_DEVICE_OFF, size);
    }
    return 0;
}

static void virtio_pci_kick(VirtIOPCI *vp, unsigned q)
{
    uint64_t one = 1;

    if (q >= vp->nqueues) {
        return;
    }
    if (write(vp->vq[q].kick_fd, &one, sizeof(one)) < 0) {
        /* EAGAIN: the counter is saturated, the back-end has a kick pending anyway. */
    }
    if (vp->ops->queue_notified) {
        vp->ops->queue_notified(vp, q);
    }
}

void virtio_pci_bar_write(void *opaque, uint64_t off, uint64_t val, unsigned size)
{
    VirtIOPCI *vp = opaque;

    if (off < VIRTIO_PCI_COMMON_OFF + VIRTIO_PCI_REGION_LEN) {
        common_write(vp, off - VIRTIO_PCI_COMMON_OFF, val, size);
    } else if (off >= VIRTIO_PCI_NOTIFY_OFF &&
               off < VIRTIO_PCI_NOTIFY_OFF + VIRTIO_PCI_REGION_LEN) {
        /* Only when no ioeventfd took the write (not bound, or the access came this way). */
        virtio_pci_kick(vp, (unsigned)((off - VIRTIO_PCI_NOTIFY_OFF) / VIRTIO_PCI_NOTIFY_MULT));
    }
    /* ISR and the device configuration are read-only to the driver. */
}

/* ---- doorbells: KVM ioeventfds follow the BAR ---- */

static void virtio_pci_bind_ioeventfds(VirtIOPCI *vp, bool bind)
{
    for (unsigned i = 0; i < vp->nqueues; i++) {
        VirtQueueConf *q = &vp->vq[i];
        g_autoptr(GError) err = NULL;
        uint64_t gpa = vp->notify_gpa + (uint64_t)i * VIRTIO_PCI_NOTIFY_MULT;

        if (!vp->ioeventfd || q->ioeventfd_bound == bind) {
            continue;
        }
        if (!vp->ioeventfd(vp->ioeventfd_opaque, q->kick_fd, gpa, bind, &err)) {
            if (!vp->ioeventfd_warned) {
                vp->ioeventfd_warned = true;
                fprintf(stderr, "godwit: %s: doorbells will exit to godwit: %s\n",
                        vp->pci.name, err->message);
            }
            continue;
        }
        q->ioeventfd_bound = bind;
    }
}

static void virtio_pci_bar_moved(PCIDevice *d, int bar, bool mapped, uint64_t addr)
{
    VirtIOPCI *vp = d->opaque;

    if (bar != VIRTIO_PCI_BAR) {
        return;
    }
    virtio_pci_bind_ioeventfds(vp, false);
    vp->notify_mapped = mapped;
    vp->notify_gpa = addr + VIRTIO_PCI_NOTIFY_OFF;
    if (mapped) {
        virtio_pci_bind_ioeventfds(vp, true);
    }
}

void virtio_pci_set_ioeventfd_fn(VirtIOPCI *vp, VirtioIoeventfdFn fn, void *opaque)
{
    vp->ioeventfd = fn;
    vp->ioeventfd_opaque = opaque;
    if (vp->notify_mapped) {
        virtio_pci_bind_ioeventfds(vp, true);
    }
}

/* ---- the PCI-configuration-access capability: a window into the BAR ---- */

#define PCI_CFG_BAR     4
#define PCI_CFG_OFFSET  8
#define PCI_CFG_LENGTH  12
#define PCI_CFG_DATA    16

static bool pci_cfg_window(VirtIOPCI *vp, uint64_t *off, unsigned *len)
{
    const uint8_t *c = vp->pci.config + vp->pci_cfg_cap;
    uint32_t o = pci_get_long(c + PCI_CFG_OFFSET), l = pci_get_long(c + PCI_CFG_LENGTH);

    /* 4.1.4.7.2: only BAR accesses of 1, 2 or 4 bytes, naturally aligned, do anything. */
    if (c[PCI_CFG_BAR] != VIRTIO_PCI_BAR || (l != 1 && l != 2 && l != 4) || (o % l) ||
        o + l > VIRTIO_PCI_BAR_SIZE) {
        return false;
    }
    *off = o;
    *len = l;
    return true;
}

static bool virtio_pci_config_read(PCIDevice *d, uint32_t off, unsigned len, uint32_t *val)
{
    VirtIOPCI *vp = d->opaque;
    uint32_t data = vp->pci_cfg_cap + PCI_CFG_DATA;
    uint64_t boff;
    unsigned blen;

    if (!vp->pci_cfg_cap || off != data || !pci_cfg_window(vp, &boff, &blen)) {
        return false;
    }
    *val = (uint32_t)virtio_pci_bar_read(vp, boff, blen);
    return true;
}

static void virtio_pci_config_write(PCIDevice *d, uint32_t off, uint32_t val, unsigned len)
{
    VirtIOPCI *vp = d->opaque;
    uint32_t data = vp->pci_cfg_cap + PCI_CFG_DATA;
    uint64_t boff;
    unsigned blen;

    if (vp->pci_cfg_cap && off == data && pci_cfg_window(vp, &boff, &blen)) {
        virtio_pci_bar_write(vp, boff, val, blen);
    }
}

static void virtio_pci_pci_reset(PCIDevice *d)
{
    VirtIOPCI *vp = d->opaque;

    vp->ops->reset(vp);
    virtio_pci_reset_registers(vp);
}

static const PCIDeviceOps virtio_pci_dev_ops = {
    .config_read = virtio_pci_config_read,
    .config_write = virtio_pci_config_write,
    .bar_moved = virtio_pci_bar_moved,
    .reset = virtio_pci_pci_reset,
};

static uint8_t add_virtio_cap(VirtIOPCI *vp, uint8_t type, uint8_t len, uint32_t offset,
                              uint32_t length)
{
    uint8_t c = pci_device_add_capability(&vp->pci, PCI_CAP_ID_VNDR, len);
    uint8_t *p = vp->pci.config + c;

    p[2] = len;
    p[3] = type;
    p[4] = VIRTIO_PCI_BAR;
    pci_set_long(p + 8, offset);
    pci_set_long(p + 12, length);
    return c;
}

bool virtio_pci_init(VirtIOPCI *vp, const char *name, uint16_t virtio_id, uint32_t class_prog,
                     unsigned nqueues, const uint16_t *queue_max, uint32_t devcfg_len,
                     const VirtioPCIOps *ops, void *opaque, GError **errp)
{
    g_assert(nqueues <= VIRTIO_PCI_QUEUES_MAX && devcfg_len <= VIRTIO_PCI_DEVCFG_MAX);
    vp->ops = ops;
    vp->opaque = opaque;
    vp->nqueues = nqueues;
    vp->devcfg_len = devcfg_len;
    for (unsigned i = 0; i < nqueues; i++) {
        vp->vq[i].size_max = vp->vq[i].size = queue_max[i];
        vp->vq[i].kick_fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
        if (vp->vq[i].kick_fd < 0) {
            error_setg_errno(errp, errno, "%s: cannot create a kick eventfd", name);
            return false;
        }
    }
    pci_device_init(&vp->pci, name, VIRTIO_PCI_VENDOR,
                    (uint16_t)(VIRTIO_PCI_DEVICE_MODERN + virtio_id), class_prog, 1,
                    VIRTIO_PCI_VENDOR, VIRTIO_PCI_SUBSYS, &virtio_pci_dev_ops, vp);
    pci_device_add_bar(&vp->pci, VIRTIO_PCI_BAR, PCI_BAR_MEM64, true, VIRTIO_PCI_BAR_SIZE,
                       virtio_pci_bar_read, virtio_pci_bar_write, vp);
    add_virtio_cap(vp, VIRTIO_PCI_CAP_COMMON_CFG, 16, VIRTIO_PCI_COMMON_OFF,
                   VIRTIO_PCI_REGION_LEN);
    add_virtio_cap(vp, VIRTIO_PCI_CAP_ISR_CFG, 16, VIRTIO_PCI_ISR_OFF, VIRTIO_PCI_REGION_LEN);
    add_virtio_cap(vp, VIRTIO_PCI_CAP_DEVICE_CFG, 16, VIRTIO_PCI_DEVICE_OFF,
                   VIRTIO_PCI_REGION_LEN);
    uint8_t n = add_virtio_cap(vp, VIRTIO_PCI_CAP_NOTIFY_CFG, 20, VIRTIO_PCI_NOTIFY_OFF,
                               VIRTIO_PCI_REGION_LEN);
    pci_set_long(vp->pci.config + n + 16, VIRTIO_PCI_NOTIFY_MULT);
    vp->pci_cfg_cap = add_virtio_cap(vp, VIRTIO_PCI_CAP_PCI_CFG, 20, 0, 0);
    /* The window's bar, offset, length and data are the driver's to write. */
    vp->pci.wmask[vp->pci_cfg_cap + PCI_CFG_BAR] = 0xff;
    memset(vp->pci.wmask + vp->pci_cfg_cap + PCI_CFG_OFFSET, 0xff, 12);
    memcpy(vp->pci.reset_config, vp->pci.config, PCI_CONFIG_SPACE_SIZE);
    return true;
}

void virtio_pci_notify_queue(VirtIOPCI *vp, unsigned q)
{
    vp->isr |= VIRTIO_ISR_QUEUE;
    virtio_pci_update_irq(vp);
}

void virtio_pci_notify_config(VirtIOPCI *vp)
{
    vp->config_generation++;
    vp->isr |= VIRTIO_ISR_CONFIG;
    virtio_pci_update_irq(vp);
}

void virtio_pci_set_needs_reset(VirtIOPCI *vp)
{
    vp->status |= VIRTIO_CONFIG_S_NEEDS_RESET;
    if (vp->status & VIRTIO_CONFIG_S_DRIVER_OK) {
        virtio_pci_notify_config(vp);
    }
}

/* ---- migration ---- */

#define VP_HDR_LEN   22
#define VP_QUEUE_LEN 29

void virtio_pci_save(VirtIOPCI *vp, GByteArray *out)
{
    uint8_t b[VP_HDR_LEN + VIRTIO_PCI_QUEUES_MAX * VP_QUEUE_LEN];
    uint8_t *p = b;

    *p++ = vp->status;
    *p++ = vp->isr;
    *p++ = vp->config_generation;
    *p++ = (uint8_t)vp->nqueues;
    put_le(p, vp->queue_select, 2);
    p += 2;
    put_le(p, vp->device_feature_select, 4);
    p += 4;
    put_le(p, vp->driver_feature_select, 4);
    p += 4;
    put_le(p, vp->driver_features, 8);
    p += 8;
    for (unsigned i = 0; i < vp->nqueues; i++) {
        VirtQueueConf *q = &vp->vq[i];
        put_le(p, q->size, 2);
        p[2] = q->enabled;
        put_le(p + 3, q->last_avail, 2);
        put_le(p + 5, q->desc, 8);
        put_le(p + 13, q->avail, 8);
        put_le(p + 21, q->used, 8);
        p += VP_QUEUE_LEN;
    }
    g_byte_array_append(out, b, (guint)(p - b));
}

bool virtio_pci_load(VirtIOPCI *vp, const uint8_t *buf, size_t len, size_t *used,
                     GError **errp)
{
    const uint8_t *p = buf;

    if (len < VP_HDR_LEN || buf[3] != vp->nqueues ||
        len < VP_HDR_LEN + (size_t)vp->nqueues * VP_QUEUE_LEN) {
        error_setg(errp, "%s: virtio transport state is truncated or has %u queues "
                   "(expected %u)", vp->pci.name, len >= 4 ? buf[3] : 0, vp->nqueues);
        return false;
    }
    uint8_t status = p[0];
    p += VP_HDR_LEN;
    for (unsigned i = 0; i < vp->nqueues; i++, p += VP_QUEUE_LEN) {
        uint16_t size = (uint16_t)get_le(p, 2);
        bool enabled = p[2] != 0;
        if (size > vp->vq[i].size_max ||
            (enabled && (status & VIRTIO_CONFIG_S_DRIVER_OK) &&
             (size == 0 || (size & (size - 1))))) {
            error_setg(errp, "%s: queue %u has size %u (at most %u, a power of two)",
                       vp->pci.name, i, size, vp->vq[i].size_max);
            return false;
        }
    }
    p = buf;
    vp->status = p[0];
    vp->isr = p[1];
    vp->config_generation = p[2];
    vp->queue_select = (uint16_t)get_le(p + 4, 2);
    vp->device_feature_select = (uint32_t)get_le(p + 6, 4);
    vp->driver_feature_select = (uint32_t)get_le(p + 10, 4);
    vp->driver_features = get_le(p + 14, 8);
    p += VP_HDR_LEN;
    for (unsigned i = 0; i < vp->nqueues; i++, p += VP_QUEUE_LEN) {
        VirtQueueConf *q = &vp->vq[i];
        q->size = (uint16_t)get_le(p, 2);
        q->enabled = p[2] != 0;
        q->last_avail = (uint16_t)get_le(p + 3, 2);
        q->desc = get_le(p + 5, 8);
        q->avail = get_le(p + 13, 8);
        q->used = get_le(p + 21, 8);
    }
    *used = (size_t)(p - buf);
    return true;
}

void virtio_pci_post_load(VirtIOPCI *vp)
{
    virtio_pci_update_irq(vp);
}
