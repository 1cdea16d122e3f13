/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * Unit tests for the virtio 1.x modern PCI transport (hw/virtio/virtio-pci.c)
 * behind the PCI bus: capability layout, feature negotiation, queue set-up,
 * ISR and INTx, doorbells without an ioeventfd, the PCI-configuration-access
 * window, and the migration state (round trip and hostile input).
 */
#include "qemu/osdep.h"
#include "hw/ioport.h"
#include "hw/virtio/virtio-pci.h"

void ioport_register(uint16_t base, uint16_t len, IOPortReadFn read,
                     IOPortWriteFn write, void *opaque)
{
}

static int gsi_level[24];

static void fake_set_gsi(void *opaque, int gsi, bool level)
{
    gsi_level[gsi] = level;
}

static const PCIBusOps bus_ops = { .set_gsi = fake_set_gsi };

typedef struct Fixture {
    PCIBus *bus;
    VirtIOPCI vp;
    uint64_t offered;
    int status_calls, resets, notified;
    uint8_t last_old;
    uint64_t bar;
} Fixture;

static uint64_t fx_features(VirtIOPCI *vp)
{
    return ((Fixture *)vp->opaque)->offered;
}

static void fx_status(VirtIOPCI *vp, uint8_t old)
{
    Fixture *f = vp->opaque;
    f->status_calls++;
    f->last_old = old;
}

static void fx_reset(VirtIOPCI *vp)
{
    ((Fixture *)vp->opaque)->resets++;
}

static void fx_notified(VirtIOPCI *vp, unsigned q)
{
    ((Fixture *)vp->opaque)->notified++;
}

static const VirtioPCIOps fx_ops = {
    .get_features = fx_features, .status_changed = fx_status, .reset = fx_reset,
    .queue_notified = fx_notified,
};

static void fx_init(Fixture *f)
{
    static const uint16_t qmax[2] = { 256, 128 };
    GError *err = NULL;

    memset(f, 0, sizeof(*f));
    memset(gsi_level, 0, sizeof(gsi_level));
    f->offered = (1ULL << VIRTIO_F_VERSION_1) | (1ULL << 5) | (1ULL << 15);
    f->bus = pci_bus_new(&bus_ops, NULL);
    g_assert_true(virtio_pci_init(&f->vp, "vp", 1, 0x020000, 2, qmax, 10, &fx_ops, f, &err));
    memcpy(f->vp.devcfg, "\x52\x54\x00\x12\x34\x56\x01\x00\x01\x00", 10);
    g_assert_true(pci_bus_add_device(f->bus, &f->vp.pci, 2, &err));
    g_assert_true(pci_bus_assign_bars(f->bus, &err));
    f->bar = pci_device_bar_addr(&f->vp.pci, VIRTIO_PCI_BAR);
}

static void fx_free(Fixture *f)
{
    mmio_region_unmap(&f->vp.pci.bars[VIRTIO_PCI_BAR].region);
    for (unsigned i = 0; i < f->vp.nqueues; i++) {
        close(f->vp.vq[i].kick_fd);
    }
}

static uint64_t rd(Fixture *f, uint64_t off, unsigned size)
{
    uint8_t data[8] = { 0 };
    uint64_t v = 0;
    /* Through the MMIO table, as a KVM_EXIT_MMIO would. */
    g_assert_true(mmio_dispatch(f->bar + off, data, size, false));
    memcpy(&v, data, size);
    return v;
}

static void wr(Fixture *f, uint64_t off, uint64_t v, unsigned size)
{
    uint8_t data[8];
    memcpy(data, &v, size);
    g_assert_true(mmio_dispatch(f->bar + off, data, size, true));
}

/* Find the vendor capability of @type; returns its offset. */
static uint8_t find_cap(Fixture *f, uint8_t type)
{
    for (uint8_t p = f->vp.pci.config[PCI_CAPABILITY_LIST]; p; p = f->vp.pci.config[p + 1]) {
        if (f->vp.pci.config[p] == PCI_CAP_ID_VNDR && f->vp.pci.config[p + 3] == type) {
            return p;
        }
    }
    return 0;
}

