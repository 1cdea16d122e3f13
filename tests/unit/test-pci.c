/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * Unit tests for PCI bus 0 (hw/pci/, hw/mmio.c): configuration mechanism #1
 * through the port handlers, BAR sizing, assignment, decoding and moves,
 * masks, the capability list, INTx sharing, and the migration record.
 */
#include "qemu/osdep.h"
#include "hw/ioport.h"
#include "hw/pci/pci.h"

/* pci-host.c registers its ports through this; the test calls the handlers itself. */
void ioport_register(uint16_t base, uint16_t len, IOPortReadFn read,
                     IOPortWriteFn write, void *opaque)
{
}

static int gsi_level[24];
static int gsi_changes;

static void fake_set_gsi(void *opaque, int gsi, bool level)
{
    g_assert_cmpint(gsi, >=, 16);
    g_assert_cmpint(gsi, <, 24);
    gsi_level[gsi] = level;
    gsi_changes++;
}

static const PCIBusOps bus_ops = { .set_gsi = fake_set_gsi };

typedef struct TestDev {
    PCIDevice pci;
    uint8_t bar_mem[4096];
    int moves;
    bool last_mapped;
    uint64_t last_addr;
} TestDev;

static uint64_t tdev_read(void *opaque, uint64_t off, unsigned size)
{
    TestDev *t = opaque;
    uint64_t v = 0;
    memcpy(&v, &t->bar_mem[off % sizeof(t->bar_mem)], size);
    return v;
}

static void tdev_write(void *opaque, uint64_t off, uint64_t val, unsigned size)
{
    TestDev *t = opaque;
    memcpy(&t->bar_mem[off % sizeof(t->bar_mem)], &val, size);
}

static void tdev_bar_moved(PCIDevice *d, int bar, bool mapped, uint64_t addr)
{
    TestDev *t = d->opaque;
    t->moves++;
    t->last_mapped = mapped;
    t->last_addr = addr;
}

static const PCIDeviceOps tdev_ops = { .bar_moved = tdev_bar_moved };

static TestDev *tdev_new(uint16_t device)
{
    TestDev *t = g_new0(TestDev, 1);

    pci_device_init(&t->pci, "tdev", 0x1af4, device, 0x020000, 1, 0x1af4, 0x1100,
                    &tdev_ops, t);
    pci_device_add_bar(&t->pci, 4, PCI_BAR_MEM64, true, 0x4000, tdev_read, tdev_write, t);
    pci_device_add_bar(&t->pci, 1, PCI_BAR_MEM32, false, 0x1000, tdev_read, tdev_write, t);
    uint8_t c = pci_device_add_capability(&t->pci, PCI_CAP_ID_VNDR, 16);
    t->pci.config[c + 2] = 16;
    uint8_t c2 = pci_device_add_capability(&t->pci, PCI_CAP_ID_VNDR, 20);
    t->pci.config[c2 + 2] = 20;
    return t;
}

#define CFG(slot, fn, reg) (0x80000000u | (uint32_t)(slot) << 11 | (uint32_t)(fn) << 8 | (reg))

static uint32_t cfg_read(PCIBus *bus, int slot, int fn, unsigned reg, unsigned len)
{
    pci_host_ioport_write(bus, 0xcf8, CFG(slot, fn, reg & 0xfc), 4);
    return pci_host_ioport_read(bus, (uint16_t)(0xcfc + (reg & 3)), len);
}

static void cfg_write(PCIBus *bus, int slot, int fn, unsigned reg, uint32_t v, unsigned len)
{
    pci_host_ioport_write(bus, 0xcf8, CFG(slot, fn, reg & 0xfc), 4);
    pci_host_ioport_write(bus, (uint16_t)(0xcfc + (reg & 3)), v, len);
}

static uint64_t mmio_read32(uint64_t gpa)
{
    uint8_t data[4];
    uint32_t v;
    mmio_dispatch(gpa, data, 4, false);
    memcpy(&v, data, 4);
    return v;
}

