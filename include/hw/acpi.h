/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * Minimal ACPI for the PC machine: godwit has no firmware, so it writes the
 * tables a guest needs to find its vCPUs and interrupt controllers itself:
 * RSDP (in the reserved BIOS area, where the usual scan finds it), RSDT,
 * XSDT and a MADT.
 */
#ifndef GODWIT_HW_ACPI_H
#define GODWIT_HW_ACPI_H

#include "qemu/osdep.h"
#include "hw/machine.h"

/* Where the tables go: the reserved 0xF0000..0xFFFFF area of the e820 map. */
#define ACPI_TABLES_BASE   0xF0000u
#define ACPI_TABLES_MAX    0x10000u

#define ACPI_IOAPIC_ADDR   0xFEC00000u
#define ACPI_LAPIC_ADDR    0xFEE00000u

/*
 * Build RSDP + RSDT + XSDT + MADT for @ncpus vCPUs (APIC id = vCPU index)
 * into @buf, laid out for guest-physical address @base. The MADT lists one
 * LAPIC per vCPU, the IOAPIC (id 0, GSI base 0), the PC interrupt source
 * override IRQ0 -> GSI2 and LINT1 as NMI on all processors.
 * Returns the number of bytes used, or 0 if @size is too small.
 */
size_t acpi_build_tables(uint8_t *buf, size_t size, uint64_t base, int ncpus);

/*
 * Write the tables into guest RAM at ACPI_TABLES_BASE through
 * machine_ram_write() (so migration sees the pages as dirty).
 */
bool acpi_setup(Machine *ms, GError **errp);

#endif
