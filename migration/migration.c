/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * Live migration: the two state machines, the source and destination
 * threads, and the QMP commands that drive them.
 *
 * Source ("mig/src/main"): connect -> header, CONFIG, return path + PING ->
 * RAM setup -> passes (send dirty pages, sync) until the rest fits in
 * downtime-limit -> stop the VM -> final sync, last pages, device records,
 * EOF -> (return path) wait for the destination's SHUT -> completed. Dirty
 * logging is switched off and bitmaps freed only after the last byte is
 * out: the destination never waits for that clean-up.
 * A return-path reader ("mig/src/return") takes PONG and SHUT.
 *
 * Destination ("mig/dst/main"): accept -> check header and CONFIG before
 * anything is written -> load RAM and device records -> EOF -> SHUT ->
 * start the guest (or leave it paused). A failed load ends the process with
 * status 1 and the guest never runs.
 *
 * State changes go through one function per side that checks the old state
 * (compare-and-swap) and emits MIGRATION.
 */
#include "qemu/osdep.h"
#include "qemu/bql.h"
#include "hw/machine.h"
#include "migration/migration.h"
#include "migration/misc.h"
#include "migration/postcopy-ram.h"
#include "migration/savevm.h"
#include "migration/transport.h"
#include "monitor/qmp.h"
#include "qapi/qapi-commands.h"
#include "qapi/qapi-events.h"
#include "sysemu/cpus.h"
#include "sysemu/kvm.h"
#include "sysemu/main-loop.h"
#include "sysemu/runstate.h"
#include <poll.h>
#include <pthread.h>
#include <sys/socket.h>

#define RATE_WINDOW_MS      100     /* rate-limit accounting window */
#define AUTOCONVERGE_PERIOD_MS 1000
#define RP_WAIT_SETUP_MS    30000   /* PONG from a destination that accepted us */
#define POSTCOPY_SNDBUF     (32 * 1024)
#define CONVERGE_FLOOR_BYTES (1 << 20)   /* below this a further pass gains nothing */
#define CONVERGE_MAX_PASSES 50
#define CONVERGE_GOOD_MS    5         /* a stop this short is not worth more passes */

/* ---- statistics ---- */

static GMutex stats_mutex;
static MigrationStatsCounters stats;

void migration_stats_lock(void)
{
    g_mutex_lock(&stats_mutex);
}

void migration_stats_unlock(void)
{
    g_mutex_unlock(&stats_mutex);
}

MigrationStatsCounters *migration_stats(void)
{
    return &stats;
}

/* ---- source state ---- */

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
} MigrationState;

static MigrationState mig_src = { .state = MIGRATION_STATUS_NONE };

/* Run state the destination should end up in (the "runstate" record). */
static char outgoing_runstate[32];

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

static void migration_event(MigrationStatus st)
{
    if (migrate_cap(MIGRATION_CAPABILITY_EVENTS)) {
        qapi_event_send_migration(st);
    }
}

/* The one way to change the source state. */
static bool migrate_set_state(int *state, MigrationStatus old, MigrationStatus new_state)
{
    if (g_atomic_int_compare_and_exchange(state, (gint)old, (gint)new_state)) {
        g_debug("migration: %s -> %s", MigrationStatus_str(old), MigrationStatus_str(new_state));
        migration_event(new_state);
        return true;
    }
    return false;
}

/*
 * An error message may quote the peer (an ERROR reason, a block name):
 * only its sanitized text reaches error-desc and stderr.
 */
static GError *error_copy_sanitized(const GError *err)
{
    g_autofree char *text = mig_text_sanitize(err->message);

    return g_error_new_literal(err->domain, err->code, text);
}

static void migrate_set_error(MigrationState *ms, const GError *err)
{
    migration_stats_lock();
    if (!ms->error) {
        ms->error = error_copy_sanitized(err);
    }
    migration_stats_unlock();
}

/* The recorded error's text, for stderr (the thread that set it only). */
static const char *migrate_error_text(MigrationState *ms)
{
    return ms->error ? ms->error->message : "unknown error";
}

/* ---- the runstate record: how the destination should come up ---- */

/*
 * Version 2 adds the source's wall-clock time of the stop request, so the
 * destination can report the downtime the guest saw (stop request to its
 * own RESUME), pause of the vCPUs included. It assumes synchronised host
 * clocks (the same host in tests and benchmarks).
 */
#define RUNSTATE_RECORD_VERSION 2
static int64_t outgoing_stop_realtime_us;

