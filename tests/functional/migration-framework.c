/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * The two-VM migration test framework (see migration-framework.h): VM
 * command lines per backend and transport, capability and parameter
 * set-up, waiting for migration states, and the memory checks (byte for
 * byte between source and destination, the tick invariant, pass markers).
 */
#include "qemu/osdep.h"

#include <sys/socket.h>
#include <sys/stat.h>

#include <glib/gstdio.h>

#include "migration-framework.h"

#define GIB (1ULL << 30)
#define LOW_RAM_LIMIT (3 * GIB)     /* RAM above this starts at 4 GiB */

/* ---------------------------------------------------------------------- */
/* Registration */

static bool mig_wanted(bool slow)
{
    const char *s = g_getenv("GW_MIG_SUITE");

    if (!s || !*s || strcmp(s, "all") == 0) {
        return true;
    }
    return strcmp(s, slow ? "slow" : "quick") == 0;
}

void mig_add_test(const char *path, void (*fn)(void), bool slow)
{
    if (mig_wanted(slow)) {
        g_test_add_func(path, fn);
    }
}

void mig_add_test_data(const char *path, gconstpointer data,
                       void (*fn)(gconstpointer), bool slow)
{
    if (mig_wanted(slow)) {
        g_test_add_data_func(path, data, fn);
    }
}

const char *mig_require(bool postcopy)
{
    const char *tick = gw_require_guest("GW_TICK_GUEST");

    if (!tick || !gw_require_kvm()) {
        return NULL;
    }
    if (gw_flavour() != GW_FLAVOUR_GODWIT) {
        /* Our stream is our own: QEMU cannot be the peer of these tests. */
        g_test_skip("migration tests need godwit on both ends");
        g_printerr("*** SKIP: migration tests need godwit on both ends ***\n");
        return NULL;
    }
    if (postcopy && !gw_require_uffd()) {
        return NULL;
    }
    return tick;
}

/* ---------------------------------------------------------------------- */
/* Command lines */

static unsigned cfg_ram(const MigTestConfig *cfg)
{
    return cfg->ram_mib ? cfg->ram_mib : 128;
}

static unsigned cfg_smp(const MigTestConfig *cfg)
{
    return cfg->smp ? cfg->smp : 1;
}

static char *backend_args(const MigTestConfig *cfg)
{
    unsigned ram = cfg_ram(cfg);

    switch (cfg->backend) {
    case MIG_BACKEND_DEFAULT:
        return g_strdup("");
    case MIG_BACKEND_MEMFD:
        return g_strdup_printf("-object memory-backend-memfd,id=mem,size=%uM,"
                               "share=on -machine memory-backend=mem", ram);
    case MIG_BACKEND_HUGETLB:
        return g_strdup_printf("-object memory-backend-memfd,id=mem,size=%uM,"
                               "share=on,hugetlb=on,hugetlbsize=2M "
                               "-machine memory-backend=mem", ram);
    case MIG_BACKEND_HUGETLBFS:
        g_assert(cfg->hugetlbfs_path);
        return g_strdup_printf("-object memory-backend-file,id=mem,size=%uM,"
                               "share=on,mem-path=%s "
                               "-machine memory-backend=mem", ram,
                               cfg->hugetlbfs_path);
    }
    g_assert_not_reached();
}

char *mig_src_args(const MigTestConfig *cfg, const char *tick)
{
    g_autofree char *be = backend_args(cfg);

    return g_strdup_printf("-m %uM -smp %u %s -kernel '%s' -append '%s'",
                           cfg_ram(cfg), cfg_smp(cfg), be, tick,
                           cfg->tick_append ? cfg->tick_append : "");
}

char *mig_dst_args(const MigTestConfig *cfg, const char *incoming, bool paused)
{
    g_autofree char *be = backend_args(cfg);

    /* No -kernel: with -incoming the stream brings the guest's memory. */
    return g_strdup_printf("-m %uM -smp %u %s %s -incoming '%s'",
                           cfg_ram(cfg), cfg_smp(cfg), be,
                           paused ? "-S" : "", incoming);
}