static void test_layout(void)
{
    Fixture f;
    fx_init(&f);
    const uint8_t *c = f.vp.pci.config;

    g_assert_cmphex(pci_get_word(c + PCI_VENDOR_ID), ==, 0x1af4);
    g_assert_cmphex(pci_get_word(c + PCI_DEVICE_ID), ==, 0x1041);
    g_assert_cmphex(c[PCI_REVISION_ID], ==, 1);
    g_assert_cmphex(pci_get_word(c + PCI_SUBSYSTEM_ID), >=, 0x40);
    g_assert_cmphex(pci_get_long(c + 0x20) & 0xf, ==, 0xc);     /* BAR 4: 64-bit, prefetch */
    static const struct { uint8_t type, len; uint32_t off; } want[] = {
        { VIRTIO_PCI_CAP_COMMON_CFG, 16, 0x0000 }, { VIRTIO_PCI_CAP_ISR_CFG, 16, 0x1000 },
        { VIRTIO_PCI_CAP_DEVICE_CFG, 16, 0x2000 }, { VIRTIO_PCI_CAP_NOTIFY_CFG, 20, 0x3000 },
        { VIRTIO_PCI_CAP_PCI_CFG, 20, 0 },
    };
    for (size_t i = 0; i < G_N_ELEMENTS(want); i++) {
        uint8_t p = find_cap(&f, want[i].type);
        g_assert_cmpuint(p, !=, 0);
        g_assert_cmpuint(c[p + 2], ==, want[i].len);
        g_assert_cmpuint(c[p + 4], ==, VIRTIO_PCI_BAR);
        g_assert_cmphex(pci_get_long(c + p + 8), ==, want[i].off);
    }
    g_assert_cmpuint(pci_get_long(c + find_cap(&f, VIRTIO_PCI_CAP_NOTIFY_CFG) + 16), ==, 4);
    /* The device configuration through the BAR. */
    g_assert_cmphex(rd(&f, 0x2000, 4), ==, 0x12005452);
    g_assert_cmphex(rd(&f, 0x2004, 2), ==, 0x5634);
    g_assert_cmphex(rd(&f, 0x2006, 2), ==, 1);
    fx_free(&f);
}

static void test_negotiation(void)
{
    Fixture f;
    fx_init(&f);

    g_assert_cmpuint(rd(&f, 0x12, 2), ==, 2);                     /* num_queues */
    wr(&f, 0x00, 0, 4);
    g_assert_cmphex(rd(&f, 0x04, 4), ==, (1u << 5) | (1u << 15));
    wr(&f, 0x00, 1, 4);
    g_assert_cmphex(rd(&f, 0x04, 4), ==, 1);                      /* VERSION_1 */
    wr(&f, 0x00, 2, 4);
    g_assert_cmphex(rd(&f, 0x04, 4), ==, 0);
    g_assert_cmphex(rd(&f, 0x10, 2), ==, VIRTIO_NO_VECTOR);        /* no MSI-X */

    wr(&f, 0x14, VIRTIO_CONFIG_S_ACKNOWLEDGE | VIRTIO_CONFIG_S_DRIVER, 1);
    /* A bit we did not offer: FEATURES_OK stays clear. */
    wr(&f, 0x08, 0, 4);
    wr(&f, 0x0c, (1u << 5) | (1u << 6), 4);
    wr(&f, 0x08, 1, 4);
    wr(&f, 0x0c, 1, 4);
    wr(&f, 0x14, 0x0b, 1);
    g_assert_cmphex(rd(&f, 0x14, 1), ==, 0x03);
    /* Without VERSION_1 (a legacy driver): refused too. */
    wr(&f, 0x08, 0, 4);
    wr(&f, 0x0c, 1u << 5, 4);
    wr(&f, 0x08, 1, 4);
    wr(&f, 0x0c, 0, 4);
    wr(&f, 0x14, 0x0b, 1);
    g_assert_cmphex(rd(&f, 0x14, 1), ==, 0x03);
    /* Offered bits only, VERSION_1 included: accepted, and frozen from now on. */
    wr(&f, 0x0c, 1, 4);
    wr(&f, 0x14, 0x0b, 1);
    g_assert_cmphex(rd(&f, 0x14, 1), ==, 0x0b);
    g_assert_cmphex(f.vp.driver_features, ==, (1ULL << 32) | (1ULL << 5));
    wr(&f, 0x08, 0, 4);
    wr(&f, 0x0c, 1u << 15, 4);
    g_assert_cmphex(f.vp.driver_features, ==, (1ULL << 32) | (1ULL << 5));
    g_assert_cmpint(f.last_old, ==, 0x03);

    /* Queue set-up: size (at most the maximum), 64-bit addresses as two halves. */
    wr(&f, 0x16, 1, 2);
    g_assert_cmpuint(rd(&f, 0x18, 2), ==, 128);
    g_assert_cmpuint(rd(&f, 0x1e, 2), ==, 1);                     /* queue_notify_off */
    wr(&f, 0x18, 64, 2);
    wr(&f, 0x20, 0x12345000, 4);
    wr(&f, 0x24, 0x1, 4);
    wr(&f, 0x28, 0x2000, 8);
    wr(&f, 0x30, 0x3000, 4);
    wr(&f, 0x1c, 1, 2);
    g_assert_cmpuint(f.vp.vq[1].size, ==, 64);
    g_assert_cmphex(f.vp.vq[1].desc, ==, 0x112345000ULL);
    g_assert_cmphex(f.vp.vq[1].avail, ==, 0x2000);
    g_assert_cmphex(f.vp.vq[1].used, ==, 0x3000);
    g_assert_true(f.vp.vq[1].enabled);
    wr(&f, 0x20, 0x9000, 4);                                       /* enabled: frozen */
    g_assert_cmphex(f.vp.vq[1].desc, ==, 0x112345000ULL);
    g_assert_cmphex(rd(&f, 0x20, 8), ==, 0x112345000ULL);
    wr(&f, 0x16, 0, 2);
    wr(&f, 0x18, 4096, 2);
    g_assert_cmpuint(rd(&f, 0x18, 2), ==, 256);                   /* clipped to the maximum */
    wr(&f, 0x16, 7, 2);                                            /* no such queue */
    g_assert_cmpuint(rd(&f, 0x18, 2), ==, 0);

    /* DRIVER_OK, then a reset: the device is told first, registers go back. */
    wr(&f, 0x14, 0x0f, 1);
    g_assert_cmpint(f.last_old, ==, 0x0b);
    wr(&f, 0x14, 0, 1);
    g_assert_cmpint(f.resets, ==, 1);
    g_assert_cmphex(rd(&f, 0x14, 1), ==, 0);
    g_assert_false(f.vp.vq[1].enabled);
    g_assert_cmpuint(f.vp.vq[1].size, ==, 128);
    g_assert_cmphex(f.vp.driver_features, ==, 0);
    fx_free(&f);
}

