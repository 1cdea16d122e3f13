/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * The destination's state machine and threads. The incoming thread
 * ("mig/dst/main"): accept -> check header and CONFIG before anything is
 * written -> load RAM and device records -> EOF -> SHUT -> start the guest
 * (or leave it paused); a failed load ends the process with status 1 and
 * the guest never runs. In postcopy, LISTEN hands the stream to the listen
 * thread ("mig/dst/listen") and RUN starts the guest while pages still
 * arrive; a broken stream after RUN pauses instead of failing.
 */
#include "qemu/osdep.h"
#include "qemu/bql.h"
#include "hw/machine.h"
#include "migration/incoming.h"
#include "migration/postcopy-ram.h"
#include "qapi/qapi-events.h"
#include "sysemu/cpus.h"
#include "sysemu/main-loop.h"
#include "sysemu/runstate.h"
#include <pthread.h>

IncomingState mig_dst = { .state = MIGRATION_STATUS_NONE };

/*
 * Record @err unless a loader failed before: true if it is the first. After
 * LISTEN two threads read the stream and both may fail; only the first
 * failure is reported (once), and it decides what happens to the guest.
 */
static bool incoming_set_error(IncomingState *is, const GError *err)
{
    bool first;

    g_mutex_lock(&is->err_lock);
    first = !is->error;
    if (first) {
        /* It may quote the stream (names): stderr, error-desc and ERROR get it clean. */
        is->error = migration_error_sanitized(err);
    }
    g_mutex_unlock(&is->err_lock);
    return first;
}

static bool incoming_has_error(IncomingState *is)
{
    g_mutex_lock(&is->err_lock);
    bool failed = is->error != NULL;
    g_mutex_unlock(&is->err_lock);
    return failed;
}

/* One return-path message and, for RECV_BITMAP, the bytes that follow it, unsplit. */
static bool incoming_rp_send_with(IncomingState *is, const MigRpMsg *m, const uint8_t *extra,
                                  size_t extra_len)
{
    uint8_t buf[MIG_RP_HDR_LEN + MIG_RP_MAX_LEN];
    size_t n = mig_rp_encode(m, buf);
    g_autoptr(GError) err = NULL;
    bool ok = true;

    if (!n) {
        return false;
    }
    g_mutex_lock(&is->rp_lock);
    if (!is->rp_open || !is->ch) {
        g_mutex_unlock(&is->rp_lock);
        return false;
    }
    if (!qio_channel_write_all(is->ch, buf, n, &err) ||
        (extra_len && !qio_channel_write_all(is->ch, extra, extra_len, &err))) {
        g_debug("migration: return path write failed: %s", err->message);
        ok = false;
    }
    g_mutex_unlock(&is->rp_lock);
    return ok;
}

static bool incoming_rp_send(IncomingState *is, const MigRpMsg *m)
{
    return incoming_rp_send_with(is, m, NULL, 0);
}

/* The fault thread asks the source for a page (no lock held by the caller). */
static bool incoming_request_page(void *opaque, uint64_t offset, uint32_t len)
{
    IncomingState *is = opaque;
    MigRpMsg m = { .start = offset, .len = len };
    bool ok;

    g_mutex_lock(&is->run_lock);
    m.type = is->rp_named ? MIG_RP_MSG_REQ_PAGES : MIG_RP_MSG_REQ_PAGES_ID;
    g_strlcpy(m.block, current_machine->ram->name, sizeof(m.block));
    ok = incoming_rp_send(is, &m);
    if (ok) {
        is->rp_named = true;
    }
    g_mutex_unlock(&is->run_lock);
    return ok;
}

static const PostcopyHooks incoming_postcopy_hooks = {
    .request_page = incoming_request_page,
};

static int incoming_open_return_path(void *opaque, GError **errp)
{
    IncomingState *is = opaque;

    if (qio_channel_kind(is->ch) != QIO_CHANNEL_SOCKET) {
        error_setg(errp, "the source asked for a return path on a one-way transport");
        return -1;
    }
    is->rp_open = true;
    return 0;
}

