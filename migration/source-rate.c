/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * The source's pacing: the bandwidth limit per 100 ms window (requested
 * postcopy pages bypass it) and auto-converge's vCPU throttle.
 */
#include "qemu/osdep.h"
#include "migration/source.h"
#include "sysemu/cpus.h"
#include <poll.h>

#define RATE_WINDOW_MS      100     /* rate-limit accounting window */
#define AUTOCONVERGE_PERIOD_MS 1000

/*
 * Bytes one window may carry at @bw bytes/s. The limits go up to INT64_MAX:
 * bw * RATE_WINDOW_MS would wrap (to 0 for 2^62: nothing is ever sent), so
 * divide first and add the remainder's share.
 */
static uint64_t rate_window_budget(uint64_t bw)
{
    return bw / 1000 * RATE_WINDOW_MS + bw % 1000 * RATE_WINDOW_MS / 1000;
}


bool rate_budget_spent(void *opaque)
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
void rate_wait(RateWindow *w)
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


void autoconverge_check(MigrationState *ms, ConvergeState *cs, uint64_t new_dirty)
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
