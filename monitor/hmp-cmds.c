/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * HMP command handlers. Each one turns its parsed arguments into a QMP
 * call and formats the result the way QEMU 7.2's HMP prints it. Only
 * "info registers" and "xp" read the machine directly.
 */
#include "qemu/osdep.h"

#include "hw/machine.h"
#include "monitor/hmp.h"
#include "monitor/monitor.h"
#include "monitor/qmp.h"
#include "qemu/bql.h"
#include "sysemu/cpus.h"

/* ---- small JSON helpers ---- */

static JsonObject *node_object(JsonNode *n)
{
    return n && JSON_NODE_HOLDS_OBJECT(n) ? json_node_get_object(n) : NULL;
}

static bool obj_has(JsonObject *o, const char *key)
{
    return o && json_object_has_member(o, key) &&
           !JSON_NODE_HOLDS_NULL(json_object_get_member(o, key));
}

static int64_t obj_int(JsonObject *o, const char *key)
{
    return obj_has(o, key) ? json_object_get_int_member(o, key) : 0;
}

static const char *obj_str(JsonObject *o, const char *key)
{
    JsonNode *n = obj_has(o, key) ? json_object_get_member(o, key) : NULL;

    return n && json_node_get_value_type(n) == G_TYPE_STRING ? json_node_get_string(n) : NULL;
}

/* Run a command that returns nothing worth printing. */
static void hmp_simple(Monitor *mon, const char *name, JsonObject *args)
{
    hmp_qmp(mon, name, args, NULL);
}

/* ---- VM control ---- */

void hmp_stop(Monitor *mon, JsonObject *args)
{
    hmp_simple(mon, "stop", NULL);
}

void hmp_cont(Monitor *mon, JsonObject *args)
{
    hmp_simple(mon, "cont", NULL);
}

void hmp_quit(Monitor *mon, JsonObject *args)
{
    hmp_simple(mon, "quit", NULL);
}

void hmp_system_reset(Monitor *mon, JsonObject *args)
{
    hmp_simple(mon, "system_reset", NULL);
}

void hmp_pmemsave(Monitor *mon, JsonObject *args)
{
    /* The argument names are QMP's already: val, size, filename. */
    hmp_simple(mon, "pmemsave", args);
}

/* ---- info ---- */

void hmp_info_status(Monitor *mon, JsonObject *args)
{
    JsonNode *r = NULL;
    JsonObject *o;
    const char *status;
    bool running;

    if (!hmp_qmp(mon, "query-status", NULL, &r)) {
        return;
    }
    o = node_object(r);
    status = obj_str(o, "status");
    running = obj_has(o, "running") && json_object_get_boolean_member(o, "running");
    monitor_printf(mon, "VM status: %s%s", running ? "running" : "paused",
                   obj_has(o, "singlestep") && json_object_get_boolean_member(o, "singlestep")
                   ? " (single step mode)" : "");
    if (!running && status && strcmp(status, "paused") != 0) {
        monitor_printf(mon, " (%s)", status);
    }
    monitor_printf(mon, "\n");
    json_node_unref(r);
}

void hmp_info_version(Monitor *mon, JsonObject *args)
{
    JsonNode *r = NULL;
    JsonObject *o, *v;

    if (!hmp_qmp(mon, "query-version", NULL, &r)) {
        return;
    }
    o = node_object(r);
    v = obj_has(o, "qemu") ? json_object_get_object_member(o, "qemu") : NULL;
    monitor_printf(mon, "%" PRId64 ".%" PRId64 ".%" PRId64 "%s\n",
                   obj_int(v, "major"), obj_int(v, "minor"), obj_int(v, "micro"),
                   obj_str(o, "package") ? obj_str(o, "package") : "");
    json_node_unref(r);
}

void hmp_info_name(Monitor *mon, JsonObject *args)
{
    JsonNode *r = NULL;
    const char *name;

    if (!hmp_qmp(mon, "query-name", NULL, &r)) {
        return;
    }
    name = obj_str(node_object(r), "name");
    if (name) {
        monitor_printf(mon, "%s\n", name);
    }
    if (r) {
        json_node_unref(r);
    }
}

