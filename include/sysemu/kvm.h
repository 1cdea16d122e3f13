/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * KVM glue: the VM fd, memory slots, dirty logging, in-kernel irqchip/PIT and
 * the CPUID every vCPU gets. Functions run on the main thread unless noted.
 */
#ifndef GODWIT_KVM_H
#define GODWIT_KVM_H

#include "qemu/osdep.h"
#include "hw/machine.h"
#include <linux/kvm.h>

/* Open /dev/kvm, create the VM, irqchip, PIT2, TSS and identity-map pages. */
bool kvm_init(Machine *ms, GError **errp);

/* (Re)register @slot with its current flags. */
bool kvm_set_user_memory(Machine *ms, MemSlot *slot, GError **errp);

/*
 * Dirty logging (migration thread). With KVM_CAP_MANUAL_DIRTY_LOG_PROTECT2
 * (enabled at init with INITIALLY_SET when offered) GET only reports and the
 * caller re-arms write protection per chunk with kvm_slot_clear_dirty_log()
 * just before sending those pages.
 */
bool kvm_manual_dirty_protect(void);
bool kvm_set_dirty_logging(Machine *ms, bool enable, GError **errp);
/* Fetch the slot's dirty bitmap (one bit per 4 KiB page of the slot, LE words). */
bool kvm_slot_get_dirty_log(Machine *ms, MemSlot *slot, unsigned long *bitmap,
                            GError **errp);
/*
 * Clear (and re-protect) the pages of @slot whose bits are set in @bitmap,
 * which covers [first_page, first_page + num_pages). first_page must be a
 * multiple of 64; num_pages too unless the range reaches the slot's end.
 */
bool kvm_slot_clear_dirty_log(Machine *ms, MemSlot *slot, uint64_t first_page,
                              uint64_t num_pages, unsigned long *bitmap,
                              GError **errp);

/* Drive an in-kernel irqchip input line (ISA IRQs 0-15 reach PIC and IOAPIC). */
void kvm_set_irq(Machine *ms, int irq, int level);

/*
 * Bind eventfd @fd to guest-physical @addr (any write there signals it
 * without an exit to userspace), or undo that. Main or vCPU thread, BQL.
 */
bool kvm_set_ioeventfd_mmio(Machine *ms, int fd, uint64_t addr, bool assign, GError **errp);

/* The CPUID table given to vCPU @index (APIC id patched in). Caller frees. */
struct kvm_cpuid2 *kvm_vcpu_cpuid(Machine *ms, int index);
/* A digest of the CPUID all vCPUs get (migration compatibility check). */
char *kvm_cpuid_digest(Machine *ms);

#endif
