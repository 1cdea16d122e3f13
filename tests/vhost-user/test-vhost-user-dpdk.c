/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * Interop with DPDK's virtio-user front-end (dpdk-testpmd, Debian's DPDK
 * 22.11, no huge pages): testpmd drives our example back-end as a virtio
 * NIC. Reflect: testpmd forwards what it receives back out (io mode, one
 * burst sent first), our back-end reflects it, so frames circle; every
 * count on both sides must agree. Generate: we send numbered frames,
 * testpmd swaps MACs and sends them back, and our checker must see each
 * one, intact, in order. Skips loudly when dpdk-testpmd is missing.
 */
#include "vu-frontend.h"

#include <glib/gstdio.h>
#include <signal.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

typedef struct Run {
    char *dir;
    char *sock;
    char *prefix;           /* DPDK's runtime-directory name */
    pid_t backend, testpmd;
} Run;

typedef struct PmdStats {
    gint64 rx, rx_dropped, tx, tx_dropped;
} PmdStats;

static char *testpmd_binary(void)
{
    char *p = g_find_program_in_path("dpdk-testpmd");

    if (!p) {
        g_printerr("\n*** SKIP: dpdk-testpmd is not installed (apt-get install dpdk-dev) ***\n");
        g_test_skip("dpdk-testpmd is not installed (apt-get install dpdk-dev)");
    }
    return p;
}

static char *run_path(Run *r, const char *name)
{
    return g_build_filename(r->dir, name, NULL);
}

static void start_backend(Run *r, const char *args)
{
    g_autofree char *out = run_path(r, "backend.out");
    g_autofree char *err = run_path(r, "backend.err");
    g_autofree char *stats = run_path(r, "stats.json");
    g_autofree char *cmd = g_strdup_printf("%s --socket-path %s --interval 0.2 --stats-file %s %s",
                                           g_getenv("GW_VHOST_USER_NET"), r->sock, stats, args);
    g_auto(GStrv) argv = NULL;

    g_assert_true(g_shell_parse_argv(cmd, NULL, &argv, NULL));
    r->backend = vu_spawn(argv, out, err);
    if (!strstr(args, "--client")) {
        g_autofree char *ready = vu_wait_file_contains(out, ": ready, ", 10000, r->backend);
        g_assert_nonnull(ready);
    }
}

static void start_testpmd(Run *r, const char *pmd, const char *vdev_extra, const char *fwd)
{
    g_autofree char *out = run_path(r, "testpmd.out");
    g_autofree char *vdev = g_strdup_printf("--vdev=net_virtio_user0,path=%s,queues=1%s",
                                            r->sock, vdev_extra);
    g_autofree char *prefix = g_strdup_printf("--file-prefix=%s", r->prefix);
    g_autofree char *mode = g_strdup_printf("--forward-mode=%s", fwd);
    /*
     * No huge pages (EAL then shares its memory through memfds, which is what
     * vhost-user needs), no PCI scan, no shared config files, no mlockall.
     */
    char *argv[] = {
        (char *)pmd, (char *)"--no-huge", (char *)"-m", (char *)"512", (char *)"--no-pci",
        (char *)"--no-shconf", prefix, vdev, (char *)"-l", (char *)"0-1", (char *)"--",
        (char *)"--total-num-mbufs=16384", (char *)"--no-mlockall", mode,
        (char *)"--stats-period", (char *)"1",
        g_str_equal(fwd, "io") ? (char *)"--tx-first" : NULL, NULL,
    };

    r->testpmd = vu_spawn(argv, out, out);
}

/* SIGINT makes testpmd stop forwarding, print its totals and exit. */
static PmdStats stop_testpmd(Run *r)
{
    g_autofree char *out_path = run_path(r, "testpmd.out");
    g_autofree char *out = NULL;
    PmdStats s = { -1, -1, -1, -1 };
    int status;

    kill(r->testpmd, SIGINT);
    if (!vu_wait_pid(r->testpmd, 20000, &status)) {
        kill(r->testpmd, SIGKILL);
        vu_wait_pid(r->testpmd, 5000, &status);
        g_error("testpmd did not exit on SIGINT");
    }
    g_assert_true(g_file_get_contents(out_path, &out, NULL, NULL));
    const char *acc = g_strrstr(out, "Accumulated forward statistics");
    if (!acc) {
        g_error("testpmd printed no totals:\n%s", out);
    }
    const char *p = strstr(acc, "RX-packets:");
    g_assert_nonnull(p);
    sscanf(p, "RX-packets: %" G_GINT64_FORMAT " RX-dropped: %" G_GINT64_FORMAT, &s.rx,
           &s.rx_dropped);
    p = strstr(acc, "TX-packets:");
    g_assert_nonnull(p);
    sscanf(p, "TX-packets: %" G_GINT64_FORMAT " TX-dropped: %" G_GINT64_FORMAT, &s.tx,
           &s.tx_dropped);
    g_test_message("testpmd: RX %" G_GINT64_FORMAT " (dropped %" G_GINT64_FORMAT "), TX %"
                   G_GINT64_FORMAT " (dropped %" G_GINT64_FORMAT ")", s.rx, s.rx_dropped, s.tx,
                   s.tx_dropped);
    return s;
}

