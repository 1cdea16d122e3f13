/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * Postcopy live migration between two godwit processes on real KVM and
 * userfaultfd, with the tick guest: switch after some passes, at once, by
 * policy, when precopy cannot converge; memfd and hugetlb backends;
 * blocktime and fault-latency statistics; a peer killed after the switch;
 * a host without userfaultfd. Memory is compared byte for byte where the
 * destination is held with -S.
 */
#include "qemu/osdep.h"

#include <sys/mount.h>
#include <sys/wait.h>

#include <glib/gstdio.h>

#include "migration-framework.h"

/*
 * Flat out the guest dirties GB/s: precopy can never finish, with a
 * bandwidth cap the first pass takes about half a second.
 */
#define PC_TICK "rate=0"
#define PC_PARAMS "'downtime-limit': 1, 'max-bandwidth': 268435456"
#define PC_CAPS "postcopy-ram"

static void refuse_cancel(MigTest *t)
{
    gw_qmp_expect_error(t->src, "GenericError",
                        "Postcopy migration can't be cancelled",
                        "{'execute': 'migrate_cancel'}");
}

/* Source statistics a correct run with a destination held by -S must show. */
static void check_postcopy_stats(MigTest *t)
{
    double pc_bytes = mig_num(t->src_info, "ram.postcopy-bytes");
    double pages = mig_num(t->src_info, "ram.normal") + mig_num(t->src_info, "ram.duplicate");
    double ram_pages = (double)((t->cfg->ram_mib ? t->cfg->ram_mib : 128) << 20) / 4096;

    g_test_message("postcopy-bytes %.0f, postcopy-requests %.0f, pages sent %.0f",
                   pc_bytes, mig_num(t->src_info, "ram.postcopy-requests"), pages);
    /* Nothing runs on the destination (-S): nothing faults, nothing is asked for. */
    g_assert_cmpfloat(mig_num(t->src_info, "ram.postcopy-requests"), ==, 0);
    /* Every byte on the wire belongs to exactly one phase. */
    g_assert_cmpfloat(mig_num(t->src_info, "ram.transferred"), ==,
                      mig_num(t->src_info, "ram.precopy-bytes") +
                      mig_num(t->src_info, "ram.downtime-bytes") + pc_bytes);
    /* Every page at least once; the pages dirtied meanwhile again. */
    g_assert_cmpfloat(pages, >=, ram_pages);
    if (t->cfg->postcopy == MIG_PC_IMMEDIATE) {
        /*
         * Pure postcopy. The switch request races the first iterations (as
         * in QEMU), so a few pages may go before it and, rewritten by the
         * guest, again after it. What must hold: after the switch no page
         * arrives twice, and the data pages not sent before it went after.
         */
        g_assert_cmpfloat(mig_num(t->dst_info, "x-postcopy-latency-percentiles.duplicates"),
                          ==, 0);
        g_assert_cmpfloat(pc_bytes, >=, mig_num(t->src_info, "ram.normal-bytes") -
                                         mig_num(t->src_info, "ram.precopy-bytes"));
    }
}

static void test_plain(void)
{
    MigTestConfig cfg = {
        .tick_append = PC_TICK,
        .transport = MIG_UNIX,
        .caps = PC_CAPS,
        .src_params = PC_PARAMS,
        .postcopy = MIG_PC_AFTER_PASS,
        .postcopy_pass = 2,
        .end_hook = check_postcopy_stats,
    };

    if (!mig_require(true)) {
        return;
    }
    mig_run(&cfg, NULL);
}

static void test_pure(void)
{
    MigTestConfig cfg = {
        .tick_append = PC_TICK,
        .transport = MIG_TCP,
        .caps = PC_CAPS,
        /* A slow sweep, so the cancel attempt meets postcopy-active. */
        .src_params = "'max-postcopy-bandwidth': 67108864",
        .dst_caps = "postcopy-blocktime",
        .postcopy = MIG_PC_IMMEDIATE,
        .migrate_hook = refuse_cancel,
        .end_hook = check_postcopy_stats,
    };

    if (!mig_require(true)) {
        return;
    }
    mig_run(&cfg, NULL);
}