static int incoming_ping(void *opaque, uint32_t value, GError **errp)
{
    IncomingState *is = opaque;
    MigRpMsg m = { .type = MIG_RP_MSG_PONG, .value = value };

    incoming_rp_send(is, &m);
    return 0;
}

static void incoming_device_lock(void *opaque, bool lock)
{
    IncomingState *is = opaque;

    if (lock) {
        bql_lock();
        if (!is->load_start_us) {
            is->load_start_us = g_get_monotonic_time();
        }
    } else {
        bql_unlock();
    }
}

static int incoming_postcopy_advise(void *opaque, uint64_t summary, uint64_t target,
                                    GError **errp)
{
    IncomingState *is = opaque;

    if (!is->rp_open) {
        error_setg(errp, "postcopy needs a return path, and the source opened none");
        return -1;
    }
    return ram_postcopy_incoming_advise(summary, target, &incoming_postcopy_hooks, is, errp) ? 0 : -1;
}

static int incoming_postcopy_discard(void *opaque, const char *block, const MigDiscardRange *r,
                                     unsigned n, GError **errp)
{
    return ram_postcopy_incoming_discard(block, r, n, errp) ? 0 : -1;
}

static gpointer listen_thread_fn(gpointer opaque);
static const LoadVMCommandOps listen_ops;
static int incoming_recv_bitmap(void *opaque, const char *block, GError **errp);
static int incoming_postcopy_resume(void *opaque, GError **errp);

static int incoming_postcopy_listen(void *opaque, GError **errp)
{
    IncomingState *is = opaque;
    Machine *m = current_machine;
    g_autofree int *tids = g_new0(int, MAX(m->smp_cpus, 1));

    for (int i = 0; i < m->smp_cpus; i++) {
        tids[i] = m->cpus[i]->tid;
    }
    if (!ram_postcopy_incoming_listen(tids, m->smp_cpus, errp)) {
        return -1;
    }
    is->postcopy = true;
    migrate_set_state(&is->state, MIGRATION_STATUS_ACTIVE, MIGRATION_STATUS_POSTCOPY_ACTIVE);
    /*
     * The package has been read whole; from here the listen thread reads
     * the main stream (pages, some requested by device loads happening now).
     */
    is->listen_lst = loadvm_state_fork(is->lst, &listen_ops, is);
    is->listen_thread = g_thread_new(GW_THREAD_MIG_DST_LISTEN, listen_thread_fn, is);
    return 0;
}

static void incoming_note_resume(IncomingState *is)
{
    int64_t stop_us = runstate_record_incoming_stop_time();

    if (stop_us) {
        is->guest_visible_us = g_get_real_time() - stop_us;
    }
}

static gboolean incoming_postcopy_start_guest(gpointer opaque)
{
    const char *want = runstate_record_incoming();
    int st = RunState_parse(want);

    if (want[0] == '\0' || st == RUN_STATE_RUNNING) {
        if (autostart) {
            vm_start();
            incoming_note_resume(&mig_dst);
        } else {
            runstate_set(RUN_STATE_PAUSED);
        }
    } else {
        runstate_set((RunState)st);
    }
    return G_SOURCE_REMOVE;
}

static int incoming_postcopy_run(void *opaque, GError **errp)
{
    IncomingState *is = opaque;

    if (!is->postcopy) {
        error_setg(errp, "postcopy RUN without LISTEN");
        return -1;
    }
    if (incoming_has_error(is)) {
        /* The listen thread failed already: never start the guest. */
        error_setg(errp, "postcopy RUN after the listen thread failed");
        return -1;
    }
    if (!loadvm_check_all_loaded(is->lst, errp)) {
        return -1;
    }
    loadvm_post_load_all(is->lst);
    __atomic_store_n(&is->load_us,
                     is->load_start_us ? g_get_monotonic_time() - is->load_start_us : 0,
                     __ATOMIC_RELAXED);
    g_mutex_lock(&is->run_lock);
    is->run_done = true;
    g_cond_broadcast(&is->run_cond);
    g_mutex_unlock(&is->run_lock);
    main_loop_schedule(incoming_postcopy_start_guest, NULL);
    return LOADVM_QUIT;
}