/* The back-end leaves with the front-end; return its stdout. */
static char *backend_final(Run *r)
{
    g_autofree char *out_path = run_path(r, "backend.out");
    g_autofree char *err_path = run_path(r, "backend.err");
    char *out = NULL;
    int status;

    if (!vu_wait_pid(r->backend, 10000, &status)) {
        status = vu_stop_pid(r->backend, 5000);
    }
    g_assert_true(g_file_get_contents(out_path, &out, NULL, NULL));
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0 || !strstr(out, ": final ")) {
        g_autofree char *err = NULL;
        g_file_get_contents(err_path, &err, NULL, NULL);
        g_error("the back-end ended badly (status 0x%x):\n%s%s", status, out, err);
    }
    return out;
}

static gint64 final_of(const char *out, const char *key)
{
    return vu_stat_value(out, "godwit-vhost-user-net: final", key);
}

static Run *run_new(void)
{
    Run *r = g_new0(Run, 1);

    r->dir = g_dir_make_tmp("vub-dpdk-XXXXXX", NULL);
    g_assert_nonnull(r->dir);
    r->sock = run_path(r, "vhost.sock");
    r->prefix = g_path_get_basename(r->dir);
    return r;
}

static void run_free(Run *r)
{
    g_autofree char *rundir = g_build_filename("/var/run/dpdk", r->prefix, NULL);

    g_rmdir(rundir);        /* empty with --no-shconf */
    if (g_getenv("GW_KEEP_TMP")) {
        g_printerr("# kept %s\n", r->dir);
    } else {
        const char *names[] = { "vhost.sock", "backend.out", "backend.err", "stats.json",
                                "stats.json.tmp", "testpmd.out" };
        for (unsigned i = 0; i < G_N_ELEMENTS(names); i++) {
            g_autofree char *p = run_path(r, names[i]);
            g_unlink(p);
        }
        g_rmdir(r->dir);
    }
    g_free(r->dir);
    g_free(r->sock);
    g_free(r->prefix);
    g_free(r);
}

/* Wait until the back-end's JSON counter @key stops changing (and is > @floor). */
static gint64 wait_settled(Run *r, const char *key, gint64 floor, int timeout_ms)
{
    g_autofree char *path = run_path(r, "stats.json");
    g_autofree char *pat = g_strdup_printf("\"%s\": ", key);
    gint64 deadline = g_get_monotonic_time() + (gint64)timeout_ms * 1000;
    gint64 last = -1;
    int same = 0;

    while (g_get_monotonic_time() < deadline) {
        g_autofree char *text = NULL;
        g_usleep(250000);
        if (!g_file_get_contents(path, &text, NULL, NULL) || !strstr(text, pat)) {
            continue;
        }
        gint64 v = g_ascii_strtoll(strstr(text, pat) + strlen(pat), NULL, 10);
        same = v == last && v > floor ? same + 1 : 0;
        last = v;
        if (same >= 3) {
            return v;
        }
    }
    g_error("the back-end's %s did not settle above %" G_GINT64_FORMAT " (last %" G_GINT64_FORMAT
            ")", key, floor, last);
}

/* Wait until the back-end's JSON counter @key is above @floor. */
static void wait_above(Run *r, const char *key, gint64 floor, int timeout_ms)
{
    g_autofree char *path = run_path(r, "stats.json");
    g_autofree char *pat = g_strdup_printf("\"%s\": ", key);
    gint64 deadline = g_get_monotonic_time() + (gint64)timeout_ms * 1000;

    while (g_get_monotonic_time() < deadline) {
        g_autofree char *text = NULL;
        if (g_file_get_contents(path, &text, NULL, NULL) && strstr(text, pat) &&
            g_ascii_strtoll(strstr(text, pat) + strlen(pat), NULL, 10) > floor) {
            return;
        }
        g_usleep(50000);
    }
    g_error("the back-end's %s did not pass %" G_GINT64_FORMAT " within %d ms", key, floor,
            timeout_ms);
}

/*
 * testpmd (client) connects to our back-end (server); io forwarding with a
 * first burst of 32 keeps exactly 32 frames circling between the two.
 */
