/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * This machine's CONFIG record: what the source sends and what the
 * destination compares it with (machine type, vCPUs, RAM blocks, CPUID).
 */
#include "qemu/osdep.h"
#include "hw/machine.h"
#include "migration/migration.h"
#include "sysemu/kvm.h"

MigConfig *migration_local_config(Machine *m)
{
    MigConfig *c = mig_config_new();
    g_autofree struct kvm_cpuid2 *cpuid = kvm_vcpu_cpuid(m, 0);

    g_strlcpy(c->machine, m->type, sizeof(c->machine));
    c->vcpus = (uint32_t)m->smp_cpus;
    c->target_page_size = GW_PAGE_SIZE;
    mig_config_add_block(c, m->ram->name, m->ram->size, m->ram->page_size);
    for (uint32_t i = 0; i < cpuid->nent; i++) {
        struct kvm_cpuid_entry2 *e = &cpuid->entries[i];
        MigCpuidEntry me = { e->function, e->index, e->eax, e->ebx, e->ecx, e->edx };
        mig_config_add_cpuid(c, &me);
    }
    return c;
}