static bool runstate_save(void *opaque, GByteArray *out, GError **errp)
{
    uint8_t len = (uint8_t)strlen(outgoing_runstate);
    uint64_t t = GUINT64_TO_BE((uint64_t)outgoing_stop_realtime_us);

    g_byte_array_append(out, &len, 1);
    g_byte_array_append(out, (const guint8 *)outgoing_runstate, len);
    g_byte_array_append(out, (const guint8 *)&t, sizeof(t));
    return true;
}

static char incoming_runstate[32];
static int64_t incoming_stop_realtime_us;

static bool runstate_load(void *opaque, const uint8_t *buf, size_t len, uint32_t version,
                          GError **errp)
{
    size_t tail = version >= 2 ? 8 : 0;

    if (version < 1 || version > RUNSTATE_RECORD_VERSION || len < 1 ||
        len != 1u + buf[0] + tail || buf[0] >= sizeof(incoming_runstate)) {
        error_setg(errp, "run state record (version %u, %zu bytes) is malformed", version, len);
        return false;
    }
    memcpy(incoming_runstate, buf + 1, buf[0]);
    incoming_runstate[buf[0]] = '\0';
    if (RunState_parse(incoming_runstate) < 0) {
        error_setg(errp, "run state record names an unknown state '%s'", incoming_runstate);
        return false;
    }
    incoming_stop_realtime_us = 0;
    if (tail) {
        uint64_t t;
        memcpy(&t, buf + 1 + buf[0], 8);
        incoming_stop_realtime_us = (int64_t)GUINT64_FROM_BE(t);
    }
    return true;
}

/* ---- the CONFIG record both sides build ---- */

static MigConfig *local_config(Machine *m)
{
    MigConfig *c = mig_config_new();
    g_autofree struct kvm_cpuid2 *cpuid = kvm_vcpu_cpuid(m, 0);

    g_strlcpy(c->machine, m->type, sizeof(c->machine));
    c->vcpus = (uint32_t)m->smp_cpus;
    c->target_page_size = GW_PAGE_SIZE;
    mig_config_add_block(c, m->ram->name, m->ram->size, m->ram->page_size);
    for (uint32_t i = 0; i < cpuid->nent; i++) {
        struct kvm_cpuid_entry2 *e = &cpuid->entries[i];
        MigCpuidEntry me = { e->function, e->index, e->eax, e->ebx, e->ecx, e->edx };
        mig_config_add_cpuid(c, &me);
    }
    return c;
}

/* ---- source: return path reader ---- */

static gpointer rp_thread_fn(gpointer opaque)
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

/* ---- source: rate limiting ---- */

typedef struct RateWindow {
    MigrationState *ms;
    int64_t start_ms;
    uint64_t start_bytes;
} RateWindow;

/*
 * Bytes one window may carry at @bw bytes/s. The limits go up to INT64_MAX:
 * bw * RATE_WINDOW_MS would wrap (to 0 for 2^62: nothing is ever sent), so
 * divide first and add the remainder's share.
 */
static uint64_t rate_window_budget(uint64_t bw)
{
    return bw / 1000 * RATE_WINDOW_MS + bw % 1000 * RATE_WINDOW_MS / 1000;
}

static bool rate_budget_spent(void *opaque)
{
    RateWindow *w = opaque;

    /* A pending postcopy switch ends the iteration at once (the switch is due). */
    if (!w->ms->in_postcopy &&
        __atomic_load_n(&w->ms->postcopy_requested, __ATOMIC_ACQUIRE)) {
        return true;
    }
    uint64_t bw = w->ms->in_postcopy ?
        __atomic_load_n(&migrate_params.max_postcopy_bandwidth, __ATOMIC_RELAXED) :
        __atomic_load_n(&migrate_params.max_bandwidth, __ATOMIC_RELAXED);

    if (!bw) {
        return false;
    }
    return stream_bytes(w->ms->s) - w->start_bytes >= rate_window_budget(bw);
}

/* Sleep out the rest of a spent window (a cancel wakes us). */
static void rate_wait(RateWindow *w)
{
    int64_t now = gw_clock_ms();

    if (rate_budget_spent(w)) {
        int64_t left = w->start_ms + RATE_WINDOW_MS - now;
        if (left > 0) {
            /* A page request or a cancel cuts the sleep short. */
            struct pollfd p[2] = {
                { .fd = qio_cancel_fd(w->ms->cancel), .events = POLLIN },
                { .fd = ram_request_eventfd(), .events = POLLIN },
            };
            poll(p, w->ms->in_postcopy ? 2 : 1, (int)left);
        }
        now = gw_clock_ms();
    }
    if (now - w->start_ms >= RATE_WINDOW_MS) {
        w->start_ms = now;
        w->start_bytes = stream_bytes(w->ms->s);
    }
}