GwVM *mig_start_source(const MigTestConfig *cfg, const char *name)
{
    const char *tick = g_getenv("GW_TICK_GUEST");
    g_autofree char *args = mig_src_args(cfg, tick);
    GwVMOpts o = { .name = name, .args = args };
    GwVM *vm = gw_vm_start(&o);

    gw_serial_wait_for(vm, "tick: start=", MIG_BOOT_TIMEOUT_MS);
    gw_serial_wait_for(vm, "tick: pass 1\n", MIG_PASS_TIMEOUT_MS);
    return vm;
}

void mig_wait_new_pass(GwVM *vm)
{
    gsize off = gw_serial_offset(vm);

    /* The first match may be the tail of a line already being printed. */
    off = gw_serial_wait_for_from(vm, off, "tick: pass ", MIG_PASS_TIMEOUT_MS);
    gw_serial_wait_for_from(vm, off, "\n", MIG_PASS_TIMEOUT_MS);
}

/* The destination's listening address from query-migrate (tcp:...:0). */
char *mig_dst_tcp_uri(GwVM *dst)
{
    g_autoptr(JsonNode) info = mig_query(dst);
    JsonObject *o = json_node_get_object(info);
    JsonArray *a;
    JsonObject *sa;
    JsonNode *port;

    if (!json_object_has_member(o, "socket-address")) {
        g_autofree char *s = json_to_string(info, false);
        g_error("destination reports no socket-address: %s", s);
    }
    a = json_object_get_array_member(o, "socket-address");
    g_assert_cmpuint(json_array_get_length(a), >=, 1);
    sa = json_array_get_object_element(a, 0);
    g_assert_cmpstr(json_object_get_string_member(sa, "type"), ==, "inet");
    port = json_object_get_member(sa, "port");
    /* QEMU reports the port as a string; accept a number too. */
    if (json_node_get_value_type(port) == G_TYPE_STRING) {
        g_assert_cmpstr(json_node_get_string(port), !=, "0");
        return g_strdup_printf("tcp:%s:%s",
                               json_object_get_string_member(sa, "host"),
                               json_node_get_string(port));
    }
    g_assert_cmpint(json_node_get_int(port), >, 0);
    return g_strdup_printf("tcp:%s:%" G_GINT64_FORMAT,
                           json_object_get_string_member(sa, "host"),
                           json_node_get_int(port));
}

void mig_start_dest(MigTest *t, const char *name, bool paused)
{
    const MigTestConfig *cfg = t->cfg;
    g_autofree char *args = NULL;
    g_autofree char *fifo_dir = NULL;
    GwVMOpts o = { .name = name };

    g_clear_pointer(&t->uri, g_free);
    g_clear_pointer(&t->incoming, g_free);
    switch (cfg->transport) {
    case MIG_UNIX:
        t->incoming = g_strdup("unix:@DIR@/mig.sock");
        break;
    case MIG_TCP:
        t->incoming = g_strdup("tcp:127.0.0.1:0");
        break;
    case MIG_FD:
    case MIG_DEFER:
        t->incoming = g_strdup("defer");
        break;
    case MIG_EXEC: {
        /*
         * The FIFO must exist before the destination runs its command, so
         * it lives in a directory of our own, made first.
         */
        g_autoptr(GError) err = NULL;
        g_autofree char *fifo = NULL;
        fifo_dir = g_dir_make_tmp("gw-fifo-XXXXXX", &err);
        g_assert_no_error(err);
        fifo = g_build_filename(fifo_dir, "mig.fifo", NULL);
        g_assert_cmpint(mkfifo(fifo, 0600), ==, 0);
        t->incoming = g_strdup_printf("exec:cat %s", fifo);
        t->uri = g_strdup_printf("exec:cat > %s", fifo);
        break;
    }
    }
    args = mig_dst_args(cfg, t->incoming, paused);
    o.args = args;
    t->dst = gw_vm_start(&o);

    switch (cfg->transport) {
    case MIG_UNIX:
    case MIG_DEFER:
        t->uri = g_strdup_printf("unix:%s/mig.sock", gw_vm_dir(t->dst));
        break;
    case MIG_TCP:
        t->uri = mig_dst_tcp_uri(t->dst);
        break;
    case MIG_FD:
        t->uri = g_strdup("fd:mig");
        break;
    case MIG_EXEC:
        /*
         * cat has the FIFO open (or is about to): unlinking the name now is
         * fine once both ends have opened it, but we cannot know when; the
         * directory is removed with the test instead.
         */
        g_free(t->fifo_dir);
        t->fifo_dir = g_steal_pointer(&fifo_dir);
        break;
    }
}