void hmp_info_kvm(Monitor *mon, JsonObject *args)
{
    JsonNode *r = NULL;
    JsonObject *o;

    if (!hmp_qmp(mon, "query-kvm", NULL, &r)) {
        return;
    }
    o = node_object(r);
    monitor_printf(mon, "kvm support: ");
    if (obj_has(o, "present") && json_object_get_boolean_member(o, "present")) {
        monitor_printf(mon, "%s\n",
                       obj_has(o, "enabled") && json_object_get_boolean_member(o, "enabled")
                       ? "enabled" : "disabled");
    } else {
        monitor_printf(mon, "not compiled\n");
    }
    json_node_unref(r);
}

void hmp_info_cpus(Monitor *mon, JsonObject *args)
{
    JsonNode *r = NULL;
    JsonArray *a;

    if (!hmp_qmp(mon, "query-cpus-fast", NULL, &r)) {
        return;
    }
    a = r && JSON_NODE_HOLDS_ARRAY(r) ? json_node_get_array(r) : NULL;
    for (guint i = 0; a && i < json_array_get_length(a); i++) {
        JsonObject *c = json_array_get_object_element(a, i);
        int64_t idx = obj_int(c, "cpu-index");

        /* The monitor's current CPU is always vCPU 0 here. */
        monitor_printf(mon, "%c CPU #%" PRId64 ": thread_id=%" PRId64 "\n",
                       idx == 0 ? '*' : ' ', idx, obj_int(c, "thread-id"));
    }
    if (r) {
        json_node_unref(r);
    }
}

void hmp_info_registers(Monitor *mon, JsonObject *args)
{
    bool all = obj_has(args, "cpustate_all") &&
               json_object_get_boolean_member(args, "cpustate_all");
    Machine *ms = current_machine;

    if (!ms || ms->smp_cpus < 1 || !ms->cpus) {
        monitor_printf(mon, "No CPU available\n");
        return;
    }
    for (int i = 0; i < (all ? ms->smp_cpus : 1); i++) {
        GString *out = g_string_new(NULL);

        if (all) {
            monitor_printf(mon, "\nCPU#%d\n", i);
        }
        cpu_dump_state(ms->cpus[i], out);
        monitor_printf(mon, "%s", out->str);
        g_string_free(out, true);
    }
}

/* ---- xp ---- */

#define XP_MAX_BYTES (64 * 1024)

static void print_char(Monitor *mon, unsigned c)
{
    switch (c) {
    case '\'':
        monitor_printf(mon, "'\\''");
        break;
    case '\\':
        monitor_printf(mon, "'\\\\'");
        break;
    case '\n':
        monitor_printf(mon, "'\\n'");
        break;
    case '\r':
        monitor_printf(mon, "'\\r'");
        break;
    default:
        if (c >= 32 && c <= 126) {
            monitor_printf(mon, "'%c'", c);
        } else {
            monitor_printf(mon, "'\\x%02x'", c);
        }
        break;
    }
}

