/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * The source's return-path reader ("mig/src/return"): PONG, SHUT, the
 * destination's page requests and ERROR; and the waits the migration
 * thread does on it.
 */
#include "qemu/osdep.h"
#include "migration/source.h"
#include "qemu/bql.h"
#include "qemu/byteorder.h"

static bool read_be64(QIOChannel *ch, uint64_t *v, GError **errp)
{
    uint8_t b[8];

    if (!qio_channel_read_all(ch, b, sizeof(b), errp)) {
        return false;
    }
    *v = be64_load(b);
    return true;
}

/*
 * The bytes after a RECV_BITMAP message: be64 size, the bitmap, be64 end
 * marker. Hostile input: the size must be exactly what our block needs.
 */
static bool rp_read_bitmap(MigrationState *ms, QIOChannel *ch, const char *block,
                           GError **errp)
{
    uint64_t expect = ram_recv_bitmap_bytes(block);
    uint64_t size, end;

    if (!expect) {
        error_setg(errp, "The destination sent a received bitmap for an unknown RAM block");
        return false;
    }
    if (!read_be64(ch, &size, errp)) {
        return false;
    }
    if (size != expect) {
        error_setg(errp, "The destination's received bitmap has %" PRIu64 " bytes, expected %"
                   PRIu64, size, expect);
        return false;
    }
    g_autofree uint8_t *buf = g_malloc(size);
    if (!qio_channel_read_all(ch, buf, size, errp) || !read_be64(ch, &end, errp)) {
        return false;
    }
    if (end != MIG_RECV_BITMAP_END) {
        error_setg(errp, "The destination's received bitmap lacks its end marker");
        return false;
    }
    g_mutex_lock(&ms->lock);
    g_free(ms->rp_bitmap);
    ms->rp_bitmap = g_steal_pointer(&buf);
    ms->rp_bitmap_size = size;
    g_strlcpy(ms->rp_bitmap_block, block, sizeof(ms->rp_bitmap_block));
    g_cond_broadcast(&ms->cond);
    g_mutex_unlock(&ms->lock);
    return true;
}

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
                err = g_error_new(GW_ERROR, 0, "the destination closed the connection");
            }
            break;
        }
        unsigned type = be16_load(hdr);
        unsigned len = be16_load(hdr + 2);
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
            /* The destination only gives up like this before it ran the guest. */
            g_mutex_lock(&ms->lock);
            ms->rp_dest_failed = true;
            g_mutex_unlock(&ms->lock);
            err = g_error_new(GW_ERROR, 0, "%s", m.block);
            break;
        }
        if ((m.type == MIG_RP_MSG_RECV_BITMAP || m.type == MIG_RP_MSG_RESUME_ACK) &&
            g_atomic_int_get(&ms->state) != MIGRATION_STATUS_POSTCOPY_RECOVER) {
            err = g_error_new(GW_ERROR, 0, "unexpected return path message %s",
                              mig_rp_msg_name(m.type));
            break;
        }
        if (m.type == MIG_RP_MSG_RECV_BITMAP) {
            if (!rp_read_bitmap(ms, ch, m.block, &err)) {
                break;
            }
            continue;
        }
        if (m.type == MIG_RP_MSG_RESUME_ACK) {
            g_mutex_lock(&ms->lock);
            ms->rp_resume_ack = true;
            g_cond_broadcast(&ms->cond);
            g_mutex_unlock(&ms->lock);
            continue;
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

static bool pred_bitmap(MigrationState *ms, uint32_t v)
{
    return ms->rp_bitmap != NULL;
}

static bool pred_resume_ack(MigrationState *ms, uint32_t v)
{
    return ms->rp_resume_ack;
}

bool rp_wait_bitmap(MigrationState *ms, int64_t timeout_ms, const char *what, GError **errp)
{
    return rp_wait(ms, pred_bitmap, 0, timeout_ms, what, errp);
}

bool rp_wait_resume_ack(MigrationState *ms, int64_t timeout_ms, const char *what, GError **errp)
{
    return rp_wait(ms, pred_resume_ack, 0, timeout_ms, what, errp);
}

void rp_wait_ended(MigrationState *ms, int64_t timeout_ms)
{
    gint64 deadline = g_get_monotonic_time() + timeout_ms * 1000;

    g_mutex_lock(&ms->lock);
    while (!ms->rp_failed && !ms->rp_shut &&
           g_cond_wait_until(&ms->cond, &ms->lock, deadline)) {
    }
    g_mutex_unlock(&ms->lock);
}