/* ---- source: auto-converge ---- */

typedef struct ConvergeState {
    int64_t period_start_ms;
    uint64_t period_dirty_pages;
    uint64_t period_start_bytes;
    int hits;
} ConvergeState;

static void autoconverge_check(MigrationState *ms, ConvergeState *cs, uint64_t new_dirty)
{
    int64_t now = gw_clock_ms();

    cs->period_dirty_pages += new_dirty;
    if (!migrate_cap(MIGRATION_CAPABILITY_AUTO_CONVERGE) ||
        now - cs->period_start_ms < AUTOCONVERGE_PERIOD_MS) {
        return;
    }
    uint64_t sent = stream_bytes(ms->s) - cs->period_start_bytes;
    uint64_t dirtied = cs->period_dirty_pages * GW_PAGE_SIZE;
    if (dirtied > sent / 100 * migrate_params.throttle_trigger_threshold) {
        if (++cs->hits >= 2) {
            int cur = cpus_get_throttle();
            int next = cur ? cur + migrate_params.cpu_throttle_increment
                           : migrate_params.cpu_throttle_initial;
            next = MIN(next, (int)migrate_params.max_cpu_throttle);
            if (next != cur) {
                g_debug("migration: auto-converge throttle %d%% -> %d%%", cur, next);
                cpus_set_throttle(next);
            }
            cs->hits = 0;
        }
    } else {
        cs->hits = 0;
    }
    cs->period_start_ms = now;
    cs->period_start_bytes = stream_bytes(ms->s);
    cs->period_dirty_pages = 0;
}

/* ---- source: the migration thread ---- */

static bool migration_sync(MigrationState *ms, uint64_t *dirty, GError **errp)
{
    if (!ram_sync(dirty, errp)) {
        return false;
    }
    migration_stats_lock();
    stats.dirty_sync_count++;
    stats.remaining_bytes = *dirty * GW_PAGE_SIZE;
    uint64_t pass = stats.dirty_sync_count;
    migration_stats_unlock();
    if (migrate_cap(MIGRATION_CAPABILITY_EVENTS)) {
        qapi_event_send_migration_pass((int64_t)pass);
    }
    return true;
}

static void update_transferred(MigrationState *ms)
{
    migration_stats_lock();
    ms->transferred = stream_bytes(ms->s);
    migration_stats_unlock();
}

/* Remember how the guest ran (for the destination's run state). BQL held. */
static void migration_note_runstate(MigrationState *ms)
{
    ms->runstate_before = runstate_get();
    ms->vm_was_running = runstate_is_running();
    g_strlcpy(outgoing_runstate, ms->vm_was_running ? "running" :
              runstate_name(ms->runstate_before), sizeof(outgoing_runstate));
}

/* Stop the guest for the switch; returns when every vCPU is parked. BQL held. */
static int64_t migration_stop_guest(MigrationState *ms)
{
    outgoing_stop_realtime_us = g_get_real_time();
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
    stats.downtime_bytes = stream_bytes(s) - bytes_before;
    stats.remaining_bytes = 0;
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
    stats.downtime_bytes = stream_bytes(s) - bytes_before;
    stats.precopy_bytes = bytes_before;
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
        stats.remaining_bytes = ram_dirty_pages() * GW_PAGE_SIZE;
        stats.postcopy_bytes = stream_bytes(s) - post_start;
        ms->transferred = stream_bytes(s);
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
    stats.postcopy_bytes = stream_bytes(s) - post_start;
    stats.remaining_bytes = 0;
    migration_stats_unlock();
    return true;
}

