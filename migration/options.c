/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * Migration capabilities and parameters, with QEMU's names, defaults and
 * range errors, and their QMP commands. Written by the main thread with the
 * BQL; the migration threads read them.
 */
#include "qemu/osdep.h"
#include "migration/migration.h"
#include "migration/misc.h"
#include "monitor/qmp.h"
#include "qapi/qapi-commands.h"
#include "migration/postcopy-ram.h"
#include "migration/postcopy-notify.h"
#include "sysemu/runstate.h"

bool migrate_caps[MIGRATION_CAPABILITY__MAX];

/*
 * Defaults are QEMU 7.2's except max-bandwidth: 0 means unlimited here (as
 * it does for QEMU's max-postcopy-bandwidth). QEMU's 128 MiB/s default
 * makes a 4 GiB guest take half a minute on a link that moves GB/s and
 * makes a busy guest never converge; a management layer that shares the
 * link sets its own limit. See docs/user/migration.md.
 */
MigrationParams migrate_params = {
    .announce_initial = 50,
    .announce_max = 550,
    .announce_rounds = 5,
    .announce_step = 100,
    .throttle_trigger_threshold = 50,
    .cpu_throttle_initial = 20,
    .cpu_throttle_increment = 10,
    .cpu_throttle_tailslow = false,
    .max_cpu_throttle = 99,
    .max_bandwidth = 0,
    .downtime_limit = 300,
    .max_postcopy_bandwidth = 0,
    .xbzrle_cache_size = 64 << 20,
    .multifd_channels = 2,
    .x_postcopy_after_passes = 0,
    .compress_level = 1,
    .compress_threads = 8,
    .compress_wait_thread = true,
    .decompress_threads = 2,
    .x_checkpoint_delay = 20000,
    .multifd_compression = MULTI_FD_COMPRESSION_NONE,
    .multifd_zlib_level = 1,
    .multifd_zstd_level = 1,
};

void migration_announce_params(MigrationAnnounceParams *p)
{
    p->initial = __atomic_load_n(&migrate_params.announce_initial, __ATOMIC_RELAXED);
    p->max = __atomic_load_n(&migrate_params.announce_max, __ATOMIC_RELAXED);
    p->rounds = __atomic_load_n(&migrate_params.announce_rounds, __ATOMIC_RELAXED);
    p->step = __atomic_load_n(&migrate_params.announce_step, __ATOMIC_RELAXED);
}

/* Implemented now; the rest are refused when turned on. */
static bool cap_supported(MigrationCapability c)
{
    switch (c) {
    case MIGRATION_CAPABILITY_EVENTS:
    case MIGRATION_CAPABILITY_AUTO_CONVERGE:
    case MIGRATION_CAPABILITY_PAUSE_BEFORE_SWITCHOVER:
    case MIGRATION_CAPABILITY_RETURN_PATH:
    case MIGRATION_CAPABILITY_POSTCOPY_RAM:
    case MIGRATION_CAPABILITY_POSTCOPY_BLOCKTIME:
        return true;
    default:
        return false;
    }
}

JsonNode *qmp_migrate_set_capabilities(JsonObject *args, GError **errp)
{
    JsonArray *caps = json_object_get_array_member(args, "capabilities");
    bool newcaps[MIGRATION_CAPABILITY__MAX];

    if (migration_is_running()) {
        error_setg(errp, "There's a migration process in progress");
        return NULL;
    }
    memcpy(newcaps, migrate_caps, sizeof(newcaps));
    for (guint i = 0; i < json_array_get_length(caps); i++) {
        JsonObject *o = json_array_get_object_element(caps, i);
        const char *name = json_object_get_string_member(o, "capability");
        bool state = json_object_get_boolean_member(o, "state");
        int c = MigrationCapability_parse(name);

        g_assert(c >= 0);   /* the dispatcher checked the enum */
        if (state && !cap_supported((MigrationCapability)c)) {
            error_setg(errp, "Capability '%s' is not supported by godwit", name);
            return NULL;
        }
        /* The receiving side checks at once that this host can do postcopy. */
        if (state && c == MIGRATION_CAPABILITY_POSTCOPY_RAM &&
            runstate_get() == RUN_STATE_INMIGRATE &&
            (!postcopy_ram_supported(current_machine->ram, errp) ||
             !postcopy_notify(POSTCOPY_NOTIFY_PROBE, NULL, errp))) {
            return NULL;
        }
        newcaps[c] = state;
    }
    for (int c = 0; c < MIGRATION_CAPABILITY__MAX; c++) {
        __atomic_store_n(&migrate_caps[c], newcaps[c], __ATOMIC_RELAXED);
    }
    return NULL;
}

