/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * The source side's state, shared by the files that make up the source:
 * source.c (state machine and migration thread), source-return-path.c,
 * source-rate.c and migration-qmp.c (the commands). Not for use elsewhere.
 */
#ifndef GODWIT_MIGRATION_SOURCE_H
#define GODWIT_MIGRATION_SOURCE_H

#include "migration/migration.h"
#include "io/channel.h"

typedef struct MigrationState {
    int state;                    /* MigrationStatus, atomic */
    GThread *thread;
    char *uri;
    QIOCancel *cancel;
    QIOChannel *ch;               /* set by the thread once connected */
    /*
     * The migration thread's stream: only that thread uses it (and frees
     * it). Other threads read `transferred` instead (stats_mutex).
     */
    MigStream *s;
    GError *error;                /* first error; stats_mutex */

    int64_t start_ms, setup_ms, end_ms;   /* total-time = end - start */
    int64_t downtime_ms;
    int64_t expected_downtime_ms;
    int64_t split_stop_us, split_sync_us, split_pages_us, split_state_us, split_flush_us;
    uint64_t transferred;         /* stream bytes at the last update */

    bool vm_stopped_by_us;
    bool vm_was_running;
    RunState runstate_before;

    /* postcopy */
    bool postcopy_requested;      /* migrate-start-postcopy or the policy; atomic */
    bool in_postcopy;             /* switched (migration thread) */
    char rp_last_block[256];      /* REQ_PAGES without a name refers to this */

    /* pause-before-switchover */
    GMutex lock;
    GCond cond;
    bool continue_requested;

    /* return path */
    GThread *rp_thread;
    bool rp_open;
    uint32_t rp_pong;             /* last PONG value, lock */
    bool rp_shut;                 /* SHUT arrived, lock */
    uint32_t rp_shut_status;
    bool rp_failed;               /* reader ended with an error, lock */
    char *rp_error;
    bool rp_dest_failed;          /* the destination sent ERROR: it never ran the guest; lock */

    /* postcopy recovery (lock) */
    bool pause_requested;         /* migrate-pause broke the connection on purpose */
    bool resume_requested;        /* migrate resume=true: uri holds the new address */
    uint8_t *rp_bitmap;           /* the destination's received bitmap (RECV_BITMAP) */
    uint64_t rp_bitmap_size;
    char rp_bitmap_block[256];
    bool rp_resume_ack;           /* RESUME_ACK(1) arrived */
    uint64_t transferred_base;    /* bytes of the streams before the current one (stats_mutex) */
} MigrationState;

/* The one outgoing migration of this process. */
extern MigrationState mig_src;

/* Record @err as the migration's error unless one is recorded (any thread). */
void migrate_set_error(MigrationState *ms, const GError *err);
/* The migration thread (started by qmp_migrate). */
gpointer migration_thread_fn(gpointer opaque);

/* ---- return path (source-return-path.c) ---- */

/* The return-path reader thread: PONG, SHUT, page requests, ERROR. */
gpointer rp_thread_fn(gpointer opaque);
/* Wait for PONG(@value) or SHUT; false if the return path failed, timed out or we were cancelled. */
bool rp_wait_pong(MigrationState *ms, uint32_t value, int64_t timeout_ms, const char *what,
                  GError **errp);
bool rp_wait_shut(MigrationState *ms, int64_t timeout_ms, const char *what, GError **errp);
/* Recovery: wait for the RECV_BITMAP reply, for RESUME_ACK; for the reader to end by itself. */
bool rp_wait_bitmap(MigrationState *ms, int64_t timeout_ms, const char *what, GError **errp);
bool rp_wait_resume_ack(MigrationState *ms, int64_t timeout_ms, const char *what, GError **errp);
void rp_wait_ended(MigrationState *ms, int64_t timeout_ms);


/* ---- rate limiting and auto-converge (source-rate.c) ---- */

typedef struct RateWindow {
    MigrationState *ms;
    int64_t start_ms;
    uint64_t start_bytes;
} RateWindow;

/* The RAM iterate callback's budget check: true once this window's bytes are spent. */
bool rate_budget_spent(void *opaque);
/* Sleep out the rest of a spent window (a page request or a cancel wakes us). */
void rate_wait(RateWindow *w);

typedef struct ConvergeState {
    int64_t period_start_ms;
    uint64_t period_dirty_pages;
    uint64_t period_start_bytes;
    int hits;
} ConvergeState;

/* After a pass: raise the vCPU throttle when the guest dirties faster than we send. */
void autoconverge_check(MigrationState *ms, ConvergeState *cs, uint64_t new_dirty);

/* ---- postcopy pause and recovery (source-recovery.c) ---- */

/*
 * The connection broke in postcopy (or migrate-pause): record why, close
 * the channel, end the return-path reader, state postcopy-paused. The VM
 * stays stopped with every page. Migration thread.
 */
void postcopy_source_pause(MigrationState *ms, const GError *err);
/*
 * Wait for migrate resume=true, connect, rebuild the pages to send from the
 * destination's received bitmap, POSTCOPY_RESUME, RESUME_ACK: back in
 * postcopy-active. A failure on the way goes back to postcopy-paused and
 * waits again; returns only once recovered. Migration thread.
 */
void postcopy_source_recover(MigrationState *ms, RateWindow *win);

#endif