static void test_memfd(void)
{
    MigTestConfig cfg = {
        .tick_append = PC_TICK,
        .transport = MIG_UNIX,
        .backend = MIG_BACKEND_MEMFD,
        .caps = PC_CAPS,
        .src_params = PC_PARAMS,
        .postcopy = MIG_PC_AFTER_PASS,
        .postcopy_pass = 2,
        .end_hook = check_postcopy_stats,
    };

    if (!mig_require(true)) {
        return;
    }
    mig_run(&cfg, NULL);
}

/*
 * The destination runs at once and pulls the pages it touches (the sweep
 * is slowed down so many are still missing).
 */
static void check_requests(MigTest *t)
{
    double req = mig_num(t->src_info, "ram.postcopy-requests");
    double dst_req = mig_num(t->dst_info, "x-postcopy-latency-percentiles.requests");

    g_test_message("postcopy-requests: source %.0f, destination %.0f", req, dst_req);
    /* Each request the destination sent reached the source and was counted once. */
    g_assert_cmpfloat(req, ==, dst_req);
    /* The guest writes flat out on the destination before its pages are all there. */
    g_assert_cmpfloat(req, >=, 1);
}

static void test_running(gconstpointer data)
{
    MigTestConfig cfg = {
        .tick_append = PC_TICK,
        .transport = MIG_UNIX,
        .backend = GPOINTER_TO_INT(data),
        .caps = PC_CAPS,
        .src_params = PC_PARAMS ", 'max-postcopy-bandwidth': 33554432",
        .dst_caps = "postcopy-blocktime",
        .postcopy = MIG_PC_AFTER_PASS,
        .postcopy_pass = 2,
        .dst_autostart = true,
        .end_hook = check_requests,
    };

    if (!mig_require(true)) {
        return;
    }
    mig_run(&cfg, NULL);
}

/* ---------------------------------------------------------------------- */

static void test_no_converge(void)
{
    MigTestConfig cfg = {
        .tick_append = PC_TICK,
        .transport = MIG_UNIX,
        .caps = PC_CAPS,
        .src_params = "'downtime-limit': 1, 'max-bandwidth': 33554432",
    };
    MigTest *t = g_new0(MigTest, 1);
    g_autoptr(JsonNode) stop = NULL;

    if (!mig_require(true)) {
        g_free(t);
        return;
    }
    t->cfg = &cfg;
    t->fds[0] = t->fds[1] = -1;
    mig_start_dest(t, "dst", true);
    t->src = mig_start_source(&cfg, "src");
    mig_configure(t);
    mig_migrate(t);
    mig_wait_status(t->src, "active", MIG_EVENT_TIMEOUT_MS);
    /* Precopy alone: four seconds (one pass and more) and still active. */
    stop = gw_qmp_poll_event(t->src, "STOP", 4000);
    g_assert_null(stop);
    g_assert_cmpstr(mig_query_str(t->src, "status"), ==, "active");

    json_node_unref(gw_qmp_assert_success(t->src,
        "{'execute': 'migrate-start-postcopy'}"));
    mig_wait_status(t->src, "postcopy-active", MIG_EVENT_TIMEOUT_MS);
    mig_wait_status(t->src, "completed", MIG_DEFAULT_TIMEOUT_MS);
    mig_wait_status(t->dst, "completed", MIG_EVENT_TIMEOUT_MS);
    mig_check_same_memory(t->src, t->dst, 128, &t->src_mb);
    mig_finish_dest(t);
    mig_test_free(t);
}

static void check_auto_switch(MigTest *t)
{
    double syncs = mig_num(t->src_info, "ram.dirty-sync-count");

    g_test_message("switched by itself after %.0f syncs", syncs);
    /* Two passes, then the switch's own sync. */
    g_assert_cmpfloat(syncs, >=, 3);
}