static void test_mechanism1(void)
{
    PCIBus *bus = pci_bus_new(&bus_ops, NULL);

    /* The host bridge at 00:00.0, in dword, word and byte reads. */
    g_assert_cmphex(cfg_read(bus, 0, 0, 0, 4), ==, 0x00081b36);
    g_assert_cmphex(cfg_read(bus, 0, 0, 2, 2), ==, 0x0008);
    g_assert_cmphex(cfg_read(bus, 0, 0, 0x0b, 1), ==, 0x06);    /* bridge class */
    g_assert_cmphex(cfg_read(bus, 0, 0, 0x0a, 1), ==, 0x00);    /* host bridge subclass */
    /* Nobody at 00:03.0 or 00:00.1, nor on bus 1: all ones at every width. */
    g_assert_cmphex(cfg_read(bus, 3, 0, 0, 4), ==, 0xffffffff);
    g_assert_cmphex(cfg_read(bus, 3, 0, 2, 2), ==, 0xffff);
    g_assert_cmphex(cfg_read(bus, 3, 0, 1, 1), ==, 0xff);
    g_assert_cmphex(cfg_read(bus, 0, 1, 0, 4), ==, 0xffffffff);
    pci_host_ioport_write(bus, 0xcf8, 0x80010000u, 4);
    g_assert_cmphex(pci_host_ioport_read(bus, 0xcfc, 4), ==, 0xffffffff);
    /* The enable bit clear: no configuration cycle. */
    pci_host_ioport_write(bus, 0xcf8, 0x00000000u, 4);
    g_assert_cmphex(pci_host_ioport_read(bus, 0xcfc, 4), ==, 0xffffffff);
    /* The address register reads back without its low two bits. */
    pci_host_ioport_write(bus, 0xcf8, 0x80000007u, 4);
    g_assert_cmphex(pci_host_ioport_read(bus, 0xcf8, 4), ==, 0x80000004u);
    /* A byte access at 0xCF8 is not the address register (0xCF9 is reset control). */
    pci_host_ioport_write(bus, 0xcf8, 0x12, 1);
    g_assert_cmphex(pci_host_ioport_read(bus, 0xcf8, 4), ==, 0x80000004u);
    g_assert_cmphex(pci_host_ioport_read(bus, 0xcf8, 1), ==, 0xffffffff);
    /* Read-only identity: writes do not stick. */
    cfg_write(bus, 0, 0, 0, 0x12345678, 4);
    g_assert_cmphex(cfg_read(bus, 0, 0, 0, 4), ==, 0x00081b36);
}