static const LoadVMCommandOps incoming_ops = {
    .open_return_path = incoming_open_return_path,
    .ping = incoming_ping,
    .postcopy_advise = incoming_postcopy_advise,
    .postcopy_discard = incoming_postcopy_discard,
    .postcopy_listen = incoming_postcopy_listen,
    .postcopy_run = incoming_postcopy_run,
    .device_lock = incoming_device_lock,
};

/* The listen thread only sees pages and, at worst, a PING. */
static const LoadVMCommandOps listen_ops = {
    .ping = incoming_ping,
    .recv_bitmap = incoming_recv_bitmap,
    .postcopy_resume = incoming_postcopy_resume,
};

static gboolean incoming_postcopy_completed(gpointer opaque)
{
    migrate_set_state(&mig_dst.state, MIGRATION_STATUS_POSTCOPY_ACTIVE,
                      MIGRATION_STATUS_COMPLETED);
    return G_SOURCE_REMOVE;
}

static gboolean incoming_finish_failed(gpointer opaque);
static void incoming_send_error(IncomingState *is, const GError *err);

/* ---- postcopy recovery ---- */

/* The reason for the latest pause replaces the one before (error-desc). */
static void incoming_replace_error(IncomingState *is, GError *err)
{
    g_mutex_lock(&is->err_lock);
    g_clear_error(&is->error);
    is->error = err;
    g_mutex_unlock(&is->err_lock);
}

/*
 * The stream broke after RUN (or migrate-pause): close both directions,
 * stop requesting pages (faults are still recorded), forget a half
 * assembled huge page, postcopy-paused. Listen thread.
 */
static void incoming_postcopy_pause(IncomingState *is, const GError *err)
{
    GError *why;

    g_mutex_lock(&is->rp_lock);
    if (is->pause_requested) {
        why = g_error_new(GW_ERROR, 0, "migrate-pause was requested");
    } else {
        why = err ? migration_error_sanitized(err)
                  : g_error_new(GW_ERROR, 0, "the migration stream ended");
    }
    is->pause_requested = false;
    g_mutex_unlock(&is->rp_lock);

    postcopy_incoming_pause(ram_postcopy_incoming());
    fprintf(stderr, "godwit: Detected IO failure for postcopy. Migration paused: %s\n",
            why->message);
    incoming_replace_error(is, why);
    stream_free(is->s);
    is->s = NULL;
    g_mutex_lock(&is->rp_lock);
    if (is->ch) {
        qio_channel_shutdown(is->ch, QIO_CHANNEL_SHUTDOWN_BOTH);
        qio_channel_unref(is->ch);
        is->ch = NULL;
    }
    is->rp_open = false;
    g_mutex_unlock(&is->rp_lock);
    ram_postcopy_incoming_reconnect();
    int st = g_atomic_int_get(&is->state);
    if (st != MIGRATION_STATUS_POSTCOPY_PAUSED) {
        migrate_set_state(&is->state, st, MIGRATION_STATUS_POSTCOPY_PAUSED);
    }
}

/* Wait for migrate-recover and the source's new connection. Listen thread. */
static void incoming_wait_recovery(IncomingState *is)
{
    for (;;) {
        g_autoptr(GError) err = NULL;

        g_mutex_lock(&is->run_lock);
        while (!is->recover_listener) {
            g_cond_wait(&is->run_cond, &is->run_lock);
        }
        MigrationListener *l = is->recover_listener;
        is->recover_listener = NULL;
        g_mutex_unlock(&is->run_lock);

        /* Shutting the old channel down fired its cancel token: a new one. */
        qio_cancel_unref(is->cancel);
        is->cancel = qio_cancel_new();
        QIOChannel *ch = migration_listener_accept(l, is->cancel, &err);
        migration_listener_free(l);
        if (!ch) {
            fprintf(stderr, "godwit: postcopy recovery failed: %s\n", err->message);
            incoming_replace_error(is, g_error_copy(err));
            continue;
        }
        g_mutex_lock(&is->rp_lock);
        is->ch = ch;
        is->rp_open = true;
        g_mutex_unlock(&is->rp_lock);
        g_mutex_lock(&is->run_lock);
        is->rp_named = false;       /* the first request on the new channel names its block */
        g_mutex_unlock(&is->run_lock);
        is->s = stream_new_reader(ch);
        migrate_set_state(&is->state, MIGRATION_STATUS_POSTCOPY_PAUSED,
                          MIGRATION_STATUS_POSTCOPY_RECOVER);
        return;
    }
}

