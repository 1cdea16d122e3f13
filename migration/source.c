/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * The source's state machine and its migration thread ("mig/src/main"):
 * connect -> header, CONFIG, return path + PING -> RAM setup -> passes (send
 * dirty pages, sync) until the rest fits in downtime-limit -> stop the VM ->
 * final sync, last pages, device records, EOF -> (return path) wait for the
 * destination's SHUT -> completed. Or, when postcopy is asked for, the
 * switch (DISCARD, the device package, RUN) and then requested pages first.
 * Dirty logging is switched off and bitmaps freed only after the last byte
 * is out: the destination never waits for that clean-up.
 */
#include "qemu/osdep.h"
#include "qemu/bql.h"
#include "hw/machine.h"
#include "migration/source.h"
#include "migration/savevm.h"
#include "migration/transport.h"
#include "qapi/qapi-events.h"
#include "sysemu/cpus.h"
#include "sysemu/runstate.h"
#include <sys/socket.h>

#define RP_WAIT_SETUP_MS    30000   /* PONG from a destination that accepted us */
#define POSTCOPY_SNDBUF     (32 * 1024)
#define CONVERGE_FLOOR_BYTES (1 << 20)   /* below this a further pass gains nothing */
#define CONVERGE_MAX_PASSES 50
#define CONVERGE_GOOD_MS    5         /* a stop this short is not worth more passes */

MigrationState mig_src = { .state = MIGRATION_STATUS_NONE };

bool migration_is_running(void)
{
    switch (g_atomic_int_get(&mig_src.state)) {
    case MIGRATION_STATUS_SETUP:
    case MIGRATION_STATUS_ACTIVE:
    case MIGRATION_STATUS_CANCELLING:
    case MIGRATION_STATUS_PRE_SWITCHOVER:
    case MIGRATION_STATUS_DEVICE:
    case MIGRATION_STATUS_POSTCOPY_ACTIVE:
    case MIGRATION_STATUS_POSTCOPY_PAUSED:
    case MIGRATION_STATUS_POSTCOPY_RECOVER:
        return true;
    default:
        return false;
    }
}

void migrate_set_error(MigrationState *ms, const GError *err)
{
    migration_stats_lock();
    if (!ms->error) {
        ms->error = migration_error_sanitized(err);
    }
    migration_stats_unlock();
}

/* The recorded error's text, for stderr (the thread that set it only). */
static const char *migrate_error_text(MigrationState *ms)
{
    return ms->error ? ms->error->message : "unknown error";
}

/* ---- source: the migration thread ---- */

static bool migration_sync(MigrationState *ms, uint64_t *dirty, GError **errp)
{
    if (!ram_sync(dirty, errp)) {
        return false;
    }
    migration_stats_lock();
    migration_stats()->dirty_sync_count++;
    migration_stats()->remaining_bytes = *dirty * GW_PAGE_SIZE;
    uint64_t pass = migration_stats()->dirty_sync_count;
    migration_stats_unlock();
    if (migrate_cap(MIGRATION_CAPABILITY_EVENTS)) {
        qapi_event_send_migration_pass((int64_t)pass);
    }
    return true;
}

static void update_transferred(MigrationState *ms)
{
    migration_stats_lock();
    ms->transferred = ms->transferred_base + stream_bytes(ms->s);
    migration_stats_unlock();
}

/* Remember how the guest ran (for the destination's run state). BQL held. */
static void migration_note_runstate(MigrationState *ms)
{
    ms->runstate_before = runstate_get();
    ms->vm_was_running = runstate_is_running();
    runstate_record_set_outgoing(ms->vm_was_running ? "running" :
                                 runstate_name(ms->runstate_before));
}

/* Stop the guest for the switch; returns when every vCPU is parked. BQL held. */
static int64_t migration_stop_guest(MigrationState *ms)
{
    runstate_record_set_stop_time(g_get_real_time());
    vm_stop(RUN_STATE_FINISH_MIGRATE);
    ms->vm_stopped_by_us = true;
    cpus_set_throttle(0);
    return g_get_monotonic_time();
}

/*
 * Stop-and-copy. Returns true when everything, EOF included, is on the wire.
 * The VM stays stopped on success (postmigrate) and is resumed by the
 * caller on failure.
 */
