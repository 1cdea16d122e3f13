/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * The machine: guest RAM laid out PC-style (below the 3 GiB hole, the rest
 * from 4 GiB up), the KVM VM, vCPUs, COM1, debug-exit and the reset ports,
 * PCI bus 0 with its devices, plus guest-physical address translation and
 * the RAM write path every godwit writer uses.
 */
#include "qemu/osdep.h"
#include "qemu/bql.h"
#include "hw/acpi.h"
#include "hw/ioport.h"
#include "hw/pc.h"
#include "hw/pci/pci.h"
#include "hw/serial.h"
#include "hw/virtio/virtio-net.h"
#include "sysemu/cpus.h"
#include "sysemu/kvm.h"
#include "sysemu/kvm-cpu.h"
#include "sysemu/main-loop.h"
#include "sysemu/memory-backend.h"
#include "sysemu/runstate.h"

Machine *current_machine;
static RAMDirtyHook ram_dirty_hook;   /* written by migration with the BQL */
static PCIBus *pc_pci_bus;            /* NULL with -machine none */

/* ---- port I/O table ---- */

typedef struct IOPortRange {
    uint16_t base, len;
    IOPortReadFn read;
    IOPortWriteFn write;
    void *opaque;
} IOPortRange;

static IOPortRange ioports[16];
static int nr_ioports;

void ioport_register(uint16_t base, uint16_t len, IOPortReadFn read,
                     IOPortWriteFn write, void *opaque)
{
    g_assert(nr_ioports < (int)G_N_ELEMENTS(ioports));
    ioports[nr_ioports++] = (IOPortRange){ base, len, read, write, opaque };
}

static IOPortRange *ioport_find(uint16_t port)
{
    for (int i = 0; i < nr_ioports; i++) {
        if (port >= ioports[i].base && port - ioports[i].base < ioports[i].len) {
            return &ioports[i];
        }
    }
    return NULL;
}

uint32_t ioport_read(uint16_t port, int size)
{
    IOPortRange *r = ioport_find(port);

    if (r && r->read) {
        return r->read(r->opaque, port, size);
    }
    return 0xffffffffu;
}

void ioport_write(uint16_t port, uint32_t val, int size)
{
    IOPortRange *r = ioport_find(port);

    if (r && r->write) {
        r->write(r->opaque, port, val, size);
    }
}

/* isa-debug-exit: a write of V ends the process with status (V << 1) | 1. */
static void debug_exit_write(void *opaque, uint16_t port, uint32_t val, int size)
{
    qemu_system_exit_request((int)((val << 1) | 1) & 0xff);
}

/* 0xCF9 reset control, 0x92 fast A20/reset, 0x64 keyboard controller pulse. */
static void reset_port_write(void *opaque, uint16_t port, uint32_t val, int size)
{
    if ((port == 0xcf9 && (val & 0x04)) || (port == 0x92 && (val & 0x01)) ||
        (port == 0x64 && val == 0xfe)) {
        qemu_system_reset_request();
    }
}

static uint32_t reset_port_read(void *opaque, uint16_t port, int size)
{
    if (port == 0x92) {
        return 0x02;    /* A20 enabled */
    }
    if (port == 0x64) {
        return 0x00;    /* keyboard controller: no data, input buffer empty */
    }
    return 0;
}

/* ---- guest-physical memory ---- */

void *machine_gpa_to_hva(Machine *ms, uint64_t gpa, uint64_t len)
{
    for (int i = 0; i < ms->nr_slots; i++) {
        MemSlot *s = &ms->slots[i];
        if (gpa >= s->gpa && gpa - s->gpa < s->size && len <= s->size - (gpa - s->gpa)) {
            return ms->ram->host + s->block_offset + (gpa - s->gpa);
        }
    }
    return NULL;
}