bool incoming_pause(IncomingState *is)
{
    if (g_atomic_int_get(&is->state) != MIGRATION_STATUS_POSTCOPY_ACTIVE) {
        return false;
    }
    g_mutex_lock(&is->rp_lock);
    is->pause_requested = true;
    if (is->ch) {
        qio_channel_shutdown(is->ch, QIO_CHANNEL_SHUTDOWN_BOTH);
    }
    g_mutex_unlock(&is->rp_lock);
    return true;
}

bool incoming_recover(IncomingState *is, const char *uri, GError **errp)
{
    MigrationListener *l = migration_listen(uri, errp);

    if (!l) {
        return false;
    }
    g_mutex_lock(&is->err_lock);
    g_free(is->socket_uri);
    is->socket_uri = g_strdup(migration_listener_uri(l));
    g_mutex_unlock(&is->err_lock);
    g_mutex_lock(&is->run_lock);
    if (is->recover_listener) {
        /* An earlier migrate-recover nobody connected to yet: the new address wins. */
        migration_listener_free(is->recover_listener);
    }
    is->recover_listener = l;
    g_cond_broadcast(&is->run_cond);
    g_mutex_unlock(&is->run_lock);
    /* As QEMU: an extra setup event, the state stays postcopy-paused. */
    qapi_event_send_migration(MIGRATION_STATUS_SETUP);
    return true;
}

/* RECV_BITMAP: which pages we hold, so the source sends only the others. */
static int incoming_recv_bitmap(void *opaque, const char *block, GError **errp)
{
    IncomingState *is = opaque;
    size_t len;
    g_autofree uint8_t *bits = ram_postcopy_received_bitmap(block, &len, errp);
    MigRpMsg m = { .type = MIG_RP_MSG_RECV_BITMAP };

    if (!bits) {
        return -1;
    }
    if (g_atomic_int_get(&is->state) != MIGRATION_STATUS_POSTCOPY_RECOVER) {
        error_setg(errp, "RECV_BITMAP outside a postcopy recovery");
        return -1;
    }
    g_strlcpy(m.block, block, sizeof(m.block));
    if (!incoming_rp_send_with(is, &m, bits, len)) {
        error_setg(errp, "cannot send the received bitmap to the source");
        return -1;
    }
    return 0;
}

/* POSTCOPY_RESUME: back to postcopy-active; ask again for every page still missing. */
static int incoming_postcopy_resume(void *opaque, GError **errp)
{
    IncomingState *is = opaque;
    MigRpMsg ack = { .type = MIG_RP_MSG_RESUME_ACK, .value = 1 };

    if (!migrate_set_state(&is->state, MIGRATION_STATUS_POSTCOPY_RECOVER,
                           MIGRATION_STATUS_POSTCOPY_ACTIVE)) {
        error_setg(errp, "POSTCOPY_RESUME outside a postcopy recovery");
        return -1;
    }
    if (!incoming_rp_send(is, &ack)) {
        error_setg(errp, "cannot send RESUME_ACK to the source");
        return -1;
    }
    return postcopy_incoming_resume(ram_postcopy_incoming(), errp) ? 0 : -1;
}