static void test_isr_notify(void)
{
    Fixture f;
    uint64_t v;
    fx_init(&f);
    int gsi = pci_slot_gsi(2);

    /* A used-buffer notification raises INTx; reading ISR returns and clears it. */
    virtio_pci_notify_queue(&f.vp, 0);
    g_assert_cmpint(gsi_level[gsi], ==, 1);
    g_assert_cmphex(rd(&f, 0x1001, 1), ==, 0);                    /* not the ISR byte */
    g_assert_cmpint(gsi_level[gsi], ==, 1);
    g_assert_cmphex(rd(&f, 0x1000, 1), ==, VIRTIO_ISR_QUEUE);
    g_assert_cmpint(gsi_level[gsi], ==, 0);
    g_assert_cmphex(rd(&f, 0x1000, 1), ==, 0);
    /* A configuration change: bit 1 and a new generation. */
    uint8_t gen = (uint8_t)rd(&f, 0x15, 1);
    virtio_pci_notify_config(&f.vp);
    g_assert_cmphex(rd(&f, 0x15, 1), ==, (uint8_t)(gen + 1));
    g_assert_cmphex(rd(&f, 0x1000, 4), ==, VIRTIO_ISR_CONFIG);
    /* NEEDS_RESET: set by the device, kept across the driver's writes. */
    wr(&f, 0x08, 1, 4);
    wr(&f, 0x0c, 1, 4);                                            /* VERSION_1 */
    wr(&f, 0x14, 0x0f, 1);
    g_assert_cmphex(rd(&f, 0x14, 1), ==, 0x0f);
    virtio_pci_set_needs_reset(&f.vp);
    g_assert_cmphex(rd(&f, 0x14, 1), ==, 0x4f);
    g_assert_cmphex(rd(&f, 0x1000, 1), ==, VIRTIO_ISR_CONFIG);
    wr(&f, 0x14, 0x0f, 1);
    g_assert_cmphex(rd(&f, 0x14, 1), ==, 0x4f);

    /* Without an ioeventfd a doorbell write exits and the kick eventfd is signalled here. */
    wr(&f, 0x3004, 1, 2);
    g_assert_cmpint(read(f.vp.vq[1].kick_fd, &v, 8), ==, 8);
    g_assert_cmpuint(v, ==, 1);
    g_assert_cmpint(read(f.vp.vq[0].kick_fd, &v, 8), ==, -1);
    g_assert_cmpint(f.notified, ==, 1);
    wr(&f, 0x3010, 4, 2);                                          /* queue 4: none */
    g_assert_cmpint(f.notified, ==, 1);
    fx_free(&f);
}