static void test_auto_switch(void)
{
    MigTestConfig cfg = {
        .tick_append = PC_TICK,
        .transport = MIG_UNIX,
        .caps = PC_CAPS,
        .src_params = PC_PARAMS ", 'x-postcopy-after-passes': 2",
        .postcopy = MIG_PC_AUTO,
        .end_hook = check_auto_switch,
    };

    if (!mig_require(true)) {
        return;
    }
    mig_run(&cfg, NULL);
}

/* ---------------------------------------------------------------------- */
/* blocktime and latency */

/*
 * What the figures of one consistent snapshot must satisfy (one vCPU),
 * live or final: each relation follows from how they are counted.
 */
static void check_blocktime_info(JsonNode *info, bool final)
{
    JsonObject *o = json_node_get_object(info);
    JsonArray *vcpu, *lat, *dist;
    g_autofree char *s = json_to_string(info, false);
    double faults = mig_num(info, "x-postcopy-latency-percentiles.faults");
    double max_us = mig_num(info, "x-postcopy-latency-percentiles.max");
    guint64 sum = 0;

    g_test_message("destination%s: %s", final ? " (final)" : "", s);
    vcpu = json_object_get_array_member(o, "postcopy-vcpu-blocktime");
    lat = json_object_get_array_member(o, "postcopy-vcpu-latency");
    dist = json_object_get_array_member(o, "postcopy-latency-dist");
    /* One entry per vCPU; QEMU 10.1's 24 latency buckets. */
    g_assert_cmpuint(json_array_get_length(vcpu), ==, 1);
    g_assert_cmpuint(json_array_get_length(lat), ==, 1);
    g_assert_cmpuint(json_array_get_length(dist), ==, 24);
    /* With one vCPU, all-blocked time is that vCPU's blocked time. */
    g_assert_cmpint(json_array_get_int_element(vcpu, 0), ==,
                    (gint64)mig_num(info, "postcopy-blocktime"));
    /* Every resolved fault is in exactly one bucket. */
    for (guint i = 0; i < json_array_get_length(dist); i++) {
        sum += json_array_get_int_element(dist, i);
    }
    g_assert_cmpfloat((double)sum, ==, faults);
    /* Averages and percentiles never exceed the maximum; blocked time never the sum. */
    g_assert_cmpfloat(mig_num(info, "postcopy-latency"), <=, max_us * 1000 + 1);
    g_assert_cmpfloat(mig_num(info, "x-postcopy-latency-percentiles.p50"), <=,
                      mig_num(info, "x-postcopy-latency-percentiles.p99"));
    g_assert_cmpfloat(mig_num(info, "x-postcopy-latency-percentiles.p99"), <=, max_us);
    if (final) {
        g_assert_cmpfloat(mig_num(info, "postcopy-blocktime"), <=, faults * max_us / 1000 + 1);
        /* A request is sent for a fault only: never more requests than faults. */
        g_assert_cmpfloat(mig_num(info, "x-postcopy-latency-percentiles.requests"), <=, faults);
    }
}

static void blocktime_live(MigTest *t)
{
    /* Live figures while postcopy runs (godwit reports them before the end). */
    g_autoptr(JsonNode) info = NULL;

    mig_sleep_events(t->dst, 500);
    info = mig_query(t->dst);
    if (strcmp(json_object_get_string_member(json_node_get_object(info),
                                             "status"), "postcopy-active")) {
        g_test_message("destination already done before the live look");
    }
    check_blocktime_info(info, false);
    *(double *)t->opaque = mig_num(info, "postcopy-blocktime");
}

static void blocktime_final(MigTest *t)
{
    double live = *(double *)t->opaque;

    check_blocktime_info(t->dst_info, true);
    g_test_message("blocktime live %.0f ms, final %.0f ms", live,
                   mig_num(t->dst_info, "postcopy-blocktime"));
    g_assert_cmpfloat(mig_num(t->dst_info, "postcopy-blocktime"), >=, live);
    check_requests(t);
}