static gpointer listen_thread_fn(gpointer opaque)
{
    IncomingState *is = opaque;

    pthread_setname_np(pthread_self(), GW_THREAD_MIG_DST_LISTEN);
    for (;;) {
        g_autoptr(GError) err = NULL;
        LoadVMResult r = loadvm_main(is->listen_lst, is->s, &err);
        if (r == LOADVM_QUIT && !err) {
            error_setg(&err, "unexpected command after the postcopy switch");
        }
        /* The guest must not be started from incomplete state: wait for RUN. */
        g_mutex_lock(&is->run_lock);
        while (!is->run_done && r == LOADVM_EOF) {
            g_cond_wait(&is->run_cond, &is->run_lock);
        }
        bool ran = is->run_done;
        g_mutex_unlock(&is->run_lock);

        if (r == LOADVM_EOF) {
            PostcopyIncoming *pc = ram_postcopy_incoming();
            if (!postcopy_incoming_finish(pc, &err)) {
                g_prefix_error(&err, "postcopy ended with pages missing: ");
                r = LOADVM_ERROR;
            }
        }
        if (r == LOADVM_EOF) {
            MigRpMsg shut = { .type = MIG_RP_MSG_SHUT, .value = 0 };
            incoming_rp_send(is, &shut);
            /* The fault thread is gone: nobody writes the return path any more. */
            loadvm_state_free(is->listen_lst);
            loadvm_state_free(is->lst);
            is->listen_lst = is->lst = NULL;
            stream_free(is->s);
            is->s = NULL;
            g_mutex_lock(&is->rp_lock);
            qio_channel_unref(is->ch);
            is->ch = NULL;
            is->rp_open = false;
            g_mutex_unlock(&is->rp_lock);
            main_loop_schedule(incoming_postcopy_completed, NULL);
            return NULL;
        }
        if (!ran) {
            if (!incoming_set_error(is, err)) {
                /* The incoming thread failed first (and stopped our reads): it reports. */
                return NULL;
            }
            incoming_send_error(is, is->error);
            main_loop_schedule(incoming_finish_failed, NULL);
            return NULL;
        }
        /*
         * The guest runs here already: keep userfaultfd registered (blocked
         * vCPUs stay blocked; no zero page replaces data) and wait for a
         * recovery, as many times as it takes.
         */
        incoming_postcopy_pause(is, err);
        incoming_wait_recovery(is);
    }
}

static gboolean incoming_finish_ok(gpointer opaque)
{
    IncomingState *is = &mig_dst;
    const char *want = runstate_record_incoming();
    int st = RunState_parse(want);

    /* As QEMU: a running source comes up running (unless -S), else as it was. */
    if (want[0] == '\0' || st == RUN_STATE_RUNNING) {
        if (autostart) {
            vm_start();
            incoming_note_resume(is);
        } else {
            runstate_set(RUN_STATE_PAUSED);
        }
    } else {
        runstate_set((RunState)st);
    }
    __atomic_store_n(&is->load_us,
                     is->load_start_us ? g_get_monotonic_time() - is->load_start_us : 0,
                     __ATOMIC_RELAXED);
    migrate_set_state(&is->state, MIGRATION_STATUS_ACTIVE, MIGRATION_STATUS_COMPLETED);
    return G_SOURCE_REMOVE;
}

static gboolean incoming_finish_failed(gpointer opaque)
{
    if (g_atomic_int_get(&mig_dst.state) == MIGRATION_STATUS_POSTCOPY_PAUSED) {
        return G_SOURCE_REMOVE;
    }
    IncomingState *is = &mig_dst;

    fprintf(stderr, "godwit: load of migration failed: %s\n",
            is->error ? is->error->message : "unknown error");
    migrate_set_state(&is->state, g_atomic_int_get(&is->state), MIGRATION_STATUS_FAILED);
    /* As QEMU: a destination whose load failed exits; its guest never ran. */
    qemu_system_exit_request(1);
    return G_SOURCE_REMOVE;
}

/*
 * Tell the source why we give up, best effort, on a socket even before the
 * return path was formally opened: its error-desc then names the reason
 * (e.g. a RAM size mismatch) instead of "connection closed".
 */
