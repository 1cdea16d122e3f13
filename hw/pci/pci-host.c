/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * PCI bus 0 and its host bridge: configuration mechanism #1 at
 * 0xCF8/0xCFC, slot allocation, BAR assignment in place of firmware, and
 * INTx: slot s drives GSI 16 + (s % 8), ORed over the devices that share it.
 */
#include "qemu/osdep.h"
#include "hw/ioport.h"
#include "hw/pci/pci.h"
#include "migration/register.h"

#define PCI_CONFIG_ADDR_PORT 0xcf8
#define PCI_CONFIG_DATA_PORT 0xcfc
#define PCI_CONFIG_ADDR_ENABLE 0x80000000u

/* The host bridge's identity: Red Hat's generic PCIe host, which no x86 driver binds. */
#define PCI_HOST_VENDOR 0x1b36
#define PCI_HOST_DEVICE 0x0008
#define PCI_CLASS_BRIDGE_HOST 0x060000

struct PCIBus {
    PCIBusOps ops;
    void *opaque;
    uint32_t config_addr;                 /* 0xCF8 */
    PCIDevice *devices[256];              /* by devfn */
    PCIDevice host;
    unsigned gsi_count[PCI_INTX_GSI_COUNT]; /* devices asserting each GSI */
};

int pci_slot_gsi(int slot)
{
    return PCI_INTX_GSI_BASE + slot % PCI_INTX_GSI_COUNT;
}

void pci_bus_device_irq_changed(PCIDevice *d)
{
    PCIBus *bus = d->bus;
    bool drive = d->intx_level && d->config[PCI_INTERRUPT_PIN] &&
                 !(pci_get_word(&d->config[PCI_COMMAND]) & PCI_COMMAND_INTX_DISABLE);

    if (!bus || drive == d->intx_driven) {
        return;
    }
    d->intx_driven = drive;
    int gsi = pci_slot_gsi(PCI_SLOT(d->devfn));
    unsigned *count = &bus->gsi_count[gsi - PCI_INTX_GSI_BASE];
    if (drive) {
        if ((*count)++ == 0 && bus->ops.set_gsi) {
            bus->ops.set_gsi(bus->opaque, gsi, true);
        }
    } else if (*count && --(*count) == 0 && bus->ops.set_gsi) {
        bus->ops.set_gsi(bus->opaque, gsi, false);
    }
}

static bool pci_record_save(void *opaque, GByteArray *out, GError **errp)
{
    pci_device_save(opaque, out);
    return true;
}

static bool pci_record_load(void *opaque, const uint8_t *buf, size_t len, uint32_t version,
                            GError **errp)
{
    return pci_device_load(opaque, buf, len, version, errp);
}

static void pci_record_post_load(void *opaque)
{
    pci_device_post_load(opaque);
}

static void pci_bus_attach(PCIBus *bus, PCIDevice *d, uint8_t devfn)
{
    d->bus = bus;
    d->devfn = devfn;
    bus->devices[devfn] = d;
}

void pci_bus_register_records(PCIBus *bus)
{
    for (int devfn = 0; devfn < 256; devfn++) {
        PCIDevice *d = bus->devices[devfn];
        if (!d) {
            continue;
        }
        SaveStateHandler h = {
            .idstr = "pci", .instance_id = (uint32_t)devfn, .version = PCI_RECORD_VERSION,
            .priority = SAVESTATE_PRIO_DEVICE, .save = pci_record_save,
            .load = pci_record_load, .post_load_all = pci_record_post_load, .opaque = d,
        };
        register_savestate(&h);
    }
}

PCIBus *pci_bus_new(const PCIBusOps *ops, void *opaque)
{
    PCIBus *bus = g_new0(PCIBus, 1);

    bus->ops = *ops;
    bus->opaque = opaque;
    pci_device_init(&bus->host, "pci-host", PCI_HOST_VENDOR, PCI_HOST_DEVICE,
                    PCI_CLASS_BRIDGE_HOST, 0, 0, 0, NULL, NULL);
    bus->host.config[PCI_INTERRUPT_PIN] = 0;      /* a host bridge raises no INTx */
    memcpy(bus->host.reset_config, bus->host.config, PCI_CONFIG_SPACE_SIZE);
    pci_bus_attach(bus, &bus->host, 0);
    return bus;
}

PCIDevice *pci_bus_find(PCIBus *bus, uint8_t devfn)
{
    return bus->devices[devfn];
}

bool pci_bus_add_device(PCIBus *bus, PCIDevice *d, int slot, GError **errp)
{
    if (slot < 0) {
        for (slot = 1; slot < PCI_SLOT_MAX && bus->devices[PCI_DEVFN(slot, 0)]; slot++) {
        }
        if (slot == PCI_SLOT_MAX) {
            error_setg(errp, "PCI: no free slot for %s", d->name);
            return false;
        }
    } else if (slot >= PCI_SLOT_MAX) {
        error_setg(errp, "PCI: slot %d does not exist (0x0 to 0x1f)", slot);
        return false;
    } else if (bus->devices[PCI_DEVFN(slot, 0)]) {
        error_setg(errp, "PCI: slot %d function 0 not available for %s, in use by %s",
                   slot, d->name, bus->devices[PCI_DEVFN(slot, 0)]->name);
        return false;
    }
    d->config[PCI_INTERRUPT_LINE] = d->config[PCI_INTERRUPT_PIN] ?
                                    (uint8_t)pci_slot_gsi(slot) : 0;
    memcpy(d->reset_config, d->config, PCI_CONFIG_SPACE_SIZE);
    pci_bus_attach(bus, d, PCI_DEVFN(slot, 0));
    return true;
}

