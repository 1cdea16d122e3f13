/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * The source's return-path reader ("mig/src/return"): PONG, SHUT, the
 * destination's page requests and ERROR; and the waits the migration
 * thread does on it.
 */
#include "qemu/osdep.h"
#include "migration/source.h"

gpointer rp_thread_fn(gpointer opaque)
{
    MigrationState *ms = opaque;
    QIOChannel *ch = ms->ch;
    g_autoptr(GError) err = NULL;

    pthread_setname_np(pthread_self(), GW_THREAD_MIG_SRC_RETURN);
    for (;;) {
        uint8_t hdr[MIG_RP_HDR_LEN];
        uint8_t payload[MIG_RP_MAX_LEN];
        int r = qio_channel_read_all_eof(ch, hdr, sizeof(hdr), &err);
        if (r <= 0) {
            if (r == 0) {
                err = g_error_new(GW_ERROR, 0, "the destination closed the return path");
            }
            break;
        }
        unsigned type = (unsigned)(hdr[0] << 8 | hdr[1]);
        unsigned len = (unsigned)(hdr[2] << 8 | hdr[3]);
        if (len > MIG_RP_MAX_LEN) {
            err = g_error_new(GW_ERROR, 0, "return path message of %u bytes is too long", len);
            break;
        }
        if (len && !qio_channel_read_all(ch, payload, len, &err)) {
            break;
        }
        MigRpMsg m;
        if (!mig_rp_decode(type, payload, len, &m, &err)) {
            break;
        }
        g_mutex_lock(&ms->lock);
        if (m.type == MIG_RP_MSG_PONG) {
            ms->rp_pong = m.value;
        } else if (m.type == MIG_RP_MSG_SHUT) {
            ms->rp_shut = true;
            ms->rp_shut_status = m.value;
        }
        g_cond_broadcast(&ms->cond);
        g_mutex_unlock(&ms->lock);
        if (m.type == MIG_RP_MSG_SHUT) {
            return NULL;
        }
        if (m.type == MIG_RP_MSG_REQ_PAGES_ID || m.type == MIG_RP_MSG_REQ_PAGES) {
            if (m.type == MIG_RP_MSG_REQ_PAGES_ID) {
                g_strlcpy(ms->rp_last_block, m.block, sizeof(ms->rp_last_block));
            } else if (!ms->rp_last_block[0]) {
                err = g_error_new(GW_ERROR, 0, "page request without a RAM block name");
                break;
            }
            if (!__atomic_load_n(&ms->in_postcopy, __ATOMIC_ACQUIRE)) {
                err = g_error_new(GW_ERROR, 0, "page request before the postcopy switch");
                break;
            }
            if (!ram_queue_request(ms->rp_last_block, m.start, m.len, &err)) {
                break;
            }
            continue;
        }
        if (m.type == MIG_RP_MSG_ERROR) {
            err = g_error_new(GW_ERROR, 0, "%s", m.block);
            break;
        }
        if (m.type != MIG_RP_MSG_PONG) {
            err = g_error_new(GW_ERROR, 0, "unexpected return path message %s",
                              mig_rp_msg_name(m.type));
            break;
        }
    }
    g_mutex_lock(&ms->lock);
    ms->rp_failed = true;
    g_free(ms->rp_error);
    ms->rp_error = g_strdup(err ? err->message : "return path failed");
    g_cond_broadcast(&ms->cond);
    g_mutex_unlock(&ms->lock);
    return NULL;
}

/* Wait until @pred holds for the return path, or it fails / we are cancelled. */
static bool rp_wait(MigrationState *ms, bool (*pred)(MigrationState *, uint32_t), uint32_t arg,
                    int64_t timeout_ms, const char *what, GError **errp)
{
    gint64 deadline = g_get_monotonic_time() + timeout_ms * 1000;
    bool ok = false;

    g_mutex_lock(&ms->lock);
    for (;;) {
        if (pred(ms, arg)) {
            ok = true;
            break;
        }
        if (ms->rp_failed) {
            error_setg(errp, "%s: %s", what, ms->rp_error);
            break;
        }
        if (qio_cancel_is_set(ms->cancel)) {
            error_setg(errp, "%s: cancelled", what);
            break;
        }
        if (!g_cond_wait_until(&ms->cond, &ms->lock, MIN(deadline,
                               g_get_monotonic_time() + 100000)) &&
            g_get_monotonic_time() >= deadline) {
            error_setg(errp, "%s: no answer from the destination within %" PRId64 " ms", what,
                       timeout_ms);
            break;
        }
    }
    g_mutex_unlock(&ms->lock);
    return ok;
}

static bool pred_pong(MigrationState *ms, uint32_t v)
{
    return ms->rp_pong == v;
}

static bool pred_shut(MigrationState *ms, uint32_t v)
{
    return ms->rp_shut;
}

bool rp_wait_pong(MigrationState *ms, uint32_t value, int64_t timeout_ms, const char *what,
                  GError **errp)
{
    return rp_wait(ms, pred_pong, value, timeout_ms, what, errp);
}

bool rp_wait_shut(MigrationState *ms, int64_t timeout_ms, const char *what, GError **errp)
{
    return rp_wait(ms, pred_shut, 0, timeout_ms, what, errp);
}