static void test_blocktime(void)
{
    double live = 0;
    MigTestConfig cfg = {
        .tick_append = PC_TICK,
        .transport = MIG_UNIX,
        .smp = 1,
        .caps = PC_CAPS ",postcopy-blocktime",
        .src_params = PC_PARAMS ", 'max-postcopy-bandwidth': 33554432",
        .postcopy = MIG_PC_IMMEDIATE,
        .dst_autostart = true,
        .migrate_hook = blocktime_live,
        .end_hook = blocktime_final,
        .opaque = &live,
    };

    if (!mig_require(true)) {
        return;
    }
    mig_run(&cfg, NULL);
}

/* ---------------------------------------------------------------------- */
/* Peers killed after the switch */

static MigTest *start_slow_postcopy(MigTestConfig *cfg, bool dst_paused)
{
    MigTest *t = g_new0(MigTest, 1);

    t->cfg = cfg;
    t->fds[0] = t->fds[1] = -1;
    mig_start_dest(t, "dst", dst_paused);
    t->src = mig_start_source(cfg, "src");
    mig_configure(t);
    mig_migrate(t);
    json_node_unref(gw_qmp_assert_success(t->src,
        "{'execute': 'migrate-start-postcopy'}"));
    mig_wait_status(t->src, "postcopy-active", MIG_EVENT_TIMEOUT_MS);
    return t;
}

static void test_kill_dest(void)
{
    MigTestConfig cfg = {
        .tick_append = PC_TICK,
        .transport = MIG_UNIX,
        .caps = PC_CAPS,
        .src_params = PC_PARAMS ", 'max-postcopy-bandwidth': 4194304",
    };
    MigTest *t;
    g_autoptr(JsonNode) resume = NULL;
    g_autoptr(JsonNode) r = NULL;
    g_autofree char *st = NULL;
    TickMailbox mb;
    int status;

    if (!mig_require(true)) {
        return;
    }
    t = start_slow_postcopy(&cfg, false);
    json_node_unref(gw_qmp_wait_event(t->dst, "RESUME", MIG_EVENT_TIMEOUT_MS));
    mig_sleep_events(t->src, 300);
    gw_vm_kill(t->dst, SIGKILL);
    g_assert_true(gw_vm_wait_exit(t->dst, 5000, &status));

    mig_wait_status(t->src, "postcopy-paused", MIG_EVENT_TIMEOUT_MS);
    {
        g_autofree char *err = gw_vm_stderr(t->src);
        const char *why = mig_query_str(t->src, "error-desc");
        g_test_message("source error-desc: %s; stderr: %s", why ?: "(none)", err);
        /* It says the destination is gone, not some generic failure. */
        g_assert_nonnull(why);
        g_assert_nonnull(strstr(why, "its process is gone"));
    }
    st = gw_vm_query_status(t->src);
    g_assert_cmpstr(st, !=, "running");
    /* It stays paused: no RESUME, cont is refused or does nothing. */
    resume = gw_qmp_poll_event(t->src, "RESUME", 1000);
    g_assert_null(resume);
    r = gw_qmp(t->src, "{'execute': 'cont'}");
    g_test_message("cont on the source in postcopy-paused: %s",
                   gw_reply_is_error(r) ? gw_reply_error_desc(r) : "accepted");
    g_assert_null(gw_qmp_poll_event(t->src, "RESUME", 500));
    g_free(st);
    st = gw_vm_query_status(t->src);
    g_assert_cmpstr(st, !=, "running");
    g_assert_cmpstr(mig_query_str(t->src, "status"), ==, "postcopy-paused");
    /* It kept every page: its memory is still a consistent tick image. */
    mig_check_invariant(t->src, 128, &mb);
    g_assert_true(gw_vm_running(t->src));
    mig_test_free(t);
}