static void test_bars(void)
{
    PCIBus *bus = pci_bus_new(&bus_ops, NULL);
    TestDev *t = tdev_new(0x1041);
    GError *err = NULL;

    g_assert_true(pci_bus_add_device(bus, &t->pci, -1, &err));
    g_assert_cmpint(PCI_SLOT(t->pci.devfn), ==, 1);    /* first free slot */
    g_assert_true(pci_bus_assign_bars(bus, &err));
    /* Largest first, naturally aligned, from the window's start. */
    g_assert_cmphex(pci_device_bar_addr(&t->pci, 4), ==, 0xE0000000ULL);
    g_assert_cmphex(pci_device_bar_addr(&t->pci, 1), ==, 0xE0004000ULL);
    g_assert_cmphex(cfg_read(bus, 1, 0, 0x20, 4), ==, 0xE000000Cu);   /* 64-bit, prefetch */
    g_assert_cmphex(cfg_read(bus, 1, 0, 0x24, 4), ==, 0);
    g_assert_cmphex(cfg_read(bus, 1, 0, 0x14, 4), ==, 0xE0004000u);
    g_assert_cmphex(cfg_read(bus, 1, 0, PCI_COMMAND, 2) & PCI_COMMAND_MEMORY, ==,
                    PCI_COMMAND_MEMORY);
    g_assert_cmpint(cfg_read(bus, 1, 0, PCI_INTERRUPT_LINE, 1), ==, 17);
    g_assert_cmpint(cfg_read(bus, 1, 0, PCI_INTERRUPT_PIN, 1), ==, 1);
    g_assert_true(t->last_mapped);

    /* Decoding: the BAR answers at its address, nothing above it. */
    t->bar_mem[0] = 0xa5;
    g_assert_cmphex(mmio_read32(0xE0000000ULL) & 0xff, ==, 0xa5);
    g_assert_cmphex(mmio_read32(0xE0008000ULL), ==, 0xffffffff);

    /* Sizing: all ones read back the size mask and the type bits; decoding stops. */
    cfg_write(bus, 1, 0, 0x20, 0xffffffff, 4);
    cfg_write(bus, 1, 0, 0x24, 0xffffffff, 4);
    g_assert_cmphex(cfg_read(bus, 1, 0, 0x20, 4), ==, 0xFFFFC00Cu);
    g_assert_cmphex(cfg_read(bus, 1, 0, 0x24, 4), ==, 0xFFFFFFFFu);
    g_assert_false(t->pci.bars[4].region.mapped);
    cfg_write(bus, 1, 0, 0x14, 0xffffffff, 4);
    g_assert_cmphex(cfg_read(bus, 1, 0, 0x14, 4), ==, 0xFFFFF000u);
    /* Put it back: the guest's move is honoured, to a new address. */
    cfg_write(bus, 1, 0, 0x20, 0xD0000000u, 4);
    cfg_write(bus, 1, 0, 0x24, 0, 4);
    g_assert_true(t->pci.bars[4].region.mapped);
    g_assert_cmphex(t->last_addr, ==, 0xD0000000ULL);
    g_assert_cmphex(mmio_read32(0xD0000000ULL) & 0xff, ==, 0xa5);
    g_assert_cmphex(mmio_read32(0xE0000000ULL), ==, 0xffffffff);
    /* A 64-bit BAR above 4 GiB. */
    cfg_write(bus, 1, 0, 0x24, 0x1, 4);
    g_assert_cmphex(pci_device_bar_addr(&t->pci, 4), ==, 0x1D0000000ULL);
    g_assert_cmphex(mmio_read32(0x1D0000000ULL) & 0xff, ==, 0xa5);
    /* Memory decoding off: nothing answers; on again: back. */
    int moves = t->moves;
    cfg_write(bus, 1, 0, PCI_COMMAND, 0, 2);
    g_assert_false(t->pci.bars[4].region.mapped);
    g_assert_false(t->last_mapped);
    g_assert_cmphex(mmio_read32(0x1D0000000ULL), ==, 0xffffffff);
    cfg_write(bus, 1, 0, PCI_COMMAND, PCI_COMMAND_MEMORY, 2);
    g_assert_true(t->pci.bars[4].region.mapped);
    g_assert_cmpint(t->moves, >, moves);
    /* Unaligned address bits are not writable (natural alignment). */
    cfg_write(bus, 1, 0, 0x14, 0xE0004abc, 4);
    g_assert_cmphex(cfg_read(bus, 1, 0, 0x14, 4), ==, 0xE0004000u);

    /* System reset: back to what godwit assigned. */
    pci_bus_reset(bus);
    g_assert_cmphex(pci_device_bar_addr(&t->pci, 4), ==, 0xE0000000ULL);
    g_assert_true(t->pci.bars[4].region.mapped);
    mmio_region_unmap(&t->pci.bars[4].region);
    mmio_region_unmap(&t->pci.bars[1].region);
}