void hmp_xp(Monitor *mon, JsonObject *args)
{
    int64_t count = obj_int(args, "count");
    uint64_t addr = (uint64_t)obj_int(args, "addr");
    const char *fs = obj_str(args, "format");
    char format;
    int wsize;
    int line_size, digits;
    uint64_t len;

    monitor_get_dump_format(mon, &format, &wsize);
    if (fs) {
        format = fs[0];
    }
    if (obj_has(args, "size")) {
        wsize = obj_int(args, "size");
    } else if (fs && format == 'c') {
        wsize = 1;
    }
    if (format == 'i') {
        monitor_printf(mon, "Error: instruction dumps (/i) are not supported\n");
        return;
    }
    monitor_set_dump_format(mon, format, wsize);
    if (format == 'c') {
        wsize = 1;
    }
    if (count < 1) {
        return;
    }
    if ((uint64_t)count > (uint64_t)(XP_MAX_BYTES / wsize)) {
        monitor_printf(mon, "Error: xp dumps at most %d bytes at a time\n", XP_MAX_BYTES);
        return;
    }
    if (!current_machine) {
        monitor_printf(mon, "Error: no guest memory\n");
        return;
    }
    len = (uint64_t)count * wsize;
    line_size = wsize == 1 ? 8 : 16;
    switch (format) {
    case 'o':
        digits = (wsize * 8 + 2) / 3;
        break;
    case 'u':
    case 'd':
        digits = (wsize * 8 * 10 + 32) / 33;
        break;
    default:
        digits = wsize * 2;
        break;
    }
    while (len > 0) {
        uint8_t buf[16];
        int l = len > (uint64_t)line_size ? line_size : (int)len;
        GError *err = NULL;

        monitor_printf(mon, "%016" PRIx64 ":", addr);
        if (!machine_ram_read(current_machine, addr, buf, l, &err)) {
            g_error_free(err);
            monitor_printf(mon, " Cannot access memory\n");
            break;
        }
        for (int i = 0; i < l; i += wsize) {
            uint64_t v = 0;
            int64_t sv;

            /* Guest memory is little-endian. */
            for (int b = wsize - 1; b >= 0; b--) {
                v = (v << 8) | buf[i + b];
            }
            sv = wsize == 8 ? (int64_t)v
                 : (int64_t)(v ^ (1ULL << (wsize * 8 - 1))) - (int64_t)(1ULL << (wsize * 8 - 1));
            monitor_printf(mon, " ");
            switch (format) {
            case 'o':
                monitor_printf(mon, "%#*" PRIo64, digits, v);
                break;
            case 'u':
                monitor_printf(mon, "%*" PRIu64, digits, v);
                break;
            case 'd':
                monitor_printf(mon, "%*" PRId64, digits, sv);
                break;
            case 'c':
                print_char(mon, v);
                break;
            default:
                monitor_printf(mon, "0x%0*" PRIx64, digits, v);
                break;
            }
        }
        monitor_printf(mon, "\n");
        addr += l;
        len -= l;
    }
}

/* ---- migration ---- */

static const char *const migration_status_names[] = {
    "none", "setup", "cancelling", "cancelled", "active", "postcopy-active",
    "postcopy-paused", "postcopy-recover", "completed", "failed", "colo",
    "pre-switchover", "device", "wait-unplug", NULL,
};

static const char *const migration_capability_names[] = {
    "xbzrle", "rdma-pin-all", "auto-converge", "zero-blocks", "compress",
    "events", "postcopy-ram", "x-colo", "release-ram", "block", "return-path",
    "pause-before-switchover", "multifd", "dirty-bitmaps", "postcopy-blocktime",
    "late-block-activate", "x-ignore-shared", "validate-uuid",
    "background-snapshot", "zero-copy-send", "postcopy-preempt", NULL,
};

static bool name_in(const char *const *names, const char *s)
{
    return g_strv_contains((const char *const *)names, s);
}

typedef struct MigratePoll {
    Monitor *mon;
    int64_t started_ms;
} MigratePoll;

/*
 * Still migrating? "none" right after the command counts as starting, in
 * case the migration thread has not published "setup" yet.
 */
static bool migrate_poll_pending(MigratePoll *mp, Monitor *mon)
{
    JsonNode *r = NULL;
    JsonObject *o;
    const char *status;
    bool pending;

    if (!hmp_qmp(mon, "query-migrate", NULL, &r)) {
        return false;
    }
    o = node_object(r);
    status = obj_str(o, "status");
    pending = !status || !strcmp(status, "setup") || !strcmp(status, "active") ||
              (!strcmp(status, "none") && gw_clock_ms() - mp->started_ms < 2000);
    if (!pending && obj_str(o, "error-desc")) {
        monitor_printf(mon, "Error: %s\n", obj_str(o, "error-desc"));
    }
    if (r) {
        json_node_unref(r);
    }
    return pending;
}