bool machine_gpa_to_offset(Machine *ms, uint64_t gpa, uint64_t *offset)
{
    for (int i = 0; i < ms->nr_slots; i++) {
        MemSlot *s = &ms->slots[i];
        if (gpa >= s->gpa && gpa - s->gpa < s->size) {
            *offset = s->block_offset + (gpa - s->gpa);
            return true;
        }
    }
    return false;
}

void machine_set_ram_dirty_hook(RAMDirtyHook hook)
{
    __atomic_store_n(&ram_dirty_hook, hook, __ATOMIC_RELEASE);
}

/* Walk [gpa, gpa+len) slot by slot; ranges may span the two slots. */
static bool ram_access(Machine *ms, uint64_t gpa, void *buf, uint64_t len, bool write,
                       GError **errp)
{
    uint8_t *p = buf;

    while (len) {
        MemSlot *s = NULL;
        for (int i = 0; i < ms->nr_slots; i++) {
            if (gpa >= ms->slots[i].gpa && gpa - ms->slots[i].gpa < ms->slots[i].size) {
                s = &ms->slots[i];
            }
        }
        if (!s) {
            error_setg(errp, "Invalid address 0x%" PRIx64 ": not guest RAM", gpa);
            return false;
        }
        uint64_t off = s->block_offset + (gpa - s->gpa);
        uint64_t n = MIN(len, s->size - (gpa - s->gpa));
        if (write) {
            memcpy(ms->ram->host + off, p, n);
            RAMDirtyHook hook = __atomic_load_n(&ram_dirty_hook, __ATOMIC_ACQUIRE);
            if (hook) {
                hook(ms->ram, off, n);
            }
        } else {
            memcpy(p, ms->ram->host + off, n);
        }
        p += n;
        gpa += n;
        len -= n;
    }
    return true;
}

bool machine_ram_write(Machine *ms, uint64_t gpa, const void *buf, uint64_t len,
                       GError **errp)
{
    return ram_access(ms, gpa, (void *)buf, len, true, errp);
}

bool machine_ram_read(Machine *ms, uint64_t gpa, void *buf, uint64_t len, GError **errp)
{
    return ram_access(ms, gpa, buf, len, false, errp);
}

/* ---- PCI ---- */

static void pc_pci_set_gsi(void *opaque, int gsi, bool level)
{
    kvm_set_irq(opaque, gsi, level);
}

static const PCIBusOps pc_pci_bus_ops = { .set_gsi = pc_pci_set_gsi };

/* Bus 0, its devices (each waits for its vhost-user back-end), BARs assigned. */
static bool pc_pci_create(Machine *ms, const GodwitOptions *o, GError **errp)
{
    pc_pci_bus = pci_bus_new(&pc_pci_bus_ops, ms);
    for (guint i = 0; i < o->net_devices->len; i++) {
        const NetDeviceOpts *d = g_ptr_array_index(o->net_devices, i);
        const NetdevOpts *nd = NULL;
        for (guint j = 0; j < o->netdevs->len; j++) {
            const NetdevOpts *x = g_ptr_array_index(o->netdevs, j);
            if (!strcmp(x->id, d->netdev)) {
                nd = x;
            }
        }
        g_assert(nd);      /* options.c checked the reference */
        if (!virtio_net_pci_create(ms, pc_pci_bus, d, nd, errp)) {
            return false;
        }
    }
    if (!pci_bus_assign_bars(pc_pci_bus, errp)) {
        return false;
    }
    pci_bus_register_ports(pc_pci_bus);
    pci_bus_register_records(pc_pci_bus);
    return true;
}

/* ---- creation ---- */

static const MemBackendOpts *find_backend(const GodwitOptions *o)
{
    if (!o->memory_backend) {
        return NULL;
    }
    for (guint i = 0; i < o->objects->len; i++) {
        const MemBackendOpts *m = g_ptr_array_index(o->objects, i);
        if (!strcmp(m->id, o->memory_backend)) {
            return m;
        }
    }
    return NULL;
}