static void test_masks_and_caps(void)
{
    PCIBus *bus = pci_bus_new(&bus_ops, NULL);
    TestDev *t = tdev_new(0x1041);
    GError *err = NULL;

    g_assert_true(pci_bus_add_device(bus, &t->pci, 3, &err));
    /* Capability list: status bit, pointer, chain, end. */
    g_assert_cmphex(cfg_read(bus, 3, 0, PCI_STATUS, 2) & PCI_STATUS_CAP_LIST, ==,
                    PCI_STATUS_CAP_LIST);
    uint8_t p = (uint8_t)cfg_read(bus, 3, 0, PCI_CAPABILITY_LIST, 1);
    g_assert_cmpint(p, ==, 0x40);
    g_assert_cmpint(cfg_read(bus, 3, 0, p, 1), ==, PCI_CAP_ID_VNDR);
    uint8_t p2 = (uint8_t)cfg_read(bus, 3, 0, p + 1u, 1);
    g_assert_cmpint(p2, ==, 0x50);
    g_assert_cmpint(cfg_read(bus, 3, 0, p2 + 2u, 1), ==, 20);
    g_assert_cmpint(cfg_read(bus, 3, 0, p2 + 1u, 1), ==, 0);
    /* Capabilities are read-only unless the device says otherwise. */
    cfg_write(bus, 3, 0, p2, 0xffffffff, 4);
    g_assert_cmpint(cfg_read(bus, 3, 0, p2, 1), ==, PCI_CAP_ID_VNDR);
    /* Writable: command bits, latency, line; not: the pin, the cap pointer. */
    cfg_write(bus, 3, 0, PCI_COMMAND, 0xffff, 2);
    g_assert_cmphex(cfg_read(bus, 3, 0, PCI_COMMAND, 2), ==, 0x0547);
    cfg_write(bus, 3, 0, PCI_INTERRUPT_LINE, 0x0405, 2);
    g_assert_cmpint(cfg_read(bus, 3, 0, PCI_INTERRUPT_LINE, 1), ==, 5);
    g_assert_cmpint(cfg_read(bus, 3, 0, PCI_INTERRUPT_PIN, 1), ==, 1);
    cfg_write(bus, 3, 0, PCI_CAPABILITY_LIST, 0, 1);
    g_assert_cmpint(cfg_read(bus, 3, 0, PCI_CAPABILITY_LIST, 1), ==, 0x40);
    /* Status error bits are write-1-to-clear. */
    t->pci.config[PCI_STATUS + 1] |= 0x20;           /* received master abort */
    cfg_write(bus, 3, 0, PCI_STATUS, 0, 2);
    g_assert_cmphex(cfg_read(bus, 3, 0, PCI_STATUS, 2) & 0x2000, ==, 0x2000);
    cfg_write(bus, 3, 0, PCI_STATUS, 0x2000, 2);
    g_assert_cmphex(cfg_read(bus, 3, 0, PCI_STATUS, 2) & 0x2000, ==, 0);
    /* Slot in use, slot out of range. */
    TestDev *u = tdev_new(0x1041);
    g_assert_false(pci_bus_add_device(bus, &u->pci, 3, &err));
    g_assert_nonnull(strstr(err->message, "in use by tdev"));
    g_clear_error(&err);
    g_assert_false(pci_bus_add_device(bus, &u->pci, 32, &err));
    g_clear_error(&err);
}

static void test_intx(void)
{
    PCIBus *bus = pci_bus_new(&bus_ops, NULL);
    TestDev *a = tdev_new(0x1041), *b = tdev_new(0x1041), *c = tdev_new(0x1041);
    GError *err = NULL;

    memset(gsi_level, 0, sizeof(gsi_level));
    g_assert_true(pci_bus_add_device(bus, &a->pci, 1, &err));
    g_assert_true(pci_bus_add_device(bus, &b->pci, 9, &err));    /* shares GSI 17 */
    g_assert_true(pci_bus_add_device(bus, &c->pci, 2, &err));
    g_assert_cmpint(pci_slot_gsi(1), ==, 17);
    g_assert_cmpint(pci_slot_gsi(9), ==, 17);
    g_assert_cmpint(pci_slot_gsi(2), ==, 18);
    g_assert_cmpint(cfg_read(bus, 9, 0, PCI_INTERRUPT_LINE, 1), ==, 17);

    gsi_changes = 0;
    pci_device_set_irq(&a->pci, true);
    g_assert_cmpint(gsi_level[17], ==, 1);
    g_assert_cmphex(cfg_read(bus, 1, 0, PCI_STATUS, 2) & PCI_STATUS_INTERRUPT, ==,
                    PCI_STATUS_INTERRUPT);
    pci_device_set_irq(&b->pci, true);
    g_assert_cmpint(gsi_changes, ==, 1);                    /* already high */
    pci_device_set_irq(&a->pci, false);
    g_assert_cmpint(gsi_level[17], ==, 1);                  /* b still holds it */
    pci_device_set_irq(&b->pci, false);
    g_assert_cmpint(gsi_level[17], ==, 0);
    g_assert_cmpint(gsi_level[18], ==, 0);
    /* INTx disable masks the line but not the status bit; clearing it re-asserts. */
    cfg_write(bus, 2, 0, PCI_COMMAND, PCI_COMMAND_INTX_DISABLE, 2);
    pci_device_set_irq(&c->pci, true);
    g_assert_cmpint(gsi_level[18], ==, 0);
    g_assert_cmphex(cfg_read(bus, 2, 0, PCI_STATUS, 2) & PCI_STATUS_INTERRUPT, ==,
                    PCI_STATUS_INTERRUPT);
    cfg_write(bus, 2, 0, PCI_COMMAND, 0, 2);
    g_assert_cmpint(gsi_level[18], ==, 1);
    cfg_write(bus, 2, 0, PCI_COMMAND, PCI_COMMAND_INTX_DISABLE, 2);
    g_assert_cmpint(gsi_level[18], ==, 0);
    /* Reset releases the line. */
    cfg_write(bus, 2, 0, PCI_COMMAND, 0, 2);
    g_assert_cmpint(gsi_level[18], ==, 1);
    pci_bus_reset(bus);
    g_assert_cmpint(gsi_level[18], ==, 0);
}

