/* SPDX-License-Identifier: GPL-2.0-or-later */
/* A 16550A UART on an ISA port range with an ISA IRQ, backed by a chardev. */
#ifndef GODWIT_SERIAL_H
#define GODWIT_SERIAL_H

#include "qemu/osdep.h"
#include "chardev/char.h"
#include "hw/machine.h"

typedef struct SerialState SerialState;

/* @chr may be NULL (output discarded, no input). Registers a migration record. */
SerialState *serial_init(Machine *ms, uint16_t base, int irq, Chardev *chr);

#endif