Machine *pc_machine_create(const GodwitOptions *o, Chardev *serial, GError **errp)
{
    Machine *ms = g_new0(Machine, 1);
    uint64_t below, above;

    ms->type = g_strdup(o->machine_type);
    ms->name = g_strdup(o->name);
    ms->kernel = g_strdup(o->kernel);
    ms->append = g_strdup(o->append);
    ms->modules = g_strdup(o->initrd);
    ms->incoming = g_strdup(o->incoming);
    ms->smp_cpus = strcmp(o->machine_type, "none") ? o->smp_cpus : 0;

    const MemBackendOpts *be = find_backend(o);
    if (be && be->size != o->ram_size) {
        error_setg(errp, "memory backend '%s' has size %" PRIu64 " but guest RAM is %" PRIu64,
                   be->id, be->size, o->ram_size);
        return NULL;
    }
    ms->ram = ram_block_create("pc.ram", o->ram_size, be, errp);
    if (!ms->ram) {
        return NULL;
    }
    /*
     * RAM above the hole starts at 4 GiB. With huge pages the split must be
     * page-aligned; 3 GiB is a multiple of every x86 huge page size.
     */
    below = MIN(o->ram_size, PC_BELOW_4G_MAX);
    above = o->ram_size - below;
    ms->slots[0] = (MemSlot){ .slot = 0, .gpa = 0, .size = below, .block_offset = 0 };
    ms->nr_slots = 1;
    if (above) {
        ms->slots[1] = (MemSlot){ .slot = 1, .gpa = PC_ABOVE_4G_BASE, .size = above,
                                  .block_offset = below };
        ms->nr_slots = 2;
    }
    if (!kvm_init(ms, errp)) {
        return NULL;
    }
    for (int i = 0; i < ms->nr_slots; i++) {
        if (!kvm_set_user_memory(ms, &ms->slots[i], errp)) {
            return NULL;
        }
    }
    current_machine = ms;
    if (!cpus_create(ms, errp)) {
        return NULL;
    }
    ioport_register(DEBUG_EXIT_PORT, 1, NULL, debug_exit_write, ms);
    ioport_register(0xcf9, 1, reset_port_read, reset_port_write, ms);
    ioport_register(0x92, 1, reset_port_read, reset_port_write, ms);
    ioport_register(0x64, 1, reset_port_read, reset_port_write, ms);
    if (ms->smp_cpus) {
        serial_init(ms, 0x3f8, 4, serial);
        if (!pc_pci_create(ms, o, errp)) {
            return NULL;
        }
    }
    kvm_state_register(ms);
    return ms;
}

bool pc_load_kernel(Machine *ms, GError **errp)
{
    uint32_t entry, mbi;

    /*
     * No firmware: write the ACPI tables (RSDP/MADT) the guest uses to find
     * its vCPUs and IOAPIC. Through machine_ram_write, so a migration that
     * is already tracking dirty RAM sends them; an incoming VM gets them
     * with RAM instead (main does not call us then).
     */
    if (ms->smp_cpus && !acpi_setup(ms, errp)) {
        return false;
    }
    if (!ms->kernel) {
        return true;
    }
    if (!multiboot_load(ms, ms->kernel, ms->append, ms->modules, &entry, &mbi, errp)) {
        return false;
    }
    ms->entry_point = entry;
    ms->boot_info = mbi;
    return kvm_cpu_set_multiboot_entry(ms->cpus[0], entry, mbi, errp);
}

bool pc_machine_reset(Machine *ms, GError **errp)
{
    g_assert(bql_locked());
    for (int i = 0; i < ms->smp_cpus; i++) {
        if (!kvm_cpu_reset(ms->cpus[i], errp)) {
            return false;
        }
    }
    if (pc_pci_bus) {
        /* Devices to power-on state (a vhost-user back-end gives its rings back). */
        pci_bus_reset(pc_pci_bus);
    }
    return pc_load_kernel(ms, errp);
}