static gboolean migrate_poll_cb(gpointer opaque)
{
    MigratePoll *mp = opaque;
    bool take = !bql_locked();
    bool pending;

    if (take) {
        bql_lock();
    }
    pending = migrate_poll_pending(mp, mp->mon);
    if (!pending) {
        monitor_set_poll_source(mp->mon, 0);
        monitor_resume(mp->mon);
    }
    if (take) {
        bql_unlock();
    }
    return pending ? G_SOURCE_CONTINUE : G_SOURCE_REMOVE;
}

static bool flag(JsonObject *args, const char *name)
{
    return obj_has(args, name) && json_object_get_boolean_member(args, name);
}

void hmp_migrate(Monitor *mon, JsonObject *args)
{
    g_autoptr(JsonObject) q = json_object_new();
    MigratePoll *mp;

    json_object_set_string_member(q, "uri", json_object_get_string_member(args, "uri"));
    /* Only what was asked for, so a schema without blk/inc still accepts it. */
    if (flag(args, "blk")) {
        json_object_set_boolean_member(q, "blk", true);
    }
    if (flag(args, "inc")) {
        json_object_set_boolean_member(q, "inc", true);
    }
    if (flag(args, "resume")) {
        json_object_set_boolean_member(q, "resume", true);
    }
    if (!hmp_qmp(mon, "migrate", q, NULL)) {
        return;
    }
    if (flag(args, "detach")) {
        return;
    }
    if (!monitor_is_interactive(mon)) {
        monitor_printf(mon, "terminal does not allow synchronous migration, "
                       "continuing detached\n");
        return;
    }
    monitor_suspend(mon);
    mp = g_new0(MigratePoll, 1);
    mp->mon = mon;
    mp->started_ms = gw_clock_ms();
    monitor_set_poll_source(mon, g_timeout_add_full(G_PRIORITY_DEFAULT, 100,
                                                    migrate_poll_cb, mp, g_free));
}

void hmp_migrate_incoming(Monitor *mon, JsonObject *args)
{
    hmp_simple(mon, "migrate-incoming", args);
}

void hmp_migrate_cancel(Monitor *mon, JsonObject *args)
{
    hmp_simple(mon, "migrate_cancel", NULL);
}

void hmp_migrate_start_postcopy(Monitor *mon, JsonObject *args)
{
    hmp_simple(mon, "migrate-start-postcopy", NULL);
}

void hmp_migrate_pause(Monitor *mon, JsonObject *args)
{
    hmp_simple(mon, "migrate-pause", NULL);
}

void hmp_migrate_recover(Monitor *mon, JsonObject *args)
{
    hmp_simple(mon, "migrate-recover", args);
}

void hmp_migrate_continue(Monitor *mon, JsonObject *args)
{
    const char *state = json_object_get_string_member(args, "state");

    if (!name_in(migration_status_names, state)) {
        monitor_printf(mon, "Error: invalid parameter value: %s\n", state);
        return;
    }
    hmp_simple(mon, "migrate-continue", args);
}

void hmp_migrate_set_capability(Monitor *mon, JsonObject *args)
{
    const char *cap = json_object_get_string_member(args, "capability");
    g_autoptr(JsonObject) q = json_object_new();
    JsonArray *list = json_array_new();
    JsonObject *item = json_object_new();

    if (!name_in(migration_capability_names, cap)) {
        monitor_printf(mon, "Error: invalid parameter value: %s\n", cap);
        json_object_unref(item);
        json_array_unref(list);
        return;
    }
    json_object_set_string_member(item, "capability", cap);
    json_object_set_boolean_member(item, "state",
                                   json_object_get_boolean_member(args, "state"));
    json_array_add_object_element(list, item);
    json_object_set_array_member(q, "capabilities", list);
    hmp_simple(mon, "migrate-set-capabilities", q);
}

typedef enum ParamKind {
    PARAM_SIZE_MIB,     /* size, a bare number is MiB (max-bandwidth) */
    PARAM_SIZE,         /* size or uint64, a bare number is bytes / ms */
    PARAM_U8,
    PARAM_U32,
    PARAM_BOOL,
    PARAM_STR,
    PARAM_QMP_ONLY,
} ParamKind;