static void test_record(void)
{
    PCIBus *src_bus = pci_bus_new(&bus_ops, NULL), *dst_bus = pci_bus_new(&bus_ops, NULL);
    TestDev *s = tdev_new(0x1041), *d = tdev_new(0x1041), *other = tdev_new(0x1042);
    GError *err = NULL;
    g_autoptr(GByteArray) rec = g_byte_array_new();

    memset(gsi_level, 0, sizeof(gsi_level));
    g_assert_true(pci_bus_add_device(src_bus, &s->pci, 4, &err));
    g_assert_true(pci_bus_add_device(dst_bus, &d->pci, 4, &err));
    g_assert_true(pci_bus_assign_bars(src_bus, &err));
    /* The source's guest moved BAR 4 and raised its interrupt. */
    cfg_write(src_bus, 4, 0, 0x20, 0xC8000000u, 4);
    cfg_write(src_bus, 4, 0, PCI_COMMAND, PCI_COMMAND_MEMORY | PCI_COMMAND_MASTER, 2);
    pci_device_set_irq(&s->pci, true);
    pci_device_save(&s->pci, rec);
    /* Golden: the record is configuration space, byte for byte. */
    g_assert_cmpmem(rec->data, rec->len, s->pci.config, PCI_CONFIG_SPACE_SIZE);
    g_assert_cmpmem(rec->data, 4, "\xf4\x1a\x41\x10", 4);      /* vendor, device */
    g_assert_cmphex(pci_get_long(rec->data + 0x20) & ~0xfu, ==, 0xC8000000u);
    pci_device_set_irq(&s->pci, false);
    mmio_region_unmap(&s->pci.bars[4].region);
    mmio_region_unmap(&s->pci.bars[1].region);

    /* Truncated, wrong version, another device: refused with a sentence. */
    g_assert_false(pci_device_load(&d->pci, rec->data, 255, 1, &err));
    g_assert_nonnull(strstr(err->message, "255 bytes"));
    g_clear_error(&err);
    g_assert_false(pci_device_load(&d->pci, rec->data, 256, 2, &err));
    g_assert_nonnull(strstr(err->message, "version 2 is not supported"));
    g_clear_error(&err);
    g_assert_false(pci_device_load(&other->pci, rec->data, 256, 1, &err));
    g_assert_nonnull(strstr(err->message, "not the same device"));
    g_clear_error(&err);

    g_assert_true(pci_device_load(&d->pci, rec->data, rec->len, 1, &err));
    pci_device_post_load(&d->pci);
    g_assert_true(d->pci.bars[4].region.mapped);
    g_assert_cmphex(d->pci.bars[4].region.addr, ==, 0xC8000000ULL);
    g_assert_cmpint(gsi_level[pci_slot_gsi(4)], ==, 1);
    g_assert_cmphex(cfg_read(dst_bus, 4, 0, PCI_COMMAND, 2), ==,
                    PCI_COMMAND_MEMORY | PCI_COMMAND_MASTER);
    mmio_region_unmap(&d->pci.bars[4].region);
}

int main(int argc, char **argv)
{
    g_test_init(&argc, &argv, NULL);
    g_test_add_func("/pci/mechanism1", test_mechanism1);
    g_test_add_func("/pci/bars", test_bars);
    g_test_add_func("/pci/masks-caps", test_masks_and_caps);
    g_test_add_func("/pci/intx", test_intx);
    g_test_add_func("/pci/record", test_record);
    return g_test_run();
}