/* ---------------------------------------------------------------------- */
/* Capabilities, parameters, migrate */

void mig_set_caps(GwVM *vm, const char *caps, bool on)
{
    g_auto(GStrv) list = NULL;
    g_autoptr(GString) json = g_string_new(NULL);

    if (!caps || !*caps) {
        return;
    }
    list = g_strsplit(caps, ",", -1);
    for (char **c = list; *c; c++) {
        g_string_append_printf(json, "%s{'capability': '%s', 'state': %s}",
                               c == list ? "" : ", ", *c,
                               on ? "true" : "false");
    }
    json_node_unref(gw_qmp_assert_success(vm,
        "{'execute': 'migrate-set-capabilities', "
        "'arguments': {'capabilities': [%s]}}", json->str));
}

void mig_set_params(GwVM *vm, const char *params)
{
    if (!params || !*params) {
        return;
    }
    json_node_unref(gw_qmp_assert_success(vm,
        "{'execute': 'migrate-set-parameters', 'arguments': {%s}}", params));
}

void mig_configure(MigTest *t)
{
    const MigTestConfig *cfg = t->cfg;

    mig_set_caps(t->src, "events", true);
    mig_set_caps(t->dst, "events", true);
    mig_set_caps(t->src, cfg->caps, true);
    mig_set_caps(t->dst, cfg->caps, true);
    mig_set_caps(t->src, cfg->src_caps, true);
    mig_set_caps(t->dst, cfg->dst_caps, true);
    mig_set_params(t->src, cfg->src_params);
    mig_set_params(t->dst, cfg->dst_params);
}

void mig_migrate(MigTest *t)
{
    switch (t->cfg->transport) {
    case MIG_FD: {
        g_autoptr(JsonNode) r1 = NULL;
        g_autoptr(JsonNode) r2 = NULL;

        g_assert_cmpint(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0,
                                   t->fds), ==, 0);
        r1 = gw_qmp_getfd(t->dst, "mig", t->fds[1]);
        g_assert_nonnull(gw_reply_return(r1));
        json_node_unref(gw_qmp_assert_success(t->dst,
            "{'execute': 'migrate-incoming', 'arguments': {'uri': 'fd:mig'}}"));
        r2 = gw_qmp_getfd(t->src, "mig", t->fds[0]);
        g_assert_nonnull(gw_reply_return(r2));
        /* Both processes hold their own copies now. */
        close(t->fds[0]);
        close(t->fds[1]);
        t->fds[0] = t->fds[1] = -1;
        break;
    }
    case MIG_DEFER:
        json_node_unref(gw_qmp_assert_success(t->dst,
            "{'execute': 'migrate-incoming', 'arguments': {'uri': '%s'}}",
            t->uri));
        break;
    default:
        break;
    }
    json_node_unref(gw_qmp_assert_success(t->src,
        "{'execute': 'migrate', 'arguments': {'uri': '%s'}}", t->uri));
}

/* ---------------------------------------------------------------------- */
/* States */

void mig_sleep_events(GwVM *vm, int ms)
{
    JsonNode *ev = gw_qmp_poll_event(vm, "GW-NO-SUCH-EVENT", ms);

    g_assert_null(ev);
}

JsonNode *mig_query(GwVM *vm)
{
    return gw_qmp_assert_success(vm, "{'execute': 'query-migrate'}");
}