JsonNode *qmp_query_migrate_capabilities(JsonObject *args, GError **errp)
{
    JsonArray *a = json_array_new();

    for (int c = 0; c < MIGRATION_CAPABILITY__MAX; c++) {
        JsonObject *o = json_object_new();
        json_object_set_string_member(o, "capability", MigrationCapability_str(c));
        json_object_set_boolean_member(o, "state", migrate_caps[c]);
        json_array_add_object_element(a, o);
    }
    JsonNode *n = json_node_new(JSON_NODE_ARRAY);
    json_node_take_array(n, a);
    return n;
}

/*
 * The TLS parameters: godwit has no TLS, so only "" or null (which mean
 * "no TLS" in QEMU too) is accepted; anything else would let a management
 * tool believe the migration is encrypted.
 */
static bool check_tls(JsonObject *args, const char *name, GError **errp)
{
    JsonNode *v = json_object_get_member(args, name);

    if (!v || JSON_NODE_HOLDS_NULL(v) || !*json_node_get_string(v)) {
        return true;
    }
    error_setg(errp, "Parameter '%s': TLS is not supported by godwit (only an empty value "
               "is accepted)", name);
    return false;
}

static bool check_range(JsonObject *args, const char *name, const char *uname,
                        uint64_t lo, uint64_t hi, const char *unit, GError **errp)
{
    if (!json_object_has_member(args, name)) {
        return true;
    }
    uint64_t v = (uint64_t)json_object_get_int_member(args, name);
    if (v < lo || v > hi) {
        if (!strcmp(name, "downtime-limit")) {
            error_setg(errp, "Parameter 'downtime_limit' expects an integer in the range of 0 to "
                       "(2000 * 1000) ms");
        } else {
            error_setg(errp, "Parameter '%s' expects an integer in the range of %" PRIu64
                       " to %" PRIu64 "%s", uname, lo, hi, unit);
        }
        return false;
    }
    return true;
}

JsonNode *qmp_migrate_set_parameters(JsonObject *args, GError **errp)
{
    MigrationParams p = migrate_params;

    /* Check everything first: a refused call changes nothing. */
    if (!check_range(args, "throttle-trigger-threshold", "throttle_trigger_threshold", 1, 100,
                     "", errp) ||
        !check_range(args, "cpu-throttle-initial", "cpu_throttle_initial", 1, 99, "", errp) ||
        !check_range(args, "cpu-throttle-increment", "cpu_throttle_increment", 1, 99, "", errp) ||
        !check_range(args, "max-cpu-throttle", "max_cpu_throttle", 1, 99, "", errp) ||
        !check_range(args, "downtime-limit", "downtime_limit", 0, 2000 * 1000, "", errp) ||
        !check_range(args, "max-bandwidth", "max_bandwidth", 0, INT64_MAX, " bytes/second",
                     errp) ||
        !check_range(args, "max-postcopy-bandwidth", "max_postcopy_bandwidth", 0, INT64_MAX,
                     " bytes/second", errp) ||
        !check_range(args, "announce-initial", "announce_initial", 1, 100000, " ms", errp) ||
        !check_range(args, "announce-max", "announce_max", 1, 100000, " ms", errp) ||
        !check_range(args, "announce-rounds", "announce_rounds", 1, 1000, "", errp) ||
        !check_range(args, "announce-step", "announce_step", 1, 10000, " ms", errp) ||
        !check_range(args, "multifd-channels", "multifd_channels", 1, 255, "", errp) ||
        !check_range(args, "x-postcopy-after-passes", "x_postcopy_after_passes", 0, 1000000, "",
                     errp) ||
        !check_range(args, "compress-level", "compress_level", 0, 9, "", errp) ||
        !check_range(args, "compress-threads", "compress_threads", 1, 255, "", errp) ||
        !check_range(args, "decompress-threads", "decompress_threads", 1, 255, "", errp) ||
        !check_range(args, "multifd-zlib-level", "multifd_zlib_level", 0, 9, "", errp) ||
        !check_range(args, "multifd-zstd-level", "multifd_zstd_level", 0, 20, "", errp) ||
        !check_tls(args, "tls-creds", errp) || !check_tls(args, "tls-hostname", errp) ||
        !check_tls(args, "tls-authz", errp)) {
        return NULL;
    }
    if (json_object_has_member(args, "block-incremental") &&
        json_object_get_boolean_member(args, "block-incremental")) {
        error_setg(errp, "Block migration is not supported by godwit");
        return NULL;
    }
#define GET(member, field) \
    if (json_object_has_member(args, member)) { \
        p.field = (__typeof__(p.field))json_object_get_int_member(args, member); \
    }
    GET("announce-initial", announce_initial);
    GET("announce-max", announce_max);
    GET("announce-rounds", announce_rounds);
    GET("announce-step", announce_step);
    GET("throttle-trigger-threshold", throttle_trigger_threshold);
    GET("cpu-throttle-initial", cpu_throttle_initial);
    GET("cpu-throttle-increment", cpu_throttle_increment);
    GET("max-cpu-throttle", max_cpu_throttle);
    GET("max-bandwidth", max_bandwidth);
    GET("downtime-limit", downtime_limit);
    GET("max-postcopy-bandwidth", max_postcopy_bandwidth);
    GET("xbzrle-cache-size", xbzrle_cache_size);
    GET("multifd-channels", multifd_channels);
    GET("x-postcopy-after-passes", x_postcopy_after_passes);
    GET("compress-level", compress_level);
    GET("compress-threads", compress_threads);
    GET("decompress-threads", decompress_threads);
    GET("x-checkpoint-delay", x_checkpoint_delay);
    GET("multifd-zlib-level", multifd_zlib_level);
    GET("multifd-zstd-level", multifd_zstd_level);
#undef GET
    if (json_object_has_member(args, "compress-wait-thread")) {
        p.compress_wait_thread = json_object_get_boolean_member(args, "compress-wait-thread");
    }
    if (json_object_has_member(args, "multifd-compression")) {
        /* The dispatcher checked the enum value. */
        p.multifd_compression = MultiFDCompression_parse(
            json_object_get_string_member(args, "multifd-compression"));
    }
    if (json_object_has_member(args, "cpu-throttle-tailslow")) {
        p.cpu_throttle_tailslow = json_object_get_boolean_member(args, "cpu-throttle-tailslow");
    }
    if (p.cpu_throttle_initial > p.max_cpu_throttle) {
        error_setg(errp, "Parameter 'cpu_throttle_initial' must not exceed 'max_cpu_throttle' (%u)",
                   p.max_cpu_throttle);
        return NULL;
    }
    migrate_params = p;
    return NULL;
}