typedef struct ParamInfo {
    const char *name;
    ParamKind kind;
    const char *unit;   /* what "info migrate_parameters" appends */
} ParamInfo;

/* In the order QEMU 7.2's "info migrate_parameters" prints them. */
static const ParamInfo migration_params[] = {
    { "announce-initial", PARAM_SIZE, " ms" },
    { "announce-max", PARAM_SIZE, " ms" },
    { "announce-rounds", PARAM_SIZE, "" },
    { "announce-step", PARAM_SIZE, " ms" },
    { "compress-level", PARAM_U8, "" },
    { "compress-threads", PARAM_U8, "" },
    { "compress-wait-thread", PARAM_BOOL, "" },
    { "decompress-threads", PARAM_U8, "" },
    { "throttle-trigger-threshold", PARAM_U8, "" },
    { "cpu-throttle-initial", PARAM_U8, "" },
    { "cpu-throttle-increment", PARAM_U8, "" },
    { "cpu-throttle-tailslow", PARAM_BOOL, "" },
    { "max-cpu-throttle", PARAM_U8, "" },
    { "tls-creds", PARAM_STR, "" },
    { "tls-hostname", PARAM_STR, "" },
    { "max-bandwidth", PARAM_SIZE_MIB, " bytes/second" },
    { "downtime-limit", PARAM_SIZE, " ms" },
    { "x-checkpoint-delay", PARAM_U32, " ms" },
    { "block-incremental", PARAM_BOOL, "" },
    { "multifd-channels", PARAM_U8, "" },
    { "multifd-compression", PARAM_STR, "" },
    { "xbzrle-cache-size", PARAM_SIZE, " bytes" },
    { "max-postcopy-bandwidth", PARAM_SIZE, "" },
    { "tls-authz", PARAM_STR, "" },
    { "x-postcopy-after-passes", PARAM_U32, "" },
    /* Not printed by QEMU 7.2's HMP; settable here. */
    { "multifd-zlib-level", PARAM_U8, NULL },
    { "multifd-zstd-level", PARAM_U8, NULL },
    { "block-bitmap-mapping", PARAM_QMP_ONLY, NULL },
};

static const ParamInfo *param_lookup(const char *name)
{
    for (size_t i = 0; i < G_N_ELEMENTS(migration_params); i++) {
        if (!strcmp(migration_params[i].name, name)) {
            return &migration_params[i];
        }
    }
    return NULL;
}

static bool parse_uint(const char *s, uint64_t max, uint64_t *out)
{
    char *end;

    if (!g_ascii_isdigit(*s)) {
        return false;
    }
    errno = 0;
    *out = g_ascii_strtoull(s, &end, 10);
    return errno == 0 && *end == '\0' && *out <= max;
}

void hmp_migrate_set_parameter(Monitor *mon, JsonObject *args)
{
    const char *name = json_object_get_string_member(args, "parameter");
    const char *value = json_object_get_string_member(args, "value");
    const ParamInfo *pi = param_lookup(name);
    g_autoptr(JsonObject) q = json_object_new();
    uint64_t n;

    if (!pi) {
        monitor_printf(mon, "Error: invalid parameter value: %s\n", name);
        return;
    }
    switch (pi->kind) {
    case PARAM_SIZE_MIB:
        if (!hmp_parse_size(value, 1ULL << 20, &n) || n > INT64_MAX) {
            monitor_printf(mon, "Error: Invalid size %s\n", value);
            return;
        }
        json_object_set_int_member(q, name, (int64_t)n);
        break;
    case PARAM_SIZE:
        if (!hmp_parse_size(value, 1, &n) || n > INT64_MAX) {
            monitor_printf(mon, "Error: Parameter '%s' expects a non-negative "
                           "number below 2^64\n", name);
            return;
        }
        json_object_set_int_member(q, name, (int64_t)n);
        break;
    case PARAM_U8:
    case PARAM_U32:
        if (!parse_uint(value, pi->kind == PARAM_U8 ? UINT8_MAX : UINT32_MAX, &n)) {
            monitor_printf(mon, "Error: Parameter '%s' expects %s\n", name,
                           pi->kind == PARAM_U8 ? "uint8_t" : "uint32_t");
            return;
        }
        json_object_set_int_member(q, name, (int64_t)n);
        break;
    case PARAM_BOOL:
        if (!strcmp(value, "on") || !strcmp(value, "yes") || !strcmp(value, "true")) {
            json_object_set_boolean_member(q, name, true);
        } else if (!strcmp(value, "off") || !strcmp(value, "no") ||
                   !strcmp(value, "false")) {
            json_object_set_boolean_member(q, name, false);
        } else {
            monitor_printf(mon, "Error: Parameter '%s' expects 'on' or 'off'\n", name);
            return;
        }
        break;
    case PARAM_STR:
        json_object_set_string_member(q, name, value);
        break;
    case PARAM_QMP_ONLY:
        monitor_printf(mon, "Error: The %s parameter can only be set through QMP\n",
                       name);
        return;
    }
    hmp_simple(mon, "migrate-set-parameters", q);
}

