/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * One PCI function's configuration space: the byte masks that make
 * registers read-only, writable or write-1-to-clear, BAR sizing and
 * decoding, the capability list, INTx, and the "pci" migration record.
 * The bus (pci-host.c) routes configuration cycles here.
 */
#include "qemu/osdep.h"
#include "hw/pci/pci.h"
#include "migration/record.h"

#define PCI_CAP_START 0x40

void pci_device_init(PCIDevice *d, const char *name, uint16_t vendor, uint16_t device,
                     uint32_t class_prog, uint8_t revision, uint16_t subsys_vendor,
                     uint16_t subsys, const PCIDeviceOps *ops, void *opaque)
{
    memset(d, 0, sizeof(*d));
    g_strlcpy(d->name, name, sizeof(d->name));
    d->ops = ops;
    d->opaque = opaque;
    pci_set_word(&d->config[PCI_VENDOR_ID], vendor);
    pci_set_word(&d->config[PCI_DEVICE_ID], device);
    d->config[PCI_REVISION_ID] = revision;
    d->config[PCI_CLASS_PROG] = (uint8_t)class_prog;
    pci_set_word(&d->config[PCI_CLASS_DEVICE], (uint16_t)(class_prog >> 8));
    pci_set_word(&d->config[PCI_SUBSYSTEM_VENDOR_ID], subsys_vendor);
    pci_set_word(&d->config[PCI_SUBSYSTEM_ID], subsys);
    d->config[PCI_INTERRUPT_PIN] = 1;            /* INTA; the host bridge clears it */

    pci_set_word(&d->wmask[PCI_COMMAND],
                 PCI_COMMAND_IO | PCI_COMMAND_MEMORY | PCI_COMMAND_MASTER |
                 PCI_COMMAND_PARITY | PCI_COMMAND_SERR | PCI_COMMAND_INTX_DISABLE);
    pci_set_word(&d->w1cmask[PCI_STATUS], PCI_STATUS_W1C);
    d->wmask[PCI_CACHE_LINE_SIZE] = 0xff;
    d->wmask[PCI_LATENCY_TIMER] = 0xff;
    d->wmask[PCI_INTERRUPT_LINE] = 0xff;
    d->cap_free = PCI_CAP_START;
    memcpy(d->reset_config, d->config, sizeof(d->config));
}

void pci_device_add_bar(PCIDevice *d, int bar, PCIBarType type, bool prefetchable,
                        uint64_t size, MMIOReadFn read, MMIOWriteFn write, void *opaque)
{
    PCIBar *b = &d->bars[bar];
    uint32_t off = PCI_BASE_ADDRESS_0 + 4u * (uint32_t)bar;
    uint32_t lowbits = (type == PCI_BAR_MEM64 ? PCI_BASE_ADDRESS_MEM_TYPE_64 : 0) |
                       (prefetchable ? PCI_BASE_ADDRESS_MEM_PREFETCH : 0);
    uint64_t mask = ~(size - 1);

    g_assert(bar >= 0 && bar < PCI_NUM_BARS && (type != PCI_BAR_MEM64 || bar < 5));
    g_assert(size >= 16 && (size & (size - 1)) == 0);
    b->type = type;
    b->prefetchable = prefetchable;
    b->size = size;
    b->region = (MMIORegion){ .name = d->name, .size = size, .read = read,
                              .write = write, .opaque = opaque };
    /* Sizing: the writable bits are exactly the address bits above the size. */
    pci_set_long(&d->config[off], lowbits);
    pci_set_long(&d->wmask[off], (uint32_t)mask & ~0xfu);
    if (type == PCI_BAR_MEM64) {
        pci_set_long(&d->config[off + 4], 0);
        pci_set_long(&d->wmask[off + 4], (uint32_t)(mask >> 32));
    }
    memcpy(d->reset_config, d->config, sizeof(d->config));
}

