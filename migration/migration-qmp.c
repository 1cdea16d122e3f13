/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * What the monitors see of migration: the QMP commands that start, steer
 * and cancel both sides, query-migrate and its statistics, the MIGRATION
 * event every state change emits, and start-up (-incoming).
 */
#include "qemu/osdep.h"
#include "qemu/bql.h"
#include "hw/machine.h"
#include "migration/incoming.h"
#include "migration/misc.h"
#include "migration/postcopy-ram.h"
#include "migration/source.h"
#include "monitor/qmp.h"
#include "qapi/qapi-commands.h"
#include "qapi/qapi-events.h"
#include "sysemu/cpus.h"
#include "sysemu/runstate.h"

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

/* ---- events and errors both sides report through ---- */

static void migration_event(MigrationStatus st)
{
    if (migrate_cap(MIGRATION_CAPABILITY_EVENTS)) {
        qapi_event_send_migration(st);
    }
}

/* The one way to change the source state. */
bool migrate_set_state(int *state, MigrationStatus old, MigrationStatus new_state)
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
GError *migration_error_sanitized(const GError *err)
{
    g_autofree char *text = mig_text_sanitize(err->message);

    return g_error_new_literal(err->domain, err->code, text);
}

/* ---- source commands ---- */

JsonNode *qmp_migrate(JsonObject *args, GError **errp)
{
    MigrationState *ms = &mig_src;
    const char *uri = json_object_get_string_member(args, "uri");

    if (runstate_get() == RUN_STATE_INMIGRATE) {
        error_setg(errp, "Guest is waiting for an incoming migration");
        return NULL;
    }
    if (json_object_has_member(args, "resume") && json_object_get_boolean_member(args, "resume")) {
        if (g_atomic_int_get(&ms->state) != MIGRATION_STATUS_POSTCOPY_PAUSED) {
            error_setg(errp, "Cannot resume if there is no paused migration");
            return NULL;
        }
        /* godwit never releases RAM, but QEMU refuses this, and so do we. */
        if (migrate_cap(MIGRATION_CAPABILITY_RELEASE_RAM)) {
            error_setg(errp, "Postcopy recovery cannot work when release-ram capability is set");
            return NULL;
        }
        /* The paused migration thread connects and runs the recovery. */
        g_mutex_lock(&ms->lock);
        g_free(ms->uri);
        ms->uri = g_strdup(uri);
        ms->resume_requested = true;
        g_cond_broadcast(&ms->cond);
        g_mutex_unlock(&ms->lock);
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
    ms->transferred = ms->transferred_base = 0;
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
    ms->rp_dest_failed = ms->rp_resume_ack = false;
    ms->pause_requested = ms->resume_requested = false;
    g_clear_pointer(&ms->rp_bitmap, g_free);
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

/*
 * Out of band (no BQL): break the connection; the threads of either side
 * see it fail and pause. Only the states are read here, atomically.
 */
JsonNode *qmp_migrate_pause(JsonObject *args, GError **errp)
{
    MigrationState *ms = &mig_src;

    if (g_atomic_int_get(&ms->state) == MIGRATION_STATUS_POSTCOPY_ACTIVE) {
        g_mutex_lock(&ms->lock);
        ms->pause_requested = true;
        if (ms->ch) {
            qio_channel_shutdown(ms->ch, QIO_CHANNEL_SHUTDOWN_BOTH);
        }
        g_mutex_unlock(&ms->lock);
        return NULL;
    }
    if (g_atomic_int_get(&ms->state) == MIGRATION_STATUS_NONE &&
        incoming_pause(&mig_dst)) {
        return NULL;
    }
    error_setg(errp, "migrate-pause is currently only supported during postcopy-active state");
    return NULL;
}

JsonNode *qmp_migrate_recover(JsonObject *args, GError **errp)
{
    IncomingState *is = &mig_dst;

    if (g_atomic_int_get(&is->state) != MIGRATION_STATUS_POSTCOPY_PAUSED) {
        error_setg(errp, "Migrate recover can only be run when postcopy is paused.");
        return NULL;
    }
    incoming_recover(is, json_object_get_string_member(args, "uri"), errp);
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

/* ---- destination commands and start-up ---- */

void migration_init(void)
{
    if (current_machine->smp_cpus == 0) {
        return;
    }
    ram_migration_init(current_machine);
    runstate_record_register();
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
    /* Pages placed after the switch that were here already: bandwidth spent twice. */
    json_object_set_int_member(pct, "duplicates", (gint64)st.duplicates);
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
            g_mutex_lock(&is->err_lock);
            g_autofree char *listen_uri = g_strdup(is->socket_uri);
            g_mutex_unlock(&is->err_lock);
            if (listen_uri && ist != MIGRATION_STATUS_COMPLETED) {
                JsonObject *sa = socket_address(listen_uri);
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

