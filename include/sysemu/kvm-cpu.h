/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * vCPU creation, reset and the per-vCPU state that migrates (registers,
 * MSRs, LAPIC, events, MP state) plus the VM-wide KVM state (PIC, IOAPIC,
 * PIT, kvmclock). Records are registered with the migration registry.
 */
#ifndef GODWIT_KVM_CPU_H
#define GODWIT_KVM_CPU_H

#include "qemu/osdep.h"
#include "hw/machine.h"
#include "sysemu/cpus.h"

/* KVM_CREATE_VCPU, map kvm_run, set CPUID; remember the pristine state. */
CPUState *kvm_cpu_create(Machine *ms, int index, GError **errp);
/* Put @cpu back to its power-on state (APs: waiting for SIPI). */
bool kvm_cpu_reset(CPUState *cpu, GError **errp);
/* Set the BSP to the Multiboot entry state. */
bool kvm_cpu_set_multiboot_entry(CPUState *cpu, uint32_t entry, uint32_t mbi,
                                 GError **errp);
/* Register the vCPU and VM-wide state records with the migration registry. */
void kvm_state_register(Machine *ms);

/*
 * kvmclock across a pause: read when the VM stops, written back when it
 * starts, so the guest's clock does not jump by the time it was stopped.
 */
void kvm_clock_on_stop(Machine *ms);
void kvm_clock_on_start(Machine *ms);

#endif