static gpointer migration_thread_fn(gpointer opaque)
{
    MigrationState *ms = opaque;
    g_autoptr(GError) err = NULL;
    RateWindow win = { .ms = ms };
    ConvergeState cs = { 0 };
    bool tracking = false;
    bool done = false;
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
    cfg = local_config(current_machine);
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
        if (!rp_wait(ms, pred_pong, 1, RP_WAIT_SETUP_MS,
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
            !rp_wait(ms, pred_pong, 2, RP_WAIT_SETUP_MS,
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
        stats.remaining_bytes = ram_dirty_pages() * GW_PAGE_SIZE;
        stats.precopy_bytes = stream_bytes(ms->s);
        if (tnow - mbps_ms >= 100) {
            /* Throughput over the last ~100 ms, so progress shows while a pass runs. */
            stats.mbps = (double)(stream_bytes(ms->s) - mbps_bytes) * 8.0 / 1e6 /
                         ((double)(tnow - mbps_ms) / 1000.0);
            mbps_ms = tnow;
            mbps_bytes = stream_bytes(ms->s);
        }
        migration_stats_unlock();
        if (__atomic_load_n(&ms->postcopy_requested, __ATOMIC_ACQUIRE)) {
            if (!postcopy_start(ms, &err)) {
                goto out;
            }
            if (!postcopy_run_source(ms, &win, &err)) {
                goto out;
            }
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
        stats.dirty_pages_rate = dirty * 1000 / (uint64_t)pass_ms;
        stats.pages_per_second = (stats.normal + stats.duplicate) * 1000 /
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
            stats.dirty_sync_count > after) {
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
            stats.dirty_sync_count < CONVERGE_MAX_PASSES) {
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
    if (ms->rp_open) {
        if (!rp_wait(ms, pred_shut, 0, 600000, "The destination did not confirm the load",
                     &err)) {
            goto out;
        }
        if (ms->rp_shut_status) {
            error_setg(&err, "The destination failed to load the migration (status %u)",
                       ms->rp_shut_status);
            goto out;
        }
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
            qio_channel_shutdown(ms->ch, QIO_CHANNEL_SHUTDOWN_BOTH);
        }
        g_thread_join(ms->rp_thread);
        ms->rp_thread = NULL;
    }
    if (ms->s) {
        MigStream *s = ms->s;

        /* query-migrate reads transferred from now on, never the stream. */
        migration_stats_lock();
        ms->transferred = stream_bytes(s);
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
        stats.mbps = (double)ms->transferred * 8.0 / 1e6 / ((double)xfer_ms / 1000.0);
        stats.pages_per_second = (stats.normal + stats.duplicate) * 1000 / (uint64_t)xfer_ms;
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

JsonNode *qmp_migrate(JsonObject *args, GError **errp)
{
    MigrationState *ms = &mig_src;
    const char *uri = json_object_get_string_member(args, "uri");

    if (runstate_get() == RUN_STATE_INMIGRATE) {
        error_setg(errp, "Guest is waiting for an incoming migration");
        return NULL;
    }
    if (json_object_has_member(args, "resume") && json_object_get_boolean_member(args, "resume")) {
        error_setg(errp, "Cannot resume if there is no paused migration");
        return NULL;
    }
    if (migration_is_running()) {
        error_setg(errp, "There's a migration process in progress");
        return NULL;
    }
    if ((json_object_has_member(args, "blk") && json_object_get_boolean_member(args, "blk")) ||
        (json_object_has_member(args, "inc") && json_object_get_boolean_member(args, "inc"))) {
        error_setg(errp, "Block migration is not supported by godwit");
        return NULL;
    }
    if (runstate_get() == RUN_STATE_POSTMIGRATE) {
        error_setg(errp, "Can't migrate the vm that was paused due to previous migration");
        return NULL;
    }
    if (runstate_get() == RUN_STATE_INTERNAL_ERROR || runstate_get() == RUN_STATE_SHUTDOWN) {
        error_setg(errp, "The VM is in state '%s' and cannot be migrated",
                   runstate_name(runstate_get()));
        return NULL;
    }
    if (current_machine->smp_cpus == 0) {
        error_setg(errp, "A machine without vCPUs (-machine none) cannot be migrated");
        return NULL;
    }
    /* The previous migration thread has finished (its state is final). */
    if (ms->thread) {
        g_thread_join(ms->thread);
        ms->thread = NULL;
    }

    /* Fresh statistics and state. */
    migration_stats_lock();
    memset(&stats, 0, sizeof(stats));
    g_clear_error(&ms->error);
    ms->start_ms = gw_clock_ms();
    ms->setup_ms = ms->end_ms = ms->downtime_ms = 0;
    ms->expected_downtime_ms = (int64_t)migrate_params.downtime_limit;
    ms->transferred = 0;
    ms->split_stop_us = ms->split_sync_us = ms->split_pages_us = 0;
    ms->split_state_us = ms->split_flush_us = 0;
    migration_stats_unlock();
    ms->continue_requested = false;
    ms->postcopy_requested = false;
    ms->in_postcopy = false;
    ms->rp_last_block[0] = '\0';
    ms->rp_pong = 0;
    ms->rp_shut = ms->rp_failed = false;
    g_clear_pointer(&ms->rp_error, g_free);
    g_free(ms->uri);
    ms->uri = g_strdup(uri);
    if (ms->cancel) {
        qio_cancel_unref(ms->cancel);
    }
    ms->cancel = qio_cancel_new();

    g_atomic_int_set(&ms->state, MIGRATION_STATUS_NONE);
    migrate_set_state(&ms->state, MIGRATION_STATUS_NONE, MIGRATION_STATUS_SETUP);

    /* A bad scheme fails synchronously, as in QEMU. */
    if (!g_str_has_prefix(uri, "tcp:") && !g_str_has_prefix(uri, "unix:") &&
        !g_str_has_prefix(uri, "fd:") && !g_str_has_prefix(uri, "exec:") &&
        !g_str_has_prefix(uri, "file:")) {
        error_setg(errp, "Parameter 'uri' expects a valid migration protocol");
        GError *e = g_error_copy(*errp);
        migrate_set_error(ms, e);
        g_error_free(e);
        migrate_set_state(&ms->state, MIGRATION_STATUS_SETUP, MIGRATION_STATUS_FAILED);
        return NULL;
    }
    ms->thread = g_thread_new(GW_THREAD_MIG_SRC_MAIN, migration_thread_fn, ms);
    return NULL;
}

JsonNode *qmp_migrate_cancel(JsonObject *args, GError **errp)
{
    MigrationState *ms = &mig_src;

    for (;;) {
        int st = g_atomic_int_get(&ms->state);
        switch (st) {
        case MIGRATION_STATUS_SETUP:
        case MIGRATION_STATUS_ACTIVE:
        case MIGRATION_STATUS_PRE_SWITCHOVER:
        case MIGRATION_STATUS_DEVICE:
            if (!migrate_set_state(&ms->state, st, MIGRATION_STATUS_CANCELLING)) {
                continue;   /* the thread moved on; look again */
            }
            qio_cancel_trigger(ms->cancel);
            g_mutex_lock(&ms->lock);
            if (ms->ch) {
                qio_channel_shutdown(ms->ch, QIO_CHANNEL_SHUTDOWN_BOTH);
            }
            g_cond_broadcast(&ms->cond);
            g_mutex_unlock(&ms->lock);
            return NULL;
        case MIGRATION_STATUS_POSTCOPY_ACTIVE:
        case MIGRATION_STATUS_POSTCOPY_PAUSED:
        case MIGRATION_STATUS_POSTCOPY_RECOVER:
            error_setg(errp, "Postcopy migration can't be cancelled: the guest already runs "
                       "on the destination");
            return NULL;
        default:
            return NULL;
        }
    }
}

JsonNode *qmp_migrate_continue(JsonObject *args, GError **errp)
{
    MigrationState *ms = &mig_src;
    const char *want = json_object_get_string_member(args, "state");
    int st = g_atomic_int_get(&ms->state);

    if (strcmp(MigrationStatus_str(st), want) != 0) {
        error_setg(errp, "Migration not in expected state: %s", MigrationStatus_str(st));
        return NULL;
    }
    g_mutex_lock(&ms->lock);
    ms->continue_requested = true;
    g_cond_broadcast(&ms->cond);
    g_mutex_unlock(&ms->lock);
    return NULL;
}

JsonNode *qmp_migrate_start_postcopy(JsonObject *args, GError **errp)
{
    if (!migrate_cap(MIGRATION_CAPABILITY_POSTCOPY_RAM)) {
        error_setg(errp, "Enable postcopy with migrate_set_capability before the start of "
                   "migration");
        return NULL;
    }
    if (g_atomic_int_get(&mig_src.state) == MIGRATION_STATUS_NONE) {
        error_setg(errp, "Postcopy must be started after migration has been started");
        return NULL;
    }
    /* Taken at the next iteration boundary (even right after setup: pure postcopy). */
    __atomic_store_n(&mig_src.postcopy_requested, true, __ATOMIC_RELEASE);
    return NULL;
}

/* ---- destination ---- */

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
} IncomingState;

static IncomingState mig_dst = { .state = MIGRATION_STATUS_NONE };

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
        is->error = error_copy_sanitized(err);
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

static bool incoming_rp_send(IncomingState *is, const MigRpMsg *m)
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
    if (!qio_channel_write_all(is->ch, buf, n, &err)) {
        g_debug("migration: return path write failed: %s", err->message);
        ok = false;
    }
    g_mutex_unlock(&is->rp_lock);
    return ok;
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
    if (incoming_stop_realtime_us) {
        is->guest_visible_us = g_get_real_time() - incoming_stop_realtime_us;
    }
}

static gboolean incoming_postcopy_start_guest(gpointer opaque)
{
    int st = RunState_parse(incoming_runstate);

    if (incoming_runstate[0] == '\0' || st == RUN_STATE_RUNNING) {
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
};

static gboolean incoming_postcopy_completed(gpointer opaque)
{
    migrate_set_state(&mig_dst.state, MIGRATION_STATUS_POSTCOPY_ACTIVE,
                      MIGRATION_STATUS_COMPLETED);
    return G_SOURCE_REMOVE;
}

static gboolean incoming_postcopy_paused(gpointer opaque)
{
    IncomingState *is = &mig_dst;

    fprintf(stderr, "godwit: Detected IO failure for postcopy. Migration paused: %s\n",
            is->error ? is->error->message : "unknown error");
    migrate_set_state(&is->state, MIGRATION_STATUS_POSTCOPY_ACTIVE,
                      MIGRATION_STATUS_POSTCOPY_PAUSED);
    return G_SOURCE_REMOVE;
}

static gboolean incoming_finish_failed(gpointer opaque);
static void incoming_send_error(IncomingState *is, const GError *err);

static gpointer listen_thread_fn(gpointer opaque)
{
    IncomingState *is = opaque;
    g_autoptr(GError) err = NULL;

    pthread_setname_np(pthread_self(), GW_THREAD_MIG_DST_LISTEN);
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
    if (!incoming_set_error(is, err)) {
        /* The incoming thread failed first (and stopped our reads): it reports. */
        return NULL;
    }
    if (ran) {
        /*
         * The guest runs here already: keep userfaultfd registered (blocked
         * vCPUs stay blocked; no zero page replaces data) and wait for a
         * recovery.
         */
        postcopy_incoming_pause(ram_postcopy_incoming());
        main_loop_schedule(incoming_postcopy_paused, NULL);
    } else {
        incoming_send_error(is, is->error);
        main_loop_schedule(incoming_finish_failed, NULL);
    }
    return NULL;
}

static gboolean incoming_finish_ok(gpointer opaque)
{
    IncomingState *is = &mig_dst;
    int st = RunState_parse(incoming_runstate);

    /* As QEMU: a running source comes up running (unless -S), else as it was. */
    if (incoming_runstate[0] == '\0' || st == RUN_STATE_RUNNING) {
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
    cfg = local_config(current_machine);
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

static bool incoming_start(IncomingState *is, const char *uri, GError **errp)
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

void migration_init(void)
{
    SaveStateHandler h = {
        .idstr = "runstate", .version = RUNSTATE_RECORD_VERSION, .priority = SAVESTATE_PRIO_RUNSTATE,
        .save = runstate_save, .load = runstate_load,
    };

    if (current_machine->smp_cpus == 0) {
        return;
    }
    ram_migration_init(current_machine);
    register_savestate(&h);
}

bool migration_incoming_from_cmdline(const char *uri, GError **errp)
{
    IncomingState *is = &mig_dst;

    if (!strcmp(uri, "defer")) {
        is->deferred = true;
        return true;
    }
    return incoming_start(is, uri, errp);
}

JsonNode *qmp_migrate_incoming(JsonObject *args, GError **errp)
{
    IncomingState *is = &mig_dst;

    if (!current_machine->incoming) {
        error_setg(errp, "'-incoming' was not specified on the command line");
        return NULL;
    }
    if (!is->deferred || is->started) {
        error_setg(errp, "The incoming migration has already been started");
        return NULL;
    }
    if (!incoming_start(is, json_object_get_string_member(args, "uri"), errp)) {
        return NULL;
    }
    return NULL;
}

/* ---- query-migrate ---- */

static JsonObject *socket_address(const char *uri)
{
    JsonObject *o = json_object_new();

    if (g_str_has_prefix(uri, "unix:")) {
        json_object_set_string_member(o, "path", uri + 5);
        json_object_set_string_member(o, "type", "unix");
    } else if (g_str_has_prefix(uri, "tcp:")) {
        const char *hp = uri + 4;
        const char *colon = strrchr(hp, ':');
        g_autofree char *host = colon ? g_strndup(hp, (gsize)(colon - hp)) : g_strdup(hp);
        json_object_set_string_member(o, "port", colon ? colon + 1 : "");
        json_object_set_boolean_member(o, "ipv4", strchr(host, ':') == NULL);
        json_object_set_string_member(o, "host", host);
        json_object_set_string_member(o, "type", "inet");
    } else {
        json_object_unref(o);
        return NULL;
    }
    return o;
}

/* Blocktime and fault latency, live (QEMU 7.2 reports blocktime only once completed). */
static void incoming_postcopy_stats(JsonObject *o, PostcopyIncoming *pc)
{
    Machine *m = current_machine;
    int n = MAX(m->smp_cpus, 1);
    g_autofree uint32_t *per = g_new0(uint32_t, n);
    g_autofree uint64_t *lat = g_new0(uint64_t, n);
    uint32_t total = 0;
    PostcopyStats st;

    postcopy_get_blocktime(pc, &total, per, n);
    postcopy_get_vcpu_latency(pc, lat, n);
    postcopy_get_stats(pc, &st);
    json_object_set_int_member(o, "postcopy-blocktime", total);
    JsonArray *a = json_array_new();
    JsonArray *l = json_array_new();
    for (int i = 0; i < n; i++) {
        json_array_add_int_element(a, per[i]);
        json_array_add_int_element(l, (gint64)lat[i]);
    }
    json_object_set_array_member(o, "postcopy-vcpu-blocktime", a);
    json_object_set_int_member(o, "postcopy-latency", (gint64)st.all.avg_ns);
    json_object_set_array_member(o, "postcopy-vcpu-latency", l);
    json_object_set_int_member(o, "postcopy-non-vcpu-latency", (gint64)st.non_vcpu.avg_ns);
    JsonArray *d = json_array_new();
    for (int i = 0; i < POSTCOPY_LATENCY_BUCKETS; i++) {
        json_array_add_int_element(d, (gint64)st.latency_dist[i]);
    }
    json_object_set_array_member(o, "postcopy-latency-dist", d);
    JsonObject *pct = json_object_new();
    json_object_set_double_member(pct, "p50", (double)st.all.p50_ns / 1000.0);
    json_object_set_double_member(pct, "p99", (double)st.all.p99_ns / 1000.0);
    json_object_set_double_member(pct, "max", (double)st.all.max_ns / 1000.0);
    json_object_set_int_member(pct, "faults", (gint64)st.all.faults);
    json_object_set_int_member(pct, "requests", (gint64)st.requests);
    json_object_set_object_member(o, "x-postcopy-latency-percentiles", pct);
}

static JsonObject *ram_stats_object(MigrationState *ms)
{
    JsonObject *r = json_object_new();
    uint64_t total = current_machine->ram->size;
    /* Never ms->s: the migration thread frees it without the BQL. */
    uint64_t transferred = ms->transferred;

    json_object_set_int_member(r, "transferred", (gint64)transferred);
    json_object_set_int_member(r, "remaining", (gint64)stats.remaining_bytes);
    json_object_set_int_member(r, "total", (gint64)total);
    json_object_set_int_member(r, "duplicate", (gint64)stats.duplicate);
    json_object_set_int_member(r, "skipped", 0);
    json_object_set_int_member(r, "normal", (gint64)stats.normal);
    json_object_set_int_member(r, "normal-bytes", (gint64)(stats.normal * GW_PAGE_SIZE));
    json_object_set_int_member(r, "dirty-pages-rate", (gint64)stats.dirty_pages_rate);
    json_object_set_double_member(r, "mbps", stats.mbps);
    json_object_set_int_member(r, "dirty-sync-count", (gint64)stats.dirty_sync_count);
    json_object_set_int_member(r, "postcopy-requests", (gint64)stats.postcopy_requests);
    json_object_set_int_member(r, "page-size", GW_PAGE_SIZE);
    json_object_set_int_member(r, "multifd-bytes", 0);
    json_object_set_int_member(r, "pages-per-second", (gint64)stats.pages_per_second);
    json_object_set_int_member(r, "precopy-bytes", (gint64)stats.precopy_bytes);
    json_object_set_int_member(r, "downtime-bytes", (gint64)stats.downtime_bytes);
    json_object_set_int_member(r, "postcopy-bytes", (gint64)stats.postcopy_bytes);
    json_object_set_int_member(r, "dirty-sync-missed-zero-copy", 0);
    return r;
}

JsonNode *qmp_query_migrate(JsonObject *args, GError **errp)
{
    MigrationState *ms = &mig_src;
    IncomingState *is = &mig_dst;
    JsonObject *o = json_object_new();
    int st = g_atomic_int_get(&ms->state);

    if (st == MIGRATION_STATUS_NONE) {
        /* The destination side (or nothing at all). */
        int ist = g_atomic_int_get(&is->state);
        if (is->started || ist != MIGRATION_STATUS_NONE) {
            if (ist != MIGRATION_STATUS_NONE) {
                json_object_set_string_member(o, "status", MigrationStatus_str(ist));
            }
            if (is->socket_uri && ist != MIGRATION_STATUS_COMPLETED) {
                JsonObject *sa = socket_address(is->socket_uri);
                if (sa) {
                    JsonArray *a = json_array_new();
                    json_array_add_object_element(a, sa);
                    json_object_set_array_member(o, "socket-address", a);
                }
            }
            if (ist == MIGRATION_STATUS_COMPLETED) {
                JsonObject *split = json_object_new();
                int64_t load_us = __atomic_load_n(&is->load_us, __ATOMIC_RELAXED);
                json_object_set_double_member(split, "load", (double)load_us / 1000.0);
                json_object_set_object_member(o, "x-downtime-split", split);
            }
            if (is->guest_visible_us) {
                json_object_set_double_member(o, "x-guest-visible-downtime",
                                              (double)is->guest_visible_us / 1000.0);
            }
            if (ist == MIGRATION_STATUS_FAILED || ist == MIGRATION_STATUS_POSTCOPY_PAUSED) {
                g_mutex_lock(&is->err_lock);
                if (is->error) {
                    json_object_set_string_member(o, "error-desc", is->error->message);
                }
                g_mutex_unlock(&is->err_lock);
            }
            PostcopyIncoming *pc = ram_postcopy_incoming();
            if (pc && is->postcopy && migrate_cap(MIGRATION_CAPABILITY_POSTCOPY_BLOCKTIME)) {
                incoming_postcopy_stats(o, pc);
            }
        }
        return qmp_node_object(o);
    }

    json_object_set_string_member(o, "status", MigrationStatus_str(st));
    migration_stats_lock();
    switch (st) {
    case MIGRATION_STATUS_SETUP:
    case MIGRATION_STATUS_CANCELLED:
        break;
    case MIGRATION_STATUS_FAILED:
        if (ms->error) {
            json_object_set_string_member(o, "error-desc", ms->error->message);
        }
        break;
    case MIGRATION_STATUS_POSTCOPY_PAUSED:
        /* Why it paused, as for a failure; the statistics stay too. */
        if (ms->error) {
            json_object_set_string_member(o, "error-desc", ms->error->message);
        }
        json_object_set_int_member(o, "total-time", gw_clock_ms() - ms->start_ms);
        json_object_set_int_member(o, "setup-time", ms->setup_ms);
        json_object_set_object_member(o, "ram", ram_stats_object(ms));
        break;
    case MIGRATION_STATUS_COMPLETED: {
        json_object_set_int_member(o, "total-time", ms->end_ms - ms->start_ms);
        json_object_set_int_member(o, "downtime", ms->downtime_ms);
        json_object_set_int_member(o, "setup-time", ms->setup_ms);
        json_object_set_object_member(o, "ram", ram_stats_object(ms));
        JsonObject *split = json_object_new();
        json_object_set_double_member(split, "stop", (double)ms->split_stop_us / 1000.0);
        json_object_set_double_member(split, "sync", (double)ms->split_sync_us / 1000.0);
        json_object_set_double_member(split, "pages", (double)ms->split_pages_us / 1000.0);
        json_object_set_double_member(split, "state", (double)ms->split_state_us / 1000.0);
        json_object_set_double_member(split, "flush", (double)ms->split_flush_us / 1000.0);
        json_object_set_object_member(o, "x-downtime-split", split);
        break;
    }
    default:
        json_object_set_int_member(o, "total-time", gw_clock_ms() - ms->start_ms);
        json_object_set_int_member(o, "expected-downtime", ms->expected_downtime_ms);
        json_object_set_int_member(o, "setup-time", ms->setup_ms);
        json_object_set_object_member(o, "ram", ram_stats_object(ms));
        if (cpus_get_throttle() > 0) {
            json_object_set_int_member(o, "cpu-throttle-percentage", cpus_get_throttle());
        }
        break;
    }
    migration_stats_unlock();
    return qmp_node_object(o);
}
