/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * PCI bus 0: functions with a 256-byte configuration space (BARs, a
 * capability list, INTx) behind a host bridge that speaks configuration
 * mechanism #1 at 0xCF8/0xCFC. docs/devel/vhost-user.md describes the
 * layout (BAR window, INTx to GSI wiring) and the migration record.
 *
 * Threads: everything runs with the BQL held (vCPU threads for guest
 * accesses, the main thread for creation, reset and migration loads).
 * Nothing here depends on KVM: the bus reaches the interrupt controller and
 * the MMIO table through the callbacks in PCIBusOps, so unit tests drive it
 * on their own.
 */
#ifndef GODWIT_HW_PCI_H
#define GODWIT_HW_PCI_H

#include "qemu/osdep.h"
#include "hw/mmio.h"
#include "qemu/byteorder.h"

#define PCI_CONFIG_SPACE_SIZE   256
#define PCI_NUM_BARS            6
#define PCI_SLOT_MAX            32
#define PCI_DEVFN(slot, fn)     ((uint8_t)(((slot) << 3) | (fn)))
#define PCI_SLOT(devfn)         ((devfn) >> 3)
#define PCI_FUNC(devfn)         ((devfn) & 7)

/* Configuration space registers and bits used by godwit. */
#define PCI_VENDOR_ID           0x00
#define PCI_DEVICE_ID           0x02
#define PCI_COMMAND             0x04
#define  PCI_COMMAND_IO         0x0001
#define  PCI_COMMAND_MEMORY     0x0002
#define  PCI_COMMAND_MASTER     0x0004
#define  PCI_COMMAND_PARITY     0x0040
#define  PCI_COMMAND_SERR       0x0100
#define  PCI_COMMAND_INTX_DISABLE 0x0400
#define PCI_STATUS              0x06
#define  PCI_STATUS_INTERRUPT   0x0008
#define  PCI_STATUS_CAP_LIST    0x0010
#define  PCI_STATUS_W1C         0xf900   /* parity, aborts, SERR, parity error */
#define PCI_REVISION_ID         0x08
#define PCI_CLASS_PROG          0x09
#define PCI_CLASS_DEVICE        0x0a
#define PCI_CACHE_LINE_SIZE     0x0c
#define PCI_LATENCY_TIMER       0x0d
#define PCI_HEADER_TYPE         0x0e
#define PCI_BASE_ADDRESS_0      0x10
#define  PCI_BASE_ADDRESS_SPACE_IO     0x01
#define  PCI_BASE_ADDRESS_MEM_TYPE_64  0x04
#define  PCI_BASE_ADDRESS_MEM_PREFETCH 0x08
#define PCI_SUBSYSTEM_VENDOR_ID 0x2c
#define PCI_SUBSYSTEM_ID        0x2e
#define PCI_ROM_ADDRESS         0x30
#define PCI_CAPABILITY_LIST     0x34
#define PCI_INTERRUPT_LINE      0x3c
#define PCI_INTERRUPT_PIN       0x3d
#define PCI_CAP_ID_VNDR         0x09
#define PCI_CONFIG_HEADER_SIZE  0x40

/* The BAR window godwit assigns from at machine creation (see the doc). */
#define PCI_MMIO_WINDOW_START   0xE0000000ULL
#define PCI_MMIO_WINDOW_END     0xFEC00000ULL
/* First IOAPIC input PCI INTx lines use: slot s -> GSI 16 + (s % 8). */
#define PCI_INTX_GSI_BASE       16
#define PCI_INTX_GSI_COUNT      8

typedef struct PCIBus PCIBus;
typedef struct PCIDevice PCIDevice;

typedef enum PCIBarType {
    PCI_BAR_NONE = 0,
    PCI_BAR_MEM32,
    PCI_BAR_MEM64,        /* takes this BAR register and the next */
} PCIBarType;

typedef struct PCIBar {
    PCIBarType type;
    bool prefetchable;
    uint64_t size;        /* a power of two, >= 16 */
    MMIORegion region;    /* mapped while decoding */
} PCIBar;

/* What a device model adds to the generic configuration space. */
typedef struct PCIDeviceOps {
    /*
     * Optional: a configuration read the device answers itself (e.g. a
     * window into a BAR). Return true and set *val if handled. BQL held.
     */
    bool (*config_read)(PCIDevice *d, uint32_t off, unsigned len, uint32_t *val);
    /* Optional: after a configuration write was applied. BQL held. */
    void (*config_write)(PCIDevice *d, uint32_t off, uint32_t val, unsigned len);
    /* Optional: BAR @bar now decodes at @addr (mapped) or not at all. BQL held. */
    void (*bar_moved)(PCIDevice *d, int bar, bool mapped, uint64_t addr);
    /* Optional: system reset (after the configuration space was reset). BQL held. */
    void (*reset)(PCIDevice *d);
} PCIDeviceOps;