double mig_num(JsonNode *obj, const char *path)
{
    g_auto(GStrv) parts = g_strsplit(path, ".", -1);
    JsonNode *n = obj;

    for (char **p = parts; *p; p++) {
        JsonObject *o;
        if (!n || !JSON_NODE_HOLDS_OBJECT(n)) {
            return -1;
        }
        o = json_node_get_object(n);
        if (!json_object_has_member(o, *p)) {
            return -1;
        }
        n = json_object_get_member(o, *p);
    }
    if (!JSON_NODE_HOLDS_VALUE(n)) {
        return -1;
    }
    return json_node_get_double(n);
}

const char *mig_query_str(GwVM *vm, const char *member)
{
    /* Interned so callers need not free it. */
    g_autoptr(JsonNode) info = mig_query(vm);
    JsonObject *o = json_node_get_object(info);

    if (!json_object_has_member(o, member)) {
        return NULL;
    }
    return g_intern_string(json_object_get_string_member(o, member));
}

typedef struct StatusWant {
    const char *want;
} StatusWant;

static bool status_is_final_or(JsonNode *ev, gpointer opaque)
{
    StatusWant *w = opaque;
    JsonObject *d = gw_event_data(ev);
    const char *s = d ? json_object_get_string_member(d, "status") : NULL;
    static const char *const final[] = {
        "completed", "failed", "cancelled", "postcopy-paused", NULL
    };

    if (!s) {
        return false;
    }
    if (strcmp(s, w->want) == 0) {
        return true;
    }
    return g_strv_contains(final, s);
}

gint64 mig_wait_status(GwVM *vm, const char *want, int timeout_ms)
{
    StatusWant w = { want };
    g_autoptr(JsonNode) ev = gw_qmp_wait_event_match(vm, "MIGRATION",
        status_is_final_or, &w, timeout_ms);
    const char *got = json_object_get_string_member(gw_event_data(ev),
                                                    "status");

    if (strcmp(got, want) != 0) {
        g_autoptr(JsonNode) info = mig_query(vm);
        g_autofree char *s = json_to_string(info, false);
        g_error("%s: migration ended '%s' while waiting for '%s': %s",
                gw_vm_name(vm), got, want, s);
    }
    return gw_event_timestamp_us(ev);
}

void mig_poll_status(GwVM *vm, const char *want, int timeout_ms)
{
    gint64 end = g_get_monotonic_time() + gw_timeout(timeout_ms) * 1000LL;
    const char *st;

    for (;;) {
        st = mig_query_str(vm, "status");
        if (st && strcmp(st, want) == 0) {
            return;
        }
        if (g_get_monotonic_time() > end) {
            g_error("%s: migration status is '%s', not '%s', after %d ms",
                    gw_vm_name(vm), st ? st : "(none)", want, timeout_ms);
        }
        /* A bounded wait that also collects events. */
        mig_sleep_events(vm, 20);
    }
}

/* ---------------------------------------------------------------------- */
/* Memory */

typedef struct Dump {
    GBytes *low;
    GBytes *high;
    TickMemPiece pieces[2];
    size_t n;
} Dump;

static void dump_take(GwVM *vm, unsigned ram_mib, Dump *d)
{
    guint64 ram = (guint64)ram_mib << 20;
    guint64 low = MIN(ram, LOW_RAM_LIMIT);

    memset(d, 0, sizeof(*d));
    d->low = gw_memsave(vm, 0, low);
    d->pieces[0] = (TickMemPiece){ 0, g_bytes_get_data(d->low, NULL), low };
    d->n = 1;
    if (ram > low) {
        d->high = gw_memsave(vm, 4 * GIB, ram - low);
        d->pieces[1] = (TickMemPiece){ 4 * GIB,
                                       g_bytes_get_data(d->high, NULL),
                                       ram - low };
        d->n = 2;
    }
}

static void dump_free(Dump *d)
{
    g_clear_pointer(&d->low, g_bytes_unref);
    g_clear_pointer(&d->high, g_bytes_unref);
}