static bool migration_complete(MigrationState *ms, GError **errp)
{
    MigStream *s = ms->s;
    uint64_t dirty;
    int64_t t0, t1, t2, t3, t4;
    uint64_t bytes_before;

    bql_lock();
    migration_note_runstate(ms);
    t0 = g_get_monotonic_time();
    int64_t t_parked = migration_stop_guest(ms);

    if (migrate_cap(MIGRATION_CAPABILITY_PAUSE_BEFORE_SWITCHOVER)) {
        if (!migrate_set_state(&ms->state, MIGRATION_STATUS_ACTIVE,
                               MIGRATION_STATUS_PRE_SWITCHOVER)) {
            bql_unlock();
            error_setg(errp, "migration was cancelled");
            return false;
        }
        bql_unlock();
        g_mutex_lock(&ms->lock);
        while (!ms->continue_requested && !qio_cancel_is_set(ms->cancel)) {
            g_cond_wait(&ms->cond, &ms->lock);
        }
        g_mutex_unlock(&ms->lock);
        bql_lock();
        if (!migrate_set_state(&ms->state, MIGRATION_STATUS_PRE_SWITCHOVER,
                               MIGRATION_STATUS_DEVICE)) {
            bql_unlock();
            error_setg(errp, "migration was cancelled");
            return false;
        }
        t0 = t_parked = g_get_monotonic_time();
    }

    bytes_before = stream_bytes(s);
    if (!migration_sync(ms, &dirty, errp)) {
        bql_unlock();
        return false;
    }
    t1 = g_get_monotonic_time();
    if (!savevm_live_complete(s, errp)) {
        bql_unlock();
        return false;
    }
    t2 = g_get_monotonic_time();
    if (!savevm_save_devices(s, errp)) {
        bql_unlock();
        return false;
    }
    savevm_put_eof(s);
    t3 = g_get_monotonic_time();
    if (!stream_flush(s, errp)) {
        bql_unlock();
        return false;
    }
    t4 = g_get_monotonic_time();
    bql_unlock();

    migration_stats_lock();
    ms->downtime_ms = (t4 - t0 + 999) / 1000;
    ms->split_stop_us = t_parked - t0;
    ms->split_sync_us = t1 - t_parked;
    ms->split_pages_us = t2 - t1;
    ms->split_state_us = t3 - t2;
    ms->split_flush_us = t4 - t3;
    migration_stats()->downtime_bytes = stream_bytes(s) - bytes_before;
    migration_stats()->remaining_bytes = 0;
    migration_stats_unlock();
    g_debug("migration: downtime %" PRId64 " us: stop %" PRId64 ", sync %" PRId64
            ", pages %" PRId64 ", state %" PRId64 ", flush %" PRId64, t4 - t0, t_parked - t0,
            t1 - t_parked, t2 - t1, t3 - t2, t4 - t3);
    return true;
}

/*
 * The postcopy switch: stop the guest, final sync, DISCARD every page still
 * to send, then one PACKAGED blob with LISTEN, every device record and RUN,
 * so the destination's stream stays free for pages while its devices load.
 * From RUN on the guest runs there: the source never resumes it.
 */
