/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * The fuzz targets' machine (see fuzz-machine.h): 1 MiB of guest RAM in
 * plain memory, RAM and UART migration records, and stand-ins for the
 * KVM dirty log, the IRQ line, port registration and the statistics that
 * migration.c (not linked here) owns.
 */
#include "qemu/osdep.h"
#include "fuzz-machine.h"

#include <sys/mman.h>

#include "chardev/char.h"
#include "hw/ioport.h"
#include "hw/serial.h"
#include "migration/migration.h"
#include "sysemu/kvm.h"

Machine *current_machine;

bool kvm_set_dirty_logging(Machine *ms, bool enable, GError **errp)
{
    return true;
}

bool kvm_slot_get_dirty_log(Machine *ms, MemSlot *slot, unsigned long *bitmap,
                            GError **errp)
{
    memset(bitmap, 0, GW_DIV_ROUND_UP(slot->size / GW_PAGE_SIZE, 64) * sizeof(long));
    return true;
}

bool kvm_slot_clear_dirty_log(Machine *ms, MemSlot *slot, uint64_t first_page,
                              uint64_t num_pages, unsigned long *bitmap, GError **errp)
{
    return true;
}

void kvm_set_irq(Machine *ms, int irq, int level)
{
}

void machine_set_ram_dirty_hook(RAMDirtyHook hook)
{
}

void ioport_register(uint16_t base, uint16_t len, IOPortReadFn read, IOPortWriteFn write,
                     void *opaque)
{
}

/* The UART has no chardev here. */
void chardev_set_handlers(Chardev *chr, ChardevReadFn read, ChardevEventFn event,
                          void *opaque)
{
}

void chardev_write(Chardev *chr, const void *buf, size_t len)
{
}

static GMutex stats_mutex;
static MigrationStatsCounters stats;

void migration_stats_lock(void)
{
    g_mutex_lock(&stats_mutex);
}

void migration_stats_unlock(void)
{
    g_mutex_unlock(&stats_mutex);
}

MigrationStatsCounters *migration_stats(void)
{
    return &stats;
}

Machine *fuzz_machine(void)
{
    if (current_machine) {
        return current_machine;
    }
    Machine *m = g_new0(Machine, 1);
    RAMBlock *rb = g_new0(RAMBlock, 1);

    g_strlcpy(rb->name, "pc.ram", sizeof(rb->name));
    rb->size = FUZZ_RAM_SIZE;
    rb->page_size = GW_PAGE_SIZE;
    rb->fd = -1;
    rb->zero_at_start = true;
    rb->host = mmap(NULL, FUZZ_RAM_SIZE, PROT_READ | PROT_WRITE,
                    MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    g_assert(rb->host != MAP_FAILED);
    m->ram = rb;
    m->type = g_strdup("pc");
    m->smp_cpus = 1;
    m->slots[0] = (MemSlot){ .slot = 0, .gpa = 0, .size = FUZZ_RAM_SIZE };
    m->nr_slots = 1;
    current_machine = m;
    ram_migration_init(m);
    serial_init(m, 0x3f8, 4, NULL);
    return m;
}

MigConfig *fuzz_machine_config(void)
{
    MigConfig *c = mig_config_new();
    MigCpuidEntry e = { .function = 1, .eax = 0x806f0 };

    g_strlcpy(c->machine, "pc", sizeof(c->machine));
    c->vcpus = 1;
    c->target_page_size = GW_PAGE_SIZE;
    mig_config_add_block(c, "pc.ram", FUZZ_RAM_SIZE, GW_PAGE_SIZE);
    mig_config_add_cpuid(c, &e);
    return c;
}