struct PCIDevice {
    PCIBus *bus;
    uint8_t devfn;
    char name[32];
    uint8_t config[PCI_CONFIG_SPACE_SIZE];
    uint8_t wmask[PCI_CONFIG_SPACE_SIZE];     /* writable bits */
    uint8_t w1cmask[PCI_CONFIG_SPACE_SIZE];   /* write-1-to-clear bits */
    uint8_t reset_config[PCI_CONFIG_SPACE_SIZE]; /* config at power-on (after assignment) */
    PCIBar bars[PCI_NUM_BARS];
    uint8_t cap_last;                         /* offset of the last capability, 0 = none */
    uint8_t cap_free;                         /* next free byte for a capability */
    bool intx_level;                          /* the device asserts its pin */
    bool intx_driven;                         /* what the bus currently counts for us */
    const PCIDeviceOps *ops;
    void *opaque;                             /* the device model */
};

typedef struct PCIBusOps {
    /* Drive GSI @gsi to @level (already ORed over the devices sharing it). */
    void (*set_gsi)(void *opaque, int gsi, bool level);
} PCIBusOps;

/* ---- the bus and host bridge (hw/pci/pci-host.c) ---- */

/* Bus 0 with its host bridge at 00:00.0. */
PCIBus *pci_bus_new(const PCIBusOps *ops, void *opaque);
/* Register the 0xCF8 address and 0xCFC-0xCFF data ports (machine creation). */
void pci_bus_register_ports(PCIBus *bus);
/*
 * Add @d at slot @slot (function 0), or at the first free slot from 1 if
 * @slot is negative. Sets the interrupt line to the slot's GSI. Machine
 * creation, BQL held.
 */
bool pci_bus_add_device(PCIBus *bus, PCIDevice *d, int slot, GError **errp);
/*
 * Assign every unassigned BAR from the MMIO window (naturally aligned,
 * first fit), enable memory decoding, and remember the result as the
 * power-on state. Machine creation, after every device was added.
 */
bool pci_bus_assign_bars(PCIBus *bus, GError **errp);
/* Register a "pci" record (instance = devfn) per function with migration. */
void pci_bus_register_records(PCIBus *bus);
/* System reset: every function back to its power-on state. */
void pci_bus_reset(PCIBus *bus);
PCIDevice *pci_bus_find(PCIBus *bus, uint8_t devfn);
/* The GSI slot @slot's INTA reaches. */
int pci_slot_gsi(int slot);

/* Mechanism #1 (the port handlers use these; tests too). */
uint32_t pci_host_config_read(PCIBus *bus, uint32_t addr_reg, unsigned off, unsigned len);
void pci_host_config_write(PCIBus *bus, uint32_t addr_reg, unsigned off, uint32_t val,
                           unsigned len);
uint32_t pci_host_ioport_read(PCIBus *bus, uint16_t port, unsigned len);
void pci_host_ioport_write(PCIBus *bus, uint16_t port, uint32_t val, unsigned len);

/* ---- one function's configuration space (hw/pci/pci-device.c) ---- */

/* Identity and the generic writable registers; header type 0, pin INTA. */
void pci_device_init(PCIDevice *d, const char *name, uint16_t vendor, uint16_t device,
                     uint32_t class_prog, uint8_t revision, uint16_t subsys_vendor,
                     uint16_t subsys, const PCIDeviceOps *ops, void *opaque);
/* A memory BAR of @size bytes served by @read/@write (not decoding yet). */
void pci_device_add_bar(PCIDevice *d, int bar, PCIBarType type, bool prefetchable,
                        uint64_t size, MMIOReadFn read, MMIOWriteFn write, void *opaque);
/*
 * Append a capability of @len bytes with id @cap_id to the list; returns its
 * offset (the caller fills the body; bytes it wants writable it marks in
 * d->wmask). Machine creation.
 */
uint8_t pci_device_add_capability(PCIDevice *d, uint8_t cap_id, uint8_t len);

uint32_t pci_device_config_read(PCIDevice *d, uint32_t off, unsigned len);
void pci_device_config_write(PCIDevice *d, uint32_t off, uint32_t val, unsigned len);
/* The current address of BAR @bar (0 if unassigned). */
uint64_t pci_device_bar_addr(PCIDevice *d, int bar);
/* Re-evaluate BAR decoding after the command register or a BAR changed. */
void pci_device_update_mappings(PCIDevice *d);
/* The device asserts (true) or releases its INTA pin. */
void pci_device_set_irq(PCIDevice *d, bool level);
/* Power-on state (reset_config), INTx released. */
void pci_device_reset(PCIDevice *d);

/* Migration record "pci": the configuration space. */
#define PCI_RECORD_VERSION 1
void pci_device_save(PCIDevice *d, GByteArray *out);
/*
 * Load what pci_device_save wrote (hostile: checked). Read-only bytes must
 * match this device; the BAR mappings follow in pci_device_post_load.
 */
bool pci_device_load(PCIDevice *d, const uint8_t *buf, size_t len, uint32_t version,
                     GError **errp);
void pci_device_post_load(PCIDevice *d);

/* pci-device.c tells the bus (pci-host.c) that @d's INTx contribution may have changed. */
void pci_bus_device_irq_changed(PCIDevice *d);

/* Configuration space is little-endian (PCI Local Bus spec). */
static inline uint16_t pci_get_word(const uint8_t *p)
{
    return le16_load(p);
}
static inline uint32_t pci_get_long(const uint8_t *p)
{
    return le32_load(p);
}
static inline void pci_set_word(uint8_t *p, uint16_t v)
{
    le16_store(p, v);
}
static inline void pci_set_long(uint8_t *p, uint32_t v)
{
    le32_store(p, v);
}

#endif