static void test_kill_src(void)
{
    MigTestConfig cfg = {
        .tick_append = PC_TICK,
        .transport = MIG_UNIX,
        .caps = PC_CAPS,
        .src_params = PC_PARAMS ", 'max-postcopy-bandwidth': 4194304",
    };
    MigTest *t;
    g_autoptr(GBytes) src_mem = NULL;
    g_autoptr(GBytes) dst_mem = NULL;
    const guint8 *s, *d;
    guint64 w0, w1, n, p0, p1, first, last;
    TickMailbox mb;
    g_autoptr(GString) why = g_string_new(NULL);
    TickMemPiece piece;
    int status;
    gint64 t_quit;

    if (!mig_require(true)) {
        return;
    }
    t = start_slow_postcopy(&cfg, false);
    /*
     * postcopy-active comes before the source's STOP (QEMU's order): only
     * once STOP arrived is the source stopped for good and its image the
     * reference. A dump taken earlier read the mailbox while the guest
     * still ran, and pages it wrote after that were then missing on the
     * destination for ever.
     */
    json_node_unref(gw_qmp_wait_event(t->src, "STOP", MIG_EVENT_TIMEOUT_MS));
    src_mem = gw_memsave(t->src, 0, 128 << 20);
    piece = (TickMemPiece){ 0, g_bytes_get_data(src_mem, NULL), 128 << 20 };
    g_assert_true(tick_mailbox_read(&piece, 1, &mb, why));
    w0 = mb.writes;
    n = mb.pages;
    g_assert_cmpuint(mb.nr_ranges, ==, 1);

    json_node_unref(gw_qmp_wait_event(t->dst, "RESUME", MIG_EVENT_TIMEOUT_MS));
    mig_sleep_events(t->dst, 1000);
    gw_vm_kill(t->src, SIGKILL);
    g_assert_true(gw_vm_wait_exit(t->src, 5000, &status));
    mig_wait_status(t->dst, "postcopy-paused", MIG_EVENT_TIMEOUT_MS);
    g_assert_cmpstr(mig_query_str(t->dst, "status"), ==, "postcopy-paused");

    /*
     * The vCPU touched pages p0 .. p1-1 on the destination (it may be
     * blocked on p1): those are present, and each must be exactly one
     * more than on the source. A page handed out as zeros would read 1.
     */
    w1 = mig_mailbox_writes(t->dst);
    g_test_message("writes at the switch %" PRIu64 ", at the kill %" PRIu64
                   " (%" PRIu64 " pages per pass)", w0, w1, n);
    g_assert_cmpuint(w1, >, w0);
    p0 = w0 % n;
    p1 = w1 % n;
    if (w1 - w0 >= n || p1 < p0) {
        /* Wrapped: check from the start of the range up to p1 instead. */
        first = 0;
        last = p1;
    } else {
        /*
         * Not p0: the source may have stopped between writing page p0 and
         * counting it, and then the destination never touches that page
         * (it stays missing there, and reading it would block).
         */
        first = p0 + 1;
        last = p1;
    }
    if (last > first) {
        guint64 gpa = mb.ranges[0].start + first * TICK_PAGE_SIZE;
        guint64 bytes = (last - first) * TICK_PAGE_SIZE;
        guint64 add = (w1 - w0 >= n) ? 0 : 1;

        dst_mem = gw_memsave(t->dst, gpa, bytes);
        s = (const guint8 *)g_bytes_get_data(src_mem, NULL) + gpa;
        d = g_bytes_get_data(dst_mem, NULL);
        for (guint64 i = 0; i < last - first && add; i++) {
            guint8 want = s[i * TICK_PAGE_SIZE] + 1;
            if (d[i * TICK_PAGE_SIZE] != want) {
                g_error("page 0x%" G_GINT64_MODIFIER "x reads %u on the destination, "
                        "expected %u (source %u + 1)",
                        (guint64)(gpa + i * TICK_PAGE_SIZE), d[i * TICK_PAGE_SIZE],
                        want, s[i * TICK_PAGE_SIZE]);
            }
        }
        g_test_message("%" PRIu64 " pages touched on the destination checked",
                       add ? last - first : 0);
    }

    /* A vCPU blocked on a missing page must not hold up quit. */
    t_quit = g_get_monotonic_time();
    {
        g_autoptr(JsonNode) r = gw_qmp(t->dst, "{'execute': 'quit'}");
        g_assert_false(gw_reply_is_error(r));
    }
    g_assert_true(gw_vm_wait_exit(t->dst, 5000, &status));
    g_test_message("destination exited %.0f ms after quit",
                   (double)(g_get_monotonic_time() - t_quit) / 1000);
    mig_test_free(t);
}

