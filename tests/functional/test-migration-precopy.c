/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * Precopy live migration between two godwit processes, on real KVM with
 * the tick guest: every transport, -incoming defer, the memfd backend,
 * -smp 2, several passes over pages the guest keeps rewriting, a ping-pong
 * A -> B -> A, and auto-converge. Memory is compared byte for byte.
 */
#include "qemu/osdep.h"

#include "migration-framework.h"

/*
 * 128 MiB/s of dirtied pages over the whole 126 MiB range: one pass a
 * second, so the guest rewrites pages the first pass already sent while
 * precopy (unlimited bandwidth) still converges in a couple of passes.
 */
#define TICK_DEFAULT "rate=128"

static void run_plain(MigTransport tr)
{
    MigTestConfig cfg = {
        .tick_append = TICK_DEFAULT,
        .transport = tr,
    };

    if (!mig_require(false)) {
        return;
    }
    mig_run(&cfg, NULL);
}

static void test_unix(void)
{
    run_plain(MIG_UNIX);
}

static void test_tcp(void)
{
    run_plain(MIG_TCP);
}

static void test_fd(void)
{
    run_plain(MIG_FD);
}

static void test_exec(void)
{
    run_plain(MIG_EXEC);
}

static void test_defer(void)
{
    run_plain(MIG_DEFER);
}

static void test_memfd(void)
{
    MigTestConfig cfg = {
        .tick_append = TICK_DEFAULT,
        .transport = MIG_UNIX,
        .backend = MIG_BACKEND_MEMFD,
    };

    if (!mig_require(false)) {
        return;
    }
    mig_run(&cfg, NULL);
}

static void test_smp2(void)
{
    MigTestConfig cfg = {
        .tick_append = TICK_DEFAULT,
        .transport = MIG_UNIX,
        .smp = 2,
    };
    MigTest *t = NULL;
    g_autoptr(JsonNode) cpus = NULL;

    if (!mig_require(false)) {
        return;
    }
    mig_run(&cfg, &t);
    /* Both vCPUs exist on the destination. */
    cpus = gw_qmp_assert_success(t->dst, "{'execute': 'query-cpus-fast'}");
    g_assert_cmpuint(json_array_get_length(json_node_get_array(cpus)), ==, 2);
    mig_test_free(t);
}

/*
 * Several passes over pages already sent: a bandwidth cap makes the first
 * pass take about a second while the guest rewrites every page in that
 * time, and the memory must still match exactly.
 */
static void test_rewrite(void)
{
    MigTestConfig cfg = {
        .tick_append = "rate=32",
        .transport = MIG_UNIX,
        .src_params = "'max-bandwidth': 134217728, 'downtime-limit': 100",
    };
    MigTest *t = NULL;
    double syncs, normal;

    if (!mig_require(false)) {
        return;
    }
    mig_run(&cfg, &t);
    syncs = mig_num(t->src_info, "ram.dirty-sync-count");
    normal = mig_num(t->src_info, "ram.normal");
    g_test_message("dirty-sync-count %.0f, normal pages %.0f", syncs, normal);
    g_assert_cmpfloat(syncs, >=, 3);
    /* More pages were sent than RAM has: some went twice. */
    g_assert_cmpfloat(normal, >, 128 * 256);
    mig_test_free(t);
}

/*
 * A -> B (B runs at once: the gap is real) -> A' (paused, compared byte
 * for byte with B), with the markers continuous across all three.
 */
static void test_ping_pong(void)
{
    MigTestConfig ab = {
        .tick_append = TICK_DEFAULT,
        .transport = MIG_UNIX,
        .dst_autostart = true,
    };
    MigTestConfig ba = {
        .tick_append = TICK_DEFAULT,
        .transport = MIG_TCP,
    };
    MigTest *t = NULL;
    MigTest back = { .cfg = &ba, .fds = { -1, -1 } };
    MigTest *tb;
    GwVM *vms[3];
    g_autoptr(JsonNode) stop = NULL;
    TickMailbox mb;

    if (!mig_require(false)) {
        return;
    }
    mig_run(&ab, &t);
    /* mig_run stopped B to check it; let it run again before moving it. */
    json_node_unref(gw_qmp_assert_success(t->dst, "{'execute': 'cont'}"));
    json_node_unref(gw_qmp_wait_event(t->dst, "RESUME", MIG_EVENT_TIMEOUT_MS));
    mig_wait_new_pass(t->dst);

    tb = g_memdup2(&back, sizeof(back));
    tb->src = t->dst;
    t->dst = NULL;
    mig_start_dest(tb, "a2", true);
    mig_configure(tb);
    gw_qmp_clear_events(tb->src);
    mig_migrate(tb);
    mig_wait_status(tb->src, "completed", MIG_DEFAULT_TIMEOUT_MS);
    mig_wait_status(tb->dst, "completed", MIG_EVENT_TIMEOUT_MS);
    stop = gw_qmp_wait_event(tb->src, "STOP", MIG_EVENT_TIMEOUT_MS);
    mig_check_same_memory(tb->src, tb->dst, 128, &tb->src_mb);
    g_assert_cmpuint(tb->src_mb.writes, >, t->src_mb.writes);

    json_node_unref(gw_qmp_assert_success(tb->dst, "{'execute': 'cont'}"));
    json_node_unref(gw_qmp_wait_event(tb->dst, "RESUME", MIG_EVENT_TIMEOUT_MS));
    mig_wait_new_pass(tb->dst);
    mig_wait_new_pass(tb->dst);
    mig_check_invariant(tb->dst, 128, &mb);
    g_assert_cmpuint(mb.writes, >, tb->src_mb.writes);
    vms[0] = t->src;
    vms[1] = tb->src;
    vms[2] = tb->dst;
    g_test_message("markers continuous up to pass %" PRIu64,
                   mig_check_markers(vms, 3));
    mig_test_free(tb);
    mig_test_free(t);
}