uint8_t pci_device_add_capability(PCIDevice *d, uint8_t cap_id, uint8_t len)
{
    uint8_t off = d->cap_free;

    g_assert(len >= 2 && (unsigned)off + len <= PCI_CONFIG_SPACE_SIZE);
    d->config[off] = cap_id;
    d->config[off + 1] = 0;
    if (d->cap_last) {
        d->config[d->cap_last + 1] = off;
    } else {
        d->config[PCI_CAPABILITY_LIST] = off;
        pci_set_word(&d->config[PCI_STATUS],
                     pci_get_word(&d->config[PCI_STATUS]) | PCI_STATUS_CAP_LIST);
    }
    d->cap_last = off;
    d->cap_free = (uint8_t)GW_ROUND_UP((unsigned)off + len, 4u);
    memcpy(d->reset_config, d->config, sizeof(d->config));
    return off;
}

uint64_t pci_device_bar_addr(PCIDevice *d, int bar)
{
    uint32_t off = PCI_BASE_ADDRESS_0 + 4u * (uint32_t)bar;
    uint64_t a = pci_get_long(&d->config[off]) & ~0xfull;

    if (d->bars[bar].type == PCI_BAR_MEM64) {
        a |= (uint64_t)pci_get_long(&d->config[off + 4]) << 32;
    }
    return a;
}

/*
 * Where BAR @bar decodes, or false. Not at 0 (unassigned), and not where
 * its last byte would reach the top of its address space: that is what a
 * BAR holds while the guest sizes it with all ones.
 */
static bool pci_bar_decodes(PCIDevice *d, int bar, uint64_t *addr)
{
    PCIBar *b = &d->bars[bar];
    uint64_t a = pci_device_bar_addr(d, bar);
    uint64_t limit = b->type == PCI_BAR_MEM64 ? UINT64_MAX : UINT32_MAX;

    if (!(pci_get_word(&d->config[PCI_COMMAND]) & PCI_COMMAND_MEMORY) || a == 0 ||
        a > limit - b->size + 1 || a + b->size - 1 >= limit) {
        return false;
    }
    *addr = a;
    return true;
}

void pci_device_update_mappings(PCIDevice *d)
{
    for (int i = 0; i < PCI_NUM_BARS; i++) {
        PCIBar *b = &d->bars[i];
        uint64_t addr = 0;
        bool on;

        if (b->type == PCI_BAR_NONE) {
            continue;
        }
        on = pci_bar_decodes(d, i, &addr);
        if (on == b->region.mapped && (!on || addr == b->region.addr)) {
            continue;
        }
        if (on) {
            mmio_region_map(&b->region, addr);
        } else {
            mmio_region_unmap(&b->region);
        }
        if (d->ops && d->ops->bar_moved) {
            d->ops->bar_moved(d, i, on, addr);
        }
    }
}

uint32_t pci_device_config_read(PCIDevice *d, uint32_t off, unsigned len)
{
    uint32_t v = 0;

    if (off >= PCI_CONFIG_SPACE_SIZE || len == 0 || len > 4) {
        return 0xffffffffu;
    }
    if (d->ops && d->ops->config_read && d->ops->config_read(d, off, len, &v)) {
        return v;
    }
    for (unsigned i = 0; i < len && off + i < PCI_CONFIG_SPACE_SIZE; i++) {
        v |= (uint32_t)d->config[off + i] << (8 * i);
    }
    return v;
}

static bool ranges_overlap(uint32_t a, unsigned alen, uint32_t b, unsigned blen)
{
    return a < b + blen && b < a + alen;
}