static void check_dump(GwVM *vm, Dump *d, TickMailbox *mb)
{
    g_autoptr(GString) why = g_string_new(NULL);
    TickScan scan;

    if (!tick_check_dump(d->pieces, d->n, mb, &scan, why)) {
        g_error("%s: tick invariant broken: %s", gw_vm_name(vm), why->str);
    }
    g_test_message("%s: tick at pass %" PRIu64 ", writes %" PRIu64
                   ", position %" PRIu64 " of %" PRIu64 " pages",
                   gw_vm_name(vm), mb->passes, mb->writes, scan.position,
                   scan.pages);
}

/* Compare two pieces byte for byte, naming the first pages that differ. */
static void compare_piece(const TickMemPiece *a, const TickMemPiece *b)
{
    guint64 bad = 0;
    g_autoptr(GString) where = g_string_new(NULL);

    g_assert_cmpuint(a->len, ==, b->len);
    if (memcmp(a->host, b->host, a->len) == 0) {
        return;
    }
    for (guint64 off = 0; off < a->len; off += TICK_PAGE_SIZE) {
        guint64 n = MIN(TICK_PAGE_SIZE, a->len - off);
        if (memcmp(a->host + off, b->host + off, n) != 0) {
            if (++bad <= 8) {
                guint64 i = 0;
                while (a->host[off + i] == b->host[off + i]) {
                    i++;
                }
                g_string_append_printf(where, " 0x%" PRIx64
                                       " (src %02x dst %02x)",
                                       a->gpa + off + i, a->host[off + i],
                                       b->host[off + i]);
            }
        }
    }
    g_error("memory differs between source and destination in %" PRIu64
            " pages; first:%s", bad, where->str);
}

void mig_check_same_memory(GwVM *src, GwVM *dst, unsigned ram_mib,
                           TickMailbox *mb)
{
    Dump s, d;
    g_autofree char *ss = gw_vm_query_status(src);
    g_autofree char *ds = gw_vm_query_status(dst);

    g_assert_true(strcmp(ss, "postmigrate") == 0 || strcmp(ss, "paused") == 0);
    g_assert_cmpstr(ds, ==, "paused");
    dump_take(src, ram_mib, &s);
    dump_take(dst, ram_mib, &d);
    g_assert_cmpuint(s.n, ==, d.n);
    for (size_t i = 0; i < s.n; i++) {
        compare_piece(&s.pieces[i], &d.pieces[i]);
    }
    check_dump(src, &s, mb);
    g_test_message("memory identical: %u MiB", ram_mib);
    dump_free(&s);
    dump_free(&d);
}

void mig_compare_memory(GwVM *src, GwVM *dst, unsigned ram_mib)
{
    Dump s, d;

    dump_take(src, ram_mib, &s);
    dump_take(dst, ram_mib, &d);
    g_assert_cmpuint(s.n, ==, d.n);
    for (size_t i = 0; i < s.n; i++) {
        compare_piece(&s.pieces[i], &d.pieces[i]);
    }
    g_test_message("memory identical: %u MiB", ram_mib);
    dump_free(&s);
    dump_free(&d);
}

guint64 mig_mailbox_writes(GwVM *vm)
{
    g_autoptr(GBytes) mbx = gw_memsave(vm, TICK_MAILBOX_GPA, TICK_PAGE_SIZE);
    const guint8 *p = g_bytes_get_data(mbx, NULL);
    guint64 magic, w;

    memcpy(&magic, p + TICK_MBX_MAGIC, 8);
    memcpy(&w, p + TICK_MBX_WRITES, 8);
    g_assert_cmphex(magic, ==, TICK_MAILBOX_MAGIC);
    return w;
}