/* ---------------------------------------------------------------------- */
/* hugetlb */

static char *read_line(const char *path)
{
    g_autofree char *s = NULL;

    if (!g_file_get_contents(path, &s, NULL, NULL)) {
        return NULL;
    }
    return g_strstrip(g_strdup(s));
}

static guint64 hugepages_free(void)
{
    g_autofree char *mi = NULL;
    const char *p;

    g_assert_true(g_file_get_contents("/proc/meminfo", &mi, NULL, NULL));
    p = strstr(mi, "HugePages_Free:");
    g_assert_nonnull(p);
    return g_ascii_strtoull(p + strlen("HugePages_Free:"), NULL, 10);
}

#define NR_HUGEPAGES "/proc/sys/vm/nr_hugepages"

/* A sysctl file: written in place (g_file_set_contents renames). */
static bool write_sysctl(const char *path, const char *value)
{
    int fd = open(path, O_WRONLY | O_CLOEXEC);
    ssize_t n;

    if (fd < 0) {
        return false;
    }
    n = write(fd, value, strlen(value));
    close(fd);
    return n == (ssize_t)strlen(value);
}

/* Reserve @n more 2 MiB pages; returns the old setting or NULL (skipped). */
static char *reserve_hugepages(guint64 n)
{
    g_autofree char *old = read_line(NR_HUGEPAGES);
    g_autofree char *want = NULL;
    guint64 free_now;

    if (!old) {
        g_test_skip("no " NR_HUGEPAGES);
        g_printerr("*** SKIP: no " NR_HUGEPAGES " ***\n");
        return NULL;
    }
    want = g_strdup_printf("%" PRIu64 "\n", g_ascii_strtoull(old, NULL, 10) + n);
    if (!write_sysctl(NR_HUGEPAGES, want)) {
        g_test_skip("cannot write " NR_HUGEPAGES " (not root?)");
        g_printerr("*** SKIP: cannot reserve huge pages: writing "
                   NR_HUGEPAGES " failed ***\n");
        return NULL;
    }
    free_now = hugepages_free();
    if (free_now < n) {
        write_sysctl(NR_HUGEPAGES, old);
        g_test_skip("not enough huge pages");
        g_printerr("*** SKIP: asked for %" PRIu64 " more 2 MiB pages, only %"
                   PRIu64 " free ***\n", n, free_now);
        return NULL;
    }
    return g_steal_pointer(&old);
}

static void run_hugetlb(MigBackend backend, const char *mount_path)
{
    MigTestConfig cfg = {
        .tick_append = PC_TICK,
        .transport = MIG_UNIX,
        .backend = backend,
        .hugetlbfs_path = mount_path,
        .caps = PC_CAPS,
        .src_params = PC_PARAMS,
        .postcopy = MIG_PC_AFTER_PASS,
        .postcopy_pass = 2,
        .end_hook = check_postcopy_stats,
    };

    mig_run(&cfg, NULL);
}

static void test_hugetlb(void)
{
    g_autofree char *old = NULL;
    g_autofree char *mnt = NULL;

    if (!mig_require(true)) {
        return;
    }
    /* Two 128 MiB guests, plus slack. */
    old = reserve_hugepages(2 * 64 + 8);
    if (!old) {
        return;
    }
    run_hugetlb(MIG_BACKEND_HUGETLB, NULL);

    /* The same on a hugetlbfs mount of our own. */
    mnt = g_dir_make_tmp("gw-huge-XXXXXX", NULL);
    g_assert_nonnull(mnt);
    if (mount("none", mnt, "hugetlbfs", 0, "pagesize=2M") == 0) {
        run_hugetlb(MIG_BACKEND_HUGETLBFS, mnt);
        g_assert_cmpint(umount(mnt), ==, 0);
    } else {
        g_test_message("hugetlbfs mount failed (%s): memfd case only",
                       g_strerror(errno));
    }
    g_rmdir(mnt);
    g_assert_true(write_sysctl(NR_HUGEPAGES, old));
}