void pci_device_config_write(PCIDevice *d, uint32_t off, uint32_t val, unsigned len)
{
    uint16_t old_cmd = pci_get_word(&d->config[PCI_COMMAND]);

    if (off >= PCI_CONFIG_SPACE_SIZE || len == 0 || len > 4) {
        return;
    }
    for (unsigned i = 0; i < len && off + i < PCI_CONFIG_SPACE_SIZE; i++) {
        uint8_t b = (uint8_t)(val >> (8 * i));
        uint8_t *c = &d->config[off + i];
        *c = (uint8_t)((*c & ~d->wmask[off + i]) | (b & d->wmask[off + i]));
        *c &= (uint8_t)~(b & d->w1cmask[off + i]);
    }
    if (ranges_overlap(off, len, PCI_COMMAND, 2) ||
        ranges_overlap(off, len, PCI_BASE_ADDRESS_0, 4 * PCI_NUM_BARS)) {
        pci_device_update_mappings(d);
    }
    if ((old_cmd ^ pci_get_word(&d->config[PCI_COMMAND])) & PCI_COMMAND_INTX_DISABLE) {
        pci_bus_device_irq_changed(d);
    }
    if (d->ops && d->ops->config_write) {
        d->ops->config_write(d, off, val, len);
    }
}

void pci_device_set_irq(PCIDevice *d, bool level)
{
    uint16_t st = pci_get_word(&d->config[PCI_STATUS]);

    d->intx_level = level;
    /* Status bit 3 shows the device's interrupt whether or not INTx is disabled. */
    pci_set_word(&d->config[PCI_STATUS],
                 level ? st | PCI_STATUS_INTERRUPT : st & ~PCI_STATUS_INTERRUPT);
    pci_bus_device_irq_changed(d);
}

void pci_device_reset(PCIDevice *d)
{
    memcpy(d->config, d->reset_config, sizeof(d->config));
    d->intx_level = false;
    pci_bus_device_irq_changed(d);
    pci_device_update_mappings(d);
    if (d->ops && d->ops->reset) {
        d->ops->reset(d);
    }
}

/* The record: configuration space as the guest sees it, byte by byte. */
typedef struct PCIConfigRecord {
    uint8_t config[PCI_CONFIG_SPACE_SIZE];
} PCIConfigRecord;

static const RecordField pci_config_record_fields[] = {
    RECORD_FIELD(PCIConfigRecord, config, RECORD_U8),
};

static const RecordDesc pci_config_record_desc = {
    .name = "PCI configuration", .size = sizeof(PCIConfigRecord),
    .fields = pci_config_record_fields, .n_fields = G_N_ELEMENTS(pci_config_record_fields),
    .version_min = PCI_RECORD_VERSION, .version_max = PCI_RECORD_VERSION,
};

void pci_device_save(PCIDevice *d, GByteArray *out)
{
    PCIConfigRecord rec;

    memcpy(rec.config, d->config, sizeof(rec.config));
    record_save(&pci_config_record_desc, PCI_RECORD_VERSION, &rec, out);
}

bool pci_device_load(PCIDevice *d, const uint8_t *buf, size_t len, uint32_t version,
                     GError **errp)
{
    PCIConfigRecord rec;

    if (!record_load(&pci_config_record_desc, version, &rec, buf, len, errp)) {
        g_prefix_error(errp, "PCI device %s: ", d->name);
        return false;
    }
    for (unsigned i = 0; i < PCI_CONFIG_SPACE_SIZE; i++) {
        uint8_t ro = (uint8_t)~(d->wmask[i] | d->w1cmask[i]);
        if (i == PCI_STATUS) {
            ro &= (uint8_t)~PCI_STATUS_INTERRUPT;    /* state, not identity */
        }
        if ((rec.config[i] ^ d->config[i]) & ro) {
            error_setg(errp, "PCI device %s at %02x.%u: the source's configuration space "
                       "differs from ours at offset 0x%02x (0x%02x, expected 0x%02x): "
                       "not the same device", d->name, PCI_SLOT(d->devfn),
                       PCI_FUNC(d->devfn), i, rec.config[i], d->config[i]);
            return false;
        }
    }
    memcpy(d->config, rec.config, PCI_CONFIG_SPACE_SIZE);
    return true;
}

void pci_device_post_load(PCIDevice *d)
{
    pci_device_update_mappings(d);
    d->intx_level = (pci_get_word(&d->config[PCI_STATUS]) & PCI_STATUS_INTERRUPT) != 0;
    pci_bus_device_irq_changed(d);
}