/* ---------------------------------------------------------------------- */
/* auto-converge */

/*
 * A guest that dirties 64 MiB/s of a 32 MiB range against a 16 MiB/s link
 * and a 50 ms downtime limit: every pass finds the whole range dirty again,
 * so precopy cannot converge unless the vCPU is slowed down.
 */
#define AC_TICK "rate=64 end=34M"
#define AC_PARAMS "'max-bandwidth': 16777216, 'downtime-limit': 50, " \
                  "'cpu-throttle-initial': 30, 'cpu-throttle-increment': 20"
#define AC_NO_CONVERGE_MS 6000

static void ac_watch_throttle(MigTest *t)
{
    /* Poll query-migrate until done, remembering the highest throttle. */
    double *max_seen = t->opaque;
    gint64 end = g_get_monotonic_time() + gw_timeout(60000) * 1000LL;

    for (;;) {
        g_autoptr(JsonNode) info = mig_query(t->src);
        const char *st = json_object_get_string_member(
            json_node_get_object(info), "status");
        double p = mig_num(info, "cpu-throttle-percentage");

        *max_seen = MAX(*max_seen, p);
        if (strcmp(st, "active") != 0 && strcmp(st, "setup") != 0) {
            return;
        }
        g_assert_cmpint(g_get_monotonic_time(), <, end);
        mig_sleep_events(t->src, 20);
    }
}

static void test_auto_converge(void)
{
    double max_throttle = 0;
    MigTestConfig without = {
        .tick_append = AC_TICK,
        .transport = MIG_UNIX,
        .src_params = AC_PARAMS,
    };
    MigTestConfig with = {
        .tick_append = AC_TICK,
        .transport = MIG_UNIX,
        .src_params = AC_PARAMS,
        .src_caps = "auto-converge",
        .migrate_hook = ac_watch_throttle,
        .opaque = &max_throttle,
    };
    MigTest *t;
    g_autoptr(JsonNode) ev = NULL;
    g_autoptr(JsonNode) info = NULL;

    if (!mig_require(false)) {
        return;
    }

    /* Without auto-converge: still active after a bounded time. */
    t = g_new0(MigTest, 1);
    t->cfg = &without;
    t->fds[0] = t->fds[1] = -1;
    mig_start_dest(t, "dst", true);
    t->src = mig_start_source(&without, "src");
    mig_configure(t);
    mig_migrate(t);
    mig_wait_status(t->src, "active", MIG_EVENT_TIMEOUT_MS);
    ev = gw_qmp_poll_event(t->src, "STOP", AC_NO_CONVERGE_MS);
    g_assert_null(ev);
    info = mig_query(t->src);
    g_assert_cmpstr(json_object_get_string_member(json_node_get_object(info),
                                                  "status"), ==, "active");
    g_assert_cmpfloat(mig_num(info, "ram.dirty-sync-count"), >=, 2);
    /* No throttling without the capability. */
    g_assert_true(mig_num(info, "cpu-throttle-percentage") <= 0);
    json_node_unref(gw_qmp_assert_success(t->src,
                                          "{'execute': 'migrate_cancel'}"));
    mig_wait_status(t->src, "cancelled", MIG_EVENT_TIMEOUT_MS);
    mig_test_free(t);

    /* With it: converges, and the throttle was seen at work. */
    mig_run(&with, NULL);
    g_test_message("highest cpu-throttle-percentage seen: %.0f", max_throttle);
    g_assert_cmpfloat(max_throttle, >, 0);
}

int main(int argc, char **argv)
{
    g_test_init(&argc, &argv, NULL);
    mig_add_test("/migration/precopy/unix/plain", test_unix, false);
    mig_add_test("/migration/precopy/tcp/plain", test_tcp, false);
    mig_add_test("/migration/precopy/fd/plain", test_fd, false);
    mig_add_test("/migration/precopy/exec/plain", test_exec, false);
    mig_add_test("/migration/precopy/defer", test_defer, false);
    mig_add_test("/migration/precopy/memfd", test_memfd, false);
    mig_add_test("/migration/precopy/smp2", test_smp2, true);
    mig_add_test("/migration/precopy/rewrite", test_rewrite, true);
    mig_add_test("/migration/precopy/ping-pong", test_ping_pong, true);
    mig_add_test("/migration/auto-converge", test_auto_converge, true);
    return g_test_run();
}
