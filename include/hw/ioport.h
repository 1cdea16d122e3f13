/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * Port I/O dispatch for userspace devices (the UART, debug-exit, reset
 * ports). Handlers are registered on the main thread before any vCPU runs
 * and are called from vCPU threads with the BQL held.
 */
#ifndef GODWIT_IOPORT_H
#define GODWIT_IOPORT_H

#include "qemu/osdep.h"

typedef uint32_t (*IOPortReadFn)(void *opaque, uint16_t port, int size);
typedef void (*IOPortWriteFn)(void *opaque, uint16_t port, uint32_t val, int size);

void ioport_register(uint16_t base, uint16_t len, IOPortReadFn read,
                     IOPortWriteFn write, void *opaque);
/* Unclaimed ports read as all ones and ignore writes, as on a PC bus. */
uint32_t ioport_read(uint16_t port, int size);
void ioport_write(uint16_t port, uint32_t val, int size);

#endif