void hmp_info_migrate_capabilities(Monitor *mon, JsonObject *args)
{
    JsonNode *r = NULL;
    JsonArray *a;

    if (!hmp_qmp(mon, "query-migrate-capabilities", NULL, &r)) {
        return;
    }
    a = r && JSON_NODE_HOLDS_ARRAY(r) ? json_node_get_array(r) : NULL;
    for (guint i = 0; a && i < json_array_get_length(a); i++) {
        JsonObject *c = json_array_get_object_element(a, i);

        monitor_printf(mon, "%s: %s\n", obj_str(c, "capability") ?: "?",
                       obj_has(c, "state") && json_object_get_boolean_member(c, "state")
                       ? "on" : "off");
    }
    if (r) {
        json_node_unref(r);
    }
}

static void print_param(Monitor *mon, const char *name, JsonNode *v, const char *unit)
{
    GType t = JSON_NODE_HOLDS_VALUE(v) ? json_node_get_value_type(v) : G_TYPE_INVALID;

    if (JSON_NODE_HOLDS_NULL(v)) {
        monitor_printf(mon, "%s: ''\n", name);
    } else if (t == G_TYPE_BOOLEAN) {
        monitor_printf(mon, "%s: %s\n", name, json_node_get_boolean(v) ? "on" : "off");
    } else if (t == G_TYPE_INT64) {
        monitor_printf(mon, "%s: %" PRIu64 "%s\n", name,
                       (uint64_t)json_node_get_int(v), unit);
    } else if (t == G_TYPE_STRING) {
        bool quoted = g_str_has_prefix(name, "tls-");

        monitor_printf(mon, quoted ? "%s: '%s'\n" : "%s: %s\n", name,
                       json_node_get_string(v));
    } else if (t == G_TYPE_DOUBLE) {
        monitor_printf(mon, "%s: %g%s\n", name, json_node_get_double(v), unit);
    }
    /* Objects and arrays (block-bitmap-mapping) are left to QMP. */
}

void hmp_info_migrate_parameters(Monitor *mon, JsonObject *args)
{
    JsonNode *r = NULL;
    JsonObject *o;
    GList *members;

    if (!hmp_qmp(mon, "query-migrate-parameters", NULL, &r)) {
        return;
    }
    o = node_object(r);
    for (size_t i = 0; o && i < G_N_ELEMENTS(migration_params); i++) {
        const ParamInfo *pi = &migration_params[i];

        if (pi->unit && json_object_has_member(o, pi->name)) {
            print_param(mon, pi->name, json_object_get_member(o, pi->name), pi->unit);
        }
    }
    /* godwit's own parameters, which QEMU does not have, at the end. */
    members = o ? json_object_get_members(o) : NULL;
    for (GList *l = members; l; l = l->next) {
        if (!param_lookup(l->data)) {
            print_param(mon, l->data, json_object_get_member(o, l->data), "");
        }
    }
    g_list_free(members);
    if (r) {
        json_node_unref(r);
    }
}