static void incoming_send_error(IncomingState *is, const GError *err)
{
    MigRpMsg m = { .type = MIG_RP_MSG_ERROR };

    if (!err || !is->ch || qio_channel_kind(is->ch) != QIO_CHANNEL_SOCKET) {
        return;
    }
    g_strlcpy(m.block, err->message, sizeof(m.block));
    g_mutex_lock(&is->rp_lock);
    bool was_open = is->rp_open;
    is->rp_open = true;
    g_mutex_unlock(&is->rp_lock);
    incoming_rp_send(is, &m);
    g_mutex_lock(&is->rp_lock);
    is->rp_open = was_open;
    g_mutex_unlock(&is->rp_lock);
}

static gpointer incoming_thread_fn(gpointer opaque)
{
    IncomingState *is = opaque;
    g_autoptr(GError) err = NULL;
    LoadVMState *lst = NULL;
    MigStream *s = NULL;
    g_autoptr(MigConfig) cfg = NULL;

    pthread_setname_np(pthread_self(), GW_THREAD_MIG_DST_MAIN);
    is->ch = migration_listener_accept(is->listener, is->cancel, &err);
    if (!is->ch) {
        goto fail;
    }
    migrate_set_state(&is->state, MIGRATION_STATUS_NONE, MIGRATION_STATUS_ACTIVE);
    s = stream_new_reader(is->ch);
    bql_lock();
    cfg = migration_local_config(current_machine);
    bql_unlock();
    lst = loadvm_state_new(cfg, &incoming_ops, is);
    is->lst = lst;
    is->s = s;
    if (!loadvm_read_header(lst, s, &err)) {
        goto fail;
    }
    LoadVMResult r = loadvm_main(lst, s, &err);
    if (r == LOADVM_QUIT && is->postcopy) {
        /* RUN: the guest starts; the listen thread owns the stream now. */
        return NULL;
    }
    if (r != LOADVM_EOF) {
        if (r != LOADVM_ERROR && !err) {
            error_setg(&err, "the migration stream ended without its EOF record");
        }
        goto fail;
    }
    loadvm_post_load_all(lst);     /* takes the BQL through device_lock */
    MigRpMsg shut = { .type = MIG_RP_MSG_SHUT, .value = 0 };
    incoming_rp_send(is, &shut);
    loadvm_state_free(lst);
    is->lst = NULL;
    stream_free(s);
    is->s = NULL;
    g_mutex_lock(&is->rp_lock);
    qio_channel_unref(is->ch);
    is->ch = NULL;
    is->rp_open = false;
    g_mutex_unlock(&is->rp_lock);
    migration_listener_free(is->listener);
    is->listener = NULL;
    main_loop_schedule(incoming_finish_ok, NULL);
    return NULL;

fail:
    if (!incoming_set_error(is, err)) {
        /* The listen thread failed first and reports it. */
        return NULL;
    }
    incoming_send_error(is, is->error);
    if (is->postcopy) {
        /*
         * The listen thread may be reading the stream: stop its reads (its
         * own error is then not the first) but leave both to the exit.
         */
        stream_shutdown(s);
        main_loop_schedule(incoming_finish_failed, NULL);
        return NULL;
    }
    if (lst) {
        loadvm_state_free(lst);
    }
    if (s) {
        stream_free(s);
    }
    main_loop_schedule(incoming_finish_failed, NULL);
    return NULL;
}

bool incoming_start(IncomingState *is, const char *uri, GError **errp)
{
    is->listener = migration_listen(uri, errp);
    if (!is->listener) {
        return false;
    }
    is->socket_uri = g_strdup(migration_listener_uri(is->listener));
    is->cancel = qio_cancel_new();
    is->started = true;
    /* QEMU emits this even without the events capability. */
    qapi_event_send_migration(MIGRATION_STATUS_SETUP);
    is->thread = g_thread_new(GW_THREAD_MIG_DST_MAIN, incoming_thread_fn, is);
    return true;
}
