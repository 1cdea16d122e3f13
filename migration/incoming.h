/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * The destination side's state, shared by incoming.c (its state machine and
 * threads) and migration-qmp.c (the commands, query-migrate). Not for use
 * elsewhere.
 */
#ifndef GODWIT_MIGRATION_INCOMING_H
#define GODWIT_MIGRATION_INCOMING_H

#include "migration/migration.h"
#include "migration/savevm.h"
#include "migration/transport.h"

typedef struct IncomingState {
    int state;                    /* MigrationStatus, atomic */
    bool deferred;                /* -incoming defer, migrate-incoming not yet given */
    bool started;
    MigrationListener *listener;
    QIOCancel *cancel;
    GThread *thread;
    char *socket_uri;             /* actual listen address */
    QIOChannel *ch;
    GMutex rp_lock;               /* return-path writes */
    bool rp_open;
    int64_t load_start_us;        /* END section began (stop-and-copy data) */
    int64_t load_us;              /* atomic: the incoming thread writes it, query-migrate reads */
    int64_t guest_visible_us;     /* source stop request to our RESUME, 0 if unknown */
    /*
     * The first error of either loader (incoming or listen thread); set
     * once under err_lock, then read-only (the main loop reads it after
     * the thread that set it scheduled the report).
     */
    GMutex err_lock;
    GError *error;
    /* socket_uri changes on migrate-recover (out of band): err_lock too */

    /* postcopy */
    MigStream *s;                 /* the main stream; the listen thread takes it over */
    LoadVMState *lst;
    LoadVMState *listen_lst;
    GThread *listen_thread;
    bool rp_named;                /* a REQ_PAGES_ID was sent (block name known) */
    GMutex run_lock;
    GCond run_cond;
    bool run_done;                /* RUN processed: the guest may run here */
    bool postcopy;                /* LISTEN processed */

    /* postcopy recovery */
    bool pause_requested;         /* migrate-pause broke the connection; rp_lock */
    MigrationListener *recover_listener;  /* from migrate-recover, for the listen thread; run_lock */
} IncomingState;

/* The one incoming migration of this process. */
extern IncomingState mig_dst;

/* Listen on @uri and start the incoming thread (main thread). */
bool incoming_start(IncomingState *is, const char *uri, GError **errp);
/* migrate-pause: break the connection if postcopy-active (true), else false. Any thread. */
bool incoming_pause(IncomingState *is);
/* migrate-recover (in postcopy-paused): listen on @uri for the source's resume. Any thread. */
bool incoming_recover(IncomingState *is, const char *uri, GError **errp);

#endif