static void print_socket_address(Monitor *mon, JsonObject *a)
{
    const char *type = obj_str(a, "type");

    if (!g_strcmp0(type, "inet")) {
        monitor_printf(mon, "\ttcp:%s:%s\n", obj_str(a, "host") ?: "",
                       obj_str(a, "port") ?: "");
    } else if (!g_strcmp0(type, "unix")) {
        monitor_printf(mon, "\tunix:%s\n", obj_str(a, "path") ?: "");
    } else if (!g_strcmp0(type, "vsock")) {
        monitor_printf(mon, "\tvsock:%s:%s\n", obj_str(a, "cid") ?: "",
                       obj_str(a, "port") ?: "");
    } else if (!g_strcmp0(type, "fd")) {
        monitor_printf(mon, "\tfd:%s\n", obj_str(a, "str") ?: "");
    } else {
        monitor_printf(mon, "\tunknown address type\n");
    }
}

void hmp_info_migrate(Monitor *mon, JsonObject *args)
{
    JsonNode *r = NULL;
    JsonObject *o;
    const char *status;

    if (!hmp_qmp(mon, "query-migrate", NULL, &r)) {
        return;
    }
    o = node_object(r);
    if (!o) {
        goto out;
    }
    if (obj_has(o, "blocked-reasons")) {
        JsonArray *br = json_object_get_array_member(o, "blocked-reasons");

        monitor_printf(mon, "Outgoing migration blocked:\n");
        for (guint i = 0; i < json_array_get_length(br); i++) {
            monitor_printf(mon, "  %s\n", json_array_get_string_element(br, i));
        }
    }
    status = obj_str(o, "status");
    if (status) {
        monitor_printf(mon, "Migration status: %s", status);
        if (!strcmp(status, "failed") && obj_str(o, "error-desc")) {
            monitor_printf(mon, " (%s)", obj_str(o, "error-desc"));
        }
        monitor_printf(mon, "\n");
        if (obj_has(o, "total-time")) {
            monitor_printf(mon, "total time: %" PRIu64 " ms\n", obj_int(o, "total-time"));
        }
        if (obj_has(o, "expected-downtime")) {
            monitor_printf(mon, "expected downtime: %" PRIu64 " ms\n",
                           obj_int(o, "expected-downtime"));
        }
        if (obj_has(o, "downtime")) {
            monitor_printf(mon, "downtime: %" PRIu64 " ms\n", obj_int(o, "downtime"));
        }
        if (obj_has(o, "setup-time")) {
            monitor_printf(mon, "setup: %" PRIu64 " ms\n", obj_int(o, "setup-time"));
        }
    }
    if (obj_has(o, "ram")) {
        JsonObject *ram = json_object_get_object_member(o, "ram");
        double mbps = obj_has(ram, "mbps") ? json_object_get_double_member(ram, "mbps") : 0;

        monitor_printf(mon, "transferred ram: %" PRIu64 " kbytes\n",
                       obj_int(ram, "transferred") >> 10);
        monitor_printf(mon, "throughput: %0.2f mbps\n", mbps);
        monitor_printf(mon, "remaining ram: %" PRIu64 " kbytes\n",
                       obj_int(ram, "remaining") >> 10);
        monitor_printf(mon, "total ram: %" PRIu64 " kbytes\n", obj_int(ram, "total") >> 10);
        monitor_printf(mon, "duplicate: %" PRIu64 " pages\n", obj_int(ram, "duplicate"));
        monitor_printf(mon, "skipped: %" PRIu64 " pages\n", obj_int(ram, "skipped"));
        monitor_printf(mon, "normal: %" PRIu64 " pages\n", obj_int(ram, "normal"));
        monitor_printf(mon, "normal bytes: %" PRIu64 " kbytes\n",
                       obj_int(ram, "normal-bytes") >> 10);
        monitor_printf(mon, "dirty sync count: %" PRIu64 "\n",
                       obj_int(ram, "dirty-sync-count"));
        monitor_printf(mon, "page size: %" PRIu64 " kbytes\n", obj_int(ram, "page-size") >> 10);
        monitor_printf(mon, "multifd bytes: %" PRIu64 " kbytes\n",
                       obj_int(ram, "multifd-bytes") >> 10);
        monitor_printf(mon, "pages-per-second: %" PRIu64 "\n",
                       obj_int(ram, "pages-per-second"));
        if (obj_int(ram, "dirty-pages-rate")) {
            monitor_printf(mon, "dirty pages rate: %" PRIu64 " pages\n",
                           obj_int(ram, "dirty-pages-rate"));
        }
        if (obj_int(ram, "postcopy-requests")) {
            monitor_printf(mon, "postcopy request count: %" PRIu64 "\n",
                           obj_int(ram, "postcopy-requests"));
        }
        if (obj_int(ram, "precopy-bytes")) {
            monitor_printf(mon, "precopy ram: %" PRIu64 " kbytes\n",
                           obj_int(ram, "precopy-bytes") >> 10);
        }
        if (obj_int(ram, "downtime-bytes")) {
            monitor_printf(mon, "downtime ram: %" PRIu64 " kbytes\n",
                           obj_int(ram, "downtime-bytes") >> 10);
        }
        if (obj_int(ram, "postcopy-bytes")) {
            monitor_printf(mon, "postcopy ram: %" PRIu64 " kbytes\n",
                           obj_int(ram, "postcopy-bytes") >> 10);
        }
        if (obj_int(ram, "dirty-sync-missed-zero-copy")) {
            monitor_printf(mon, "Zero-copy-send fallbacks happened: %" PRIu64 " times\n",
                           obj_int(ram, "dirty-sync-missed-zero-copy"));
        }
    }
    if (obj_has(o, "cpu-throttle-percentage")) {
        monitor_printf(mon, "cpu throttle percentage: %" PRIu64 "\n",
                       obj_int(o, "cpu-throttle-percentage"));
    }
    if (obj_has(o, "postcopy-blocktime")) {
        monitor_printf(mon, "postcopy blocktime: %" PRIu64 "\n",
                       obj_int(o, "postcopy-blocktime"));
    }
    if (obj_has(o, "postcopy-vcpu-blocktime")) {
        JsonArray *bt = json_object_get_array_member(o, "postcopy-vcpu-blocktime");
        GString *s = g_string_new(NULL);

        for (guint i = 0; i < json_array_get_length(bt); i++) {
            g_string_append_printf(s, "%s%" PRIu64, i ? "," : "",
                                   (uint64_t)json_array_get_int_element(bt, i));
        }
        monitor_printf(mon, "postcopy vcpu blocktime: %s\n", s->str);
        g_string_free(s, true);
    }
    if (obj_has(o, "x-postcopy-latency-percentiles")) {
        JsonObject *pc = json_object_get_object_member(o, "x-postcopy-latency-percentiles");

        monitor_printf(mon, "postcopy fault latency: p50 %.1f us, p99 %.1f us, max %.1f us "
                       "(%" PRIu64 " faults)\n",
                       json_object_get_double_member(pc, "p50"),
                       json_object_get_double_member(pc, "p99"),
                       json_object_get_double_member(pc, "max"), obj_int(pc, "faults"));
    }
    if (obj_has(o, "x-downtime-split")) {
        JsonObject *sp = json_object_get_object_member(o, "x-downtime-split");
        GList *members = json_object_get_members(sp);
        GString *line = g_string_new("downtime split:");

        for (GList *l = members; l; l = l->next) {
            g_string_append_printf(line, " %s %.2f ms", (const char *)l->data,
                                   json_object_get_double_member(sp, l->data));
        }
        monitor_printf(mon, "%s\n", line->str);
        g_string_free(line, true);
        g_list_free(members);
    }
    if (obj_has(o, "socket-address")) {
        JsonArray *sa = json_object_get_array_member(o, "socket-address");

        monitor_printf(mon, "socket address: [\n");
        for (guint i = 0; i < json_array_get_length(sa); i++) {
            print_socket_address(mon, json_array_get_object_element(sa, i));
        }
        monitor_printf(mon, "]\n");
    }
out:
    if (r) {
        json_node_unref(r);
    }
}
