/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * Postcopy recovery, source side: after the switch the guest runs on the
 * destination, so a broken connection never fails the migration. The
 * migration thread parks in postcopy-paused holding every page until
 * `migrate` with resume=true names a new address; it then asks the
 * destination which pages it has (RECV_BITMAP), sends the rest, and goes
 * on (POSTCOPY_RESUME, RESUME_ACK). Any number of times.
 */
#include "qemu/osdep.h"
#include "migration/source.h"
#include "migration/savevm.h"
#include "migration/transport.h"

#define RECOVER_RP_END_MS   1000    /* let the reader take what the peer sent before it closed */
#define RECOVER_ANSWER_MS   30000   /* RECV_BITMAP reply, RESUME_ACK */

/* Drop the current connection: stream, reader thread, channel. */
static void source_drop_connection(MigrationState *ms)
{
    g_mutex_lock(&ms->lock);
    if (ms->ch) {
        qio_channel_shutdown(ms->ch, QIO_CHANNEL_SHUTDOWN_BOTH);
    }
    g_mutex_unlock(&ms->lock);
    if (ms->rp_thread) {
        g_thread_join(ms->rp_thread);
        ms->rp_thread = NULL;
    }
    if (ms->s) {
        MigStream *s = ms->s;

        migration_stats_lock();
        ms->transferred = ms->transferred_base + stream_bytes(s);
        ms->transferred_base = ms->transferred;
        ms->s = NULL;
        migration_stats_unlock();
        stream_free(s);
    }
    g_mutex_lock(&ms->lock);
    if (ms->ch) {
        qio_channel_unref(ms->ch);
        ms->ch = NULL;
    }
    /* What the reader said belongs to this connection only. */
    ms->rp_failed = false;
    g_clear_pointer(&ms->rp_error, g_free);
    g_mutex_unlock(&ms->lock);
}

void postcopy_source_pause(MigrationState *ms, const GError *err)
{
    g_autoptr(GError) why = NULL;

    /* A destination that closed the connection said so first on the return path. */
    if (ms->rp_thread) {
        rp_wait_ended(ms, RECOVER_RP_END_MS);
    }
    g_mutex_lock(&ms->lock);
    if (ms->pause_requested) {
        why = g_error_new(GW_ERROR, 0, "migrate-pause was requested");
    } else {
        /* From here a paused destination and a dead one look the same. */
        why = g_error_new(GW_ERROR, 0, "Lost the connection to the destination (it paused, "
                          "or its process is gone): %s",
                          ms->rp_failed && ms->rp_error ? ms->rp_error :
                          err ? err->message : "unknown error");
    }
    ms->pause_requested = false;
    g_mutex_unlock(&ms->lock);
    source_drop_connection(ms);

    /* error-desc says why it paused (the latest reason). */
    migration_stats_lock();
    g_clear_error(&ms->error);
    migration_stats_unlock();
    migrate_set_error(ms, why);
    fprintf(stderr, "godwit: Detected IO failure for postcopy. Migration paused: %s\n",
            why->message);
    int st = g_atomic_int_get(&ms->state);
    if (st != MIGRATION_STATUS_POSTCOPY_PAUSED) {
        migrate_set_state(&ms->state, st, MIGRATION_STATUS_POSTCOPY_PAUSED);
    }
}

static bool source_try_resume(MigrationState *ms, const char *uri, RateWindow *win,
                              GError **errp)
{
    /* Shutting the old channel down fired its cancel token: the new one gets its own. */
    g_mutex_lock(&ms->lock);
    qio_cancel_unref(ms->cancel);
    ms->cancel = qio_cancel_new();
    g_mutex_unlock(&ms->lock);

    QIOChannel *ch = migration_connect(uri, ms->cancel, errp);

    if (!ch) {
        return false;
    }
    g_mutex_lock(&ms->lock);
    ms->ch = ch;
    ms->rp_failed = ms->rp_shut = ms->rp_resume_ack = false;
    ms->rp_dest_failed = false;
    g_clear_pointer(&ms->rp_error, g_free);
    g_clear_pointer(&ms->rp_bitmap, g_free);
    ms->rp_last_block[0] = '\0';
    g_mutex_unlock(&ms->lock);
    MigStream *s = stream_new_writer(ch);
    migration_stats_lock();
    ms->s = s;
    migration_stats_unlock();
    if (!migrate_set_state(&ms->state, MIGRATION_STATUS_POSTCOPY_PAUSED,
                           MIGRATION_STATUS_POSTCOPY_RECOVER)) {
        error_setg(errp, "the migration left postcopy-paused during the recovery");
        return false;
    }
    ms->rp_thread = g_thread_new(GW_THREAD_MIG_SRC_RETURN, rp_thread_fn, ms);

    /* Which pages does the destination hold? The rest is what we still send. */
    if (!savevm_send_recv_bitmap(s, ram_block_name(), errp) || !stream_flush(s, errp) ||
        !rp_wait_bitmap(ms, RECOVER_ANSWER_MS, "No received bitmap from the destination",
                        errp)) {
        return false;
    }
    g_mutex_lock(&ms->lock);
    g_autofree uint8_t *bitmap = g_steal_pointer(&ms->rp_bitmap);
    uint64_t size = ms->rp_bitmap_size;
    char block[sizeof(ms->rp_bitmap_block)];
    g_strlcpy(block, ms->rp_bitmap_block, sizeof(block));
    g_mutex_unlock(&ms->lock);
    if (!ram_postcopy_resume_from_received(block, bitmap, size, errp)) {
        return false;
    }

    savevm_send_postcopy_resume(s);
    if (!stream_flush(s, errp) ||
        !rp_wait_resume_ack(ms, RECOVER_ANSWER_MS, "The destination did not resume", errp)) {
        return false;
    }
    if (!migrate_set_state(&ms->state, MIGRATION_STATUS_POSTCOPY_RECOVER,
                           MIGRATION_STATUS_POSTCOPY_ACTIVE)) {
        error_setg(errp, "the migration left postcopy-recover during the recovery");
        return false;
    }
    /* Bandwidth accounting starts over on the new connection. */
    win->start_ms = gw_clock_ms();
    win->start_bytes = stream_bytes(s);
    return true;
}

void postcopy_source_recover(MigrationState *ms, RateWindow *win)
{
    for (;;) {
        g_autoptr(GError) err = NULL;
        g_autofree char *uri = NULL;

        g_mutex_lock(&ms->lock);
        while (!ms->resume_requested) {
            g_cond_wait(&ms->cond, &ms->lock);
        }
        ms->resume_requested = false;
        uri = g_strdup(ms->uri);
        g_mutex_unlock(&ms->lock);

        if (source_try_resume(ms, uri, win, &err)) {
            g_debug("migration: postcopy recovered over %s", uri);
            return;
        }
        postcopy_source_pause(ms, err);
    }
}