void mig_check_invariant(GwVM *vm, unsigned ram_mib, TickMailbox *mb)
{
    g_autofree char *st = gw_vm_query_status(vm);
    Dump d;

    if (strcmp(st, "running") == 0) {
        json_node_unref(gw_qmp_assert_success(vm, "{'execute': 'stop'}"));
        json_node_unref(gw_qmp_wait_event(vm, "STOP", MIG_EVENT_TIMEOUT_MS));
    }
    dump_take(vm, ram_mib, &d);
    check_dump(vm, &d, mb);
    dump_free(&d);
}

guint64 mig_check_markers(GwVM *const *vms, size_t n)
{
    g_autoptr(GString) all = g_string_new(NULL);
    guint64 expect = 1;
    const char *p;

    for (size_t i = 0; i < n; i++) {
        g_autofree char *log = gw_serial_read_all(vms[i]);
        g_string_append(all, log);
    }
    if (strstr(all->str, "tick: error") || strstr(all->str, "tick: exception")) {
        g_error("the guest reported an error: %s", all->str);
    }
    for (p = all->str; (p = strstr(p, "tick: pass ")); ) {
        char *end;
        guint64 v;

        p += strlen("tick: pass ");
        v = g_ascii_strtoull(p, &end, 10);
        if (*end != '\n') {
            break;      /* the last line may still be in flight */
        }
        if (v != expect) {
            g_error("pass markers jump from %" PRIu64 " to %" PRIu64
                    " across the migration", expect - 1, v);
        }
        expect++;
        p = end;
    }
    g_assert_cmpuint(expect, >, 1);
    return expect - 1;
}

/* ---------------------------------------------------------------------- */
/* The whole flow */

void mig_test_free(MigTest *t)
{
    if (!t) {
        return;
    }
    gw_vm_free(t->src);
    gw_vm_free(t->dst);
    for (int i = 0; i < 2; i++) {
        if (t->fds[i] >= 0) {
            close(t->fds[i]);
        }
    }
    if (t->fifo_dir) {
        g_autofree char *fifo = g_build_filename(t->fifo_dir, "mig.fifo",
                                                 NULL);
        g_unlink(fifo);
        g_rmdir(t->fifo_dir);
        g_free(t->fifo_dir);
    }
    if (t->src_info) {
        json_node_unref(t->src_info);
    }
    if (t->dst_info) {
        json_node_unref(t->dst_info);
    }
    g_free(t->uri);
    g_free(t->incoming);
    g_free(t);
}

static MigTest *mig_test_new(const MigTestConfig *cfg)
{
    MigTest *t = g_new0(MigTest, 1);

    t->cfg = cfg;
    t->opaque = cfg->opaque;
    t->fds[0] = t->fds[1] = -1;
    return t;
}

static void report_info(const char *who, JsonNode *info)
{
    g_autofree char *s = json_to_string(info, false);

    g_test_message("%s query-migrate: %s", who, s);
}

void mig_finish_dest(MigTest *t)
{
    unsigned ram = cfg_ram(t->cfg);
    GwVM *vms[2] = { t->src, t->dst };
    TickMailbox mb;
    gsize off;

    off = gw_serial_offset(t->dst);
    json_node_unref(gw_qmp_assert_success(t->dst, "{'execute': 'cont'}"));
    {
        g_autoptr(JsonNode) ev = gw_qmp_wait_event(t->dst, "RESUME",
                                                   MIG_EVENT_TIMEOUT_MS);
        t->dst_resume_us = gw_event_timestamp_us(ev);
    }
    /* Two new markers: the guest really runs on the destination. */
    off = gw_serial_wait_for_from(t->dst, off, "tick: pass ",
                                  MIG_PASS_TIMEOUT_MS);
    gw_serial_wait_for_from(t->dst, off, "tick: pass ", MIG_PASS_TIMEOUT_MS);
    mig_check_invariant(t->dst, ram, &mb);
    mig_check_markers(vms, 2);
    g_assert_cmpuint(mb.writes, >, t->src_mb.writes);
    g_assert_cmpuint(mb.passes, >, t->src_mb.passes);
}