static bool postcopy_start(MigrationState *ms, GError **errp)
{
    MigStream *s = ms->s;
    uint64_t dirty;
    int64_t t0, t1, t2, t3, t4;
    uint64_t bytes_before;

    bql_lock();
    migration_note_runstate(ms);
    /* QEMU's order: the status changes, then STOP. */
    if (!migrate_set_state(&ms->state, MIGRATION_STATUS_ACTIVE,
                           MIGRATION_STATUS_POSTCOPY_ACTIVE)) {
        bql_unlock();
        error_setg(errp, "migration was cancelled");
        return false;
    }
    t0 = g_get_monotonic_time();
    int64_t t_parked = migration_stop_guest(ms);
    bytes_before = stream_bytes(s);

    bool ok = migration_sync(ms, &dirty, errp);
    t1 = g_get_monotonic_time();
    ok = ok && ram_postcopy_send_discard(s, errp);
    t2 = g_get_monotonic_time();
    if (ok) {
        MigStream *pk = stream_new_mem_writer();
        size_t len;
        savevm_send_postcopy_listen(pk);
        ok = savevm_save_devices(pk, errp);
        savevm_send_postcopy_run(pk);
        if (ok) {
            const uint8_t *blob = stream_mem_data(pk, &len);
            ok = stream_check(pk, errp) && savevm_send_packaged(s, blob, len, errp);
        }
        stream_free(pk);
    }
    t3 = g_get_monotonic_time();
    /*
     * A requested page waits behind the socket's send queue: keep it short
     * once the destination runs (background pages lose little throughput).
     */
    if (qio_channel_kind(ms->ch) == QIO_CHANNEL_SOCKET) {
        int sndbuf = POSTCOPY_SNDBUF;
        setsockopt(qio_channel_wfd(ms->ch), SOL_SOCKET, SO_SNDBUF, &sndbuf, sizeof(sndbuf));
    }
    /* Requests may arrive as soon as the package is out: serve them from here on. */
    __atomic_store_n(&ms->in_postcopy, true, __ATOMIC_RELEASE);
    ram_postcopy_switch();
    ok = ok && stream_flush(s, errp);
    t4 = g_get_monotonic_time();
    bql_unlock();

    migration_stats_lock();
    ms->downtime_ms = (t4 - t0 + 999) / 1000;
    ms->split_stop_us = t_parked - t0;
    ms->split_sync_us = t1 - t_parked;
    ms->split_pages_us = t2 - t1;      /* the discard list */
    ms->split_state_us = t3 - t2;      /* the package */
    ms->split_flush_us = t4 - t3;
    migration_stats()->downtime_bytes = stream_bytes(s) - bytes_before;
    migration_stats()->precopy_bytes = bytes_before;
    migration_stats_unlock();
    g_debug("migration: postcopy switch %" PRId64 " us: sync %" PRId64 ", discard %" PRId64
            ", package %" PRId64 ", flush %" PRId64, t4 - t0, t1 - t0, t2 - t1, t3 - t2,
            t4 - t3);
    return ok;
}

/* After the switch: requested pages first, the background sweep otherwise. */
static bool postcopy_run_source(MigrationState *ms, RateWindow *win, GError **errp)
{
    MigStream *s = ms->s;
    uint64_t post_start = stream_bytes(s);
    /* After a recovery the new stream counts from 0: add what went before. */
    migration_stats_lock();
    uint64_t post_base = migration_stats()->postcopy_bytes;
    migration_stats_unlock();

    for (;;) {
        int st = g_atomic_int_get(&ms->state);
        if (st != MIGRATION_STATUS_POSTCOPY_ACTIVE) {
            error_setg(errp, "postcopy interrupted (%s)", MigrationStatus_str(st));
            return false;
        }
        int r = savevm_live_iterate(s, errp);
        if (r < 0 || !stream_flush(s, errp)) {
            return false;
        }
        migration_stats_lock();
        migration_stats()->remaining_bytes = ram_dirty_pages() * GW_PAGE_SIZE;
        migration_stats()->postcopy_bytes = post_base + stream_bytes(s) - post_start;
        ms->transferred = ms->transferred_base + stream_bytes(s);
        migration_stats_unlock();
        if (r == 1 && !ram_has_requests()) {
            break;
        }
        rate_wait(win);
    }
    if (!savevm_live_complete(s, errp)) {
        return false;
    }
    savevm_put_eof(s);
    if (!stream_flush(s, errp)) {
        return false;
    }
    migration_stats_lock();
    migration_stats()->postcopy_bytes = post_base + stream_bytes(s) - post_start;
    migration_stats()->remaining_bytes = 0;
    migration_stats_unlock();
    return true;
}

/* With a return path, completed means the destination loaded it all. */
static bool source_wait_shut(MigrationState *ms, GError **errp)
{
    if (!ms->rp_open) {
        return true;
    }
    if (!rp_wait_shut(ms, 600000, "The destination did not confirm the load", errp)) {
        return false;
    }
    if (ms->rp_shut_status) {
        error_setg(errp, "The destination failed to load the migration (status %u)",
                   ms->rp_shut_status);
        return false;
    }
    return true;
}

/*
 * The destination gave up (ERROR) instead of pausing: it only does so
 * before it ran the guest, so the guest is still ours to run.
 */
static bool source_dest_failed(MigrationState *ms)
{
    rp_wait_ended(ms, 1000);
    g_mutex_lock(&ms->lock);
    bool failed = ms->rp_dest_failed;
    g_mutex_unlock(&ms->lock);
    if (failed) {
        __atomic_store_n(&ms->in_postcopy, false, __ATOMIC_RELEASE);
    }
    return failed;
}

