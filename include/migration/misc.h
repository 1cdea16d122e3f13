/* SPDX-License-Identifier: GPL-2.0-or-later */
/* What the rest of godwit calls in migration/. */
#ifndef GODWIT_MIGRATION_MISC_H
#define GODWIT_MIGRATION_MISC_H

#include "qemu/osdep.h"

/* Register RAM and the run-state record (main thread, after the machine is built). */
void migration_init(void);

/*
 * -incoming URI: start listening (or, for "defer", wait for
 * migrate-incoming). Main thread, BQL held, before the main loop runs.
 */
bool migration_incoming_from_cmdline(const char *uri, GError **errp);

/*
 * Extra dirty sources: writers of guest RAM that KVM's dirty log does not
 * see (a vhost-user back-end). While a migration tracks dirty memory,
 * migration/ram.c calls each registered source:
 *   start  when tracking begins. Migration thread, BQL held. Returning
 *          false (with @errp) fails the migration in setup; nothing was
 *          sent and the guest runs on.
 *   sync   at every dirty sync (each pass, and the final one with the VM
 *          stopped). OR the RAMBlock pages written since the previous call
 *          into @bitmap (one bit per GW_PAGE_SIZE page of the block, bit n
 *          of word n/64), with atomic operations: other threads set bits
 *          in it concurrently. False (with @errp) fails the migration and
 *          the source guest runs on. Migration thread; the BQL is held only
 *          at the final sync.
 *   stop   when tracking ends (completed, failed, cancelled). Migration
 *          thread, no lock held. Only called for sources whose start
 *          succeeded.
 * Register on the main thread at start-up, before any migration.
 */
typedef struct RamDirtySource {
    const char *name;
    bool (*start)(void *opaque, GError **errp);
    bool (*sync)(void *opaque, unsigned long *bitmap, uint64_t npages, GError **errp);
    void (*stop)(void *opaque);
    void *opaque;
} RamDirtySource;

void ram_add_dirty_source(const RamDirtySource *src);

/*
 * Self-announcement after a migration (QEMU's announce-* parameters, ms):
 * rounds, the first at once, then initial, initial + step, ... capped at
 * max. Any thread.
 */
typedef struct MigrationAnnounceParams {
    uint64_t initial, max, rounds, step;
} MigrationAnnounceParams;

void migration_announce_params(MigrationAnnounceParams *p);

#endif
