/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * How state joins the migration stream.
 *
 * Device state (vCPUs, irqchip, PIT, clock, UART, run state) registers a
 * SaveStateHandler: a one-shot record written while the VM is stopped
 * (stop-and-copy, or the postcopy package) and loaded on the destination
 * before the guest runs. Each record is versioned by its owner; the loader
 * gets the version that was written and must refuse one it does not know.
 * Payloads are opaque to the stream layer and bounded (see stream.md).
 */
#ifndef GODWIT_MIGRATION_REGISTER_H
#define GODWIT_MIGRATION_REGISTER_H

#include "qemu/osdep.h"

typedef struct SaveStateHandler {
    const char *idstr;        /* unique record name, e.g. "cpu", "irqchip", "serial" */
    uint32_t instance_id;     /* e.g. vCPU index */
    uint32_t version;         /* version written by save() */
    /* Order of loading: lower first (vCPU state after irqchip, etc.). */
    int priority;
    /* Append the state to @out. Source, VM stopped, BQL held. */
    bool (*save)(void *opaque, GByteArray *out, GError **errp);
    /*
     * Restore from @buf (exactly what save() wrote, hostile until checked).
     * Destination, before any vCPU runs, BQL held.
     */
    bool (*load)(void *opaque, const uint8_t *buf, size_t len, uint32_t version,
                 GError **errp);
    /*
     * Optional: run once every record has been loaded, right before the
     * guest starts (re-assert IRQ lines, set the clock last).
     */
    void (*post_load_all)(void *opaque);
    void *opaque;
} SaveStateHandler;

/* Register a handler (main thread, before any migration). Copies @h. */
void register_savestate(const SaveStateHandler *h);

/* Priorities used by godwit's devices (load order: lower first). */
enum {
    SAVESTATE_PRIO_RUNSTATE = 0,
    SAVESTATE_PRIO_IRQCHIP = 10,   /* PIC/IOAPIC before the LAPICs that vCPUs carry */
    SAVESTATE_PRIO_PIT = 20,
    SAVESTATE_PRIO_DEVICE = 30,    /* UART and other userspace devices */
    SAVESTATE_PRIO_CPU = 40,
    SAVESTATE_PRIO_CLOCK = 50,     /* kvmclock last, right before the guest runs */
};

#endif
