/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * The PC-like machine: RAM layout, KVM VM and vCPUs, ISA devices (COM1 UART,
 * debug-exit, reset ports) and the Multiboot loader.
 */
#ifndef GODWIT_PC_H
#define GODWIT_PC_H

#include "qemu/osdep.h"
#include "chardev/char.h"
#include "hw/machine.h"
#include "sysemu/options.h"

#define DEBUG_EXIT_PORT 0x501

/* Build the machine (RAM, VM, vCPUs, devices) without loading a kernel. */
Machine *pc_machine_create(const GodwitOptions *o, Chardev *serial, GError **errp);

/* Load -kernel (Multiboot) into RAM and point the BSP at it. */
bool pc_load_kernel(Machine *ms, GError **errp);

/* system_reset: vCPUs to power-on state, kernel reloaded. VM stopped, BQL held. */
bool pc_machine_reset(Machine *ms, GError **errp);

/* Multiboot v1 loader; returns the entry point and the info block address. */
bool multiboot_load(Machine *ms, const char *kernel, const char *append,
                    const char *modules, uint32_t *entry, uint32_t *mbi,
                    GError **errp);

#endif