JsonNode *qmp_query_migrate_parameters(JsonObject *args, GError **errp)
{
    JsonObject *o = json_object_new();
    const MigrationParams *p = &migrate_params;

    json_object_set_int_member(o, "announce-initial", (gint64)p->announce_initial);
    json_object_set_int_member(o, "announce-max", (gint64)p->announce_max);
    json_object_set_int_member(o, "announce-rounds", (gint64)p->announce_rounds);
    json_object_set_int_member(o, "announce-step", (gint64)p->announce_step);
    json_object_set_int_member(o, "throttle-trigger-threshold", p->throttle_trigger_threshold);
    json_object_set_int_member(o, "cpu-throttle-initial", p->cpu_throttle_initial);
    json_object_set_int_member(o, "cpu-throttle-increment", p->cpu_throttle_increment);
    json_object_set_boolean_member(o, "cpu-throttle-tailslow", p->cpu_throttle_tailslow);
    json_object_set_int_member(o, "max-cpu-throttle", p->max_cpu_throttle);
    json_object_set_int_member(o, "max-bandwidth", (gint64)p->max_bandwidth);
    json_object_set_int_member(o, "downtime-limit", (gint64)p->downtime_limit);
    json_object_set_int_member(o, "max-postcopy-bandwidth", (gint64)p->max_postcopy_bandwidth);
    json_object_set_int_member(o, "xbzrle-cache-size", (gint64)p->xbzrle_cache_size);
    json_object_set_int_member(o, "multifd-channels", p->multifd_channels);
    json_object_set_int_member(o, "x-postcopy-after-passes", p->x_postcopy_after_passes);
    json_object_set_int_member(o, "compress-level", p->compress_level);
    json_object_set_int_member(o, "compress-threads", p->compress_threads);
    json_object_set_boolean_member(o, "compress-wait-thread", p->compress_wait_thread);
    json_object_set_int_member(o, "decompress-threads", p->decompress_threads);
    /*
     * Always "": libvirt takes the member's presence to mean TLS can be
     * configured, and setting a credential is refused with a clear error.
     */
    json_object_set_string_member(o, "tls-creds", "");
    json_object_set_string_member(o, "tls-hostname", "");
    json_object_set_string_member(o, "tls-authz", "");
    json_object_set_int_member(o, "x-checkpoint-delay", p->x_checkpoint_delay);
    json_object_set_boolean_member(o, "block-incremental", false);
    json_object_set_string_member(o, "multifd-compression",
                                  MultiFDCompression_str(p->multifd_compression));
    json_object_set_int_member(o, "multifd-zlib-level", p->multifd_zlib_level);
    json_object_set_int_member(o, "multifd-zstd-level", p->multifd_zstd_level);
    return qmp_node_object(o);
}