static void switch_to_postcopy(MigTest *t)
{
    const MigTestConfig *cfg = t->cfg;

    switch (cfg->postcopy) {
    case MIG_PC_NONE:
    case MIG_PC_AUTO:
        return;
    case MIG_PC_AFTER_PASS:
        for (;;) {
            g_autoptr(JsonNode) ev = gw_qmp_wait_event(t->src,
                "MIGRATION_PASS", MIG_DEFAULT_TIMEOUT_MS);
            if (json_object_get_int_member(gw_event_data(ev), "pass") >=
                cfg->postcopy_pass) {
                break;
            }
        }
        /* fall through */
    case MIG_PC_IMMEDIATE:
        json_node_unref(gw_qmp_assert_success(t->src,
            "{'execute': 'migrate-start-postcopy'}"));
        return;
    }
}

void mig_run(const MigTestConfig *cfg, MigTest **keep)
{
    MigTest *t = mig_test_new(cfg);
    const char *expect = cfg->expect_status ? cfg->expect_status : "completed";
    int timeout = cfg->timeout_ms ? cfg->timeout_ms : MIG_DEFAULT_TIMEOUT_MS;
    bool postcopy = cfg->postcopy != MIG_PC_NONE;
    gint64 t0;

    /* The destination first: it waits while the source boots. */
    mig_start_dest(t, "dst", !cfg->dst_autostart);
    t->src = mig_start_source(cfg, "src");
    mig_configure(t);
    if (cfg->start_hook) {
        cfg->start_hook(t);
    }
    t0 = g_get_monotonic_time();
    mig_migrate(t);
    switch_to_postcopy(t);
    if (postcopy) {
        mig_wait_status(t->src, "postcopy-active", timeout);
    }
    if (cfg->migrate_hook) {
        cfg->migrate_hook(t);
    }
    mig_wait_status(t->src, expect, timeout);
    t->src_info = mig_query(t->src);
    report_info("source", t->src_info);

    if (strcmp(expect, "completed") == 0) {
        g_autoptr(JsonNode) stop = NULL;
        g_autoptr(JsonNode) done = NULL;

        g_test_message("migration took %" PRId64 " ms (test clock)",
                       (g_get_monotonic_time() - t0) / 1000);
        t->dst_done_us = mig_wait_status(t->dst, "completed",
                                         MIG_EVENT_TIMEOUT_MS);
        t->dst_info = mig_query(t->dst);
        report_info("destination", t->dst_info);
        stop = gw_qmp_wait_event(t->src, "STOP", MIG_EVENT_TIMEOUT_MS);
        t->src_stop_us = gw_event_timestamp_us(stop);
        if (postcopy) {
            g_assert_cmpstr(json_object_get_string_member(
                json_node_get_object(t->dst_info), "status"), ==, "completed");
        }
        if (!cfg->dst_autostart) {
            mig_check_same_memory(t->src, t->dst, cfg_ram(cfg), &t->src_mb);
            g_test_message("source STOP to destination load complete "
                           "(destination held by -S): %.3f ms",
                           (double)(t->dst_done_us - t->src_stop_us) / 1000);
            mig_finish_dest(t);
        } else {
            g_autoptr(JsonNode) resume =
                gw_qmp_wait_event(t->dst, "RESUME", MIG_EVENT_TIMEOUT_MS);
            GwVM *vms[2] = { t->src, t->dst };
            TickMailbox mb;

            t->dst_resume_us = gw_event_timestamp_us(resume);
            g_test_message("guest-visible gap: source STOP to destination "
                           "RESUME %.3f ms",
                           (double)(t->dst_resume_us - t->src_stop_us) / 1000);
            mig_check_invariant(t->src, cfg_ram(cfg), &t->src_mb);
            mig_wait_new_pass(t->dst);
            mig_check_invariant(t->dst, cfg_ram(cfg), &mb);
            mig_check_markers(vms, 2);
            g_assert_cmpuint(mb.writes, >, t->src_mb.writes);
        }
    }
    if (cfg->end_hook) {
        cfg->end_hook(t);
    }
    if (keep) {
        *keep = t;
    } else {
        mig_test_free(t);
    }
}