gpointer migration_thread_fn(gpointer opaque)
{
    MigrationState *ms = opaque;
    g_autoptr(GError) err = NULL;
    RateWindow win = { .ms = ms };
    ConvergeState cs = { 0 };
    bool tracking = false;
    bool done = false;
    bool shut_checked = false;
    int64_t pass_start_ms, pass_start_bytes;
    g_autoptr(MigConfig) cfg = NULL;

    pthread_setname_np(pthread_self(), GW_THREAD_MIG_SRC_MAIN);

    QIOChannel *ch = migration_connect(ms->uri, ms->cancel, &err);
    if (!ch) {
        goto out;
    }
    g_mutex_lock(&ms->lock);
    ms->ch = ch;
    g_mutex_unlock(&ms->lock);
    ms->s = stream_new_writer(ch);

    bql_lock();
    cfg = migration_local_config(current_machine);
    bql_unlock();
    savevm_put_header(ms->s);
    savevm_put_config(ms->s, cfg);

    /*
     * A socket carries a return path: the destination answers PING(1) only
     * after it has checked our CONFIG, so an incompatible destination is
     * found here, long before the guest would be stopped.
     */
    ms->rp_open = qio_channel_kind(ch) == QIO_CHANNEL_SOCKET;
    if (migrate_cap(MIGRATION_CAPABILITY_RETURN_PATH) && !ms->rp_open) {
        error_setg(&err, "The return-path capability needs a socket transport (tcp:, unix: "
                   "or fd: with a socket)");
        goto out;
    }
    if (ms->rp_open) {
        savevm_send_open_return_path(ms->s);
        savevm_send_ping(ms->s, 1);
        if (!stream_flush(ms->s, &err)) {
            goto out;
        }
        ms->rp_thread = g_thread_new(GW_THREAD_MIG_SRC_RETURN, rp_thread_fn, ms);
        if (!rp_wait_pong(ms, 1, RP_WAIT_SETUP_MS,
                     "The destination refused the migration", &err)) {
            goto out;
        }
    }
    if (migrate_cap(MIGRATION_CAPABILITY_POSTCOPY_RAM)) {
        if (!ms->rp_open) {
            error_setg(&err, "Postcopy needs a return path: use a socket transport (tcp:, "
                       "unix: or fd: with a socket)");
            goto out;
        }
        /* The destination checks page sizes and its userfaultfd support now. */
        savevm_send_postcopy_advise(ms->s, current_machine->ram->page_size, GW_PAGE_SIZE);
        savevm_send_ping(ms->s, 2);
        if (!stream_flush(ms->s, &err) ||
            !rp_wait_pong(ms, 2, RP_WAIT_SETUP_MS,
                     "The destination cannot do postcopy", &err)) {
            goto out;
        }
    }

    bql_lock();
    tracking = ram_start_tracking(&err);
    bql_unlock();
    if (!tracking) {
        goto out;
    }
    uint64_t dirty;
    if (!migration_sync(ms, &dirty, &err) || !savevm_live_setup(ms->s, &err) ||
        !stream_flush(ms->s, &err)) {
        goto out;
    }
    ram_set_budget(rate_budget_spent, &win);
    migration_stats_lock();
    ms->setup_ms = gw_clock_ms() - ms->start_ms;
    migration_stats_unlock();
    if (!migrate_set_state(&ms->state, MIGRATION_STATUS_SETUP, MIGRATION_STATUS_ACTIVE)) {
        goto out;   /* cancelled */
    }

    win.start_ms = gw_clock_ms();
    win.start_bytes = stream_bytes(ms->s);
    cs.period_start_ms = win.start_ms;
    cs.period_start_bytes = win.start_bytes;
    pass_start_ms = win.start_ms;
    pass_start_bytes = (int64_t)win.start_bytes;
    uint64_t prev_remaining = 0;
    int64_t mbps_ms = win.start_ms;
    uint64_t mbps_bytes = win.start_bytes;

    while (g_atomic_int_get(&ms->state) == MIGRATION_STATUS_ACTIVE) {
        int r = savevm_live_iterate(ms->s, &err);
        if (r < 0 || !stream_flush(ms->s, &err)) {
            goto out;
        }
        update_transferred(ms);
        int64_t tnow = gw_clock_ms();
        migration_stats_lock();
        migration_stats()->remaining_bytes = ram_dirty_pages() * GW_PAGE_SIZE;
        migration_stats()->precopy_bytes = stream_bytes(ms->s);
        if (tnow - mbps_ms >= 100) {
            /* Throughput over the last ~100 ms, so progress shows while a pass runs. */
            migration_stats()->mbps = (double)(stream_bytes(ms->s) - mbps_bytes) * 8.0 / 1e6 /
                         ((double)(tnow - mbps_ms) / 1000.0);
            mbps_ms = tnow;
            mbps_bytes = stream_bytes(ms->s);
        }
        migration_stats_unlock();
        if (__atomic_load_n(&ms->postcopy_requested, __ATOMIC_ACQUIRE)) {
            bool ok = postcopy_start(ms, &err) && postcopy_run_source(ms, &win, &err) &&
                      source_wait_shut(ms, &err);
            /*
             * After the switch a broken connection pauses: the guest runs on
             * the destination, and only we hold the pages it still lacks.
             */
            while (!ok && ms->in_postcopy && !source_dest_failed(ms)) {
                postcopy_source_pause(ms, err);
                g_clear_error(&err);
                postcopy_source_recover(ms, &win);
                ok = postcopy_run_source(ms, &win, &err) && source_wait_shut(ms, &err);
            }
            if (!ok) {
                goto out;
            }
            shut_checked = true;
            done = true;
            break;
        }
        rate_wait(&win);
        if (!ram_sweep_done()) {
            continue;
        }

        /* A pass ended: sync, measure, decide. */
        int64_t now = gw_clock_ms();
        int64_t pass_ms = MAX(now - pass_start_ms, 1);
        uint64_t pass_bytes = stream_bytes(ms->s) - (uint64_t)pass_start_bytes;
        if (!migration_sync(ms, &dirty, &err)) {
            goto out;
        }
        /* Bytes per ms this pass moved; the floor keeps an idle pass from reading as 0. */
        double bw = MAX((double)pass_bytes / (double)pass_ms, 1.0);
        uint64_t remaining = dirty * GW_PAGE_SIZE;
        int64_t expected = (int64_t)((double)remaining / bw);
        migration_stats_lock();
        ms->expected_downtime_ms = expected;
        migration_stats()->dirty_pages_rate = dirty * 1000 / (uint64_t)pass_ms;
        migration_stats()->pages_per_second = (migration_stats()->normal + migration_stats()->duplicate) * 1000 /
                                 (uint64_t)MAX(now - ms->start_ms, 1);
        migration_stats_unlock();
        autoconverge_check(ms, &cs, dirty);
        pass_start_ms = now;
        pass_start_bytes = (int64_t)stream_bytes(ms->s);

        uint32_t after = __atomic_load_n(&migrate_params.x_postcopy_after_passes,
                                         __ATOMIC_RELAXED);
        bool converges = (uint64_t)expected <= __atomic_load_n(&migrate_params.downtime_limit,
                                                               __ATOMIC_RELAXED);
        if (!converges && after && migrate_cap(MIGRATION_CAPABILITY_POSTCOPY_RAM) &&
            migration_stats()->dirty_sync_count > after) {
            /*
             * The hybrid policy: N passes have gone by (syncs after the first
             * one) and precopy still would not fit in downtime-limit.
             */
            g_debug("migration: %u passes without converging; switching to postcopy", after);
            __atomic_store_n(&ms->postcopy_requested, true, __ATOMIC_RELEASE);
            continue;
        }
        /*
         * It fits, but if the last pass still shrank the dirty set by more
         * than half, another pass is cheap and the stop will be shorter
         * (QEMU, with its lower bandwidth estimate, iterates on here too).
         */
        if (converges && prev_remaining && remaining * 2 < prev_remaining &&
            remaining > CONVERGE_FLOOR_BYTES && expected > CONVERGE_GOOD_MS &&
            migration_stats()->dirty_sync_count < CONVERGE_MAX_PASSES) {
            prev_remaining = remaining;
            continue;
        }
        prev_remaining = remaining;
        if (converges) {
            if (!migration_complete(ms, &err)) {
                goto out;
            }
            done = true;
            break;
        }
    }
    if (!done) {
        goto out;   /* cancelled */
    }
    update_transferred(ms);

    /* With a return path, completed means the destination loaded it all. */
    if (!shut_checked && !source_wait_shut(ms, &err)) {
        goto out;
    }

out:
    ram_set_budget(NULL, NULL);
    if (tracking && !(err && ms->in_postcopy)) {
        ram_stop_tracking();
    }
    savevm_live_cleanup();
    cpus_set_throttle(0);
    if (ms->s && err) {
        stream_shutdown(ms->s);
    }
    if (ms->rp_thread) {
        if (err) {
            /*
             * A write fails when the destination gave up and closed; the
             * ERROR it sent first says why. Give the reader a moment to
             * take it before we cut the channel.
             */
            if (!ms->in_postcopy) {
                rp_wait_ended(ms, 1000);
            }
            qio_channel_shutdown(ms->ch, QIO_CHANNEL_SHUTDOWN_BOTH);
        }
        g_thread_join(ms->rp_thread);
        ms->rp_thread = NULL;
    }
    if (err && ms->rp_dest_failed && ms->rp_error && !strstr(err->message, ms->rp_error)) {
        /* The destination's own reason beats our failed write to it. */
        g_clear_error(&err);
        err = g_error_new(GW_ERROR, 0, "The destination refused the migration: %s",
                          ms->rp_error);
    }
    if (ms->s) {
        MigStream *s = ms->s;

        /* query-migrate reads transferred from now on, never the stream. */
        migration_stats_lock();
        ms->transferred = ms->transferred_base + stream_bytes(s);
        ms->s = NULL;
        migration_stats_unlock();
        stream_free(s);
    }
    g_mutex_lock(&ms->lock);
    if (ms->ch) {
        qio_channel_unref(ms->ch);
        ms->ch = NULL;
    }
    g_mutex_unlock(&ms->lock);

    migration_stats_lock();
    ms->end_ms = gw_clock_ms();
    if (done && !err) {
        /* As QEMU: the average over the transfer once completed. */
        int64_t xfer_ms = MAX(ms->end_ms - ms->start_ms - ms->setup_ms, 1);
        migration_stats()->mbps = (double)ms->transferred * 8.0 / 1e6 / ((double)xfer_ms / 1000.0);
        migration_stats()->pages_per_second = (migration_stats()->normal + migration_stats()->duplicate) * 1000 / (uint64_t)xfer_ms;
    }
    migration_stats_unlock();

    bql_lock();
    if (done && !err) {
        runstate_set(RUN_STATE_POSTMIGRATE);
        migrate_set_state(&ms->state, g_atomic_int_get(&ms->state), MIGRATION_STATUS_COMPLETED);
    } else if (ms->in_postcopy) {
        /*
         * After RUN the guest lives on the destination: never resume it here.
         * Keep it stopped with every page, for a recovery.
         */
        if (err) {
            migrate_set_error(ms, err);
        }
        fprintf(stderr, "godwit: Detected IO failure for postcopy. Migration paused: %s\n",
                migrate_error_text(ms));
        runstate_set(RUN_STATE_FINISH_MIGRATE);
        migrate_set_state(&ms->state, g_atomic_int_get(&ms->state),
                          MIGRATION_STATUS_POSTCOPY_PAUSED);
    } else {
        /* Nothing is lost: the source takes the guest back as it was. */
        if (ms->vm_stopped_by_us) {
            if (ms->vm_was_running) {
                vm_start();
            } else {
                runstate_set(ms->runstate_before);
            }
        }
        if (g_atomic_int_get(&ms->state) == MIGRATION_STATUS_CANCELLING) {
            migrate_set_state(&ms->state, MIGRATION_STATUS_CANCELLING,
                              MIGRATION_STATUS_CANCELLED);
        } else {
            if (!err) {
                err = g_error_new(GW_ERROR, 0, "migration was interrupted");
            }
            migrate_set_error(ms, err);
            fprintf(stderr, "godwit: migration failed: %s\n", migrate_error_text(ms));
            migrate_set_state(&ms->state, g_atomic_int_get(&ms->state), MIGRATION_STATUS_FAILED);
        }
    }
    ms->vm_stopped_by_us = false;
    /* The thread is unreferenced by whoever starts the next migration. */
    bql_unlock();
    return NULL;
}
