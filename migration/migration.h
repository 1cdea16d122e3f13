/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * Internals shared by the files of migration/: the two state machines, capabilities
 * and parameters, and the RAM section. Not for use outside migration/.
 */
#ifndef GODWIT_MIGRATION_MIGRATION_H
#define GODWIT_MIGRATION_MIGRATION_H

#include "qemu/osdep.h"
#include "hw/machine.h"
#include "migration/stream.h"
#include "migration/format.h"
#include "qapi/qapi-types.h"
#include <json-glib/json-glib.h>

/* ---- capabilities and parameters (options.c) ---- */

typedef struct MigrationParams {
    uint64_t announce_initial, announce_max, announce_rounds, announce_step;
    uint8_t throttle_trigger_threshold;
    uint8_t cpu_throttle_initial;
    uint8_t cpu_throttle_increment;
    bool cpu_throttle_tailslow;
    uint8_t max_cpu_throttle;
    uint64_t max_bandwidth;           /* bytes/s, 0 = unlimited */
    uint64_t downtime_limit;          /* ms */
    uint64_t max_postcopy_bandwidth;  /* bytes/s, 0 = unlimited */
    uint64_t xbzrle_cache_size;
    uint8_t multifd_channels;
    uint32_t x_postcopy_after_passes;
    /* QEMU 7.2's other parameters: stored and reported, unused. */
    uint8_t compress_level, compress_threads, decompress_threads;
    bool compress_wait_thread;
    uint32_t x_checkpoint_delay;
    int multifd_compression;          /* MultiFDCompression */
    uint8_t multifd_zlib_level, multifd_zstd_level;
} MigrationParams;

/* Main thread writes (BQL); the migration thread reads with the BQL or atomically. */
extern bool migrate_caps[MIGRATION_CAPABILITY__MAX];
extern MigrationParams migrate_params;

static inline bool migrate_cap(MigrationCapability c)
{
    return __atomic_load_n(&migrate_caps[c], __ATOMIC_RELAXED);
}

/* ---- state machines (source.c, incoming.c, migration-qmp.c) ---- */

/* An outgoing migration is between setup and its end (any thread). */
bool migration_is_running(void);

/*
 * The one way to change either side's state: compare-and-swap from @old,
 * then the MIGRATION event (with the events capability). Any thread.
 */
bool migrate_set_state(int *state, MigrationStatus old, MigrationStatus new_state);

/*
 * An error message may quote the peer (an ERROR reason, a block name):
 * only a sanitized copy reaches error-desc and stderr.
 */
GError *migration_error_sanitized(const GError *err);

/* This machine's CONFIG record (config-record.c; BQL held). */
MigConfig *migration_local_config(Machine *m);

/* ---- the runstate record (runstate-record.c) ---- */

/* Register the record (start-up). */
void runstate_record_register(void);
/* Source: the run state the destination should come up in, and when we stopped. */
void runstate_record_set_outgoing(const char *runstate);
void runstate_record_set_stop_time(int64_t realtime_us);
/* Destination: what the record said ("" before it arrived; 0 if no time). */
const char *runstate_record_incoming(void);
int64_t runstate_record_incoming_stop_time(void);

/* Source-side statistics; written by the migration thread, read under stats_lock. */
typedef struct MigrationStatsCounters {
    uint64_t duplicate;        /* zero pages */
    uint64_t normal;           /* data pages */
    uint64_t precopy_bytes;
    uint64_t downtime_bytes;
    uint64_t postcopy_bytes;
    uint64_t dirty_sync_count;
    uint64_t dirty_pages_rate;
    uint64_t remaining_bytes;
    double mbps;
    uint64_t pages_per_second;
    uint64_t postcopy_requests;
} MigrationStatsCounters;

/* The migration thread updates counters through these (any thread). */
void migration_stats_lock(void);
void migration_stats_unlock(void);
MigrationStatsCounters *migration_stats(void);

/* ---- RAM (ram.c) ---- */

/* Register the "ram" live section for @ms (main thread, at startup). */
void ram_migration_init(Machine *ms);

/*
 * Source, migration thread. Dirty logging on and a fresh all-dirty bitmap;
 * the first sync is done by the caller with ram_sync().
 */
bool ram_start_tracking(GError **errp);
/* Stop dirty logging and free the bitmaps (after the destination runs). */
void ram_stop_tracking(void);
/*
 * Harvest the KVM dirty log into the send bitmap. Returns the number of
 * pages dirty afterwards; counts as a pass (dirty-sync-count).
 */
bool ram_sync(uint64_t *dirty_pages, GError **errp);
/* Pages currently marked to send. */
uint64_t ram_dirty_pages(void);
/* True once the current sweep reached the end of RAM since the last sync. */
bool ram_sweep_done(void);
/*
 * Rate limiting: the iterate callback stops when this returns true
 * (bytes of the current window spent); set by the migration thread.
 */
typedef bool (*RamBudgetFn)(void *opaque);
void ram_set_budget(RamBudgetFn fn, void *opaque);

/* ---- RAM, postcopy source side (ram.c) ---- */

/*
 * Queue a page request from the destination (return-path thread). Checks
 * the block and host-page alignment; the migration thread serves queued
 * requests ahead of the background sweep and outside the rate limit.
 */
bool ram_queue_request(const char *block, uint64_t offset, uint64_t len, GError **errp);
bool ram_has_requests(void);
/* Readable while requests are queued (the migration thread polls it). */
int ram_request_eventfd(void);
/* From now on iterate serves requests first (VM stopped). */
void ram_postcopy_switch(void);
/* Switchover: DISCARD commands for every page still to send (VM stopped). */
bool ram_postcopy_send_discard(MigStream *s, GError **errp);

/* ---- RAM, postcopy destination side (ram.c) ---- */

typedef struct PostcopyHooks PostcopyHooks;
typedef struct PostcopyIncoming PostcopyIncoming;
/* ADVISE: page sizes agree and this host can serve the block with userfaultfd. */
bool ram_postcopy_incoming_advise(uint64_t pagesize_summary, uint64_t target_page_size,
                                  const PostcopyHooks *hooks, void *opaque, GError **errp);
bool ram_postcopy_incoming_discard(const char *block, const MigDiscardRange *r, unsigned n,
                                   GError **errp);
/* LISTEN: register RAM with userfaultfd; later pages are placed atomically. */
bool ram_postcopy_incoming_listen(const int *vcpu_tids, int nvcpus, GError **errp);
/* The postcopy state (NULL before the first DISCARD/LISTEN). */
PostcopyIncoming *ram_postcopy_incoming(void);

/* ---- RAM, postcopy recovery (ram.c) ---- */

/* The RAM block's name (RECV_BITMAP asks for it by name). */
const char *ram_block_name(void);
/* Source: bitmap bytes expected for @block, 0 for an unknown block (any thread). */
uint64_t ram_recv_bitmap_bytes(const char *block);
/*
 * Source, migration thread, VM stopped: the destination's received bitmap
 * (@size bytes) becomes the set of pages to send; queued requests are dropped.
 */
bool ram_postcopy_resume_from_received(const char *block, const uint8_t *bytes, uint64_t size,
                                       GError **errp);
/* Destination: the RECV_BITMAP reply's trailing bytes for @block (g_free). */
uint8_t *ram_postcopy_received_bitmap(const char *block, size_t *len, GError **errp);
/* Destination, new connection: forget half-assembled huge pages and the last block. */
void ram_postcopy_incoming_reconnect(void);

#endif