/* ---------------------------------------------------------------------- */
/* No userfaultfd */

static void test_no_uffd(void)
{
    const char *deny = g_getenv("GW_UFFD_DENY");
    const char *wrapper[] = { deny, NULL };
    GwVMOpts o = {
        .name = "nouffd",
        .args = "-m 128M -incoming defer",
        .wrapper = wrapper,
    };
    GwVMOpts ok = { .name = "control", .args = "-m 128M -incoming defer" };
    GwVM *vm;
    g_autoptr(JsonNode) r = NULL;
    const char *desc;

    if (!mig_require(true)) {
        return;
    }
    if (!deny || !g_file_test(deny, G_FILE_TEST_IS_EXECUTABLE)) {
        g_test_skip("GW_UFFD_DENY (the uffd-deny launcher) is not set");
        g_printerr("*** SKIP: GW_UFFD_DENY not set ***\n");
        return;
    }
    if (geteuid() != 0) {
        g_test_skip("hiding userfaultfd needs root (mount namespace)");
        g_printerr("*** SKIP: /migration/postcopy/no-uffd needs root ***\n");
        return;
    }
    /* Control: the same destination normally accepts the capability. */
    vm = gw_vm_start(&ok);
    mig_set_caps(vm, PC_CAPS, true);
    gw_vm_free(vm);

    vm = gw_vm_start(&o);
    r = gw_qmp(vm, "{'execute': 'migrate-set-capabilities', 'arguments': "
               "{'capabilities': [{'capability': 'postcopy-ram', "
               "'state': true}]}}");
    desc = gw_reply_error_desc(r);
    g_test_message("refusal: %s", desc ? desc : "(accepted!)");
    g_assert_nonnull(desc);
    g_assert_cmpstr(gw_reply_error_class(r), ==, "GenericError");
    g_assert_nonnull(strstr(desc, "userfaultfd"));
    g_assert_nonnull(strstr(desc, "vm.unprivileged_userfaultfd"));
    g_assert_nonnull(strstr(desc, "/dev/userfaultfd"));
    /* And it is still off. */
    {
        g_autoptr(JsonNode) caps = gw_qmp_assert_success(vm,
            "{'execute': 'query-migrate-capabilities'}");
        JsonArray *a = json_node_get_array(caps);
        for (guint i = 0; i < json_array_get_length(a); i++) {
            JsonObject *c = json_array_get_object_element(a, i);
            if (!strcmp(json_object_get_string_member(c, "capability"),
                        "postcopy-ram")) {
                g_assert_false(json_object_get_boolean_member(c, "state"));
            }
        }
    }
    gw_vm_free(vm);
}

int main(int argc, char **argv)
{
    g_test_init(&argc, &argv, NULL);
    mig_add_test("/migration/postcopy/plain", test_plain, false);
    mig_add_test("/migration/postcopy/pure", test_pure, false);
    mig_add_test("/migration/postcopy/no-uffd", test_no_uffd, false);
    mig_add_test("/migration/postcopy/blocktime", test_blocktime, false);
    mig_add_test("/migration/postcopy/kill-src", test_kill_src, false);
    mig_add_test("/migration/postcopy/memfd", test_memfd, true);
    mig_add_test_data("/migration/postcopy/running/default",
                      GINT_TO_POINTER(MIG_BACKEND_DEFAULT), test_running, true);
    mig_add_test_data("/migration/postcopy/running/memfd",
                      GINT_TO_POINTER(MIG_BACKEND_MEMFD), test_running, true);
    mig_add_test("/migration/postcopy/no-converge", test_no_converge, true);
    mig_add_test("/migration/postcopy/auto-switch", test_auto_switch, true);
    mig_add_test("/migration/postcopy/hugetlb", test_hugetlb, true);
    mig_add_test("/migration/postcopy/kill-dest", test_kill_dest, true);
    return g_test_run();
}