bool pci_bus_assign_bars(PCIBus *bus, GError **errp)
{
    uint64_t next = PCI_MMIO_WINDOW_START;

    /* Largest first keeps natural alignment from wasting the window. */
    for (int order = 63; order >= 4; order--) {
        for (int devfn = 0; devfn < 256; devfn++) {
            PCIDevice *d = bus->devices[devfn];
            for (int i = 0; d && i < PCI_NUM_BARS; i++) {
                PCIBar *b = &d->bars[i];
                if (b->type == PCI_BAR_NONE || b->size != 1ULL << order ||
                    pci_device_bar_addr(d, i)) {
                    continue;
                }
                uint64_t a = GW_ROUND_UP(next, b->size);
                if (a + b->size > PCI_MMIO_WINDOW_END) {
                    error_setg(errp, "PCI: BAR %d of %s (%" PRIu64 " bytes) does not fit the "
                               "MMIO window 0x%llx-0x%llx", i, d->name, b->size,
                               PCI_MMIO_WINDOW_START, PCI_MMIO_WINDOW_END);
                    return false;
                }
                uint32_t off = PCI_BASE_ADDRESS_0 + 4u * (uint32_t)i;
                pci_set_long(&d->config[off],
                             (uint32_t)a | (pci_get_long(&d->config[off]) & 0xfu));
                if (b->type == PCI_BAR_MEM64) {
                    pci_set_long(&d->config[off + 4], (uint32_t)(a >> 32));
                }
                next = a + b->size;
            }
        }
    }
    for (int devfn = 0; devfn < 256; devfn++) {
        PCIDevice *d = bus->devices[devfn];
        if (!d) {
            continue;
        }
        bool has_bar = false;
        for (int i = 0; i < PCI_NUM_BARS; i++) {
            has_bar |= d->bars[i].type != PCI_BAR_NONE;
        }
        if (has_bar) {
            pci_set_word(&d->config[PCI_COMMAND],
                         pci_get_word(&d->config[PCI_COMMAND]) | PCI_COMMAND_MEMORY);
        }
        memcpy(d->reset_config, d->config, PCI_CONFIG_SPACE_SIZE);
        pci_device_update_mappings(d);
    }
    return true;
}

void pci_bus_reset(PCIBus *bus)
{
    bus->config_addr = 0;
    for (int devfn = 0; devfn < 256; devfn++) {
        if (bus->devices[devfn]) {
            pci_device_reset(bus->devices[devfn]);
        }
    }
}

/* The function a configuration address selects, or NULL (reads all ones). */
static PCIDevice *pci_host_target(PCIBus *bus, uint32_t addr_reg)
{
    if (!(addr_reg & PCI_CONFIG_ADDR_ENABLE) || ((addr_reg >> 16) & 0xff) != 0) {
        return NULL;
    }
    return bus->devices[(addr_reg >> 8) & 0xff];
}

uint32_t pci_host_config_read(PCIBus *bus, uint32_t addr_reg, unsigned off, unsigned len)
{
    PCIDevice *d = pci_host_target(bus, addr_reg);

    if (!d) {
        return len == 4 ? 0xffffffffu : (1u << (8 * len)) - 1;
    }
    return pci_device_config_read(d, (addr_reg & 0xfc) + off, len);
}

void pci_host_config_write(PCIBus *bus, uint32_t addr_reg, unsigned off, uint32_t val,
                           unsigned len)
{
    PCIDevice *d = pci_host_target(bus, addr_reg);

    if (d) {
        pci_device_config_write(d, (addr_reg & 0xfc) + off, val, len);
    }
}

uint32_t pci_host_ioport_read(PCIBus *bus, uint16_t port, unsigned len)
{
    if (port == PCI_CONFIG_ADDR_PORT) {
        /* Only a dword access is the address register (0xCF9 is reset control). */
        return len == 4 ? bus->config_addr : 0xffffffffu;
    }
    if (port >= PCI_CONFIG_DATA_PORT && port < PCI_CONFIG_DATA_PORT + 4) {
        unsigned off = port - PCI_CONFIG_DATA_PORT;
        return pci_host_config_read(bus, bus->config_addr, off, MIN(len, 4 - off));
    }
    return 0xffffffffu;
}

void pci_host_ioport_write(PCIBus *bus, uint16_t port, uint32_t val, unsigned len)
{
    if (port == PCI_CONFIG_ADDR_PORT) {
        if (len == 4) {
            bus->config_addr = val & 0x80fffffcu;   /* reserved bits and 1:0 read as 0 */
        }
        return;
    }
    if (port >= PCI_CONFIG_DATA_PORT && port < PCI_CONFIG_DATA_PORT + 4) {
        unsigned off = port - PCI_CONFIG_DATA_PORT;
        pci_host_config_write(bus, bus->config_addr, off, val, MIN(len, 4 - off));
    }
}

static uint32_t pci_port_read(void *opaque, uint16_t port, int size)
{
    return pci_host_ioport_read(opaque, port, (unsigned)size);
}

static void pci_port_write(void *opaque, uint16_t port, uint32_t val, int size)
{
    pci_host_ioport_write(opaque, port, val, (unsigned)size);
}

void pci_bus_register_ports(PCIBus *bus)
{
    /* One port: 0xCF9 (reset control) keeps its own handler for byte accesses. */
    ioport_register(PCI_CONFIG_ADDR_PORT, 1, pci_port_read, pci_port_write, bus);
    ioport_register(PCI_CONFIG_DATA_PORT, 4, pci_port_read, pci_port_write, bus);
}