static void test_reflect(void)
{
    g_autofree char *pmd = testpmd_binary();
    if (!pmd) {
        return;
    }
    Run *r = run_new();
    start_backend(r, "--mode reflect");
    start_testpmd(r, pmd, ",server=0", "io");
    /* Let frames circle for a while (the back-end counts them). */
    wait_above(r, "tx", 0, 20000);
    g_usleep(1500000);
    PmdStats s = stop_testpmd(r);
    g_autofree char *out = backend_final(r);
    gint64 tx = final_of(out, "tx"), reflected = final_of(out, "reflected");

    /*
     * Nothing is lost while frames circle: the 32 of the first burst are
     * still in flight at the stop. Only there may the back-end drop them,
     * when testpmd stops its RX ring while they are on their way back (32
     * dropped in 2 runs of 30 here): each is then either reflected or dropped.
     */
    gint64 dropped = final_of(out, "dropped");
    g_test_message("back-end: tx %" G_GINT64_FORMAT ", reflected %" G_GINT64_FORMAT
                   ", dropped at the stop %" G_GINT64_FORMAT, tx, reflected, dropped);
    g_assert_cmpint(s.rx_dropped, ==, 0);
    g_assert_cmpint(s.tx_dropped, ==, 0);
    g_assert_cmpint(s.tx - s.rx, ==, 32);
    g_assert_cmpint(dropped, >=, 0);
    g_assert_cmpint(dropped, <=, 32);
    g_assert_cmpint(final_of(out, "tx_bad"), ==, 0);
    g_assert_cmpint(final_of(out, "rx_too_small"), ==, 0);
    /* Every frame we took from testpmd went back; testpmd received only ours. */
    g_assert_cmpint(reflected + dropped, ==, tx);
    g_assert_cmpint(s.rx, <=, reflected);
    g_assert_cmpint(reflected - s.rx, <=, 32);
    g_assert_cmpint(tx, <=, s.tx);
    g_assert_cmpint(s.tx - tx, <=, 32);
    /* A second and a half of circling is many round trips, not a handful. */
    g_assert_cmpint(s.rx, >=, 1000);
    g_assert_cmpint(final_of(out, "rejected"), ==, 0);
    run_free(r);
}

/*
 * testpmd listens (server=1), our back-end connects (--client) and
 * generates numbered frames; testpmd swaps the MACs and sends each back.
 */
static void test_generate(void)
{
    const gint64 count = 20000;
    g_autofree char *pmd = testpmd_binary();
    if (!pmd) {
        return;
    }
    Run *r = run_new();
    start_testpmd(r, pmd, ",server=1", "macswap");
    g_autofree char *args = g_strdup_printf("--client --connect-timeout 20000 --mode generate"
                                            " --rate 20000 --count %" G_GINT64_FORMAT
                                            " --frame-size 256", count);
    start_backend(r, args);
    gint64 generated = wait_settled(r, "generated", count - 1, 30000);
    g_assert_cmpint(generated, ==, count);
    wait_settled(r, "tx", 0, 10000);
    PmdStats s = stop_testpmd(r);
    g_autofree char *out = backend_final(r);
    gint64 tx = final_of(out, "tx"), ok = final_of(out, "nf_ok");
    gint64 gaps = final_of(out, "nf_gaps"), before = final_of(out, "nf_before_first");

    g_test_message("back-end: generated %" G_GINT64_FORMAT ", came back %" G_GINT64_FORMAT
                   " (%" G_GINT64_FORMAT " flushed by testpmd at its start, %" G_GINT64_FORMAT
                   " missing)", generated, tx, before, gaps);
    /* What testpmd sent is what came back, all numbered frames of ours, intact. */
    g_assert_cmpint(tx, ==, s.tx);
    g_assert_cmpint(ok, ==, tx);
    g_assert_cmpint(final_of(out, "nf_corrupt"), ==, 0);
    g_assert_cmpint(final_of(out, "nf_other"), ==, 0);
    g_assert_cmpint(final_of(out, "nf_dups"), ==, 0);
    g_assert_cmpint(final_of(out, "nf_streams"), ==, 1);
    /* A frame missing in the middle is one testpmd failed to send back. */
    g_assert_cmpint(gaps, ==, s.tx_dropped);
    g_assert_cmpint(s.rx, ==, s.tx + s.tx_dropped);
    /* Every frame is accounted for: flushed when testpmd started, returned, or missing. */
    g_assert_cmpint(before + ok + gaps, ==, count);
    run_free(r);
}

int main(int argc, char **argv)
{
    g_test_init(&argc, &argv, NULL);
    signal(SIGPIPE, SIG_IGN);
    if (!g_getenv("GW_VHOST_USER_NET")) {
        g_printerr("GW_VHOST_USER_NET must name the example back-end (meson sets it)\n");
        return 1;
    }
    g_test_add_func("/vhost-user/dpdk/reflect", test_reflect);
    g_test_add_func("/vhost-user/dpdk/generate", test_generate);
    return g_test_run();
}