static void test_pci_cfg_window(void)
{
    Fixture f;
    fx_init(&f);
    uint8_t p = find_cap(&f, VIRTIO_PCI_CAP_PCI_CFG);

    /* Read num_queues (common config offset 0x12, 2 bytes) through configuration space. */
    pci_device_config_write(&f.vp.pci, p + 4, VIRTIO_PCI_BAR, 1);
    pci_device_config_write(&f.vp.pci, p + 8, 0x12, 4);
    pci_device_config_write(&f.vp.pci, p + 12, 2, 4);
    g_assert_cmphex(pci_device_config_read(&f.vp.pci, p + 16, 4), ==, 2);
    /* Write the status through it. */
    pci_device_config_write(&f.vp.pci, p + 8, 0x14, 4);
    pci_device_config_write(&f.vp.pci, p + 12, 1, 4);
    pci_device_config_write(&f.vp.pci, p + 16, VIRTIO_CONFIG_S_ACKNOWLEDGE, 4);
    g_assert_cmphex(f.vp.status, ==, VIRTIO_CONFIG_S_ACKNOWLEDGE);
    /* Misaligned or another BAR: nothing happens. */
    pci_device_config_write(&f.vp.pci, p + 8, 0x13, 4);
    pci_device_config_write(&f.vp.pci, p + 12, 2, 4);
    pci_device_config_write(&f.vp.pci, p + 16, 0xffff, 4);
    g_assert_cmphex(f.vp.status, ==, VIRTIO_CONFIG_S_ACKNOWLEDGE);
    pci_device_config_write(&f.vp.pci, p + 4, 0, 1);
    pci_device_config_write(&f.vp.pci, p + 8, 0x14, 4);
    pci_device_config_write(&f.vp.pci, p + 12, 1, 4);
    pci_device_config_write(&f.vp.pci, p + 16, 0, 4);
    g_assert_cmphex(f.vp.status, ==, VIRTIO_CONFIG_S_ACKNOWLEDGE);
    fx_free(&f);
}

static void test_state(void)
{
    Fixture a, b;
    GError *err = NULL;
    g_autoptr(GByteArray) rec = g_byte_array_new();
    size_t used = 0;

    fx_init(&a);
    a.vp.status = 0x0f;
    a.vp.driver_features = (1ULL << 32) | (1ULL << 5);
    a.vp.isr = VIRTIO_ISR_QUEUE;
    for (unsigned q = 0; q < 2; q++) {
        a.vp.vq[q] = (VirtQueueConf){ .size_max = a.vp.vq[q].size_max, .size = 64,
                                      .enabled = true, .desc = 0x10000 * (q + 1),
                                      .avail = 0x10000 * (q + 1) + 0x400,
                                      .used = 0x10000 * (q + 1) + 0x1000,
                                      .last_avail = (uint16_t)(40000 + q),
                                      .kick_fd = a.vp.vq[q].kick_fd };
    }
    virtio_pci_save(&a.vp, rec);
    fx_free(&a);

    fx_init(&b);
    /* Every truncation is refused. */
    for (size_t n = 0; n < rec->len; n++) {
        g_assert_false(virtio_pci_load(&b.vp, rec->data, n, &used, &err));
        g_clear_error(&err);
    }
    /* A queue larger than the device's maximum, or not a power of two while running. */
    g_autoptr(GByteArray) bad = g_byte_array_new();
    g_byte_array_append(bad, rec->data, rec->len);
    bad->data[22 + 29] = 0x00;                       /* queue 1 size = 0x4000 */
    bad->data[22 + 29 + 1] = 0x40;
    g_assert_false(virtio_pci_load(&b.vp, bad->data, bad->len, &used, &err));
    g_assert_nonnull(strstr(err->message, "queue 1"));
    g_clear_error(&err);
    bad->data[22 + 29 + 1] = 0;
    bad->data[22 + 29] = 48;
    g_assert_false(virtio_pci_load(&b.vp, bad->data, bad->len, &used, &err));
    g_clear_error(&err);

    g_assert_true(virtio_pci_load(&b.vp, rec->data, rec->len, &used, &err));
    g_assert_cmpuint(used, ==, rec->len);
    virtio_pci_post_load(&b.vp);
    g_assert_cmphex(b.vp.status, ==, 0x0f);
    g_assert_cmphex(b.vp.driver_features, ==, (1ULL << 32) | (1ULL << 5));
    g_assert_cmpuint(b.vp.vq[1].last_avail, ==, 40001);
    g_assert_cmphex(b.vp.vq[1].used, ==, 0x21000);
    g_assert_cmpuint(b.vp.vq[0].size, ==, 64);
    g_assert_cmpint(gsi_level[pci_slot_gsi(2)], ==, 1);          /* ISR pending: line up */
    fx_free(&b);
}

int main(int argc, char **argv)
{
    g_test_init(&argc, &argv, NULL);
    g_test_add_func("/virtio-pci/layout", test_layout);
    g_test_add_func("/virtio-pci/negotiation", test_negotiation);
    g_test_add_func("/virtio-pci/isr-notify", test_isr_notify);
    g_test_add_func("/virtio-pci/pci-cfg-window", test_pci_cfg_window);
    g_test_add_func("/virtio-pci/state", test_state);
    return g_test_run();
}
