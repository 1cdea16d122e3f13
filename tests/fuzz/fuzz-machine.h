/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * The machine the migration fuzz targets load into: a small RAM block in
 * plain memory, the "ram" section and the UART record registered as in
 * godwit, and stand-ins for the KVM and machine calls migration/ram.c and
 * hw/serial.c make (nothing here touches a kernel interface but memory).
 */
#ifndef GODWIT_FUZZ_MACHINE_H
#define GODWIT_FUZZ_MACHINE_H

#include "qemu/osdep.h"
#include "hw/machine.h"
#include "migration/format.h"

#define FUZZ_RAM_SIZE (1024 * 1024)

/* Create current_machine once (1 MiB of 4 KiB pages) and register its records. */
Machine *fuzz_machine(void);
/* The CONFIG a source of that machine sends (the loader compares with it). */
MigConfig *fuzz_machine_config(void);

#endif
